"""The real codecs the tools compare diffjpeg with: Pillow (libjpeg-turbo) and OpenCV."""
from __future__ import annotations

import io

import numpy as np

from ..core.geometry import PILLOW_SUBSAMPLING as SUBSAMPLING_PIL  # Pillow's ``subsampling=`` codes


def pillow_jpeg(a: np.ndarray, quality: int | None = None, subsampling: str = "4:2:0", optimize: bool = False,
                progressive: bool = False, qtables: list | None = None) -> bytes:
    """The JPEG file Pillow (libjpeg-turbo) writes for a uint8 array, at ``quality`` or with ``qtables``
    (Pillow's form: see :func:`diffjpeg.tools.qtables.pillow_qtables`)."""
    from PIL import Image

    options = {"subsampling": SUBSAMPLING_PIL[subsampling], "optimize": optimize, "progressive": progressive}
    if qtables is not None:
        options["qtables"] = qtables
    elif quality is None:
        raise ValueError("give quality or qtables")
    else:
        options["quality"] = int(quality)
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, "JPEG", **options)
    return buf.getvalue()


def pillow_decode(data: bytes, mode: str | None = None) -> np.ndarray:
    """Pixels of a JPEG file as Pillow decodes them (converted to ``mode``, e.g. ``"RGB"``, if given)."""
    from PIL import Image

    image = Image.open(io.BytesIO(data))
    return np.array(image if mode is None else image.convert(mode))


def pillow_roundtrip(a: np.ndarray, quality: int, subsampling: str = "4:2:0") -> np.ndarray:
    """Pillow's JPEG of ``a``, decoded to RGB (a grayscale file gives equal R, G, B)."""
    return pillow_decode(pillow_jpeg(a, quality, subsampling), "RGB")


def opencv_roundtrip(a: np.ndarray, quality: int, subsampling: str = "4:2:0") -> np.ndarray:
    """OpenCV's JPEG of an RGB array, decoded to RGB."""
    import cv2

    flag = {"4:4:4": 0x111111, "4:2:2": 0x211111, "4:2:0": 0x221111}[subsampling]
    ok, data = cv2.imencode(".jpg", a[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(quality), cv2.IMWRITE_JPEG_SAMPLING_FACTOR, flag])
    return cv2.imdecode(data, cv2.IMREAD_COLOR)[..., ::-1]
