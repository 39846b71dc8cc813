"""A small lossless JPEG (SOF3) writer for the tests, from ITU-T T.81 Annex H
and K, written independently of :mod:`diffjpeg.codec.lossless` (it shares no
code with it): the files it writes are decoded by Pillow for the reference.

Per the standard: samples are point-transformed (``x >> Al``), each is
predicted from its left (Ra), upper (Rb) and upper-left (Rc) neighbours by
the scan's predictor 1..7; the first line of a scan and of each restart
interval uses Ra (its first sample ``2**(P - Al - 1)``), the first column of
later lines Rb. The difference, modulo 2**16, is coded as a Huffman category
SSSS (0..16) and SSSS extra bits (none for 16, which means 32768). An
interleaved scan codes MCUs of ``h x v`` samples of each component (samples
past a component's width or height are coded as zero differences); a
one-component scan codes one sample per MCU in raster order.
"""
from __future__ import annotations

import math
import struct

import numpy as np


def _floor_half(x):
    return np.floor_divide(x, 2)


def _predict(a, b, c, predictor):
    return {
        1: lambda: a,
        2: lambda: b,
        3: lambda: c,
        4: lambda: a + b - c,
        5: lambda: a + _floor_half(b - c),
        6: lambda: b + _floor_half(a - c),
        7: lambda: _floor_half(a + b),
    }[predictor]()


def differences(plane: np.ndarray, predictor: int, al: int, first_rows, precision: int = 8) -> np.ndarray:
    """The signed differences (-32767..32768) of ``plane >> al`` under
    ``predictor``; ``first_rows`` (a set) are the lines that start a scan or
    a restart interval."""
    x = plane.astype(np.int64) >> al
    diffs = np.zeros_like(x)
    for r in range(x.shape[0]):
        row = x[r]
        pred = np.empty_like(row)
        if r in first_rows:
            pred[0] = 1 << (precision - al - 1)
            pred[1:] = row[:-1]
        else:
            up = x[r - 1]
            pred[0] = up[0]
            pred[1:] = _predict(row[:-1], up[1:], up[:-1], predictor)
        d = (row - pred) & 0xFFFF
        diffs[r] = np.where(d > 32768, d - 65536, d)
    return diffs


def category(d: int) -> int:
    return 16 if d == 32768 else abs(int(d)).bit_length()


def optimal_table(counts) -> tuple[list[int], list[int]]:
    """``(bits[1..16], huffval)`` for symbol ``counts`` (T.81 Annex K.2, with
    K.3's adjustment to 16 bits and the all-ones code reserved)."""
    freq = [0] * 257
    for s, n in enumerate(counts):
        freq[s] = n
    freq[256] = 1  # reserved: no code is all ones
    size, others = [0] * 257, [-1] * 257
    while True:
        v1 = v2 = -1
        for i in range(257):
            if freq[i] and (v1 < 0 or freq[i] <= freq[v1]):
                v1 = i
        for i in range(257):
            if freq[i] and i != v1 and (v2 < 0 or freq[i] <= freq[v2]):
                v2 = i
        if v2 < 0:
            break
        freq[v1] += freq[v2]
        freq[v2] = 0
        for v in (v1, v2):
            size[v] += 1
            while others[v] >= 0:
                v = others[v]
                size[v] += 1
        v = v1
        while others[v] >= 0:
            v = others[v]
        others[v] = v2
    bits = [0] * 40
    for s in range(257):
        if size[s]:
            bits[size[s]] += 1
    for i in range(39, 16, -1):
        while bits[i] > 0:
            j = i - 2
            while bits[j] == 0:
                j -= 1
            bits[i] -= 2
            bits[i - 1] += 1
            bits[j + 1] += 2
            bits[j] -= 1
    i = 16
    while bits[i] == 0:
        i -= 1
    bits[i] -= 1  # the reserved symbol goes
    values = sorted((size[s], s) for s in range(256) if size[s])
    return bits[1:17], [s for _, s in values]


def _codes(bits, values) -> dict[int, tuple[int, int]]:
    codes, code, k = {}, 0, 0
    for length in range(1, 17):
        for _ in range(bits[length - 1]):
            codes[values[k]] = (code, length)
            code += 1
            k += 1
        code <<= 1
    return codes


class _Bits:
    def __init__(self):
        self.out, self.acc, self.n = bytearray(), 0, 0

    def put(self, value: int, length: int):
        self.acc = (self.acc << length) | (value & ((1 << length) - 1))
        self.n += length
        while self.n >= 8:
            self.n -= 8
            byte = (self.acc >> self.n) & 0xFF
            self.out.append(byte)
            if byte == 0xFF:
                self.out.append(0)
        self.acc &= (1 << self.n) - 1

    def flush(self):
        if self.n:
            self.put((1 << (8 - self.n)) - 1, 8 - self.n)  # pad with ones


def _segment(marker: int, body: bytes) -> bytes:
    return struct.pack(">BBH", 0xFF, marker, len(body) + 2) + body


def lossless_jpeg(
    planes,
    size: tuple[int, int] | None = None,
    *,
    sampling=None,
    predictor: int = 1,
    al: int = 0,
    restart: int = 0,
    scans=None,
    ids=None,
    marker: str | None = None,
    diffs=None,
    precision: int = 8,
) -> bytes:
    """A lossless JPEG file of component ``planes`` (2-D uint8, each of its
    sampled size) of an image ``size = (H, W)`` (default: the first plane's).

    Args:
        sampling: ``(h, v)`` per component (default all 1x1).
        predictor: the SOS's Ss, 1..7 (written as given, even if invalid).
        al: the point transform.
        restart: the restart interval in MCUs (DRI), 0 for none.
        scans: tuples of component indices, one per scan (default: one
            interleaved scan of all).
        ids: component ids (default 1, 2, ...).
        marker: ``"jfif"``, ``"adobe0"``, ``"adobe1"``, ``"adobe2"`` or None.
        diffs: per component, the differences to code instead of the
            planes' (arrays of the planes' shapes): arbitrary streams.
    """
    planes = [np.asarray(p) for p in planes]
    n = len(planes)
    height, width = size or planes[0].shape
    sampling = sampling or [(1, 1)] * n
    ids = ids or list(range(1, n + 1))
    scans = scans or [tuple(range(n))]
    hmax, vmax = max(h for h, _ in sampling), max(v for _, v in sampling)
    for p, (h, v) in zip(planes, sampling):
        assert p.shape == (math.ceil(height * v / vmax), math.ceil(width * h / hmax)), (p.shape, h, v)
    out = bytearray(b"\xff\xd8")
    if marker == "jfif":
        out += _segment(0xE0, b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00")
    elif marker and marker.startswith("adobe"):
        out += _segment(0xEE, b"Adobe\x00\x64\x00\x00\x00\x00" + bytes([int(marker[5:])]))
    frame = struct.pack(">BHHB", precision, height, width, n)
    for i in range(n):
        frame += bytes([ids[i], sampling[i][0] << 4 | sampling[i][1], 0])
    out += _segment(0xC3, frame)
    if restart:
        out += _segment(0xDD, struct.pack(">H", restart))
    for scan in scans:
        out += _scan(planes, scan, sampling, (height, width), (hmax, vmax), predictor, al, restart, ids, diffs, precision)
    return bytes(out + b"\xff\xd9")


def _scan(planes, scan, sampling, size, maxes, predictor, al, restart, ids, diffs, precision) -> bytes:
    height, width = size
    hmax, vmax = maxes
    if len(scan) > 1:
        mcus_per_row, mcu_rows = math.ceil(width / hmax), math.ceil(height / vmax)
        units = [sampling[c] for c in scan]
    else:
        mcus_per_row, mcu_rows = planes[scan[0]].shape[1], planes[scan[0]].shape[0]
        units = [(1, 1)]
    # per component: coded differences on the MCU grid (padding codes 0)
    grids = []
    for c, (h, v) in zip(scan, units):
        plane = planes[c]
        if diffs is not None:
            d = np.asarray(diffs[c], dtype=np.int64)
        else:
            first = {0}
            if restart:
                # lines that start a restart interval: MCU rows every restart MCUs
                for m in range(0, mcus_per_row * mcu_rows, restart):
                    if m % mcus_per_row == 0:
                        first.add(m // mcus_per_row * v)
            d = differences(plane, predictor, al, first, precision)
        grid = np.zeros((mcu_rows * v, mcus_per_row * h), dtype=np.int64)
        grid[: d.shape[0], : d.shape[1]] = d
        grids.append(grid)
    # symbols in coding order, per component of the scan
    order = []  # (component position in scan, difference)
    for my in range(mcu_rows):
        for mx in range(mcus_per_row):
            for k, (h, v) in enumerate(units):
                block = grids[k][my * v : (my + 1) * v, mx * h : (mx + 1) * h]
                order.extend((k, int(x)) for x in block.flat)
    tables = []
    for k in range(len(scan)):
        counts = [0] * 17
        for kk, d in order:
            if kk == k:
                counts[category(d)] += 1
        tables.append(optimal_table(counts))
    out = bytearray()
    for k, (bits, values) in enumerate(tables):
        out += _segment(0xC4, bytes([k]) + bytes(bits) + bytes(values))
    sos = bytes([len(scan)])
    for k, c in enumerate(scan):
        sos += bytes([ids[c], k << 4])
    sos += bytes([predictor, 0, al])
    out += _segment(0xDA, sos)
    codes = [_codes(*t) for t in tables]
    per_mcu = sum(h * v for h, v in units)
    writer = _Bits()
    rst = 0
    for i, (k, d) in enumerate(order):
        if restart and i and i % (restart * per_mcu) == 0:
            writer.flush()
            out += writer.out + bytes([0xFF, 0xD0 + rst])
            rst = (rst + 1) % 8
            writer = _Bits()
        s = category(d)
        writer.put(*codes[k][s])
        if 0 < s < 16:
            writer.put(d if d > 0 else d - 1, s)
    writer.flush()
    return bytes(out + writer.out)
