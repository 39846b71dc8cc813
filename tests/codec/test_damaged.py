"""Damaged files (tests/damaged.py: byte edits of valid Pillow files) against
Pillow: what Pillow decodes, ``read(strict=False)`` + ``decode`` decodes to
the same pixels, and ``strict=True`` either decodes it the same (libjpeg saw
nothing wrong) or raises a JPEGError that says strict=False decodes it; what
Pillow refuses, both refuse.

One documented exception: Pillow's own Python header parser
(JpegImagePlugin, before libjpeg runs) refuses a TEM marker (``FF 01``) and
an APP14 "Adobe" segment under 7 bytes, which libjpeg passes over without a
warning: there the reference is Pillow's decoding of the file without them
(the valid file), and OpenCV's decoding (libjpeg-turbo alone) must agree
where it gives the same channels.
Progressive files cut short decode with libjpeg's block smoothing, as
Pillow shows them (libjpeg's own ``coef_bits``: scans after damage count).
"""
import io

import numpy as np
import pytest

import diffjpeg
from diffjpeg.bitstream.markers import TEM
from tests.damaged import base_files, damaged
from tests.helpers import decoded_pixels

BASES = base_files()


def pillow_outcome(data: bytes):
    """Pillow's pixels, or ``("open" | "load", error)``: which step refused."""
    from PIL import Image

    try:
        image = Image.open(io.BytesIO(data))
    except Exception as e:  # noqa: BLE001 - any refusal counts
        return ("open", e)
    try:
        image.load()
    except Exception as e:  # noqa: BLE001
        return ("load", e)
    return np.asarray(image)


def pillow_truncated(data: bytes):
    """Pillow's pixels with ``ImageFile.LOAD_TRUNCATED_IMAGES`` (it feeds
    libjpeg an EOI where the file ends), or None if it still refuses."""
    from PIL import Image, ImageFile

    previous, ImageFile.LOAD_TRUNCATED_IMAGES = ImageFile.LOAD_TRUNCATED_IMAGES, True
    try:
        image = Image.open(io.BytesIO(data))
        image.load()
        return np.asarray(image)
    except Exception:  # noqa: BLE001
        return None
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = previous


def opencv_pixels(data: bytes, gray: bool):
    import cv2

    a = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE if gray else cv2.IMREAD_COLOR)
    return None if a is None else (a if gray else np.ascontiguousarray(a[..., ::-1]))


def outcome(data: bytes, strict: bool):
    try:
        return decoded_pixels(data, strict=strict)
    except diffjpeg.JPEGError as e:
        assert str(e)
        return e


def check(label: str, data: bytes, valid: bytes, counts: dict) -> str | None:
    """None if ``data`` (damaged ``valid``) reads as the module docstring
    says, else what is wrong."""
    gray = label.startswith("gray")
    reference = pillow_outcome(data)
    lenient, strict = outcome(data, False), outcome(data, True)
    if isinstance(reference, tuple) and reference[0] == "open" and not isinstance(lenient, Exception):
        opencv = opencv_pixels(data, gray)  # Pillow's parser refused it, not libjpeg: does libjpeg decode it?
        if opencv is not None and (f"FF {TEM:02X} before" in label or "APP14 of" in label):
            reference = pillow_outcome(valid)
            counts["Pillow's parser refuses"] += 1
            if opencv.shape == reference.shape and not np.array_equal(opencv, reference):
                return f"{label}: OpenCV's decoding differs from the valid file's"
    if isinstance(reference, tuple) and reference[0] == "load" and "truncated" in str(reference[1]):
        # a file that ends before its EOI: libjpeg's recovery is Pillow's with LOAD_TRUNCATED_IMAGES
        truncated = pillow_truncated(data)
        if truncated is not None:
            counts["truncated"] += 1
            if isinstance(lenient, Exception):
                # Pillow's flag also keeps what a libjpeg *error* left half decoded; libjpeg's errors stay errors here
                if "libjpeg cannot decode the file" in str(lenient):
                    counts["truncated, then a libjpeg error"] += 1
                    return None
                return f"{label}: truncated; Pillow with LOAD_TRUNCATED_IMAGES decodes it, strict=False raises {lenient}"
            if not np.array_equal(lenient, truncated):
                return f"{label}: truncated; strict=False differs from Pillow (LOAD_TRUNCATED_IMAGES) in {(lenient != truncated).sum()} values"
            if not isinstance(strict, Exception) or "truncated" not in str(strict):
                return f"{label}: truncated; strict=True does not say so: {strict if isinstance(strict, Exception) else 'decoded'}"
            return None
    if isinstance(reference, tuple):
        counts["refused"] += 1
        if not isinstance(lenient, Exception) or not isinstance(strict, Exception):
            return f"{label}: Pillow refuses it ({reference[1]}), diffjpeg decodes it"
        return None
    counts["decoded"] += 1
    if isinstance(lenient, Exception):
        return f"{label}: Pillow decodes it, strict=False raises {lenient}"
    if not np.array_equal(lenient, reference):
        return f"{label}: strict=False differs from Pillow in {(lenient != reference).sum()} values"
    if isinstance(strict, Exception):
        if "strict=False decodes it" not in str(strict):
            return f"{label}: strict=True says nothing of strict=False: {strict}"
    elif not np.array_equal(strict, lenient):
        return f"{label}: strict=True decodes it differently from strict=False"
    return None


def run_checks(name: str, thorough: bool) -> dict:
    counts = {"decoded": 0, "refused": 0, "truncated": 0, "truncated, then a libjpeg error": 0, "Pillow's parser refuses": 0}
    problems = [p for label, data in damaged(name, BASES[name], thorough) if (p := check(label, data, BASES[name], counts))]
    assert not problems, "\n".join(problems)
    return counts


@pytest.mark.parametrize("name", sorted(BASES))
def test_damaged_files_decode_as_pillow_does(name):
    counts = run_checks(name, thorough=False)
    assert counts["decoded"] >= 15 and counts["refused"] >= 10, counts


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(BASES))
def test_damaged_files_every_position_and_marker(name):
    counts = run_checks(name, thorough=True)
    assert counts["decoded"] >= 80 and counts["refused"] >= 100, counts


def test_strict_messages_name_the_problem_and_where():
    data = BASES["restart"]
    rst = data.find(b"\xff\xd1")
    renumbered = data[:rst] + b"\xff\xd3" + data[rst + 2 :]
    with pytest.raises(diffjpeg.JPEGError, match=f"found marker 0xd3 instead of RST1 \\(at the marker at byte {rst}\\).*strict=False decodes it"):
        diffjpeg.read(renumbered)
    start = data.find(b"\xff\xda")
    cut = data[: start + 100] + b"\xff\xd9"
    with pytest.raises(diffjpeg.JPEGError, match=f"premature end of data segment \\(at the marker at byte {start + 100}\\)"):
        diffjpeg.read(cut)
    message = ""
    try:
        diffjpeg.read(data[:rst] + b"\xff\x12" + data[rst + 2 :])
    except diffjpeg.JPEGError as e:
        message = str(e)
    assert f"unknown marker FF 12 at byte {rst}" in message and "strict=False decodes it" in message
    assert message.count("orrupt JPEG data") == 1  # no message twice
    with pytest.raises(diffjpeg.JPEGError, match="truncated.*strict=False decodes it"):
        diffjpeg.read(data[:-2])
    cut = data[: len(data) * 2 // 3]  # inside the scan: libjpeg finishes it with zeros
    assert np.array_equal(decoded_pixels(cut, strict=False), pillow_truncated(cut))


@pytest.mark.parametrize("name", sorted(BASES))
@pytest.mark.parametrize("entry", [0, 1, 63])
def test_a_zero_quantization_entry_decodes_as_pillow_leniently(name, entry):
    """libjpeg decodes with a zero table entry as given (that coefficient
    dequantizes to 0), and Pillow shows it: strict=False gives Pillow's pixels,
    strict=True refuses, naming the table and saying that strict=False
    decodes it; write() refuses such tables, naming the table."""
    data = bytearray(BASES[name])
    dqt = data.find(b"\xff\xdb")
    assert data[dqt + 4] >> 4 == 0  # 8-bit entries, in zigzag order from byte dqt + 5
    data[dqt + 5 + entry] = 0
    data = bytes(data)
    pillow = pillow_outcome(data)
    assert isinstance(pillow, np.ndarray) and np.array_equal(decoded_pixels(data, strict=False), pillow)
    with pytest.raises(diffjpeg.JPEGError, match=f"quantization table {data[dqt + 4] & 15} has a zero entry.*strict=False decodes it"):
        diffjpeg.read(data)
    with pytest.raises(ValueError, match=f"table {data[dqt + 4] & 15} holds 0\\.\\."):
        diffjpeg.write(diffjpeg.read(data, strict=False), io.BytesIO())


# ---------------------------------------------------------------- what follows the last scan
AFTER_THE_LAST_SCAN = {  # bytes between the last scan's data and EOI
    "COM longer than the file": b"\xff\xfe\x40\x00abc",
    "APP1 cut short": b"\xff\xe1\x00\x20Exif",
    "DQT shorter than its table": b"\xff\xdb\x00\x05\x00\x01\x02",
    "bytes where a marker should be": b"\x12\x34\x56\x78",
    "unknown marker FF 12": b"\xff\x12\x00\x04ab",
    "DHT shorter than its counts": b"\xff\xc4\x00\x05\x00\x01\x02",
}


def _photo_file(progressive: bool) -> bytes:
    from PIL import Image

    from tests.helpers import skimage_crop

    buffer = io.BytesIO()
    Image.fromarray(skimage_crop("astronaut", 64, 80, 100, 180)).save(buffer, "JPEG", quality=80, progressive=progressive)
    return buffer.getvalue()


@pytest.mark.parametrize("progressive", (False, True), ids=("baseline", "progressive"))
@pytest.mark.parametrize("damage", AFTER_THE_LAST_SCAN, ids=str)
def test_damage_after_the_last_scan(damage, progressive):
    """Where Pillow decodes such a file, ``read(strict=False)`` gives its
    pixels: libjpeg-turbo 3 reads a short DQT after a baseline scan (as a
    table of the entries given and 1s), jpeglib's 2.1 refuses it, so
    strict=False writes it out in full first. Whatever strict=False decodes
    is the undamaged file's image; strict decodes the same (bytes that
    continue the scan's data) or refuses, saying that strict=False decodes
    it, or refuses with Pillow."""
    original = _photo_file(progressive)
    data = original[:-2] + AFTER_THE_LAST_SCAN[damage] + original[-2:]
    reference = pillow_outcome(data)
    try:
        got = decoded_pixels(data, strict=False)
    except diffjpeg.JPEGError:
        assert isinstance(reference, tuple), "Pillow decodes it, strict=False refuses"
        got = None
    if got is not None:
        assert np.array_equal(got, decoded_pixels(original))
        if not isinstance(reference, tuple):
            assert np.array_equal(got, reference)
    try:
        strict = decoded_pixels(data)
    except diffjpeg.JPEGError as e:
        assert got is None or "strict=False" in str(e)
    else:
        assert np.array_equal(strict, got)
    if damage == "DQT shorter than its table" and not progressive:
        assert got is not None and not isinstance(reference, tuple)  # the case libjpeg returns with a warning


def test_a_table_redefined_after_its_scan_is_not_the_one_decoded():
    """libjpeg latches each component's table when its first scan begins: a
    (well-formed) DQT after the scan redefining the slot changes nothing, in
    Pillow and here."""
    original = _photo_file(False)
    redefined = b"\xff\xdb\x00\x43\x00" + bytes([99] * 64)
    data = original[:-2] + redefined + original[-2:]
    reference = pillow_outcome(data)
    assert not isinstance(reference, tuple)
    assert np.array_equal(decoded_pixels(data), reference)
    assert np.array_equal(reference, decoded_pixels(original))
