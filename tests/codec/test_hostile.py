"""Hostile files: every failure is a JPEGError with a reason, fast, never a crash."""
import dataclasses
import io
import os
import struct
import tempfile
import time

import numpy as np
import pytest
import torch
from PIL import Image

import diffjpeg
from diffjpeg.backends import cpu, exact
from diffjpeg.bitstream.markers import parse_structure
from tests.helpers import assert_identical, decoded_pixels, pillow_decode, pillow_file, skimage_crop


def valid_files() -> list[bytes]:
    """Pillow's YCbCr (three samplings) and grayscale files; a progressive
    CMYK file (Pillow), a YCCK 4:2:0 one (libjpeg-turbo through jpeglib) and
    an RGB-coded one (``write``, Adobe transform 0)."""
    a = skimage_crop("astronaut", 64, 80, 100, 150)
    files = []
    for options in ({"subsampling": 2}, {"subsampling": 1, "optimize": True}, {"subsampling": 0, "progressive": True}):
        files.append(pillow_file(a, quality=70, **options))
    files.append(pillow_file(np.ascontiguousarray(a[..., 0]), quality=70))
    cmyk = np.ascontiguousarray(np.concatenate([a, a[..., :1]], axis=2))
    buf = io.BytesIO()
    Image.fromarray(cmyk, "CMYK").save(buf, "JPEG", quality=70, progressive=True)
    files.append(buf.getvalue())
    import jpeglib

    with tempfile.TemporaryDirectory() as folder, jpeglib.version("turbo210"):
        image = jpeglib.from_spatial(cmyk, in_color_space=jpeglib.JCS_CMYK)
        image.jpeg_color_space = jpeglib.JCS_YCCK
        image.write_spatial(os.path.join(folder, "ycck.jpg"), qt=70)
        with open(os.path.join(folder, "ycck.jpg"), "rb") as f:
            files.append(f.read())
    files.append(diffjpeg.write(dataclasses.replace(diffjpeg.read(files[2]), color_space="RGB")))
    return files


FILES = valid_files()
BASELINE = FILES[0]


def sof_offset(data: bytes) -> int:
    """Offset of the SOF marker."""
    position = 2
    while data[position + 1] not in (0xC0, 0xC1, 0xC2):
        position += 2 + struct.unpack_from(">H", data, position + 2)[0]
    return position


def with_bytes(data: bytes, offset: int, new: bytes) -> bytes:
    return data[:offset] + new + data[offset + len(new) :]


def rejects(data: bytes, match: str, **options):
    with pytest.raises(diffjpeg.JPEGError, match=match):
        diffjpeg.read(data, **options)


@pytest.mark.parametrize("data,match", [
    (b"", "not a JPEG"),
    (b"\x89PNG\r\n\x1a\n" + bytes(100), "not a JPEG"),
    (b"hello world, this is text", "not a JPEG"),
    (b"\xff\xd8", "not a JPEG"),
    (b"\xff\xd8\xff\xd9", "no frame header"),
])
def test_not_a_jpeg(data, match):
    rejects(data, match)


def test_jpeg_error_is_a_value_error():
    assert issubclass(diffjpeg.JPEGError, ValueError)


@pytest.mark.parametrize("index", range(len(FILES)))
def test_truncated_anywhere(index):
    data = FILES[index]
    for end in list(range(0, 40)) + list(range(40, len(data) - 1, 37)) + [len(data) - 2, len(data) - 1]:
        with pytest.raises(diffjpeg.JPEGError):
            diffjpeg.read(data[:end])


def test_truncated_scan_says_truncated():
    rejects(BASELINE[: len(BASELINE) // 2], "truncated")


def test_absurd_dimensions_hit_the_pixel_limit():
    at = sof_offset(BASELINE) + 5  # FF C0, length, precision, then height and width
    huge = with_bytes(BASELINE, at, struct.pack(">HH", 60000, 60000))
    rejects(huge, "max_pixels")
    rejects(with_bytes(BASELINE, at, struct.pack(">HH", 2000, 2000)), "max_pixels", max_pixels=1000)
    rejects(with_bytes(BASELINE, at, struct.pack(">HH", 0, 80)), "height 0")
    rejects(with_bytes(BASELINE, at, struct.pack(">HH", 64, 0)), "width is 0")


def test_large_claimed_size_with_little_data_is_refused_before_decoding():
    at = sof_offset(BASELINE) + 5
    claimed = with_bytes(BASELINE, at, struct.pack(">HH", 8000, 8000))
    start = time.perf_counter()
    rejects(claimed, "truncated or corrupt")
    assert time.perf_counter() - start < 5  # refused from the header, nothing allocated


@pytest.mark.parametrize("field,value,match", [
    (4, b"\x0c", "12-bit samples; only 8-bit samples are supported"),  # precision
    (4, b"\x10", "16-bit samples; only 8-bit samples are supported"),
    (9, b"\x02", "the frame has 2 components; supported are 1"),  # component count
    (9, b"\x04", "does not match its 4 components"),  # 4 is supported, but the frame holds 3
    (11, b"\x00", "sampling factors"),  # luma h, v = 0
    (11, b"\x55", "sampling factors"),  # 5x5
    (12, b"\x07", "quantization table"),  # table selector
])
def test_bad_frame_header_fields(field, value, match):
    rejects(with_bytes(BASELINE, sof_offset(BASELINE) + field, value), match)


def test_wrong_and_unsupported_markers():
    """Each names the marker and its byte offset; none of these files decodes
    with strict=False either (libjpeg stops on them), so no message says so."""
    at = sof_offset(BASELINE)
    for data, match in [
        (with_bytes(BASELINE, at + 1, b"\xc3"), "lossless"),
        (with_bytes(BASELINE, at + 1, b"\xc5"), "hierarchical"),
        (with_bytes(BASELINE, at + 1, b"\x22"), f"unknown marker FF 22 at byte {at}$"),
        (with_bytes(BASELINE, at + 1, b"\xf0"), f"unknown marker FF F0 at byte {at}$"),  # JPG0: libjpeg's JERR_UNKNOWN_MARKER
        (with_bytes(BASELINE, at + 1, b"\xd0"), f"restart marker FF D0 at byte {at} outside a scan$"),
        (with_bytes(BASELINE, at + 1, b"\xd8"), f"second SOI marker at byte {at}$"),
        (with_bytes(BASELINE, at, b"\x00"), f"extraneous bytes at byte {at} .*before the marker FF C4"),
        (with_bytes(BASELINE, at + 2, b"\x00\x01"), f"segment FF C0 at byte {at} has length 1"),
    ]:
        rejects(data, match)
        with pytest.raises(diffjpeg.JPEGError):
            diffjpeg.read(data, strict=False)
    sos = parse_structure(BASELINE).scans[0].header[0]
    rejects(with_bytes(BASELINE, sos + 1, b"\xfe"), "extraneous bytes")  # SOS becomes a comment: its data is not a segment


def test_bogus_marker_is_not_reported_as_truncation():
    """An unknown marker in a scan's data ends the scan; its 'length' is not read."""
    start, end = parse_structure(BASELINE).scans[0].data
    middle = (start + end) // 2 + (BASELINE[(start + end) // 2 - 1] == 0xFF)
    rejects(with_bytes(BASELINE, middle, b"\xff\x12"), f"unknown marker FF 12 at byte {middle}$")
    rejects(with_bytes(BASELINE, middle, b"\xff\x12"), "Unsupported marker type 0x12", strict=False)


def test_junk_and_ff00_in_headers_decode_leniently():
    """libjpeg (and Pillow) skip bytes where a marker should be, with a
    warning: strict=True names them and their offset, strict=False decodes."""
    at = sof_offset(BASELINE)
    for junk in (b"\x12\x34\x56", b"\xff\x00", b"\x00\xff\x00\xab"):
        data = BASELINE[:at] + junk + BASELINE[at:]
        rejects(data, f"{len(junk)} extraneous bytes at byte {at} .*before the marker FF C0 at byte {at + len(junk)}; strict=False decodes it")
        assert_identical(decoded_pixels(data, strict=False), pillow_decode(data))


def test_corrupt_entropy_data_strict_and_lenient():
    start, end = parse_structure(BASELINE).scans[0].data
    corrupt = with_bytes(BASELINE, start + (end - start) // 2, b"\xff\xd9")  # an EOI in mid-scan
    corrupt = corrupt[: start + (end - start) // 2 + 2]
    with pytest.raises(diffjpeg.JPEGError):
        diffjpeg.read(corrupt)
    # a premature end of the scan data: libjpeg warns; Pillow's leniency on request
    cut = BASELINE[: end - 40] + b"\xff\xd9"
    rejects(cut, "corrupt")
    c = diffjpeg.read(cut, strict=False)
    assert c.y.shape[:2] == (8, 10)


def mutate(data: bytes, rng: np.random.Generator) -> bytes:
    d = bytearray(data)
    kind = rng.integers(5)
    if kind == 0:  # truncate
        return bytes(d[: rng.integers(0, len(d))])
    if kind == 1:  # random bytes anywhere
        for _ in range(rng.integers(1, 10)):
            d[rng.integers(len(d))] = rng.integers(256)
    elif kind == 2:  # header fields: the first 650 bytes hold every segment before the scan
        for _ in range(rng.integers(1, 4)):
            d[rng.integers(2, min(len(d), 650))] = rng.integers(256)
    elif kind == 3:  # insert bytes
        p = rng.integers(len(d))
        d[p:p] = rng.integers(0, 256, rng.integers(1, 20)).astype(np.uint8).tobytes()
    else:  # bit flips
        for _ in range(rng.integers(1, 6)):
            d[rng.integers(len(d))] ^= 1 << int(rng.integers(8))
    return bytes(d)


def fuzz(count: int, seed: int) -> dict:
    """Mutated files read strictly and leniently (every other one)."""
    rng = np.random.default_rng(seed)
    outcomes = {"decoded": 0, "JPEGError": 0}
    for i in range(count):
        data = mutate(FILES[rng.integers(len(FILES))], rng)
        start = time.perf_counter()
        try:
            c = diffjpeg.read(data, strict=i % 2 == 0)
            image = diffjpeg.decode(c)
            assert bool(((image >= 0) & (image <= 1)).all())
            if exact.compiled():  # the compiled kernel and the tensor stages agree
                with cpu.enabled(False):
                    assert torch.equal(image, diffjpeg.decode(c))
            outcomes["decoded"] += 1
        except diffjpeg.JPEGError as e:
            assert str(e)
            outcomes["JPEGError"] += 1
        assert time.perf_counter() - start < 10, "a mutated file took too long"
    return outcomes


def test_fuzz():
    """Only two outcomes for a mutated file: it decodes, or JPEGError."""
    outcomes = fuzz(2000, seed=0)
    assert outcomes["JPEGError"] > 500 and outcomes["decoded"] > 50, outcomes


@pytest.mark.slow
def test_fuzz_long():
    outcomes = fuzz(30000, seed=1)
    assert outcomes["JPEGError"] > 5000 and outcomes["decoded"] > 500, outcomes


def crafted_files(count: int, seed: int, folder) -> list[bytes]:
    """Files no 8-bit encoder writes, through libjpeg's own writer (jpeglib):
    coefficients across its range (AC within 1023, DC within 1024) under
    tables up to 65535, so that dequantized values and the inverse DCT's
    16-bit sums overflow in every way (dense, sparse, DC only, a few large
    entries), grayscale 64x64 and 4:2:0 color 48x48."""
    jpeglib = pytest.importorskip("jpeglib")
    rng = np.random.default_rng(seed)
    bases = []
    for i, (shape, name) in enumerate((((64, 64, 1), "gray.jpg"), ((48, 48, 3), "color.jpg"))):
        path = str(folder / name)
        jpeglib.from_spatial(np.full(shape, 128, np.uint8)).write_spatial(path, qt=50)
        bases.append(path)
    files = []
    for trial in range(count):
        image = jpeglib.read_dct(bases[trial % 2])
        largest = int(rng.choice([1, 8, 255, 3000, 65535]))
        tables = rng.integers(1, largest + 1, image.qt.shape)
        if rng.random() < 0.3:
            tables[:] = largest
        image.qt = tables.astype(image.qt.dtype)
        for name in ("Y", "Cb", "Cr"):
            blocks = getattr(image, name)
            if blocks is None:
                continue
            kind, shape = trial // 2 % 5, blocks.shape
            if kind == 0:  # dense
                b = rng.integers(-1023, 1024, shape)
            elif kind == 1:  # sparse
                b = rng.integers(-1023, 1024, shape) * (rng.random(shape) < 0.05)
            elif kind == 2:  # DC only: pass 1's shortcut
                b = np.zeros(shape, int)
                b[..., 0, 0] = rng.integers(-1024, 1024, shape[:2])
            elif kind == 3:  # DC and row 0: the shortcut with AC
                b = np.zeros(shape, int)
                b[..., 0, :] = rng.integers(-1023, 1024, shape[:2] + (8,))
            else:  # a few entries, anywhere
                b = np.zeros(shape, int)
                for u, v in rng.integers(0, 8, (3, 2)):
                    b[..., u, v] = rng.integers(-1023, 1024, shape[:2])
            b[..., 0, 0] = np.clip(b[..., 0, 0], -1024, 1023)
            setattr(image, name, b.astype(blocks.dtype))
        path = folder / f"crafted{trial}.jpg"
        image.write_dct(str(path))
        files.append(path.read_bytes())
    # rows 1-7 quantized nonzero, 0 once dequantized (512 * 128 is 0 in 16
    # bits): no shortcut for that block, its DC's 40000 saturates
    image = jpeglib.read_dct(bases[0])
    image.qt = np.where(np.arange(64).reshape(8, 8) == 8, 128, 20).reshape(image.qt.shape).astype(image.qt.dtype)
    blocks = np.zeros(image.Y.shape, int)
    blocks[..., 0, 0], blocks[0, 0, 1, 0] = 500, 512
    image.Y = blocks.astype(image.Y.dtype)
    image.write_dct(str(folder / "no_shortcut.jpg"))
    files.append((folder / "no_shortcut.jpg").read_bytes())
    return files


def check_crafted(files: list[bytes]) -> None:
    for i, data in enumerate(files):
        expected = pillow_decode(data)
        for path in (True, False):  # the compiled kernel and the tensor stages
            with cpu.enabled(path):
                mine = decoded_pixels(data)
            assert np.array_equal(mine, expected), f"file {i}, compiled {path}: {(mine != expected).sum()} values differ"


def test_crafted_coefficients_decode_as_pillow(tmp_path):
    """Dequantized coefficients beyond 16 bits and inverse-DCT sums that
    overflow them: Pillow's libjpeg-turbo (x86-64 SIMD) wraps them, and so
    does decode (see diffjpeg.stages.dct)."""
    check_crafted(crafted_files(40, seed=0, folder=tmp_path))


@pytest.mark.slow
def test_crafted_coefficients_decode_as_pillow_long(tmp_path):
    check_crafted(crafted_files(600, seed=1, folder=tmp_path))


def test_many_empty_scans_over_a_large_frame_are_refused_before_decoding():
    """Every scan visits every block, data or not: 400 copies of a DC scan
    header (14 bytes each) over a 4000x4000 frame would cost libjpeg 150M
    block visits for 6 kB. Refused in both modes, at once; max_pixels=None
    lets it through."""
    data = FILES[2]  # progressive
    at = sof_offset(data) + 5
    data = with_bytes(data, at, struct.pack(">HH", 4000, 4000))
    sos = data.find(b"\xff\xda")
    header = data[sos : sos + 2 + struct.unpack_from(">H", data, sos + 2)[0]]
    bomb = data[:sos] + header * 400 + b"\xff\xd9"
    for strict in (True, False):
        start = time.perf_counter()
        rejects(bomb, "more work than a file of this size justifies", strict=strict)
        assert time.perf_counter() - start < 1
    few = data[:sos] + header * 10 + b"\xff\xd9"  # 10 scans: libjpeg's own progression has as many
    assert diffjpeg.read(few, strict=False).size == (4000, 4000)
    assert diffjpeg.read(bomb, strict=False, max_pixels=None).size == (4000, 4000)
