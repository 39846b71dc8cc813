"""Sequential JPEG writing (libjpeg's jcmarker.c over jchuff.c's scan).

:func:`sequential_file` builds, in Python, the file ``jpeg_write_coefficients``
writes with ``jpeg_set_defaults``: one interleaved Huffman scan coded by
:mod:`diffjpeg.bitstream.huffman`, standard or optimized tables. :mod:`diffjpeg.bitstream.progressive`
writes its headers with :func:`file_header` and :func:`dht_segments` too.

Facts relied on (ITU-T T.81 Annex B, libjpeg-turbo's jcmarker.c and jcparam.c):

* Segment order: SOI; the JFIF APP0 (version 1.01, no density unit, 1x1, no
  thumbnail) for grayscale and YCbCr, the Adobe APP14 for RGB, CMYK and YCCK
  (:mod:`diffjpeg.core.colorspace`); one DQT segment per table, in component
  order, each table once; SOF; per scan the DHT segments it needs, then SOS;
  the data; EOI.
* A DQT entry is 8 bits, or 16 bits (``Pq = 1``) for a table with a value
  over 255; values in zigzag order. Any 16-bit table makes the frame SOF1
  (extended sequential) instead of SOF0 (baseline).
* SOF: precision 8, height, width, then per component its id (as
  jpeg_set_colorspace numbers them: 1, 2, 3 for YCbCr), ``h << 4 | v``, and
  its table slot.
* jpeg_set_colorspace gives luma-like components Huffman tables 0 and Cb, Cr
  tables 1 (colorspace.TABLE_SLOTS); a sequential scan holds every
  component (at most 4), sends, per component in order, its DC then its AC
  table (each once), one DHT segment per table; SOS names each component's
  ``DC << 4 | AC`` slots, then Ss = 0, Se = 63, Ah = Al = 0.
"""
from __future__ import annotations

import struct

import numpy as np

from ..core.colorspace import ADOBE_TRANSFORM, COMPONENT_IDS, TABLE_SLOTS
from ..core.scan import ZIGZAG
from .huffman import HuffmanTable

SOF_BASELINE, SOF_EXTENDED, SOF_PROGRESSIVE = 0xC0, 0xC1, 0xC2
JFIF = b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
ADOBE = b"Adobe\x00\x64\x00\x00\x00\x00"  # jcmarker.c emit_adobe_app14: version 100, flags 0; the transform follows
MAX_TABLE_SLOT = 3  # DQT's Tq: 0..3


def segment(marker: int, body: bytes) -> bytes:
    return struct.pack(">BBH", 0xFF, marker, len(body) + 2) + body


def dht_segments(tables: dict[int, HuffmanTable], kind: int) -> bytes:
    """One DHT segment per ``{slot: table}`` in slot order; ``kind`` 0 DC, 1 AC."""
    return b"".join(segment(0xC4, bytes([kind << 4 | slot]) + bytes(t.counts) + bytes(t.values)) for slot, t in sorted(tables.items()))


def file_header(
    sof: int,
    tables: np.ndarray,
    qtable_index: tuple[int, ...],
    sampling: tuple[tuple[int, int], ...],
    size: tuple[int, int],
    color_space: str,
) -> bytes:
    """SOI, JFIF or Adobe marker, DQT and the frame header; ``sof`` is SOF0
    or SOF2 (SOF0 becomes SOF1 if a table needs 16 bits).

    Args:
        tables: ``(T, 8, 8)`` integer quantization tables (1..65535), natural order.
        qtable_index, sampling, size, color_space: as in :class:`diffjpeg.Coefficients`;
            ``qtable_index`` values are the DQT slots, so at most ``MAX_TABLE_SLOT``.
    """
    if color_space in ADOBE_TRANSFORM:
        marker = segment(0xEE, ADOBE + bytes([ADOBE_TRANSFORM[color_space]]))
    else:
        marker = segment(0xE0, JFIF)
    out = [b"\xff\xd8", marker]
    wide_any = False
    for slot in dict.fromkeys(qtable_index):  # component order, each table once
        table = tables[slot].reshape(64)[list(ZIGZAG)]
        wide = int(table.max()) > 255
        wide_any |= wide
        out.append(segment(0xDB, bytes([int(wide) << 4 | slot]) + table.astype(">u2" if wide else "u1").tobytes()))
    if sof == SOF_BASELINE and wide_any:
        sof = SOF_EXTENDED
    height, width = size
    frame = struct.pack(">BHHB", 8, height, width, len(qtable_index))
    for cid, (h, v), slot in zip(COMPONENT_IDS[color_space], sampling, qtable_index):
        frame += bytes([cid, h << 4 | v, slot])
    out.append(segment(sof, frame))
    return b"".join(out)


def sequential_file(
    header: bytes,
    color_space: str,
    huffman: dict[tuple[int, bool], HuffmanTable],
    data: bytes,
) -> bytes:
    """A whole sequential file: ``header`` from :func:`file_header`, then one
    scan of the components of ``color_space`` with ``huffman`` tables
    ``{(slot, is_dc): table}`` (:func:`diffjpeg.bitstream.huffman.scan_tables`) and
    entropy-coded ``data``."""
    out = [header]
    sent = set()
    slots, ids = TABLE_SLOTS[color_space], COMPONENT_IDS[color_space]
    for slot in slots:
        for dc in (True, False):
            if (slot, dc) not in sent:
                sent.add((slot, dc))
                out.append(dht_segments({slot: huffman[(slot, dc)]}, 0 if dc else 1))
    scan = bytes([len(ids)]) + b"".join(bytes([cid, slot * 0x11]) for cid, slot in zip(ids, slots)) + bytes([0, 63, 0])
    out += [segment(0xDA, scan), data, b"\xff\xd9"]
    return b"".join(out)
