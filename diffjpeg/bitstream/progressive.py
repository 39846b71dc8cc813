"""Progressive JPEG writing (libjpeg's jcphuff.c, jcparam.c and jcmarker.c).

:func:`progressive_file` builds the whole file in Python, its headers as
:mod:`diffjpeg.bitstream.sequential` writes them: the scans of libjpeg's default progression,
coded as jcphuff.c codes them, with per-scan optimized Huffman tables (as
libjpeg always uses in progressive mode), packed with :mod:`diffjpeg.bitstream.huffman`.

Facts relied on (ITU-T T.81 Annex G, libjpeg-turbo):

* jpeg_simple_progression's script for YCbCr: DC of all components (Al=1);
  Y AC 1-5 (Al=2); Cr, Cb AC 1-63 (Al=1); Y AC 6-63 (Al=2); Y AC refine
  (Ah=2, Al=1); DC refine; Cr, Cb AC refine (Al=0); Y AC refine (Al=0).
  For any other color space (grayscale, RGB, CMYK, YCCK; at most 4
  components): DC of all components in one scan (Al=1); each component's
  AC 1-5 (Al=2), then each one's AC 6-63 (Al=2), AC refine to Al=1; DC
  refine of all; each one's AC refine to Al=0.
* DC scans are interleaved over MCUs (padding blocks repeat the previous DC);
  AC scans hold one component, its blocks in raster order, no padding.
* DC first scan: the difference of ``DC >> Al`` (arithmetic shift) coded as
  in a baseline scan; DC refinement: bit ``Al`` of each DC, no Huffman code.
* AC first scan: ``|x| >> Al`` (the sign kept: negative values send the
  complement of the magnitude), runs as baseline, but a block whose band ends
  in zeros adds to an EOB run, sent as symbol ``n << 4`` and ``n`` extra bits
  for runs of ``2**n`` to ``2**(n+1) - 1`` blocks, at most 32767.
* AC refinement: coefficients already nonzero get one correction bit each,
  buffered until the next symbol; newly nonzero ones (magnitude 1 at this Al)
  are coded as ``(run << 4) | 1`` plus a sign bit (1 = positive), where the
  run counts only zero coefficients; ZRLs are sent only before the last newly
  nonzero coefficient; the EOB run is also flushed before the correction-bit
  buffer could exceed 1000 - 63 bits.
"""
from __future__ import annotations

import numpy as np
import torch

from ..core.colorspace import COMPONENT_IDS, TABLE_SLOTS
from ..core.geometry import mcu_counts
from ..core.scan import ZIGZAG, dc_in_coding_order
from .huffman import optimal_table, pack, stuff
from .sequential import SOF_PROGRESSIVE, dht_segments, file_header, segment

MAX_EOB_RUN = 0x7FFF
MAX_CORRECTION_BITS = 1000

# (components, Ss, Se, Ah, Al) with components as indices; jcparam.c's scripts
YCBCR_SCRIPT = (
    ((0, 1, 2), 0, 0, 0, 1),
    ((0,), 1, 5, 0, 2),
    ((2,), 1, 63, 0, 1),
    ((1,), 1, 63, 0, 1),
    ((0,), 6, 63, 0, 2),
    ((0,), 1, 63, 2, 1),
    ((0, 1, 2), 0, 0, 1, 0),
    ((2,), 1, 63, 1, 0),
    ((1,), 1, 63, 1, 0),
    ((0,), 1, 63, 1, 0),
)


def general_script(count: int) -> tuple:
    """jcparam.c's all-purpose script for ``count`` (at most 4) components."""
    every = tuple(range(count))
    each = lambda ss, se, ah, al: tuple(((ci,), ss, se, ah, al) for ci in every)  # noqa: E731
    return ((every, 0, 0, 0, 1),) + each(1, 5, 0, 2) + each(6, 63, 0, 2) + each(1, 63, 2, 1) + ((every, 0, 0, 1, 0),) + each(1, 63, 1, 0)


def _size(value: int) -> int:
    return int(value).bit_length()


class _ScanWriter:
    """Collects a scan as Huffman symbols and raw bits, in order."""

    def __init__(self):
        self.items: list[tuple[int, int, int]] = []  # (slot or -1 for raw bits, value, length)

    def symbol(self, slot: int, symbol: int) -> None:
        self.items.append((slot, symbol, 0))

    def bits(self, value: int, length: int) -> None:
        if length:
            self.items.append((-1, value & ((1 << length) - 1), length))

    def encode(self) -> tuple[bytes, dict]:
        """Entropy-coded bytes and the optimal tables ``{slot: HuffmanTable}``."""
        if not self.items:
            return b"", {}
        items = np.array(self.items, dtype=np.int64)
        slots, values, lengths = items[:, 0], items[:, 1].copy(), items[:, 2].copy()
        tables = {}
        for slot in sorted(set(slots[slots >= 0].tolist())):
            pick = slots == slot
            table = optimal_table(np.bincount(values[pick], minlength=256))
            code_lengths, codes = table.code_lengths_and_codes()
            lengths[pick] = code_lengths[values[pick]]
            values[pick] = codes[values[pick]]
            tables[slot] = table
        packed = pack(torch.from_numpy(values), torch.from_numpy(lengths))
        return stuff(packed), tables


def _dc_first(writer: _ScanWriter, blocks: list[np.ndarray], slots: list[int], al: int) -> None:
    """``blocks``: per component ``(n_mcu, per_mcu)`` DC values in coding order."""
    last = [0] * len(blocks)
    for mcu in range(blocks[0].shape[0]):
        for ci, component in enumerate(blocks):
            for dc in component[mcu]:
                value = int(dc) >> al
                diff = value - last[ci]
                last[ci] = value
                size = _size(abs(diff))
                writer.symbol(slots[ci], size)
                writer.bits(diff if diff >= 0 else diff - 1, size)


def _dc_refine(writer: _ScanWriter, blocks: list[np.ndarray], al: int) -> None:
    for mcu in range(blocks[0].shape[0]):
        for component in blocks:
            for dc in component[mcu]:
                writer.bits((int(dc) >> al) & 1, 1)


class _EobRun:
    def __init__(self, writer: _ScanWriter, slot: int):
        self.writer, self.slot = writer, slot
        self.count = 0
        self.corrections: list[int] = []

    def flush(self) -> None:
        if self.count:
            size = _size(self.count) - 1
            self.writer.symbol(self.slot, size << 4)
            self.writer.bits(self.count, size)
            self.count = 0
            for bit in self.corrections:
                self.writer.bits(bit, 1)
            self.corrections = []


def _ac_first(writer: _ScanWriter, band: np.ndarray, slot: int, al: int) -> None:
    """``band``: ``(blocks, Se - Ss + 1)`` coefficients of one component in zigzag order."""
    eob = _EobRun(writer, slot)
    magnitude = np.abs(band) >> al
    width = band.shape[1]
    for block, row in enumerate(magnitude):
        run = 0
        previous = -1
        for k in np.flatnonzero(row):
            run = k - previous - 1
            previous = k
            eob.flush()
            while run > 15:
                writer.symbol(slot, 0xF0)
                run -= 16
            value = int(row[k])
            size = _size(value)
            writer.symbol(slot, (run << 4) | size)
            writer.bits(value if band[block, k] >= 0 else ~value, size)
        if previous < width - 1:
            eob.count += 1
            if eob.count == MAX_EOB_RUN:
                eob.flush()
    eob.flush()


def _ac_refine(writer: _ScanWriter, band: np.ndarray, slot: int, al: int) -> None:
    eob = _EobRun(writer, slot)
    magnitude = np.abs(band) >> al
    width = band.shape[1]
    for block, row in enumerate(magnitude):
        ones = np.flatnonzero(row == 1)
        last_new = int(ones[-1]) if ones.size else -1  # the last newly nonzero coefficient
        run = 0
        previous = -1
        pending: list[int] = []  # correction bits since the last symbol
        for k in np.flatnonzero(row):
            run += k - previous - 1
            previous = k
            while run > 15 and k <= last_new:
                eob.flush()
                writer.symbol(slot, 0xF0)
                run -= 16
                for bit in pending:
                    writer.bits(bit, 1)
                pending = []
            value = int(row[k])
            if value > 1:
                pending.append(value & 1)
                continue
            eob.flush()
            writer.symbol(slot, (run << 4) | 1)
            writer.bits(1 if band[block, k] >= 0 else 0, 1)
            for bit in pending:
                writer.bits(bit, 1)
            pending = []
            run = 0
        run += width - 1 - previous
        if run > 0 or pending:
            eob.count += 1
            eob.corrections += pending
            if eob.count == MAX_EOB_RUN or len(eob.corrections) > MAX_CORRECTION_BITS - 64 + 1:
                eob.flush()
    eob.flush()


def progressive_file(
    components: list[np.ndarray],
    sampling: tuple[tuple[int, int], ...],
    size: tuple[int, int],
    tables: np.ndarray,
    qtable_index: tuple[int, ...],
    color_space: str,
) -> bytes:
    """A progressive JPEG file for one image.

    Args:
        components: per component ``(rows, cols, 8, 8)`` integer coefficients.
        sampling, size, qtable_index, color_space: as in :class:`diffjpeg.Coefficients`.
        tables: ``(T, 8, 8)`` integer quantization tables, natural order.

    Returns:
        The file's bytes.
    """
    zigzag = [c.reshape(*c.shape[:2], 64)[..., list(ZIGZAG)].astype(np.int64) for c in components]
    slots, ids = TABLE_SLOTS[color_space], COMPONENT_IDS[color_space]
    out = [file_header(SOF_PROGRESSIVE, tables, qtable_index, sampling, size, color_space)]
    script = YCBCR_SCRIPT if color_space == "YCbCr" else general_script(len(zigzag))
    for members, ss, se, ah, al in script:
        writer = _ScanWriter()
        if ss == 0:
            if len(members) > 1:
                mcus = mcu_counts(size, sampling)
                dcs = [dc_in_coding_order(torch.from_numpy(zigzag[ci]), sampling[ci], mcus).numpy() for ci in members]
            else:
                dcs = [zigzag[members[0]][..., 0].reshape(-1, 1)]
            if ah == 0:
                _dc_first(writer, dcs, [slots[ci] for ci in members], al)
            else:
                _dc_refine(writer, dcs, al)
        else:
            ci = members[0]
            band = zigzag[ci][..., ss : se + 1].reshape(-1, se - ss + 1)
            (_ac_first if ah == 0 else _ac_refine)(writer, band, slots[ci], al)
        data, used = writer.encode()
        out.append(dht_segments(used, 0 if ss == 0 else 1))
        header = bytes([len(members)])
        for ci in members:
            # jcmarker.c: only the table the scan uses is named, 0 for the other
            # (and for DC refinement, which uses none)
            slot = slots[ci]
            header += bytes([ids[ci], (slot << 4 if ah == 0 else 0) if ss == 0 else slot])
        header += bytes([ss, se, ah << 4 | al])
        out.append(segment(0xDA, header))
        out.append(data)
    out.append(b"\xff\xd9")
    return b"".join(out)
