"""Real JPEG files: read their quantized DCT coefficients, write them back.

Reading runs real libjpeg-turbo (2.1, the build jpeglib ships), so a file read
here holds exactly the coefficients any libjpeg decoder sees. Writing is
Python (:mod:`diffjpeg.bitstream.sequential`, :mod:`diffjpeg.bitstream.progressive`), byte for
byte the file libjpeg writes for those coefficients.
:func:`diffjpeg.decode` of what :func:`read` returns equals Pillow's decoding
of the file, pixel for pixel (exact mode), crafted and corrupted files
included: ``decode`` computes the inverse DCT in 16 bits where
libjpeg-turbo's x86-64 SIMD code does (:mod:`diffjpeg.stages.dct`), and smooths
progressive files whose scans stop early as libjpeg does
(:mod:`diffjpeg.stages.smoothing`, with the state libjpeg reports).

Before libjpeg sees a file, :func:`diffjpeg.bitstream.markers.parse_structure` checks
its structure and size in Python; libjpeg's own errors, and by default its
warnings about corrupt data (which Pillow decodes silently), become
:class:`JPEGError`. The compiled ``diffjpeg.backends._libjpeg`` runs each read on its
own (from memory, its messages kept per call, the GIL released), so reads
are safe from any number of threads and leave the process's stderr alone.

Damaged files, with ``strict=False``, take libjpeg-turbo's recovery, which is
Pillow's (jdmarker.c, jdhuff.c): bytes where a marker should be are skipped
(a warning), a scan whose data stops early is finished with zeros (a
warning), a wrong restart marker makes the decoder resynchronize
(``jpeg_resync_to_restart``: a warning), and a file that ends before its
EOI marker gets one from libjpeg's source manager ("Premature end of JPEG
file", a warning) and its missing data as zeros: Pillow's pixels with
``ImageFile.LOAD_TRUNCATED_IMAGES``, which feeds libjpeg an EOI where the
file ends (by default Pillow refuses such files, as ``strict=True`` does).
Where libjpeg then meets an error, not a warning, the file is refused
(Pillow's flag keeps whatever was decoded before the error).
"""
from __future__ import annotations

import glob
import math
import os
import re
import tempfile
import threading
import warnings
from collections.abc import Sequence
from functools import lru_cache

import numpy as np
import torch
from torch import Tensor

from ..bitstream.huffman import check_codable, coded_scans
from ..bitstream.markers import DEFAULT_MAX_PIXELS, LOSSLESS, JPEGError, parse_structure, whole_tables
from ..bitstream.progressive import progressive_file
from ..bitstream.sequential import MAX_TABLE_SLOT, SOF_BASELINE, file_header, sequential_file
from ..core.coefficients import Coefficients, Progression
from ..core.geometry import block_count, geometries
from ..stages.smoothing import progression_bits
from .lossless import read_lossless
from .pipeline import decode

LIBJPEG = "turbo210"  # the newest libjpeg-turbo jpeglib carries (2.1), the codec of Pillow and OpenCV
_jpeglib_lock = threading.Lock()  # only for the fallback: jpeglib's version switch is process-wide


def _jpeglib():
    try:
        import jpeglib
    except ImportError as e:  # pragma: no cover - a declared dependency
        raise ImportError("reading files needs jpeglib: pip install jpeglib") from e
    return jpeglib


def _library_file() -> str:
    """jpeglib's libjpeg-turbo 2.1 shared object."""
    folder = os.path.join(os.path.dirname(_jpeglib().__file__), "cjpeglib")
    found = sorted(f for f in glob.glob(os.path.join(folder, f"cjpeglib_{LIBJPEG}.*")) if not f.endswith(".py"))
    if not found:
        raise OSError(f"jpeglib has no {LIBJPEG} build in {folder}")
    return found[0]


@lru_cache(maxsize=None)
def _reader():
    """The per-call reader (``diffjpeg.backends._libjpeg`` with jpeglib's library
    loaded), or ``None`` to fall back to jpeglib itself, with a warning if the
    extension is there but the library does not match it."""
    try:
        from ..backends import _libjpeg
    except ImportError:
        return None
    try:
        library = _libjpeg.load(_library_file())
        _check_reader(_libjpeg, library)
    except (OSError, ValueError) as e:
        warnings.warn(f"diffjpeg.backends._libjpeg cannot use jpeglib's libjpeg ({e}); reading through jpeglib, without libjpeg's messages", RuntimeWarning, stacklevel=3)
        return None
    return lambda data, out=None: _libjpeg.read(library, data, out)


def _check_reader(module, library) -> None:
    """Read back a file written here, with values that only the right struct
    layouts give back (a 16-bit table, three samplings, distinct blocks): the
    struct size check in load() cannot see a field's type inside padding."""
    y = torch.arange(2 * 4 * 64, dtype=torch.float32).reshape(2, 4, 8, 8) % 401 - 200
    chroma = torch.arange(2 * 2 * 64, dtype=torch.float32).reshape(2, 2, 8, 8) % 37 - 18
    tables = torch.arange(2 * 64, dtype=torch.float32).reshape(2, 8, 8) * 7 + 1
    c = Coefficients(y, chroma, -chroma, tables, ((2, 1), (1, 1), (1, 1)), (16, 32))
    warned, refused, components, qtables, _ = module.read(library, write(c))
    if refused is not None or warned:
        raise OSError(f"a valid file did not read: {refused}, {warned}")
    # a complete progressive file: its state complete, its last iMCU row good
    data = write(c, progressive=True)
    warned, refused, progressive, _, progress = module.read(library, data)
    expected = (data.count(b"\xff\xda"), c.size[0] // 8 - 1)  # v_max 1: an iMCU row is 8 rows
    if refused is not None or warned or progress != expected or any(np.frombuffer(p[-1], np.int32)[:64].any() for p in progressive):
        raise OSError(f"a complete progressive file did not come back complete: {progress}, expected {expected}")
    for (rows, cols, h, v, slot, blob, *_), blocks, sampling, index in zip(components, c.components, c.sampling, c.qtable_index):
        if (rows, cols, (h, v), slot) != (*blocks.shape[:2], sampling, index):
            raise OSError("a component's description came back wrong")
        if not np.array_equal(np.frombuffer(blob, np.float32).reshape(rows, cols, 8, 8), blocks.numpy()):
            raise OSError("coefficients came back wrong")
    for slot in (0, 1):
        if not np.array_equal(np.frombuffer(qtables[slot], np.uint16).reshape(8, 8), tables[slot].numpy()):
            raise OSError("quantization tables came back wrong")


def _source_bytes(source) -> bytes:
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source)
    if isinstance(source, (str, os.PathLike)):
        with open(source, "rb") as f:
            return f.read()
    if hasattr(source, "read"):
        data = source.read()
        if not isinstance(data, (bytes, bytearray)):
            raise TypeError(f"source file object must be opened in binary mode, read() gave {type(data).__name__}")
        return bytes(data)
    raise TypeError(f"source must be a path, bytes or a binary file object, got {type(source).__name__}")


def _check_plausible_size(structure) -> None:
    """Refuse a sequential Huffman file whose scans are too short for its
    blocks before libjpeg allocates them: every block costs at least 2 bits
    there (a DC code and an EOB, or 63 AC codes). Progressive and arithmetic
    files can code many blocks in a few bits, so they are not checked."""
    if structure.process not in ("baseline", "extended sequential"):
        return
    blocks = block_count((structure.height, structure.width), structure.sampling)
    available = 8 * sum(end - start for start, end in (s.data for s in structure.scans))
    if available < 2 * blocks:
        raise JPEGError(
            f"truncated or corrupt: {structure.width}x{structure.height} needs {blocks} blocks, "
            f"at least {2 * blocks} bits, but the scans hold {available}; strict=False hands it "
            "to libjpeg, which decodes what is there and fills the rest with zeros"
        )


_EOF_WARNING = "Premature end of JPEG file"  # JWRN_JPEG_EOF: the source ran dry
_HIT_MARKER = "premature end of data segment"  # JWRN_HIT_MARKER: scan data stopped at a marker
LENIENT_HINT = "strict=False decodes it as libjpeg does"


def _is_marker(data: bytes, at: int) -> bool:
    return 0 <= at and at + 1 < len(data) and data[at] == 0xFF and data[at + 1] not in (0x00, 0xFF)


def _where(data: bytes, offset: int, text: str) -> str:
    """Where a libjpeg message points, from how far libjpeg had read: the
    marker it has just read; or for the premature end of a scan's data, the
    marker its Huffman decoder stopped at, and for extraneous bytes, the
    marker after them: both lie ahead of the position libjpeg last saved,
    unless they are the marker just read."""
    if _is_marker(data, offset - 2):
        return f"at the marker at byte {offset - 2}"
    if _HIT_MARKER in text or "extraneous bytes before marker" in text:  # the marker lies ahead
        at = data.find(b"\xff", offset)
        while at >= 0 and not _is_marker(data, at):
            at = data.find(b"\xff", at + 1)
        if at >= 0:
            return f"at the marker at byte {at}"
    return f"near byte {offset}"


def _warning_text(data: bytes, warned: list) -> str:
    """libjpeg's warnings (``_libjpeg.read``'s list) as one phrase: the first
    three with where they point, and how many more there were."""
    kept = [(offset, text) for offset, text in warned if text is not None]
    total = max([count for count, text in warned if text is None] + [len(kept)])
    parts = []
    for offset, text in kept[:3]:
        parts.append(f"{text.removeprefix('Corrupt JPEG data: ')} ({_where(data, offset, text)})")
    more = f" and {total - 3} more" if total > 3 else ""
    return "; ".join(parts) + more


def _lenient_decodes(data: bytes, max_pixels: int | None) -> bool:
    """Whether ``read(data, strict=False)`` would succeed: tried, unless the
    file is too short for its blocks (then libjpeg's work would not be in
    proportion to the file's size, and the answer is "no")."""
    try:
        structure = parse_structure(data, max_pixels, strict=False)
        _check_plausible_size(structure)  # its one scan runs to the end of the file
        _read(data, structure, False, torch.float32, None, max_pixels)
    except JPEGError:
        return False
    return True


WORK_PER_BYTE = 4096  # block-scans per byte of file that read accepts (with max_pixels on)
WORK_FREE = 1 << 24  # and this many whatever the size


def _check_work(data: bytes, structure, strict: bool) -> None:
    """Refuse a file whose scans would cost libjpeg far more than its size
    justifies: every scan visits every block of its components, data or not,
    so a few bytes per scan header times a large frame is a decompression
    bomb of time. A strict walk found every scan libjpeg will read; else
    ``FF DA`` byte pairs bound them. A 10-scan progressive photo needs under
    100 block-scans per byte."""
    scans = len(structure.scans) if strict else max(1, data.count(b"\xff\xda"))
    blocks = block_count((structure.height, structure.width), structure.sampling)
    if scans * blocks > WORK_PER_BYTE * len(data) + WORK_FREE:
        raise JPEGError(
            f"up to {scans} scans of {blocks} blocks each in {len(data)} bytes: more work than a file of this size "
            "justifies (a guard against decompression bombs, as max_pixels; pass max_pixels=None to read it anyway)"
        )


def read(
    source,
    *,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    strict: bool = True,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> Coefficients:
    """Read the quantized DCT coefficients and tables of a JPEG file.

    Args:
        source: a path, the file's bytes, or a binary file object.
        max_pixels: largest ``height * width`` accepted (default Pillow's
            decompression-bomb limit, 89,478,485); ``None`` for no limit,
            and none on the work a file's scans cost per byte of it either
            (otherwise at most 4096 block visits per byte, plus 2**24).
        strict: if ``True`` (default), any damage raises :class:`JPEGError`
            with what and where (the byte offset), and says whether
            ``strict=False`` decodes the file: damage found in Python (bytes
            where a marker should be, ...) and libjpeg's warnings about
            corrupt data ("premature end of data segment", ...). If ``False``
            the file decodes as libjpeg (and Pillow) decode it anyway: junk
            skipped, a zero quantization table entry taken as given (its
            coefficient dequantizes to 0; :func:`write` refuses such tables),
            scans that end early finished with zeros, a file that
            ends before its EOI marker finished as libjpeg finishes it (what
            Pillow gives with ``ImageFile.LOAD_TRUNCATED_IMAGES``; by default
            Pillow refuses such files, as ``strict=True`` does).
        dtype, device: of the returned tensors; ``dtype`` float32 or float64,
            which hold every 16-bit coefficient exactly (float16 and
            bfloat16 do not: ``ValueError``).

    Returns:
        :class:`Coefficients` with no batch dimensions: ``y`` is
        ``(rows, cols, 8, 8)``, ``qtables`` ``(T, 8, 8)``. Baseline,
        extended or progressive (Huffman or arithmetic), any sampling
        factors libjpeg decodes, with the color space libjpeg decodes the
        file as (``color_space``: grayscale, YCbCr, RGB, CMYK or YCCK; see
        :mod:`diffjpeg.core.colorspace`). The components are as stored: a CMYK
        file's (``y, cb, cr, k``) hold Adobe's inverted samples, ``255 -
        ink``, a YCCK file's the YCbCr of the inverted C, M, Y and the
        inverted K; :func:`diffjpeg.decode` gives Pillow's CMYK pixels (ink).

    Raises:
        JPEGError: not a JPEG, truncated, corrupt, over ``max_pixels``, or not
            supported (samples of 12 or 16 bits, hierarchical; lossless files
            hold no coefficients: :func:`read_image` decodes them).

    Safe to call from many threads at once. Without the compiled
    ``diffjpeg.backends._libjpeg`` (no C compiler at install) the file goes through
    jpeglib instead, one read at a time, by way of a temporary file; then
    libjpeg prints its messages to the process's stderr instead of into the
    error, so ``strict=True`` no longer sees its warnings about corrupt data
    (files with them decode as with ``strict=False``); the checks made in
    Python before libjpeg runs, and libjpeg's errors, still raise.

    Example:
        >>> import io, diffjpeg
        >>> from PIL import Image
        >>> buf = io.BytesIO(); Image.new("RGB", (40, 30), "teal").save(buf, "JPEG")
        >>> c = diffjpeg.read(buf.getvalue())
        >>> c.size, c.subsampling, tuple(c.y.shape), diffjpeg.decode(c).shape
        ((30, 40), '4:2:0', (4, 5, 8, 8), torch.Size([3, 30, 40]))
    """
    _check_options(max_pixels, dtype)
    data, structure = _structure(source, max_pixels, strict)
    return _read(data, structure, strict, dtype, device, max_pixels)


def read_image(
    source,
    *,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    strict: bool = True,
    device: torch.device | str | None = None,
) -> Tensor:
    """Decode a JPEG file to its pixels, as Pillow decodes it.

    :func:`read` then :func:`diffjpeg.decode` (exact) with ``dtype=torch.uint8``:
    the 8-bit samples themselves, without the float32 images in between.
    Lossless (SOF3) files, which have no coefficients, are decoded by
    :func:`diffjpeg.codec.lossless.decode_lossless` (grayscale, RGB and CMYK: the
    ones libjpeg-turbo 3 decodes for Pillow).

    Args:
        source, max_pixels, strict: as :func:`read`.
        device: of the returned tensor (decoded on the CPU).

    Returns:
        uint8 ``(C, H, W)``: Pillow's ``np.asarray(Image.open(source))``
        moved to channels first: C = 1 for grayscale (mode ``"L"``), 3 for
        YCbCr and RGB files (``"RGB"``), 4 for CMYK and YCCK (``"CMYK"``, ink).

    Raises:
        JPEGError: as :func:`read`.

    Example:
        >>> import io, numpy as np, diffjpeg
        >>> from PIL import Image
        >>> buf = io.BytesIO(); Image.new("RGB", (40, 30), "teal").save(buf, "JPEG")
        >>> image = diffjpeg.read_image(buf.getvalue())
        >>> image.dtype, tuple(image.shape)
        (torch.uint8, (3, 30, 40))
        >>> np.array_equal(image.permute(1, 2, 0).numpy(), np.asarray(Image.open(buf)))
        True
    """
    _check_options(max_pixels, torch.float32)
    data, structure = _structure(source, max_pixels, strict)
    if structure.process == LOSSLESS:  # no coefficients: its pixels straight from diffjpeg.codec.lossless
        image = torch.from_numpy(read_lossless(data, max_pixels, strict, structure if strict else None))
    else:
        image = decode(_read(data, structure, strict, torch.float32, None, max_pixels), dtype=torch.uint8)
    return image if device is None else image.to(device)


def _check_options(max_pixels, dtype) -> None:
    """:func:`read`'s checks of its options (:func:`read_batch` shares them)."""
    if dtype not in (torch.float32, torch.float64):
        raise ValueError(f"dtype must be torch.float32 or torch.float64 (they hold every 16-bit coefficient exactly), got {dtype}")
    if max_pixels is not None and (isinstance(max_pixels, bool) or not isinstance(max_pixels, int) or max_pixels < 1):
        raise ValueError(f"max_pixels must be a positive int or None, got {max_pixels!r}")


def _structure(source, max_pixels: int | None, strict: bool):
    """The file's bytes and its structure, checked in Python; a strict
    refusal says whether ``strict=False`` would decode the file."""
    data = _source_bytes(source)
    try:
        return data, parse_structure(data, max_pixels, strict=strict)
    except JPEGError as e:
        if strict and _lenient_decodes(data, max_pixels):
            raise JPEGError(f"{e}; {LENIENT_HINT}") from None
        raise


def _read(data: bytes, structure, strict: bool, dtype: torch.dtype, device, max_pixels: int | None, out=None) -> Coefficients:
    """The coefficients of a file whose structure has been checked (strict
    or not), read by libjpeg; with ``out`` (one float32 array per component,
    of its blocks' shape: slices of :func:`read_batch`'s batch) written there
    and viewed, without a copy."""
    if structure.process == LOSSLESS:
        raise JPEGError("a lossless JPEG file (SOF3) has no DCT coefficients to read; diffjpeg.read_image decodes its pixels")
    if strict:
        _check_plausible_size(structure)
    if max_pixels is not None:
        _check_work(data, structure, strict)
    reader = _reader()
    if reader is not None:  # strict: the file up to its EOI; else all of it, libjpeg stops at EOI
        components, slots, qt, padding, state = _read_in_memory(reader, data[: structure.end] if strict else data, strict, out)
    else:
        components, slots, qt, padding = _read_through_jpeglib(_without_skipped_segments(data, structure), len(structure.components))
        state = None
    if len(components) != len(structure.components):
        raise JPEGError(f"libjpeg gave {len(components)} components, the frame header has {len(structure.components)}")
    geometry_check = [c.shape for c in components]
    used = sorted(set(slots))
    if any(qt[i] is None for i in used):
        raise JPEGError(f"a component uses a quantization table the file does not define (slots {used})")
    tables = np.array([qt[i] for i in used], dtype=np.float32)
    index = tuple(used.index(i) for i in slots)
    as_tensor = lambda a: _tensor(a, dtype, device)  # noqa: E731
    blocks = [as_tensor(c) for c in components] + [None] * (4 - len(components))
    c = Coefficients(
        y=blocks[0],
        cb=blocks[1],
        cr=blocks[2],
        k=blocks[3],
        qtables=as_tensor(tables),
        sampling=structure.sampling,
        size=(structure.height, structure.width),
        qtable_index=index,
        color_space=structure.color_space,
        progression=_progression(structure, state, padding, as_tensor, data),
    )
    expected = [g.blocks + (8, 8) for g in c.geometries()]
    if geometry_check != expected:  # libjpeg and the frame header must agree
        raise JPEGError(f"block arrays {geometry_check} do not match the frame header's {expected}")
    return c


def _tensor(a: np.ndarray, dtype: torch.dtype, device) -> Tensor:
    """``a`` as a tensor of ``dtype`` on ``device``; the reader's float32
    arrays as they are, without a copy."""
    if a.dtype == np.float32 and dtype == torch.float32 and device is None and a.flags.writeable:
        return torch.from_numpy(a)
    return torch.as_tensor(np.asarray(a, dtype=np.float32), device=device).to(dtype)


def _progression(structure, state, padding, as_tensor, data: bytes) -> Progression | None:
    """What decode's block smoothing needs of a progressive file whose scans
    leave coefficients incomplete; ``None`` for every other file. ``state``:
    libjpeg's own (the compiled reader: ``coef_bits`` after the last scan and
    before it, the scan count, the last good iMCU row), else ``None``: then
    the final state is worked out from the scans the Python walk found (all
    of them: strict; for a file read leniently, those of a strict walk if it
    gets through, else the first) and used for every row."""
    if not structure.progressive:
        return None
    if state is not None:
        bits, previous, scans, last_good = state
        if not any(any(row) for row in bits):  # every coefficient complete
            return None
        if scans < 2:  # smoothing_ok latches -1 for the earlier state then
            previous = tuple((-1,) * 64 for _ in previous)
        return Progression(bits, tuple(None if p is None else as_tensor(p) for p in padding), previous, last_good)
    scans = structure.scans
    if len(scans) == 1 and structure.end == len(data):  # a lenient walk: it stopped at the first scan
        try:
            scans = parse_structure(data, None).scans
        except JPEGError:
            pass
    bits = progression_bits(scans, [c.id for c in structure.components])
    if not any(any(row) for row in bits):
        return None
    return Progression(bits, tuple(None if p is None else as_tensor(p) for p in padding))


def _read_in_memory(reader, data: bytes, strict: bool, out=None):
    """Blocks per component (``out``'s arrays, if given), their table slots,
    the 4 table slots (or None), the DCs of each component's MCU padding row
    (or None), and libjpeg's ``coef_bits`` per component (``None`` unless
    progressive)."""
    warned, refused, components, tables, progress = reader(data, out)
    if refused is not None and not strict:
        whole = whole_tables(data)  # libjpeg-turbo 3 (Pillow's) reads short tables that jpeglib's refuses
        if whole is not None:
            warned, refused, components, tables, progress = reader(whole, out)
    if refused is not None:
        if isinstance(refused, tuple):  # libjpeg's error, and where it had read to
            offset, text = refused
            after = f", after warning: {_warning_text(data, warned)}" if warned else ""
            raise JPEGError(f"libjpeg cannot decode the file: {text} ({_where(data, offset, text)}){after}")
        raise JPEGError(f"libjpeg cannot decode the file: {refused}")
    if strict and any(text == _EOF_WARNING for _, text in warned):
        raise JPEGError(
            f"truncated: libjpeg reached the end of the file (byte {len(data)}) before an EOI marker "
            f"(Pillow refuses such files unless ImageFile.LOAD_TRUNCATED_IMAGES); {LENIENT_HINT}"
        )
    if strict and warned:
        raise JPEGError(f"corrupt JPEG data, libjpeg warns: {_warning_text(data, warned)}; {LENIENT_HINT}")
    if out is not None:  # libjpeg wrote them there, after checking each size
        blocks = list(out)
    else:
        blocks = [np.frombuffer(blob, np.float32).reshape(rows, cols, 8, 8) for rows, cols, _, _, _, blob, _, _ in components]  # no copy
    qt = [None if t is None else np.frombuffer(t, np.uint16).reshape(8, 8) for t in tables]
    padding = [None if pad is None else np.frombuffer(pad, np.int16) for *_, pad, _ in components]
    state = None
    if progress is not None:  # libjpeg's coef_bits: after the last scan, then before it
        both = [np.frombuffer(bits, np.int32).reshape(2, 64).tolist() for *_, bits in components]
        state = (tuple(tuple(b[0]) for b in both), tuple(tuple(b[1]) for b in both), *progress)
    return blocks, [slot for *_, slot, _, _, _ in components], qt, padding, state


def _without_skipped_segments(data: bytes, structure) -> bytes:
    """The file up to EOI without its APPn and COM segments, which libjpeg
    skips (the color space is known already): jpeglib keeps at most 50 of
    them and fails on more. One pass, as the parse that found them."""
    parts, start = [], 0
    for begin, end in structure.skipped:
        parts.append(data[start:begin])
        start = end
    parts.append(data[start : structure.end])
    return b"".join(parts)


def _read_through_jpeglib(data: bytes, count: int):
    """The same through jpeglib, without the compiled extension: it reads
    files by name and prints libjpeg's messages to stderr, which are left
    there (capturing them means taking over the process's fd 2), so its
    warnings are not seen and ``strict`` cannot apply to them."""
    jpeglib = _jpeglib()
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "in.jpg")
        with open(path, "wb") as f:
            f.write(data)
        try:
            with _jpeglib_lock, jpeglib.version(LIBJPEG):
                image = jpeglib.read_dct(path)
                image.load()
        except Exception as e:  # jpeglib turns every libjpeg error into an exception
            raise JPEGError(f"libjpeg cannot decode the file ({e}; libjpeg's message went to stderr)") from e
    blocks = [image.Y, image.Cb, image.Cr, image.K][:count]
    if any(b is None for b in blocks):
        raise JPEGError(f"jpeglib gave {sum(b is not None for b in blocks)} components, the frame header has {count}")
    qt = np.asarray(image.qt)
    # jpeglib gives no MCU padding: smoothing assumes libjpeg's encoders' (Progression)
    return blocks, [int(i) for i in image.quant_tbl_no[:count]], [qt[i] if i < len(qt) else None for i in range(4)], [None] * count


def read_batch(sources: Sequence, **options) -> Coefficients:
    """Read several JPEG files of the same size and sampling into one batch.

    Args:
        sources: paths, bytes or file objects.
        options: as :func:`read`.

    Returns:
        :class:`Coefficients` with batch shape ``(len(sources),)``; each image
        keeps its own quantization tables.

    Raises:
        JPEGError: as :func:`read`; ValueError if sizes, sampling, table
        assignment or color space differ between files.

    The files are read on ``torch.get_num_threads()`` threads (libjpeg runs
    without the GIL), each into its place in the batch: no copy after.

    Example:
        >>> import io, diffjpeg
        >>> from PIL import Image
        >>> files = []
        >>> for q in (30, 90):
        ...     buf = io.BytesIO(); Image.new("L", (16, 16)).save(buf, "JPEG", quality=q); files.append(buf.getvalue())
        >>> diffjpeg.read_batch(files).qtables.shape
        torch.Size([2, 1, 8, 8])
    """
    if isinstance(sources, (str, bytes, os.PathLike)) or not isinstance(sources, Sequence) or not sources:
        raise TypeError("sources must be a non-empty list of paths, bytes or file objects")
    max_pixels, strict, dtype, device = _batch_options(**options)
    if _reader() is None:  # jpeglib's fallback reads one file at a time, into arrays of its own
        items = [read(s, **options) for s in sources]
        _check_alike(items)
        return _batch(items, [_stack([getattr(c, n) for c in items]) if getattr(items[0], n) is not None else None
                              for n in ("y", "cb", "cr", "k")])
    data, first = _structure(sources[0], max_pixels, strict)
    shapes = [g.blocks + (8, 8) for g in geometries((first.height, first.width), first.sampling)]
    batch = [np.empty((len(sources), *shape), np.float32) for shape in shapes]
    items = _read_each(sources, (data, first), batch, max_pixels, strict)
    _check_alike(items)
    blocks = [torch.from_numpy(b) for b in batch] + [None] * (4 - len(batch))
    c = _batch(items, blocks)
    return c if dtype == torch.float32 and device is None else c.to(device=device, dtype=dtype)


def _batch_options(max_pixels=DEFAULT_MAX_PIXELS, strict=True, dtype=torch.float32, device=None):
    """:func:`read`'s keyword arguments, checked as :func:`read` checks them."""
    _check_options(max_pixels, dtype)
    return max_pixels, strict, dtype, device


def _read_each(sources: Sequence, first, batch: list, max_pixels, strict) -> list[Coefficients]:
    """:func:`read` of each source into its slice of ``batch``, in order, on up
    to ``torch.get_num_threads()`` threads, each taking the next file as it
    finishes one; the first error in order is raised. ``first``: the first
    source's bytes and structure, already parsed (they sized the batch)."""
    size, sampling, color_space = (first[1].height, first[1].width), first[1].sampling, first[1].color_space
    results: list = [None] * len(sources)
    failed: list = [None] * len(sources)
    indices = iter(range(len(sources)))
    take = threading.Lock()

    def one(i):
        data, structure = first if i == 0 else _structure(sources[i], max_pixels, strict)
        if ((structure.height, structure.width), structure.sampling, structure.color_space) != (size, sampling, color_space):
            raise ValueError(
                f"file {i} has size {(structure.height, structure.width)}, sampling {structure.sampling}, color space "
                f"{structure.color_space}; file 0 has {size}, {sampling}, {color_space}: read them one by one"
            )
        return _read(data, structure, strict, torch.float32, None, max_pixels, out=[b[i] for b in batch])

    def work():
        while True:
            with take:
                i = next(indices, None)
            if i is None:
                return
            try:
                results[i] = one(i)
            except Exception as e:  # noqa: BLE001 - raised in order below
                failed[i] = e

    workers = min(len(sources), torch.get_num_threads())
    threads = [threading.Thread(target=work, name=f"diffjpeg-read-{k}") for k in range(workers - 1)]
    for t in threads:
        t.start()
    work()
    for t in threads:
        t.join()
    for e in failed:
        if e is not None:
            raise e
    return results


def _check_alike(items: list[Coefficients]) -> None:
    """The files of one batch share size, sampling, table assignment, color
    space and which coefficients their scans leave incomplete."""
    first = items[0]
    scans = lambda c: None if c.progression is None else c.progression.state  # noqa: E731
    for i, c in enumerate(items[1:], 1):
        if (c.size, c.sampling, c.qtable_index, c.qtables.shape, c.color_space) != (
            first.size, first.sampling, first.qtable_index, first.qtables.shape, first.color_space
        ):
            raise ValueError(
                f"file {i} has size {c.size}, sampling {c.sampling}, tables {c.qtable_index}, color space {c.color_space}; "
                f"file 0 has {first.size}, {first.sampling}, {first.qtable_index}, {first.color_space}: read them one by one"
            )
        if scans(c) != scans(first):
            raise ValueError(f"file {i} and file 0 leave different coefficients incomplete (progressive scans): read them one by one")


def _batch(items: list[Coefficients], blocks: list) -> Coefficients:
    """One :class:`Coefficients` of ``items`` (alike), with these batched blocks."""
    first = items[0]
    stack = lambda ts: None if ts[0] is None else _stack(ts)  # noqa: E731
    progression = None
    if first.progression is not None:
        padding = zip(*(c.progression.padding_dc for c in items))
        progression = first.progression._with_padding(tuple(stack(list(p)) for p in padding))
    return Coefficients(
        y=blocks[0],
        cb=blocks[1],
        cr=blocks[2],
        k=blocks[3],
        qtables=_stack([c.qtables for c in items]),
        sampling=first.sampling,
        size=first.size,
        qtable_index=first.qtable_index,
        color_space=first.color_space,
        progression=progression,
    )


def _stack(tensors: list[Tensor]) -> Tensor:
    """``torch.stack``; on the CPU through numpy, one thread: torch's stack
    spreads even small copies over its intra-op threads, whose start and
    wake-ups can cost more than the copy."""
    if all(t.is_cpu and not t.requires_grad for t in tensors):
        return torch.from_numpy(np.stack([t.numpy() for t in tensors]))
    return torch.stack(tensors)


def _integer_blocks(t: Tensor, name: str) -> np.ndarray:
    values = t.detach().to("cpu", torch.float64)
    if not bool(torch.isfinite(values).all()):
        raise ValueError(f"{name} contains NaN or Inf")
    return np.rint(values.numpy()).astype(np.int16 if name != "qtables" else np.int64)


def _destinations(destination, count: int, batched: bool) -> list:
    if not batched or destination is None:
        return [destination] * count
    if isinstance(destination, str):
        if not re.search(r"\{[^}]*\}", destination):
            raise ValueError(f"destination for a batch of {count} images must be a pattern with {{}} (e.g. 'out_{{:03d}}.jpg') or a list, got {destination!r}")
        return [destination.format(i) for i in range(count)]
    if isinstance(destination, Sequence) and len(destination) == count:
        return list(destination)
    raise ValueError(f"destination for a batch of {count} images must be a pattern string or a list of {count} paths or file objects")


def write(coefficients: Coefficients, destination=None, *, optimize: bool = False, progressive: bool = False):
    """Write coefficients as real JPEG files, one per image of the batch.

    Coefficients are rounded to integers (the soft encoder's are not); tables
    are rounded and must lie in 1..65535 (over 255 makes an extended, not a
    baseline, file, as libjpeg does).

    Args:
        coefficients: :class:`Coefficients` of any batch shape.
        destination: for one image, a path or binary file object, or ``None``
            to only return the bytes; for a batch, a pattern like
            ``"out_{:03d}.jpg"`` (formatted with the flat image index) or a list
            of paths / file objects, or ``None``.
        optimize: optimized Huffman tables (libjpeg's ``optimize_coding``,
            Pillow's ``optimize=True``) instead of the standard ones.
        progressive: a progressive file with libjpeg's default scan script
            (jpeg_simple_progression); its Huffman tables are always
            optimized, as libjpeg's are, so ``optimize`` does not matter then.

    Returns:
        The file's bytes; a list of them for a batch.

    Example:
        >>> import io, diffjpeg
        >>> from PIL import Image
        >>> c = diffjpeg.encode(torch.rand(3, 32, 48), quality=80)
        >>> data = diffjpeg.write(c)
        >>> Image.open(io.BytesIO(data)).size
        (48, 32)
    """
    if not isinstance(coefficients, Coefficients):
        raise TypeError(f"coefficients must be diffjpeg.Coefficients, got {type(coefficients).__name__}")
    if not isinstance(optimize, bool) or not isinstance(progressive, bool):
        raise TypeError("optimize and progressive must be bool")
    c = coefficients
    batch = c.batch_shape
    count = math.prod(batch)
    targets = _destinations(destination, count, batched=len(batch) > 0)
    check_codable(c)
    tables = _integer_blocks(c.qtables, "qtables").reshape(count, -1, 8, 8)
    outside = ((tables < 1) | (tables > 65535)).any(axis=(0, 2, 3))
    if outside.any():  # a zero entry comes from a file libjpeg decodes (read(strict=False)), but no decoder should get one
        slot = int(outside.argmax())
        values = tables[:, slot]
        raise ValueError(f"qtables entries must round to 1..65535: table {slot} holds {values.min()}..{values.max()} "
                         "(a file read with strict=False may carry a zero entry, which libjpeg decodes but no file should hold)")
    if max(c.qtable_index) > MAX_TABLE_SLOT:
        raise ValueError(f"a JPEG file has quantization table slots 0..{MAX_TABLE_SLOT}, qtable_index is {c.qtable_index}")
    if progressive:
        planes = [_integer_blocks(b, name).reshape((count,) + tuple(b.shape[len(batch):])) for b, name in zip(c.components, ("y", "cb", "cr", "k"))]
    else:
        scans = coded_scans(c, "optimized" if optimize else "standard")
    outputs = []
    for i in range(count):
        if progressive:
            data = progressive_file([p[i] for p in planes], c.sampling, c.size, tables[i], c.qtable_index, c.color_space)
        else:
            header = file_header(SOF_BASELINE, tables[i], c.qtable_index, c.sampling, c.size, c.color_space)
            data = sequential_file(header, c.color_space, *scans[i])
        target = targets[i]
        if target is not None:
            if hasattr(target, "write"):
                target.write(data)
            else:
                with open(target, "wb") as f:
                    f.write(data)
        outputs.append(data)
    return outputs if len(batch) else outputs[0]
