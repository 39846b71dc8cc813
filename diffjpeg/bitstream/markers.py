"""The JPEG file structure: markers and segments (libjpeg's jdmarker.c).

Files from outside are hostile until proven otherwise, so :func:`parse_structure`
walks the marker segments in pure Python, with every length and field checked,
before any C code sees the data. It rejects what this library does not decode
(samples of other than 8 bits, hierarchical and arithmetic lossless files)
and images over a pixel limit. Lossless (SOF3) files parse to a structure
whose scans carry what :mod:`diffjpeg.codec.lossless` decodes them with: their
DC-class Huffman tables and restart interval. Strict (the default), it walks the whole file, scans
included, and refuses any damage, so that a truncated or corrupt file is
caught here. Not strict, it reads the header up to the first scan as
libjpeg's marker reader does, recovering where libjpeg recovers, and leaves
the rest of the file to libjpeg (whose recovery :func:`diffjpeg.read` then
follows). Any number of segments of any kind libjpeg skips (APPn, COM) is
accepted; the work is one pass over the file.

Facts from the JPEG standard (ITU-T T.81, Annex B) and libjpeg-turbo relied on:

* A file is SOI, then segments ``FF xx <16-bit length including itself>``,
  then EOI. SOI, EOI, RST0-7 and TEM have no length. ``FF`` may be padded
  with more ``FF`` fill bytes before a marker.
* Inside entropy-coded data a ``FF`` byte is followed by a stuffed ``00``;
  ``FF D0``-``FF D7`` are restart markers; any other ``FF xx`` ends the scan.
* libjpeg's marker reader (jdmarker.c ``next_marker``) skips any bytes that
  are not ``FF``, ``FF`` fill bytes, and ``FF 00`` pairs until it finds a
  marker, and warns (``JWRN_EXTRANEOUS_DATA``) that it skipped them. Outside
  a scan it passes over RST0-7 and TEM (parameterless), skips the segments
  of APPn, COM, DAC and DNL, and stops with an error on SOF types it lacks,
  a second SOI or SOF, and any other marker (``JERR_UNKNOWN_MARKER``: JPGn,
  DHP, EXP, reserved codes). Its first marker must be SOI, at byte 0.
* libjpeg refuses a missing quantization table, sampling factors outside
  1..4, more than 10 blocks in an MCU, and image sides over 65500 (JPEG_MAX_DIMENSION).
* The color space: :mod:`diffjpeg.core.colorspace`, from the JFIF and Adobe
  markers before the first SOS (libjpeg decides there) and the component ids.
* Lossless (libjpeg-turbo 3.x jdlossls.c ``start_pass_lossless``): a scan's
  Ss is its predictor, 1..7, Se and Ah must be 0, Al (the point transform)
  below the precision; otherwise ``JERR_BAD_PROGRESSION``. There is no
  quantization, so the frame's Tq selectors go unread (jdinput.c latches
  tables only for lossy files). Each component selects a DC-class Huffman
  table (Td, 0..3), whose symbols must be 0..16 (jdhuff.c
  ``jpeg_make_d_derived_tbl``); Ta goes unread.
"""
from __future__ import annotations

import re
import struct
from dataclasses import dataclass, field

from ..core.colorspace import ADOBE_MIN_LENGTH, JFIF_MIN_LENGTH, MAX_COMPONENTS, file_color_space
from ..core.geometry import sampling_problem
from ..core.scan import ZIGZAG

DEFAULT_MAX_PIXELS = 89_478_485  # Pillow's decompression-bomb limit: 2**28 // 3
JPEG_MAX_DIMENSION = 65500  # libjpeg's limit on each side

SOI, EOI, SOS, DQT, DHT, DRI, DNL, COM = 0xD8, 0xD9, 0xDA, 0xDB, 0xC4, 0xDD, 0xDC, 0xFE
APP0, APP14 = 0xE0, 0xEE
SOF_SUPPORTED = {0xC0: "baseline", 0xC1: "extended sequential", 0xC2: "progressive",
                 0xC9: "arithmetic sequential", 0xCA: "arithmetic progressive", 0xC3: "lossless"}
SOF_UNSUPPORTED = {0xC5: "hierarchical", 0xC6: "hierarchical progressive",
                   0xC7: "hierarchical lossless", 0xCB: "arithmetic lossless",
                   0xCD: "hierarchical arithmetic", 0xCE: "hierarchical arithmetic progressive",
                   0xCF: "hierarchical arithmetic lossless"}
SOF_LOSSLESS = 0xC3  # predictive, no DCT: libjpeg-turbo decodes it from 3.0 on (Pillow 13 does), 2.1 does not
LOSSLESS = SOF_SUPPORTED[SOF_LOSSLESS]  # Structure.process of such a file
DAC, TEM = 0xCC, 0x01
RST = range(0xD0, 0xD8)
# markers with a length that libjpeg reads outside a scan (read_markers)
SEGMENTS = {*SOF_SUPPORTED, DQT, DHT, DRI, SOS, DNL, COM, DAC, *range(0xE0, 0xF0)}


class JPEGError(ValueError):
    """The data is not a JPEG file this library can read, with the reason.

    Example:
        >>> import diffjpeg
        >>> try:
        ...     diffjpeg.read(b"GIF89a")
        ... except diffjpeg.JPEGError as e:
        ...     print(e)
        not a JPEG file: starts with 47 49, not FF D8 (SOI)
    """


@dataclass(frozen=True)
class FrameComponent:
    """One component of the frame header (SOF)."""

    id: int
    h: int  # horizontal sampling factor
    v: int  # vertical sampling factor
    tq: int  # quantization table selector


@dataclass(frozen=True)
class Scan:
    """One scan: its SOS header and where its entropy-coded data lies."""

    component_ids: tuple[int, ...]
    ss: int  # spectral selection start
    se: int  # spectral selection end
    ah: int  # successive approximation, previous bit position
    al: int  # successive approximation, this bit position
    header: tuple[int, int]  # [start, end) of the SOS segment, marker included
    data: tuple[int, int]  # [start, end) of the entropy-coded data
    table_selectors: tuple[int, ...] = ()  # each component's DC table slot (Td)
    dc_tables: tuple = ()  # per slot 0..3: (counts of code lengths 1..16, symbols) defined before this scan, or None
    restart_interval: int = 0  # in MCUs, the DRI in effect at this scan


@dataclass
class Structure:
    """What :func:`parse_structure` found in a file."""

    process: str  # "baseline", "progressive", ...
    precision: int
    height: int
    width: int
    components: tuple[FrameComponent, ...]
    color_space: str  # one of diffjpeg.core.colorspace.COLOR_SPACES
    scans: list[Scan] = field(default_factory=list)
    qtables: dict[int, tuple[int, ...]] = field(default_factory=dict)  # as stored: zigzag order
    restart_interval: int = 0
    end: int = 0  # offset just past EOI
    skipped: list[tuple[int, int]] = field(default_factory=list)  # [start, end) of each APPn and COM segment, in order

    @property
    def progressive(self) -> bool:
        return "progressive" in self.process

    @property
    def sampling(self) -> tuple[tuple[int, int], ...]:
        return tuple((c.h, c.v) for c in self.components)


def _u16(data: bytes, offset: int) -> int:
    return struct.unpack_from(">H", data, offset)[0]


def next_marker(data: bytes, position: int) -> tuple[int, int, int] | None:
    r"""The next marker from ``position`` as libjpeg's ``next_marker`` finds
    it: ``(code, offset of its FF, bytes skipped)``, or ``None`` if the file
    ends first. It skips bytes other than ``FF`` and ``FF 00`` pairs (and
    counts them, as libjpeg counts its "extraneous bytes"), and ``FF`` fill
    bytes (not counted).

    Example:
        >>> next_marker(b"\x12\x34\xff\x00\xff\xff\xd9", 0)
        (217, 5, 4)
    """
    if position + 1 < len(data) and data[position] == 0xFF and data[position + 1] not in (0x00, 0xFF):
        return data[position + 1], position, 0  # the common case: the marker right where the last segment ended
    skipped = 0
    while True:
        found = data.find(b"\xff", position)
        if found < 0:
            return None
        skipped += found - position
        position = found
        while position < len(data) and data[position] == 0xFF:
            position += 1
        if position >= len(data):
            return None
        if data[position] != 0x00:
            return data[position], position - 1, skipped
        skipped += 2
        position += 1


def scan_data_end(data: bytes, start: int) -> int:
    """Offset of the first marker after entropy-coded data starting at ``start``.

    Returns ``len(data)`` if there is none (a truncated file).
    """
    found = _MARKER_IN_SCAN.search(data, start)  # one pass in C, not a Python step per FF byte
    return len(data) if found is None else found.start()


# An FF followed by anything but a stuffed 00, a restart marker or another FF
# (a fill byte: the marker is at the last FF of a run) ends a scan's data.
_MARKER_IN_SCAN = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")


def _zigzag(size: int) -> tuple[int, ...]:
    """The zigzag order of a ``size x size`` block in an 8x8 block's natural
    indices (libjpeg's ``jpeg_natural_order``, ``jpeg_natural_order2..7``).

    Example:
        >>> _zigzag(2), _zigzag(8)[:6]
        ((0, 1, 8, 9), (0, 1, 8, 16, 9, 2))
    """
    cells = [(r, c) for r in range(size) for c in range(size)]
    cells.sort(key=lambda rc: (rc[0] + rc[1], rc[1] if (rc[0] + rc[1]) % 2 == 0 else rc[0]))
    return tuple(r * 8 + c for r, c in cells)


_SHORT_ORDERS = {k * k: _zigzag(k) for k in range(2, 8)}  # a short table's count picks a smaller block's order


def whole_tables(data: bytes) -> bytes | None:
    r"""``data`` with each short quantization table (a DQT segment that ends
    before its 64 entries) written out in full as libjpeg-turbo 3 (Pillow's)
    reads it: the entries given, in the zigzag order of the smallest block
    they fill (4, 9, ..., 49 entries: 2x2 to 7x7, libjpeg's
    ``jpeg_natural_order2..7``; else 8x8), 1 everywhere else. Older
    libjpeg-turbo builds (jpeglib's) refuse such a segment ("Bogus marker
    length"). ``None`` if the file has none, or one that libjpeg-turbo 3
    refuses too, or the walk over its segments stops at damage first.

    Example:
        >>> short = b"\xff\xd8\xff\xdb\x00\x05\x00\x07\x09\xff\xd9"
        >>> fixed = whole_tables(short)
        >>> len(fixed), fixed[6:9], fixed[9:11]
        (73, b'\x00\x07\t', b'\x01\x01')
    """
    parts, position, changed = [], 2, False
    while True:
        found = next_marker(data, position)
        if found is None:
            break
        marker, start, _ = found
        if marker == EOI:
            break
        if marker in RST or marker in (SOI, TEM):
            parts.append(data[position : start + 2])
            position = start + 2
            continue
        if marker not in SEGMENTS or start + 4 > len(data):
            return None
        end = start + 2 + _u16(data, start + 2)
        if marker == DQT:
            body = _whole_dqt(data[start + 4 : end])
            if body is None:
                return None
            if body != data[start + 4 : end]:
                parts += [data[position:start], bytes([0xFF, DQT]), (len(body) + 2).to_bytes(2, "big"), body]
                position, changed = end, True
                continue
        parts.append(data[position:end])
        position = scan_data_end(data, end) if marker == SOS else end
        parts.append(data[end:position])  # a scan's data
    if not changed:
        return None
    return data[:2] + b"".join(parts) + data[position:]


def _whole_dqt(body: bytes) -> bytes | None:
    """A DQT segment's body with every table in full (:func:`whole_tables`), or ``None`` where libjpeg-turbo 3 refuses it."""
    out, at, left = [], 0, len(body)
    while left > 0:
        left -= 1
        header = body[at]
        at += 1
        wide = header >> 4
        if wide > 1 or (header & 0x0F) > 3:
            return None
        count = min(64, left >> 1 if wide else left)
        order = _SHORT_ORDERS.get(count, ZIGZAG) if count < 64 else ZIGZAG
        values = [1] * 64
        for k in range(count):
            values[order[k]] = _u16(body, at + 2 * k) if wide else body[at + k]
        at += count * (2 if wide else 1)
        left -= count * (2 if wide else 1)
        out.append(bytes([header]) + b"".join(values[i].to_bytes(2 if wide else 1, "big") for i in ZIGZAG))
    return b"".join(out) if left == 0 else None


def _parse_frame(marker: int, body: bytes, max_pixels: int | None) -> Structure:
    if len(body) < 6:
        raise JPEGError(f"frame header (SOF) is {len(body)} bytes, needs at least 6")
    precision, height, width, count = struct.unpack_from(">BHHB", body)
    if precision != 8:
        raise JPEGError(f"the file has {precision}-bit samples; only 8-bit samples are supported")
    if height == 0:
        raise JPEGError("image height 0 (defined by a DNL marker) is not supported")
    if width == 0:
        raise JPEGError("image width is 0")
    if height > JPEG_MAX_DIMENSION or width > JPEG_MAX_DIMENSION:
        raise JPEGError(f"image is {width}x{height}; libjpeg's limit is {JPEG_MAX_DIMENSION} per side")
    if max_pixels is not None and height * width > max_pixels:
        raise JPEGError(
            f"image is {width}x{height} = {height * width} pixels, over the limit max_pixels={max_pixels} "
            "(a guard against decompression bombs; raise it if you trust the file)"
        )
    if count not in (1, 3, MAX_COMPONENTS):
        raise JPEGError(f"the frame has {count} components; supported are 1 (grayscale), 3 (YCbCr, RGB) and 4 (CMYK, YCCK)")
    if len(body) != 6 + 3 * count:
        raise JPEGError(f"frame header (SOF) length {len(body) + 2} does not match its {count} components")
    components = []
    for i in range(count):
        cid, hv, tq = struct.unpack_from(">BBB", body, 6 + 3 * i)
        h, v = hv >> 4, hv & 15
        if tq > 3 and marker != SOF_LOSSLESS:
            raise JPEGError(f"component {cid} selects quantization table {tq}; JPEG allows 0..3")
        components.append(FrameComponent(cid, h, v, tq))
    if len({c.id for c in components}) != count:
        raise JPEGError(f"component ids repeat: {[c.id for c in components]}")
    problem = sampling_problem([(c.h, c.v) for c in components])
    if problem:
        raise JPEGError(problem)
    return Structure(SOF_SUPPORTED[marker], precision, height, width, tuple(components), "grayscale")


def _parse_dqt(body: bytes, tables: dict, strict: bool = True) -> None:
    offset = 0
    while offset < len(body):
        pq, tq = body[offset] >> 4, body[offset] & 15
        if pq > 1 or tq > 3:
            raise JPEGError(f"quantization table (DQT) with precision {pq} and slot {tq}; allowed 0..1 and 0..3")
        size = 64 * (pq + 1)
        if offset + 1 + size > len(body):
            raise JPEGError("quantization table (DQT) segment is shorter than its tables")
        fmt = ">64H" if pq else ">64B"
        values = struct.unpack_from(fmt, body, offset + 1)
        if 0 in values and strict:  # libjpeg dequantizes with it as given (a zero coefficient)
            raise JPEGError(f"quantization table {tq} has a zero entry")
        tables[tq] = values
        offset += 1 + size


def _parse_dht(body: bytes, dc_tables: list) -> None:
    offset = 0
    while offset < len(body):
        if offset + 17 > len(body):
            raise JPEGError("Huffman table (DHT) segment is shorter than its counts")
        tc, th = body[offset] >> 4, body[offset] & 15
        if tc > 1 or th > 3:
            raise JPEGError(f"Huffman table (DHT) of class {tc} and slot {th}; allowed 0..1 and 0..3")
        count = sum(body[offset + 1 : offset + 17])
        if count > 256 or offset + 17 + count > len(body):
            raise JPEGError(f"Huffman table (DHT) claims {count} symbols, more than it holds")
        if tc == 0:
            dc_tables[th] = (tuple(body[offset + 1 : offset + 17]), tuple(body[offset + 17 : offset + 17 + count]))
        offset += 17 + count


def _parse_sos(body: bytes, frame: Structure, header: tuple[int, int]) -> Scan:
    if not body:
        raise JPEGError("scan header (SOS) is empty")
    count = body[0]
    if not 1 <= count <= 4 or len(body) != 4 + 2 * count:
        raise JPEGError(f"scan header (SOS) with {count} components has length {len(body) + 2}")
    ids = tuple(body[1 : 1 + 2 * count : 2])
    known = {c.id for c in frame.components}
    if any(i not in known for i in ids) or len(set(ids)) != count:
        raise JPEGError(f"scan names components {list(ids)}, the frame has {sorted(known)}")
    ss, se, a = body[1 + 2 * count], body[2 + 2 * count], body[3 + 2 * count]
    ah, al = a >> 4, a & 15
    if frame.process == LOSSLESS:
        if not 1 <= ss <= 7 or se != 0 or ah != 0 or al >= frame.precision:
            raise JPEGError(
                f"lossless scan parameters are invalid: predictor Ss={ss} (allowed 1..7), Se={se} and Ah={ah} "
                f"(must be 0), point transform Al={al} (allowed 0..{frame.precision - 1})"
            )
    elif frame.progressive:
        if ss > se or se > 63 or ah > 13 or al > 13 or (ss == 0) != (se == 0) or (ss > 0 and count != 1):
            raise JPEGError(f"progressive scan parameters Ss={ss} Se={se} Ah={ah} Al={al} for {count} components are invalid")
    selectors = tuple(b >> 4 for b in body[2 : 2 + 2 * count : 2])
    return Scan(ids, ss, se, ah, al, header, (header[1], header[1]), selectors)


def parse_structure(data: bytes, max_pixels: int | None = DEFAULT_MAX_PIXELS, strict: bool = True) -> Structure:
    """Check the marker structure of a JPEG file and describe it.

    Args:
        data: the whole file.
        max_pixels: largest ``height * width`` accepted, ``None`` for no limit
            (libjpeg's own 65500 per side still applies).
        strict: ``True`` walks the whole file and refuses any damage (bytes
            where a marker should be, a restart marker outside a scan, a
            missing EOI, a zero quantization table entry); ``False`` reads
            up to the first scan header as libjpeg does, skipping what
            libjpeg skips and taking a zero table entry as libjpeg does (as
            given), and stops there.

    Returns:
        :class:`Structure`: frame header, scans with their data ranges,
        tables. Not strict: only the first scan, whose data range is not
        known (it runs to ``end``, the end of the file), and the tables
        defined before it.

    Raises:
        JPEGError: not a JPEG, truncated, malformed, or not supported here.

    Example:
        >>> import io
        >>> from PIL import Image
        >>> buf = io.BytesIO(); Image.new("RGB", (20, 10)).save(buf, "JPEG")
        >>> s = parse_structure(buf.getvalue())
        >>> s.process, s.width, s.height, s.sampling, len(s.scans)
        ('baseline', 20, 10, ((2, 2), (1, 1), (1, 1)), 1)
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"data must be bytes, got {type(data).__name__}")
    data = bytes(data)
    if len(data) < 4:
        raise JPEGError(f"not a JPEG file: {len(data)} bytes")
    if data[0] != 0xFF or data[1] != SOI:
        raise JPEGError(f"not a JPEG file: starts with {data[0]:02X} {data[1]:02X}, not FF D8 (SOI)")
    if data[2] != 0xFF:  # libjpeg would skip to a marker; Pillow and OpenCV take FF D8 FF as the signature
        raise JPEGError(f"not a JPEG file: starts with FF D8 {data[2]:02X}, not FF D8 FF (SOI, then a marker), as Pillow and OpenCV require")
    frame: Structure | None = None
    qtables: dict[int, tuple[int, ...]] = {}
    restart_interval = 0
    jfif, adobe_transform = False, None
    scans: list[Scan] = []
    dc_tables: list = [None] * 4
    skipped: list[tuple[int, int]] = []
    position = 2
    while True:
        found = next_marker(data, position)
        if found is None:
            where = "without an EOI marker" if strict else "before its first scan (SOS)"
            raise JPEGError(f"truncated: the file ends at byte {len(data)} {where}")
        marker, start, junk = found
        if junk and strict:  # libjpeg skips them with a warning (JWRN_EXTRANEOUS_DATA)
            raise JPEGError(
                f"corrupt JPEG data: {junk} extraneous bytes at byte {position} "
                f"(a marker was expected there) before the marker FF {marker:02X} at byte {start}"
            )
        position = start + 2
        if marker == EOI:
            break
        if marker == TEM or (marker in RST and not strict):  # parameterless: libjpeg passes over them
            continue
        if marker in RST:
            raise JPEGError(f"corrupt JPEG data: restart marker FF {marker:02X} at byte {start} outside a scan")
        if marker == SOI:
            raise JPEGError(f"corrupt JPEG data: a second SOI marker at byte {start}")
        if marker in SOF_UNSUPPORTED:
            raise JPEGError(f"{SOF_UNSUPPORTED[marker]} JPEG (SOF marker FF {marker:02X}) is not supported")
        if marker not in SEGMENTS:
            raise JPEGError(f"corrupt JPEG data: unknown marker FF {marker:02X} at byte {start}")
        if position + 2 > len(data):
            raise JPEGError(f"truncated: segment FF {marker:02X} at byte {start} has no length")
        length = _u16(data, position)
        if length < 2:
            raise JPEGError(f"corrupt JPEG data: segment FF {marker:02X} at byte {start} has length {length} (< 2)")
        if position + length > len(data):
            raise JPEGError(f"truncated: segment FF {marker:02X} at byte {start} needs {length} bytes, {len(data) - position} are left")
        body = data[position + 2 : position + length]
        position += length
        if marker in SOF_SUPPORTED:
            if frame is not None:
                raise JPEGError(f"second frame header (SOF) at byte {start}")
            frame = _parse_frame(marker, body, max_pixels)
        elif marker == DQT:
            _parse_dqt(body, qtables, strict)
        elif marker == DHT:
            _parse_dht(body, dc_tables)
        elif marker == DRI:
            if len(body) != 2:
                raise JPEGError(f"restart interval (DRI) segment has length {length}, expected 4")
            restart_interval = _u16(body, 0)
        elif marker == SOS:
            if frame is None:
                raise JPEGError(f"scan (SOS) at byte {start} before any frame header (SOF)")
            scan = _parse_sos(body, frame, (start, position))
            tables = (scan.table_selectors, tuple(dc_tables), restart_interval)
            if not strict:  # the rest is libjpeg's to read
                scans.append(Scan(scan.component_ids, scan.ss, scan.se, scan.ah, scan.al, scan.header, (position, len(data)), *tables))
                position = len(data)
                break
            end = scan_data_end(data, position)
            if end >= len(data):
                raise JPEGError(f"truncated: the data of scan {len(scans) + 1} runs to the end of the file without an EOI marker")
            scans.append(Scan(scan.component_ids, scan.ss, scan.se, scan.ah, scan.al, scan.header, (position, end), *tables))
            position = end
        elif marker == DNL and strict:  # libjpeg skips it (the frame's height is not 0)
            raise JPEGError("DNL marker (height defined after the scan) is not supported")
        elif marker == APP0 and not scans and len(body) >= JFIF_MIN_LENGTH and body.startswith(b"JFIF\x00"):
            jfif = True
        elif marker == APP14 and not scans and len(body) >= ADOBE_MIN_LENGTH and body.startswith(b"Adobe"):
            adobe_transform = body[11]
        if 0xE0 <= marker <= 0xEF or marker == COM:
            skipped.append((start, position))
    if frame is None:
        raise JPEGError("no frame header (SOF) before EOI")
    if not scans:
        raise JPEGError("no scan (SOS) before EOI")
    covered = {i for s in scans for i in s.component_ids}
    missing = [c.id for c in frame.components if c.id not in covered]
    if missing and strict:
        raise JPEGError(f"no scan codes component(s) {missing}")
    for c in frame.components:
        if c.tq not in qtables and strict and frame.process != LOSSLESS:  # not strict: a DQT may follow the first scan
            raise JPEGError(f"component {c.id} uses quantization table {c.tq}, which the file does not define")
    frame.color_space = file_color_space(tuple(c.id for c in frame.components), jfif, adobe_transform, frame.process == LOSSLESS)
    frame.scans = scans
    frame.qtables = qtables
    frame.restart_interval = restart_interval
    frame.end = position
    frame.skipped = skipped
    return frame
