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
from diffjpeg import native
from diffjpeg.markers import parse_structure
from tests.helpers import pillow_file, skimage_crop


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
    at = sof_offset(BASELINE)
    rejects(with_bytes(BASELINE, at + 1, b"\xc3"), "lossless")
    rejects(with_bytes(BASELINE, at + 1, b"\xc5"), "hierarchical")
    rejects(with_bytes(BASELINE, at + 1, b"\x22"), "unknown marker")
    rejects(with_bytes(BASELINE, at + 1, b"\xd0"), "unexpected marker")
    rejects(with_bytes(BASELINE, at, b"\x00"), "expected a marker")
    sos = parse_structure(BASELINE).scans[0].header[0]
    rejects(with_bytes(BASELINE, sos + 1, b"\xfe"), "expected a marker")  # SOS becomes a comment: its data is not a segment
    rejects(with_bytes(BASELINE, at + 2, b"\x00\x01"), "length")


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
    rng = np.random.default_rng(seed)
    outcomes = {"decoded": 0, "JPEGError": 0}
    for _ in range(count):
        data = mutate(FILES[rng.integers(len(FILES))], rng)
        start = time.perf_counter()
        try:
            c = diffjpeg.read(data)
            image = diffjpeg.decode(c)
            assert bool(((image >= 0) & (image <= 1)).all())
            if native.compiled():  # the compiled kernel and the tensor stages agree
                with native.enabled(False):
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
