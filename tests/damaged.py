"""Damaged JPEG files made from valid Pillow files by byte edits, for
tests/codec/test_damaged.py and benchmarks/damaged.py: junk between segments,
truncation at segment boundaries and inside scans, ``FF 00`` and bogus
markers in headers and scans, short APP14 segments, a missing EOI, damaged
restart markers. Each is ``(label, bytes)``; the label says what was done
where, so that a failure names its file."""
from __future__ import annotations

import struct

import numpy as np

from tests.helpers import pillow_file, skimage_crop

# Parameterless and unknown marker codes that a damaged file may hold.
BOGUS_MARKERS = (0x01, 0x12, 0xD3, 0xF0, 0xC8, 0xDE, 0xD8, 0xBF)


def base_files() -> dict[str, bytes]:
    """Valid Pillow files: baseline 4:2:0, optimized 4:4:4, progressive,
    grayscale, baseline with a restart marker every 3 MCUs, and CMYK."""
    a = skimage_crop("astronaut", 48, 64, 100, 150)
    return {
        "baseline": pillow_file(a, quality=70),
        "optimized": pillow_file(a, quality=80, subsampling=0, optimize=True),
        "progressive": pillow_file(a, quality=70, progressive=True),
        "gray": pillow_file(np.ascontiguousarray(a[..., 1]), quality=60),
        "restart": pillow_file(a, quality=70, restart_marker_blocks=3),
        "cmyk": _cmyk_file(a),
    }


def _cmyk_file(rgb: np.ndarray) -> bytes:
    """A CMYK JPEG as Pillow writes it (Adobe APP14, inverted samples)."""
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgb).convert("CMYK").save(buf, "JPEG", quality=70)
    return buf.getvalue()


def segments(data: bytes) -> list[tuple[int, int, int]]:
    """``(marker, start, end)`` of every marker of a valid file, in order; an
    SOS segment runs to the end of its entropy-coded data, and each RST
    marker inside it is an entry of its own, two bytes long."""
    out, position = [(0xD8, 0, 2)], 2
    while position < len(data):
        marker = data[position + 1]
        if marker == 0xD9:
            out.append((marker, position, position + 2))
            break
        end = position + 2
        if not 0xD0 <= marker <= 0xD7:
            end += struct.unpack_from(">H", data, position + 2)[0]
        if marker == 0xDA or 0xD0 <= marker <= 0xD7:  # entropy-coded data follows
            while not (data[end] == 0xFF and data[end + 1] not in (0x00, *range(0xD0, 0xD8))):
                end += 1
        if 0xD0 <= marker <= 0xD7:
            out.append((marker, position, position + 2))
        else:
            out.append((marker, position, end))
        position = end if marker != 0xDA else position + 2 + struct.unpack_from(">H", data, position + 2)[0]
        if marker == 0xDA:  # walk on through the data to find its RST markers
            while not (data[position] == 0xFF and data[position + 1] not in (0x00, *range(0xD0, 0xD8))):
                if data[position] == 0xFF and 0xD0 <= data[position + 1] <= 0xD7:
                    out.append((data[position + 1], position, position + 2))
                position += 1
    return out


def _scan_data(data: bytes) -> list[tuple[int, int]]:
    """[start, end) of each scan's entropy-coded data (RST markers inside)."""
    ranges = []
    for marker, start, end in segments(data):
        if marker == 0xDA:
            length = struct.unpack_from(">H", data, start + 2)[0]
            ranges.append((start + 2 + length, end))
    return ranges


def _insert(data: bytes, at: int, new: bytes) -> bytes:
    return data[:at] + new + data[at:]


def damaged(name: str, data: bytes, thorough: bool = False) -> list[tuple[str, bytes]]:
    """Damaged versions of the valid file ``data``: a few per kind by
    default, every position and marker code with ``thorough``."""
    rng = np.random.default_rng(sum(data[:64]))
    marks = [s for s in segments(data) if s[0] not in range(0xD0, 0xD8)]
    starts = [s[1] for s in marks[1:]]  # every marker after SOI
    scans = _scan_data(data)
    pick = (lambda xs: xs) if thorough else (lambda xs: [xs[i] for i in sorted(set(np.linspace(0, len(xs) - 1, 4).astype(int)))])
    out = []
    for at in pick(starts):
        out.append((f"{name}: 3 junk bytes before the marker at {at}", _insert(data, at, b"\x12\x34\x56")))
        out.append((f"{name}: FF 00 before the marker at {at}", _insert(data, at, b"\xff\x00")))
        out.append((f"{name}: fill bytes FF FF before the marker at {at}", _insert(data, at, b"\xff\xff")))
    codes = BOGUS_MARKERS if thorough else BOGUS_MARKERS[::3]
    for at in pick(starts):
        for code in codes:
            out.append((f"{name}: marker FF {code:02X} before the marker at {at}", _insert(data, at, bytes([0xFF, code]))))
            if thorough:
                segment = bytes([0xFF, code]) + b"\x00\x04ab"
                out.append((f"{name}: segment FF {code:02X} before the marker at {at}", _insert(data, at, segment)))
    # truncation at segment boundaries, with and without an EOI after the cut
    for at in pick(starts) + ([s[2] for s in marks[:-1]] if thorough else []):
        out.append((f"{name}: cut at {at}", data[:at]))
        out.append((f"{name}: cut at {at}, EOI appended", data[:at] + b"\xff\xd9"))
    out.append((f"{name}: no EOI", data[:-2]))
    # inside scans: cuts, stray markers, flipped bytes
    for start, end in scans if thorough else dict.fromkeys(scans[:2] + scans[-1:]):
        fractions = np.linspace(0.05, 0.95, 9 if thorough else 3)
        for f in fractions:
            at = start + int(f * (end - start))
            if data[at - 1] == 0xFF:
                at += 1
            out.append((f"{name}: scan data cut at {at}", data[:at]))
            out.append((f"{name}: scan data cut at {at}, EOI appended", data[:at] + b"\xff\xd9"))
            for code in (0x12, 0xD9, 0xC4, 0xD5) if thorough else (0x12,):
                out.append((f"{name}: FF {code:02X} over the scan data at {at}", data[:at] + bytes([0xFF, code]) + data[at + 2 :]))
            out.append((f"{name}: junk bytes inserted into the scan data at {at}", _insert(data, at, b"\xab\xcd")))
        for _ in range(6 if thorough else 2):
            d = bytearray(data)
            at = int(rng.integers(start, end))
            d[at] ^= 1 << int(rng.integers(8))
            out.append((f"{name}: bit flipped in the scan data at {at}", bytes(d)))
    # short APP14 (Adobe) segments after APP0
    app0_end = marks[1][2] if marks[1][0] == 0xE0 else 2
    for length in (5, 6, 7, 11, 12) if thorough else (6, 11):
        body = (b"Adobe\x00\x64\x00\x00\x00\x00\x01")[:length]
        segment = b"\xff\xee" + struct.pack(">H", length + 2) + body
        out.append((f"{name}: APP14 of {length} bytes", _insert(data, app0_end, segment)))
    segment = b"\xff\xee" + struct.pack(">H", 14) + b"Adob"  # length says 12 bytes, 4 follow
    out.append((f"{name}: APP14 whose length runs into the next segment", _insert(data, app0_end, segment)))
    # restart markers: renumbered, removed, replaced
    rsts = [s[1] for s in segments(data) if s[0] in range(0xD0, 0xD8)]
    for at in rsts if thorough else rsts[:1] + rsts[-1:]:
        k = data[at + 1] - 0xD0
        for shift in (1, 2, 3, 7) if thorough else (1, 3):
            new = bytes([0xFF, 0xD0 + (k + shift) % 8])
            out.append((f"{name}: RST{k} at {at} renumbered RST{(k + shift) % 8}", data[:at] + new + data[at + 2 :]))
        out.append((f"{name}: RST{k} at {at} removed", data[:at] + data[at + 2 :]))
        out.append((f"{name}: RST{k} at {at} replaced by FF 12", data[:at] + b"\xff\x12" + data[at + 2 :]))
        out.append((f"{name}: RST{k} at {at} replaced by junk", data[:at] + b"\x12\x34" + data[at + 2 :]))
    return out


def all_damaged(thorough: bool = False) -> list[tuple[str, bytes]]:
    files = []
    for name, data in base_files().items():
        files += damaged(name, data, thorough)
    return files
