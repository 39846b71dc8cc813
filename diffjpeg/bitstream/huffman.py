"""Huffman entropy coding of a baseline scan (libjpeg's jchuff.c), vectorized.

:func:`bits` gives the exact length of the entropy-coded data that libjpeg
writes for a :class:`Coefficients`, without a per-symbol Python loop: every
symbol of every block is laid out in fixed slots of a tensor, the ones that
exist are kept in stream order, and their bits are packed into bytes to count
the ``FF`` bytes that get a stuffed ``00``.

Facts from the JPEG standard and libjpeg-turbo relied on:

* One interleaved scan of all components (jpeg_set_defaults); each uses the
  Huffman tables jpeg_set_colorspace gives it (colorspace.TABLE_SLOTS: Y and
  K, R, G, B, C, M, Y tables 0; Cb and Cr tables 1). The order of blocks
  and coefficients, and the DC of MCU padding blocks, are
  :mod:`diffjpeg.core.scan`'s.
* DC: the difference to the previous block's DC of the same component (0 at
  the start), coded as its size category (0..11) then that many extra bits;
  negative values are sent as ``value - 1`` in two's complement.
* AC in zigzag order: each nonzero value as ``(run << 4) | size`` preceded by
  one ZRL (0xF0) per 16 zeros of its run, then its extra bits; an EOB (0x00)
  after the last nonzero value unless that is at zigzag position 63.
* libjpeg refuses AC sizes over 10 and DC difference sizes over 11.
* Bits are packed MSB first; each ``FF`` byte is followed by a stuffed ``00``;
  the last byte is padded with 1 bits (jchuff.c flush_bits), and is stuffed
  too if that makes it ``FF``.
* Optimized tables (``optimize_coding``) come from symbol counts over all
  blocks, dummies included, by jchuff.c's jpeg_gen_optimal_table: Huffman's
  algorithm with a reserved pseudo-symbol 256, ties taking the larger symbol,
  then lengths over 16 folded back as Annex K.2 describes.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np
import torch
from torch import Tensor

from ..core.check import check_choice
from ..core.coefficients import Coefficients
from ..core.colorspace import TABLE_SLOTS
from ..core.geometry import mcu_counts
from ..core.scan import coding_order, last_real, zigzag_index

Huffman = Literal["standard", "optimized"]  # libjpeg's standard tables, or ones built for the image
HUFFMAN: tuple[str, ...] = get_args(Huffman)

EOB, ZRL = 0x00, 0xF0
MAX_AC_SIZE, MAX_DC_SIZE = 10, 11
SLOTS_PER_AC = 4  # up to 3 ZRLs (a run of at most 62 zeros) and the value
SLOTS_PER_BLOCK = 1 + 63 * SLOTS_PER_AC + 1  # DC, AC positions, EOB


@dataclass(frozen=True)
class HuffmanTable:
    """A table as a DHT segment gives it: ``counts[l]`` codes of length ``l + 1``
    for the symbols ``values`` in order."""

    counts: tuple[int, ...]
    values: tuple[int, ...]

    def code_lengths_and_codes(self) -> tuple[np.ndarray, np.ndarray]:
        """``(lengths, codes)`` indexed by symbol (0..255); length 0 = no code.

        Canonical assignment as jpeg_make_c_derived_tbl: codes of each length
        count up, then shift left for the next length.
        """
        lengths = np.zeros(256, np.int64)
        codes = np.zeros(256, np.int64)
        code, k = 0, 0
        for length, n in enumerate(self.counts, start=1):
            for _ in range(n):
                lengths[self.values[k]] = length
                codes[self.values[k]] = code
                code += 1
                k += 1
            code <<= 1
        return lengths, codes


def _table(counts: str, values: str) -> HuffmanTable:
    return HuffmanTable(tuple(bytes.fromhex(counts)), tuple(bytes.fromhex(values)))


# ITU-T T.81 Annex K.3 (libjpeg's std_huff_tables): (DC, AC) for luma, chroma
STANDARD_TABLES = (
    (
        _table("00010501010101010100000000000000", "000102030405060708090a0b"),
        _table(
            "0002010303020403050504040000017d",
            "01020300041105122131410613516107227114328191a1082342b1c11552d1f02433627282090a161718191a25262728292a3435363738393a434445464748494a535455565758595a636465666768696a737475767778797a838485868788898a92939495969798999aa2a3a4a5a6a7a8a9aab2b3b4b5b6b7b8b9bac2c3c4c5c6c7c8c9cad2d3d4d5d6d7d8d9dae1e2e3e4e5e6e7e8e9eaf1f2f3f4f5f6f7f8f9fa",
        ),
    ),
    (
        _table("00030101010101010101010000000000", "000102030405060708090a0b"),
        _table(
            "00020102040403040705040400010277",
            "000102031104052131061241510761711322328108144291a1b1c109233352f0156272d10a162434e125f11718191a262728292a35363738393a434445464748494a535455565758595a636465666768696a737475767778797a82838485868788898a92939495969798999aa2a3a4a5a6a7a8a9aab2b3b4b5b6b7b8b9bac2c3c4c5c6c7c8c9cad2d3d4d5d6d7d8d9dae2e3e4e5e6e7e8e9eaf2f3f4f5f6f7f8f9fa",
        ),
    ),
)


def optimal_table(frequencies) -> HuffmanTable:
    """The Huffman table libjpeg builds from symbol counts (jpeg_gen_optimal_table).

    Args:
        frequencies: 256 counts, one per symbol.

    Returns:
        :class:`HuffmanTable` with codes of at most 16 bits.

    Example:
        >>> optimal_table([5, 3, 1] + [0] * 253).counts[:3]
        (1, 1, 1)
    """
    freq = [int(f) for f in frequencies] + [1]  # pseudo-symbol 256: no code is all ones
    if len(freq) != 257 or min(freq) < 0 or max(freq[:256]) == 0:
        raise ValueError("frequencies must be 256 non-negative counts, not all zero")
    codesize = [0] * 257
    others = [-1] * 257
    active = [i for i in range(257) if freq[i]]
    while len(active) > 1:
        # the two smallest counts; among equal counts the larger symbol first
        order = sorted(active, key=lambda i: (freq[i], -i))
        c1, c2 = order[0], order[1]
        freq[c1] += freq[c2]
        active.remove(c2)
        for start in (c1, c2):  # one bit longer for everything in both branches
            node = start
            codesize[node] += 1
            while others[node] >= 0:
                node = others[node]
                codesize[node] += 1
            if start == c1:
                others[node] = c2  # chain c2's branch onto c1's
    counts = [0] * 33
    for i in range(257):
        if codesize[i]:
            counts[codesize[i]] += 1
    for i in range(32, 16, -1):  # Annex K.2: fold lengths over 16
        while counts[i] > 0:
            j = i - 2
            while counts[j] == 0:
                j -= 1
            counts[i] -= 2
            counts[i - 1] += 1
            counts[j + 1] += 2
            counts[j] -= 1
    i = 16
    while counts[i] == 0:
        i -= 1
    counts[i] -= 1  # drop the pseudo-symbol from the longest length
    values = sorted((codesize[s], s) for s in range(256) if codesize[s])
    return HuffmanTable(tuple(counts[1:17]), tuple(s for _, s in values))


def _size_category(x: Tensor) -> Tensor:
    """Number of bits of ``|x|`` (0 for 0), exact for integers up to 2**15."""
    magnitude = x.abs()
    powers = 2 ** torch.arange(16, device=x.device, dtype=x.dtype)
    return (magnitude.unsqueeze(-1) >= powers).sum(-1)


def _extra_bits(x: Tensor, size: Tensor) -> Tensor:
    """The ``size`` low bits JPEG sends after a category: ``x`` or ``x - 1`` if negative."""
    return torch.where(x < 0, x + (1 << size) - 1, x)


@dataclass
class ScanSymbols:
    """The symbols of one image's scan, in stream order.

    ``symbol``: Huffman symbol (DC: size category; AC: run/size, ZRL, EOB),
    ``table``: Huffman table slot (0 luma, 1 chroma), ``is_dc``, and the extra
    bits (``extra``, ``extra_size``), one entry per coded symbol.
    """

    symbol: Tensor
    table: Tensor
    is_dc: Tensor
    extra: Tensor
    extra_size: Tensor

    def frequencies(self, table: int, dc: bool) -> np.ndarray:
        keep = (self.table == table) & (self.is_dc == dc)
        return torch.bincount(self.symbol[keep], minlength=256).cpu().numpy()


def _rounded_components(c: Coefficients) -> list[Tensor]:
    batch = c.batch_shape
    count = math.prod(batch)
    out = []
    for blocks in c.components:
        b = torch.round(blocks.detach()).to(torch.int64)
        out.append(b.reshape(count, *b.shape[len(batch):]))
    return out


def scan_symbols(c: Coefficients) -> list[ScanSymbols]:
    """The symbols libjpeg codes for each image of ``c`` (a baseline scan).

    Coefficients are rounded to integers first.

    Returns:
        One :class:`ScanSymbols` per image (batch flattened).

    Example:
        >>> from diffjpeg import encode
        >>> c = encode(torch.full((1, 8, 8), 128, dtype=torch.uint8), quality=50)
        >>> s = scan_symbols(c)[0]
        >>> s.symbol.tolist(), s.is_dc.tolist()
        ([0, 0], [True, False])
    """
    check_codable(c)
    components = _rounded_components(c)
    zigzag = zigzag_index(c.y.device)
    mcus = mcu_counts(c.size, c.sampling)
    result = []
    slots = TABLE_SLOTS[c.color_space]
    for image in range(components[0].shape[0]):
        per_component = []
        for ci, blocks in enumerate(components):
            flat = blocks[image].flatten(-2)[..., zigzag]
            ordered, real = coding_order(flat, c.sampling[ci], mcus)
            real_flat = real.flatten()
            dc = ordered[..., 0].flatten()[last_real(real_flat)]  # dummy blocks repeat the previous DC
            diff = dc - torch.cat((dc.new_zeros(1), dc[:-1]))
            ac = ordered[..., 1:].reshape(-1, 63) * real_flat.unsqueeze(-1)
            table = torch.full_like(diff, slots[ci])
            per_component.append((diff.reshape(ordered.shape[:2]), ac.reshape(*ordered.shape[:2], 63), table.reshape(ordered.shape[:2])))
        # stream order: per MCU, each component's blocks in turn
        diff = torch.cat([p[0] for p in per_component], dim=1).flatten()
        ac = torch.cat([p[1] for p in per_component], dim=1).reshape(-1, 63)
        table = torch.cat([p[2] for p in per_component], dim=1).flatten()
        result.append(_block_symbols(diff, ac, table))
    return result


def _block_symbols(diff: Tensor, ac: Tensor, table: Tensor) -> ScanSymbols:
    """Lay out every block's symbols in fixed slots and keep the real ones in order."""
    n = diff.shape[0]
    device = diff.device
    dc_size = _size_category(diff)
    nonzero = ac != 0
    positions = torch.arange(1, 64, device=device)
    # zigzag position of the previous nonzero value (0: the DC)
    marks = torch.where(nonzero, positions, 0)
    previous = torch.cat((marks.new_zeros(n, 1), marks[:, :-1]), dim=1).cummax(1).values
    run = positions - previous - 1
    ac_size = _size_category(ac)
    symbol_ac = ((run % 16) << 4) | ac_size
    zrls = torch.where(nonzero, run // 16, 0)

    symbol = torch.zeros(n, SLOTS_PER_BLOCK, dtype=torch.int64, device=device)
    extra = torch.zeros_like(symbol)
    extra_size = torch.zeros_like(symbol)
    valid = torch.zeros(n, SLOTS_PER_BLOCK, dtype=torch.bool, device=device)
    is_dc = torch.zeros_like(valid)
    symbol[:, 0], extra[:, 0], extra_size[:, 0] = dc_size, _extra_bits(diff, dc_size), dc_size
    valid[:, 0] = True
    is_dc[:, 0] = True
    body = slice(1, 1 + 63 * SLOTS_PER_AC)
    slots = symbol[:, body].view(n, 63, SLOTS_PER_AC)
    slot_valid = valid[:, body].view(n, 63, SLOTS_PER_AC)
    slot_extra = extra[:, body].view(n, 63, SLOTS_PER_AC)
    slot_extra_size = extra_size[:, body].view(n, 63, SLOTS_PER_AC)
    for j in range(SLOTS_PER_AC - 1):
        slots[..., j] = ZRL
        slot_valid[..., j] = zrls > j
    slots[..., -1] = symbol_ac
    slot_valid[..., -1] = nonzero
    slot_extra[..., -1] = _extra_bits(ac, ac_size)
    slot_extra_size[..., -1] = ac_size
    symbol[:, -1] = EOB
    valid[:, -1] = ~nonzero[:, -1]
    table = table.unsqueeze(1).expand(n, SLOTS_PER_BLOCK)
    keep = valid.flatten()
    return ScanSymbols(
        symbol=symbol.flatten()[keep],
        table=table.flatten()[keep],
        is_dc=is_dc.flatten()[keep],
        extra=extra.flatten()[keep],
        extra_size=extra_size.flatten()[keep],
    )


def check_codable(c: Coefficients) -> None:
    """Raise ValueError if libjpeg could not code ``c`` in a baseline scan:
    non-finite values, AC over 10 bits (``|x| > 1023``), DC outside -1024..1023."""
    for name, blocks in zip(("y", "cb", "cr", "k"), c.components):
        b = blocks.detach()
        if b.is_floating_point() and not bool(torch.isfinite(b).all()):
            raise ValueError(f"coefficients.{name} contains NaN or Inf")
        r = torch.round(b)
        ac = r.flatten(-2)[..., 1:]
        if ac.numel() and float(ac.abs().max()) > 1023:
            raise ValueError(f"coefficients.{name} has an AC value of {float(ac.abs().max()):.0f}; JPEG codes at most 1023 (10 bits)")
        dc = r[..., 0, 0]
        if dc.numel() and (float(dc.min()) < -1024 or float(dc.max()) > 1023):
            raise ValueError(
                f"coefficients.{name} has DC values in {float(dc.min()):.0f}..{float(dc.max()):.0f}; "
                "allowed -1024..1023 (an 8-bit encoder's range), so that differences fit 11 bits"
            )


def scan_tables(symbols: ScanSymbols, huffman: Huffman) -> dict:
    """``{(slot, is_dc): HuffmanTable}`` libjpeg codes these symbols with:
    Annex K's, or the optimal ones for their counts; unused tables left out."""
    tables = {}
    for slot in (0, 1):
        for dc in (True, False):
            frequencies = symbols.frequencies(slot, dc)
            if frequencies.sum() == 0:
                continue  # a table no component uses
            tables[(slot, dc)] = STANDARD_TABLES[slot][0 if dc else 1] if huffman == "standard" else optimal_table(frequencies)
    return tables


def _code(symbols: ScanSymbols, huffman: str) -> tuple[Tensor, Tensor]:
    """Each symbol's code and extra bits as one ``(value, length)`` pair."""
    length = torch.zeros_like(symbols.symbol)
    code = torch.zeros_like(symbols.symbol)
    for (slot, dc), table in scan_tables(symbols, huffman).items():
        lengths, codes = (torch.as_tensor(t, device=symbols.symbol.device) for t in table.code_lengths_and_codes())
        pick = (symbols.table == slot) & (symbols.is_dc == dc)
        length = torch.where(pick, lengths[symbols.symbol], length)
        code = torch.where(pick, codes[symbols.symbol], code)
    if bool((length == 0).any()):
        raise ValueError("a symbol has no code in the standard Huffman table")  # cannot happen for checked values
    value = (code << symbols.extra_size) | symbols.extra
    return value, length + symbols.extra_size


def pack(value: Tensor, length: Tensor) -> Tensor:
    """Entropy-coded bytes of ``(value, length)`` pairs: MSB first, last byte
    padded with 1 bits, before byte stuffing. Lengths at most 32.

    Example:
        >>> pack(torch.tensor([0b101, 0b1]), torch.tensor([3, 1])).tolist()
        [191]
    """
    total = int(length.sum())
    count = (total + 7) // 8
    if count == 0:
        return torch.zeros(0, dtype=torch.uint8, device=value.device)
    start = torch.cumsum(length, 0) - length
    offset = start % 8
    # place each pair in a 40-bit window that starts at its first byte
    window = value << (40 - offset - length)
    first = start // 8
    out = torch.zeros(count + 5, dtype=torch.int64, device=value.device)
    for j in range(5):  # a pair of at most 32 bits spans at most 5 bytes
        out.scatter_add_(0, first + j, (window >> (32 - 8 * j)) & 0xFF)
    out = out[:count]
    if total % 8:
        out[-1] |= 0xFF >> (total % 8)
    return out.to(torch.uint8)


def stuff(data: Tensor) -> bytes:
    """Insert a ``00`` after every ``FF`` byte, as written in the file."""
    raw = bytes(data.cpu().numpy())
    return raw.replace(b"\xff", b"\xff\x00")


def entropy_coded_bytes(c: Coefficients, huffman: Huffman = "standard") -> list[bytes]:
    """The entropy-coded data of each image's baseline scan, as libjpeg writes it.

    Example:
        >>> from diffjpeg import encode
        >>> len(entropy_coded_bytes(encode(torch.full((1, 8, 8), 128, dtype=torch.uint8), quality=50))[0])
        1
    """
    check_huffman(huffman)
    return [stuff(pack(*_code(s, huffman))) for s in scan_symbols(c)]


def coded_scans(c: Coefficients, huffman: Huffman = "standard") -> list[tuple[dict, bytes]]:
    """Per image, the tables :func:`scan_tables` gives and the entropy-coded
    data of its baseline scan, from one pass over the symbols."""
    check_huffman(huffman)
    return [(scan_tables(s, huffman), stuff(pack(*_code(s, huffman)))) for s in scan_symbols(c)]


def check_huffman(huffman: Huffman) -> None:
    """``huffman``: one of :data:`HUFFMAN`."""
    check_choice("huffman", huffman, HUFFMAN)


def bits(c: Coefficients, huffman: Huffman = "standard") -> Tensor:
    """Exact size in bits of the entropy-coded baseline scan libjpeg writes.

    Equals 8 x the length of the scan data in the file that :func:`diffjpeg.write`
    (or Pillow, from the same coefficients) produces: Huffman codes, extra
    bits, byte stuffing and final padding included; headers not included.

    Args:
        c: :class:`Coefficients` (rounded to integers first).
        huffman: ``"standard"`` (Annex K tables, libjpeg's default) or
            ``"optimized"`` (the tables ``optimize_coding`` builds).

    Returns:
        int64 tensor of shape ``c.batch_shape``.

    Example:
        >>> import diffjpeg
        >>> c = diffjpeg.encode(torch.rand(2, 3, 16, 16), quality=75)
        >>> n = bits(c); n.shape, n.dtype
        (torch.Size([2]), torch.int64)
    """
    check_huffman(huffman)
    sizes = []
    for s in scan_symbols(c):
        packed = pack(*_code(s, huffman))
        sizes.append(8 * (packed.numel() + int((packed == 0xFF).sum())))
    return torch.tensor(sizes, dtype=torch.int64).reshape(c.batch_shape)


def huffman_tables(c: Coefficients, huffman: Huffman = "standard") -> list[dict]:
    """The tables libjpeg uses for each image: ``{("dc"|"ac", slot): HuffmanTable}``."""
    check_huffman(huffman)
    return [
        {("dc" if dc else "ac", slot): table for (slot, dc), table in scan_tables(s, huffman).items()}
        for s in scan_symbols(c)
    ]
