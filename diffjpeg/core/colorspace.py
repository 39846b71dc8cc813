"""Color spaces of JPEG files: what a file's components mean, how a reader
tells, how a writer marks it.

JPEG itself does not say; libjpeg guesses from markers and component ids on
reading, and marks what it writes. This module is the one home of those
facts; the conversions themselves are :mod:`diffjpeg.stages.color`'s.

Facts from libjpeg-turbo 2.1 (and the same in 3.x) relied on:

* Reading (jdapimin.c ``default_decompress_parms``), decided at the first
  SOS from the markers seen before it. 1 component: grayscale. 3: YCbCr if
  a JFIF APP0 was seen; else an Adobe APP14's transform flag, 0 = RGB,
  1 = YCbCr, other values warn and mean YCbCr; else component ids
  ``R, G, B`` (82, 71, 66) mean RGB, anything else YCbCr (in a lossless
  file, libjpeg-turbo 3.x: RGB, whatever the ids). 4: with an Adobe
  marker, transform 0 = CMYK, 2 = YCCK, other values warn and mean YCCK;
  without one, CMYK. Other counts are left unconverted.
* A JFIF APP0 counts when its body starts ``JFIF\\0`` and holds at least 14
  bytes; an Adobe APP14 when it starts ``Adobe`` and holds at least 12, the
  transform being byte 11 (jdmarker.c ``examine_app0``/``examine_app14``);
  a later one overrides an earlier one.
* Writing (jcparam.c ``jpeg_set_colorspace``): grayscale and YCbCr write a
  JFIF APP0; RGB, CMYK and YCCK an Adobe APP14 (jcmarker.c
  ``emit_adobe_app14``: version 100, flags 0, transform 1 for YCbCr, 2 for
  YCCK, 0 otherwise). Component ids are 1, 2, 3 (grayscale: 1), ``R G B``,
  ``C M Y K``, and 1, 2, 3, 4 for YCCK. Quantization and Huffman table slots
  are 0 for luma-like components (Y, R, G, B, C, M, Y, K) and 1 for Cb and Cr.
* Decoding to pixels (jdcolor.c): YCbCr becomes RGB; RGB and CMYK pass as
  they are; YCCK becomes CMYK by YCbCr to RGB on its first three components,
  then ``255 - x``, K passing through (``ycck_cmyk_convert``). Pillow opens
  every 4-component file in mode ``"CMYK"`` through raw mode ``"CMYK;I"``:
  ``255 - x`` of what libjpeg gives, Adobe's convention (Photoshop stores
  ``255 - ink``), whatever the markers say.
"""
from __future__ import annotations

from typing import Literal

ColorSpace = Literal["grayscale", "YCbCr", "RGB", "CMYK", "YCCK"]  # the names of COLOR_SPACES, for annotations
COLOR_SPACES = {"grayscale": 1, "YCbCr": 3, "RGB": 3, "CMYK": 4, "YCCK": 4}  # and their component counts
MAX_COMPONENTS = 4

# jcparam.c jpeg_set_colorspace: component ids and table slots (quantization and Huffman alike)
COMPONENT_IDS = {"grayscale": (1,), "YCbCr": (1, 2, 3), "RGB": tuple(b"RGB"), "CMYK": tuple(b"CMYK"), "YCCK": (1, 2, 3, 4)}
TABLE_SLOTS = {"grayscale": (0,), "YCbCr": (0, 1, 1), "RGB": (0, 0, 0), "CMYK": (0, 0, 0, 0), "YCCK": (0, 1, 1, 0)}
ADOBE_TRANSFORM = {"RGB": 0, "CMYK": 0, "YCCK": 2}  # the spaces written with an Adobe marker (the rest with JFIF)

JFIF_MIN_LENGTH = 14  # APP0_DATA_LEN
ADOBE_MIN_LENGTH = 12  # APP14_DATA_LEN


def default_color_space(count: int) -> str:
    """The color space of ``count`` components when nothing says otherwise
    (libjpeg's guess for a file with no markers and ids 1, 2, ...).

    Example:
        >>> default_color_space(3), default_color_space(4)
        ('YCbCr', 'CMYK')
    """
    for name, n in COLOR_SPACES.items():
        if n == count:
            return name
    raise ValueError(f"a JPEG image this library decodes has 1, 3 or 4 components, not {count}")


def check_color_space(color_space, count: int) -> str:
    """``color_space`` if it is one of :data:`COLOR_SPACES` with ``count``
    components, else ``ValueError`` naming what is allowed."""
    if not isinstance(color_space, str) or color_space not in COLOR_SPACES:
        raise ValueError(f"color_space must be one of {tuple(COLOR_SPACES)}, got {color_space!r}")
    if COLOR_SPACES[color_space] != count:
        allowed = [name for name, n in COLOR_SPACES.items() if n == count]
        raise ValueError(f"color_space {color_space!r} has {COLOR_SPACES[color_space]} components, these coefficients {count}: use one of {allowed}")
    return color_space


def file_color_space(component_ids: tuple[int, ...], jfif: bool, adobe_transform: int | None, lossless: bool = False) -> str:
    """The color space libjpeg decodes a file as, from its frame's component
    ids and the JFIF and Adobe markers before its first scan, and whether it
    is lossless (SOF3).

    Example:
        >>> file_color_space((1, 2, 3), False, 0), file_color_space((1, 2, 3, 4), False, 2)
        ('RGB', 'YCCK')
    """
    count = len(component_ids)
    if count == 3:
        if jfif:
            return "YCbCr"
        if adobe_transform is not None:
            return "RGB" if adobe_transform == 0 else "YCbCr"
        return "RGB" if lossless or tuple(component_ids) == COMPONENT_IDS["RGB"] else "YCbCr"
    if count == 4 and adobe_transform is not None:
        return "CMYK" if adobe_transform == 0 else "YCCK"
    return default_color_space(count)
