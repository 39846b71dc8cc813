"""Lossless JPEG (SOF3, ITU-T T.81 Annex H): a file's pixels, as Pillow
(libjpeg-turbo 3.x) decodes them.

A lossless file holds no DCT coefficients: each sample is predicted from
its decoded neighbours and the file codes the differences. :func:`decode_lossless`
takes a file and its checked structure (:func:`diffjpeg.bitstream.markers.parse_structure`)
and returns 8-bit pixels ``(C, H, W)``. The sequential part, Huffman decoding
and prediction, runs in the compiled ``diffjpeg.backends._lossless`` (``_lossless.c``,
the GIL released); without a C compiler, in Python (:func:`_decode_scan`,
the same steps, same results, slowly). Both read only the scan's bytes and
do work in proportion to the image.

Facts from libjpeg-turbo 3.x (3.2.0, Pillow 13's) relied on:

* Geometry (jdinput.c, ``data_unit = 1``): a component's samples are
  ``ceil(W * h / hmax) x ceil(H * v / vmax)``; an interleaved scan codes MCUs
  of ``h x v`` samples of each component (the samples past a component's
  edge are decoded and dropped), ``ceil(W / hmax)`` per row; a one-component
  scan one sample per MCU. The image is processed in iMCU rows of ``v``
  sample lines per component, ``ceil(H / vmax)`` of them (jddiffct.c).
* Differences (jdlhuff.c ``decode_mcus``): a DC-class Huffman symbol ``s``,
  0..16; 0 is 0, 16 is 32768 with no extra bits, else ``s`` extra bits
  extended as a DC difference (T.81 F.12).
* Prediction (jdlossls.c, jlossls.h): per component, a line is undifferenced
  as a whole after its iMCU row has been decoded. The first line after a
  scan starts, a restart, or an MCU row decoded with no data left uses Ra,
  its first sample ``2**(P - Al - 1)``; other lines predict their first
  sample by Rb, the rest by the scan's predictor: 1 Ra, 2 Rb, 3 Rc,
  4 Ra+Rb-Rc, 5 Ra+((Rb-Rc)>>1), 6 Rb+((Ra-Rc)>>1), 7 (Ra+Rb)>>1 (arithmetic
  shifts), the sum modulo 2**16 (values are kept in 16 bits). The reset is
  flagged when the restart is read and applies to the next line
  undifferenced, i.e. the first line of that iMCU row, even when the
  restart fell within it (a one-component scan with ``v > 1``).
* A restart interval must be a multiple of the MCUs in an MCU row
  (jddiffct.c ``start_input_pass``, ``JERR_BAD_RESTART``).
* Output (jdlossls.c ``simple_upscale``): ``(value << Al)`` cut to 8 bits.
* Upsampling (jdsample.c): lossless decodes with ``min_DCT_scaled_size`` 1,
  which turns fancy upsampling off: each sample is repeated ``hmax / h``
  times across and ``vmax / v`` down.
* Color (jdcolor.c): lossless allows no color conversion; Pillow asks for
  RGB from 3 components, CMYK from 4, so only grayscale, RGB and CMYK files
  decode (a YCbCr or YCCK one is libjpeg's ``JERR_CONVERSION_NOTIMPL``, and
  Pillow fails on it too). Pillow gives CMYK as ``255 - x``
  (:mod:`diffjpeg.core.colorspace`). A 3-component file with neither JFIF nor
  Adobe marker is RGB whatever its ids (jdapimin.c).
* Damaged data (jdhuff.c ``jpeg_fill_bit_buffer``, ``jpeg_huff_decode``;
  jdmarker.c ``read_restart_marker``, ``jpeg_resync_to_restart``): at a
  marker the bit reader stops and feeds zero bits, and the MCU rows after
  the one that ran short decode as zero differences with the predictor
  reset (samples ``128``); a code longer than 16 bits decodes as symbol 0;
  at a restart the rest of the segment is skipped, and a marker other than
  the expected RSTn is resynchronized as libjpeg does. ``strict=True``
  refuses all of these.
"""
from __future__ import annotations

import math

import numpy as np

from ..bitstream.markers import EOI, LOSSLESS, JPEGError, parse_structure

try:
    from ..backends import _lossless as _kernel
except ImportError:  # built without a C compiler
    _kernel = None

PRECISION = 8
DECODED_SPACES = ("grayscale", "RGB", "CMYK")  # those libjpeg-turbo decodes lossless for Pillow (no conversion)
MIN_GET_BITS = 57  # jdhuff.h: the bit buffer's fill target on 64-bit builds
RST0 = 0xD0


def compiled() -> bool:
    """Whether the compiled decoder (``diffjpeg.backends._lossless``) is built."""
    return _kernel is not None


def read_lossless(data: bytes, max_pixels: int | None, strict: bool, structure=None) -> np.ndarray:
    """A lossless file's pixels ``(C, H, W)``: its structure checked, then
    :func:`decode_lossless`. Not strict, a file cut before its EOI gets one
    (as Pillow with ``ImageFile.LOAD_TRUNCATED_IMAGES`` gives libjpeg), and
    damaged scan data is decoded as libjpeg does; damage to the markers
    themselves is refused (libjpeg's marker recovery is not reproduced for
    lossless files). ``structure``: the file's strict
    :func:`~diffjpeg.bitstream.markers.parse_structure`, where the caller has
    it (the markers are then not walked again)."""
    try:
        structure = structure or parse_structure(data, max_pixels, strict=True)
    except JPEGError as e:
        if strict:
            raise
        try:
            data += bytes([0xFF, EOI])
            structure = parse_structure(data, max_pixels, strict=True)
        except JPEGError:
            raise JPEGError(
                f"{e}; in a lossless file, strict=False recovers damaged scan data and a missing end, "
                "not damaged markers"
            ) from None
    return decode_lossless(data, structure, strict=strict)


def decode_lossless(data: bytes, structure, *, strict: bool = True, compiled: bool | None = None) -> np.ndarray:
    """The pixels of a lossless (SOF3) file, as Pillow decodes them.

    Args:
        data: the whole file.
        structure: ``parse_structure(data, strict=True)``'s result: all scans,
            with their data ranges (for a damaged file cut before its EOI,
            that of ``data + b"\\xff\\xd9"``, as Pillow with
            ``ImageFile.LOAD_TRUNCATED_IMAGES`` feeds libjpeg an EOI).
        strict: ``True`` refuses damaged scan data (it ends early, a bad
            Huffman code, a wrong or missing restart marker, extra bytes)
            with a :class:`JPEGError` saying what and where; ``False``
            decodes it as libjpeg-turbo does.
        compiled: ``None`` takes the compiled decoder where built, ``False``
            the Python one (the same results), ``True`` insists on the
            compiled one.

    Returns:
        uint8 array ``(C, H, W)``: C = 1 for grayscale, 3 for RGB, 4 for
        CMYK (as Pillow's ``"CMYK"`` mode).

    Raises:
        JPEGError: not lossless, a color space libjpeg-turbo does not decode
            lossless (YCbCr, YCCK), undefined Huffman tables, a bad restart
            interval, or (strict) damaged data.

    Example:
        >>> from diffjpeg.bitstream.markers import parse_structure
        >>> gray = bytes.fromhex(  # 1x2, predictor 1, two zero differences
        ...     "ffd8" "ffc3000b080001000201011100" "ffc40014000100000000000000000000000000000000"
        ...     "ffda0008010100010000" "3f" "ffd9")
        >>> decode_lossless(gray, parse_structure(gray)).tolist()
        [[[128, 128]]]
    """
    if structure.process != LOSSLESS:
        raise JPEGError(f"not a lossless JPEG file: its process is {structure.process}")
    if structure.color_space not in DECODED_SPACES:
        raise JPEGError(
            f"lossless JPEG in {structure.color_space}: libjpeg-turbo does no color conversion in lossless mode, "
            "so it (and Pillow) cannot give its pixels as RGB or CMYK"
        )
    use_kernel = _kernel is not None if compiled is None else compiled
    if use_kernel and _kernel is None:
        raise RuntimeError("diffjpeg.backends._lossless is not built (no C compiler at install)")
    height, width = structure.height, structure.width
    factors = [(c.h, c.v) for c in structure.components]
    hmax, vmax = max(h for h, _ in factors), max(v for _, v in factors)
    sizes = [(math.ceil(height * v / vmax), math.ceil(width * h / hmax)) for h, v in factors]
    index = {c.id: i for i, c in enumerate(structure.components)}
    planes: list[np.ndarray | None] = [None] * len(factors)
    for number, scan in enumerate(structure.scans, 1):
        members = [index[i] for i in scan.component_ids]
        interleaved = len(members) > 1
        if interleaved:
            mcus_per_row = math.ceil(width / hmax)
            units = [factors[m] for m in members]
        else:
            mcus_per_row = sizes[members[0]][1]
            units = [(1, 1)]
        restart = scan.restart_interval
        if restart % mcus_per_row:
            raise JPEGError(
                f"scan {number}: restart interval {restart} is not a multiple of the {mcus_per_row} MCUs in a row, "
                "which lossless JPEG needs (libjpeg: JERR_BAD_RESTART)"
            )
        imcu_rows = math.ceil(height / vmax)
        if strict:
            samples = (imcu_rows if interleaved else sizes[members[0]][0]) * mcus_per_row * sum(h * v for h, v in units)
            start, end = scan.data
            if samples > 8 * (end - start):  # every sample costs at least one bit
                raise JPEGError(
                    f"truncated or corrupt: scan {number} codes {samples} samples in {end - start} bytes of data "
                    "(at least one bit each)"
                )
        comps = []
        for k, m in enumerate(members):
            tables = _derived_table(scan, k, number)
            out = np.zeros(sizes[m], dtype=np.uint8)
            comps.append((units[k][0], units[k][1], factors[m][1], sizes[m][1], sizes[m][0], *tables, out))
            planes[m] = out
        args = (data, scan.data[0], scan.data[1], comps, mcus_per_row, imcu_rows, interleaved, scan.ss, scan.al, restart, strict)
        failure = _kernel.decode_scan(*args) if use_kernel else _decode_scan(*args)
        if failure is not None:
            raise JPEGError(_failure_text(failure, number, [scan.component_ids[k] for k in range(len(members))]))
    missing = [structure.components[i].id for i, p in enumerate(planes) if p is None]
    if missing:
        raise JPEGError(f"no scan codes component(s) {missing}")
    full = [
        np.repeat(np.repeat(p, vmax // v, 0), hmax // h, 1)[:height, :width] if (h, v) != (hmax, vmax) else p
        for p, (h, v) in zip(planes, factors)
    ]
    pixels = np.stack(full)
    if structure.color_space == "CMYK":
        np.subtract(255, pixels, out=pixels)  # Pillow's "CMYK;I"
    return pixels


def _derived_table(scan, k: int, number: int) -> tuple[bytes, bytes, bytes]:
    """The decoding tables of the scan's ``k``-th component (T.81 F.15,
    jdhuff.c ``jpeg_make_d_derived_tbl``): ``maxcode`` and ``valoffset`` for
    lengths 1..17 (int32, 17 ends every search) and the 256 symbols."""
    slot = scan.table_selectors[k]
    table = scan.dc_tables[slot] if slot < len(scan.dc_tables) else None
    if table is None:
        raise JPEGError(f"scan {number}: component {scan.component_ids[k]} uses Huffman table {slot}, which the file does not define")
    counts, values = table
    if any(s > 16 for s in values):
        raise JPEGError(f"scan {number}: Huffman table {slot} has symbols over 16, which lossless JPEG does not have (libjpeg: JERR_BAD_HUFF_TABLE)")
    maxcode = np.full(18, -1, dtype=np.int32)
    valoffset = np.zeros(18, dtype=np.int32)
    code = p = 0
    for length in range(1, 17):
        n = counts[length - 1]
        if n:
            valoffset[length] = p - code
            code += n
            p += n
            maxcode[length] = code - 1
        if code >= 1 << length:  # counts that overfill a length: no code may be all ones
            raise JPEGError(f"scan {number}: Huffman table {slot} has more codes than its lengths allow (libjpeg: JERR_BAD_HUFF_TABLE)")
        code <<= 1
    maxcode[17] = 0xFFFFF
    symbols = np.zeros(256, dtype=np.int32)
    symbols[: len(values)] = values
    return maxcode.tobytes(), valoffset.tobytes(), symbols.tobytes()


def _failure_text(failure: tuple, number: int, ids: list[int]) -> str:
    kind, offset, k, line, extra = failure
    where = f"scan {number}, component {ids[k]}, line {line}" if k >= 0 else f"scan {number}"
    if kind == "short":
        return f"corrupt JPEG data: the data ends early, at the marker at byte {offset} ({where}); strict=False decodes it as libjpeg does"
    if kind == "code":
        return f"corrupt JPEG data: bad Huffman code near byte {offset} ({where}); strict=False decodes it as libjpeg does"
    if kind == "marker":
        return f"corrupt JPEG data: a restart marker at byte {offset} after the last sample of {where}"
    if kind == "extra":
        return f"corrupt JPEG data: {extra} extraneous bytes before the marker at byte {offset} ({where}); strict=False decodes it as libjpeg does"
    expected = f"FF {RST0 + extra:02X} (RST{extra})"
    return f"corrupt JPEG data: restart marker {expected} expected, found FF {kind:02X} at byte {offset} ({where}); strict=False decodes it as libjpeg does"


class _Failure(Exception):
    """A strict decode's refusal: ``(kind, byte offset, component, line, extra)``."""


class _BitReader:
    """libjpeg's bit reader over one scan's bytes ``[start, end)``: stuffed
    ``FF 00`` is ``FF``, any other marker stops it, and past it come zero
    bits (flagging ``insufficient``)."""

    def __init__(self, data: bytes, start: int, end: int, strict: bool):
        self.data, self.pos, self.end, self.strict = data, start, end, strict
        self.buf = self.bits = 0
        self.marker = -1  # offset of the marker that stopped reading, -1 if none
        self.insufficient = False

    def fill(self) -> None:
        data, end = self.data, self.end
        while self.bits < MIN_GET_BITS and self.marker < 0:
            if self.pos >= end:
                self.marker = end
                break
            c = data[self.pos]
            self.pos += 1
            if c == 0xFF:
                while self.pos < end and data[self.pos] == 0xFF:
                    self.pos += 1
                if self.pos < end and data[self.pos] == 0:
                    self.pos += 1
                else:
                    self.marker = self.pos - 1 if self.pos < end else end
                    break
            self.buf = (self.buf << 8) | c
            self.bits += 8

    def peek16(self) -> int:
        if self.bits < 16:
            self.fill()
        if self.bits >= 16:
            return (self.buf >> (self.bits - 16)) & 0xFFFF
        return (self.buf << (16 - self.bits)) & 0xFFFF  # zeros past the marker

    def take(self, n: int, where) -> int:
        if self.bits < n:
            self.fill()
            if self.bits < n:
                if self.strict:
                    raise _Failure("short", self.marker, *where, 0)
                self.insufficient = True
                self.buf <<= n - self.bits
                self.bits = n
        self.bits -= n
        value = (self.buf >> self.bits) & ((1 << n) - 1)
        self.buf &= (1 << self.bits) - 1
        return value

    def next_marker(self) -> int:
        """jdmarker.c ``next_marker`` from the read position: the bytes it skips."""
        data, end = self.data, self.end
        skipped = 0
        while True:
            while self.pos < end and data[self.pos] != 0xFF:
                self.pos += 1
                skipped += 1
            while self.pos < end and data[self.pos] == 0xFF:
                self.pos += 1
            if self.pos < end and data[self.pos] == 0:
                self.pos += 1
                skipped += 2
                continue
            self.marker = self.pos - 1 if self.pos < end else end
            return skipped

    def restart(self, expected: int) -> None:
        """jdlhuff.c ``process_restart``: drop the bits left, read the marker."""
        skipped = self.bits // 8
        self.buf = self.bits = 0
        if self.marker < 0:
            skipped += self.next_marker()
        code = self.data[self.marker + 1]
        if self.strict and (skipped or code != RST0 + expected):
            if skipped:
                raise _Failure("extra", self.marker, -1, 0, skipped)
            raise _Failure(code, self.marker, -1, 0, expected)
        while code != RST0 + expected:  # jpeg_resync_to_restart
            if code < 0xC0:
                action = 2
            elif not RST0 <= code <= RST0 + 7:
                action = 3
            elif code - RST0 in ((expected + 1) & 7, (expected + 2) & 7):
                action = 3
            elif code - RST0 in ((expected - 1) & 7, (expected - 2) & 7):
                action = 2
            else:
                action = 1
            if action == 1:
                break
            if action == 3:
                return  # the marker stays unread: the segment is empty
            self.pos = self.marker + 2
            self.next_marker()
            code = self.data[self.marker + 1]
        self.pos, self.marker = self.marker + 2, -1
        self.insufficient = False

    def finish(self) -> None:
        """Strict: nothing but fill bytes may follow the scan's last code."""
        skipped = self.bits // 8
        if self.marker < 0:
            skipped += self.next_marker()
        if skipped:
            raise _Failure("extra", self.marker, -1, 0, skipped)
        if self.marker != self.end:
            raise _Failure("marker", self.marker, -1, 0, 0)


def _predict(predictor: int, ra: int, rb: int, rc: int) -> int:
    if predictor == 1:
        return ra
    if predictor == 2:
        return rb
    if predictor == 3:
        return rc
    if predictor == 4:
        return ra + rb - rc
    if predictor == 5:
        return ra + ((rb - rc) >> 1)
    if predictor == 6:
        return rb + ((ra - rc) >> 1)
    return (ra + rb) >> 1


def _decode_scan(data, start, end, comps, mcus_per_row, imcu_rows, interleaved, predictor, al, restart, strict):
    """One scan, in Python: libjpeg-turbo's jddiffct.c ``decompress_data``
    loop. ``comps``: per component of the scan ``(MCU width, MCU height, v,
    width, height, maxcode, valoffset, symbols, out)``, ``out`` its uint8
    samples, written here. Returns ``None``, or (strict) the refusal tuple."""
    reader = _BitReader(data, start, end, strict)
    tables = [(np.frombuffer(c[5], np.int32).tolist(), np.frombuffer(c[6], np.int32).tolist(), np.frombuffer(c[7], np.int32).tolist()) for c in comps]
    diff = [np.zeros((c[2], mcus_per_row * c[0]), dtype=np.int64) for c in comps]
    previous = [[0] * c[3] for c in comps]
    first_line = [True] * len(comps)
    initial = 1 << (PRECISION - al - 1)
    rows_per_interval = restart // mcus_per_row
    rows_to_go = rows_per_interval
    next_restart = 0
    try:
        for imcu in range(imcu_rows):
            last = imcu == imcu_rows - 1
            lines = [c[2] if not last else c[4] - c[2] * (imcu_rows - 1) for c in comps]
            for y in range(1 if interleaved else lines[0]):
                if restart and rows_to_go == 0:
                    reader.restart(next_restart)
                    next_restart = (next_restart + 1) & 7
                    first_line = [True] * len(comps)
                    rows_to_go = rows_per_interval
                if reader.insufficient:  # jdlhuff.c: no data left, zeros and the predictor reset
                    for d in diff:
                        d[y if not interleaved else slice(None)] = 0
                    first_line = [True] * len(comps)
                else:
                    for mx in range(mcus_per_row):
                        for k, (mw, mh, *_rest) in enumerate(comps):
                            maxcode, valoffset, symbols = tables[k]
                            for yy in range(mh):
                                row = diff[k][y + yy]
                                for xx in range(mw):
                                    where = (k, imcu * comps[k][2] + y + yy)
                                    look = reader.peek16()
                                    length = 1
                                    while length < 17 and (look >> (16 - length)) > maxcode[length]:
                                        length += 1
                                    if length == 17 and strict:
                                        raise _Failure("code", reader.pos, *where, 0)
                                    code = reader.take(length, where) if length < 17 else (reader.take(16, where) << 1 | reader.take(1, where))
                                    s = symbols[code + valoffset[length]] if length < 17 else 0
                                    if s == 16:
                                        value = 32768
                                    elif s:
                                        r = reader.take(s, where)
                                        value = r if r >= 1 << (s - 1) else r - (1 << s) + 1
                                    else:
                                        value = 0
                                    row[mx * mw + xx] = value
                if restart:
                    rows_to_go -= 1
            for k, c in enumerate(comps):
                width, out = c[3], c[8]
                for line in range(lines[k]):
                    d = diff[k][line]
                    prev = previous[k]
                    cur = [0] * width
                    if first_line[k]:
                        ra = (int(d[0]) + initial) & 0xFFFF
                        cur[0] = ra
                        for x in range(1, width):
                            ra = (int(d[x]) + ra) & 0xFFFF
                            cur[x] = ra
                        first_line[k] = False
                    else:
                        ra = (int(d[0]) + prev[0]) & 0xFFFF
                        cur[0] = ra
                        for x in range(1, width):
                            ra = (int(d[x]) + _predict(predictor, ra, prev[x], prev[x - 1])) & 0xFFFF
                            cur[x] = ra
                    out[imcu * c[2] + line] = [(v << al) & 0xFF for v in cur]
                    previous[k] = cur
        if strict:
            reader.finish()
    except _Failure as failure:
        return failure.args
    return None
