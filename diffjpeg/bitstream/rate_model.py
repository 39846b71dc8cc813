"""A differentiable estimate of the bits a JPEG scan takes (calibrated against :func:`diffjpeg.bits`).

How it is built: the exact run-length/Huffman bit count of :mod:`diffjpeg.bitstream.huffman`,
with its three discrete quantities made continuous in the coefficient values.
For a coefficient of magnitude ``m``:

* "is nonzero" becomes ``nu = min(1, m)``;
* the size category (bit length of ``m``) becomes the mean of ``log2(1 + m)``
  and ``1 + log2(m)`` (``m`` below 1), exact at 0 and 1, within 0.35 bit
  at 2 to 6 and within 0.5 bit up to 2**10;
* the zero run before a value becomes its expectation under ``nu``:
  ``run[k+1] = (1 - nu[k]) (run[k] + 1)``.

A block then costs: the DC code length at the soft size of its DC difference
plus that size, plus for each AC value ``nu`` times (the AC code length at
(soft run, soft size), ZRLs included, plus the soft size), plus ``1 - nu[63]``
EOB codes. Code lengths come from the same Huffman tables the exact count uses
(Annex K, or for ``"optimized"`` the tables libjpeg would build for the
rounded coefficients, held constant) and are interpolated linearly between
neighbouring runs and sizes. MCU padding blocks cost their exact constant, and
byte stuffing adds 1/256 of the bytes (as for random bits) plus 4 bits of
final padding on average.

At integer coefficients every step is exact except the soft size, so the
estimate is close to the exact count by construction, not by fitting; there
are no fitted constants. How close, measured on scikit-image photos at
qualities 5 to 95: see the table in docs/guide/files.md, produced by ``benchmarks/rate.py``.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ..core.coefficients import Coefficients
from ..core.colorspace import TABLE_SLOTS
from ..core.geometry import mcu_counts
from ..core.scan import coding_order, last_real, zigzag_index
from .huffman import EOB, STANDARD_TABLES, ZRL, Huffman, check_huffman, scan_symbols, scan_tables

STUFFING = 1 + 1 / 256  # expected share of FF bytes in random data
PADDING_BITS = 4.0  # expected fill of the last byte


def soft_size(m: Tensor) -> Tensor:
    """Continuous size category of magnitudes ``m >= 0`` (0 at 0, 1 at 1).

    Example:
        >>> soft_size(torch.tensor([0.0, 1.0, 2.0, 3.0, 4.0]))
        tensor([0.0000, 1.0000, 1.7925, 2.2925, 2.6610])
    """
    above_one = torch.log2(m.clamp(min=1.0)) + 1.0
    lower = torch.where(m < 1.0, m, above_one)
    return 0.5 * (lower + torch.log2(1.0 + m))


def _code_lengths(table) -> Tensor:
    lengths, _ = table.code_lengths_and_codes()
    out = torch.as_tensor(lengths, dtype=torch.float64)
    missing = out == 0
    # a symbol the table lacks: as costly as its longest code and one more bit
    return torch.where(missing, out.max() + 1, out)


def _ac_cost_table(lengths: Tensor) -> Tensor:
    """``(63 runs, 11 sizes)`` bits of the codes for a value after ``run`` zeros,
    ZRLs included; size 0 (no such symbol) borrows size 1, for interpolation."""
    runs = torch.arange(63)
    sizes = torch.arange(11)
    symbol = ((runs % 16) << 4)[:, None] | sizes.clamp(min=1)[None, :]
    return (runs // 16)[:, None] * lengths[ZRL] + lengths[symbol]


def _interpolate(table: Tensor, index: Tensor) -> Tensor:
    """``table[index]`` along the last axis, linear between integers."""
    top = table.shape[-1] - 1
    index = index.clamp(0, top)
    low = index.detach().floor().clamp(max=top - 1).long() if top > 0 else index.detach().long()
    weight = index - low
    return table[..., low] * (1 - weight) + table[..., (low + 1).clamp(max=top)] * weight


def _interpolate2(table: Tensor, row: Tensor, col: Tensor) -> Tensor:
    rows = table.shape[0] - 1
    row = row.clamp(0, rows)
    low = row.detach().floor().clamp(max=rows - 1).long()
    weight = row - low
    upper = table[low + 1]
    lower = table[low]
    return _gather_rows(lower, col) * (1 - weight) + _gather_rows(upper, col) * weight


def _gather_rows(rows: Tensor, col: Tensor) -> Tensor:
    """Per-element rows ``(..., 11)``, interpolated at ``col``."""
    top = rows.shape[-1] - 1
    col = col.clamp(0, top)
    low = col.detach().floor().clamp(max=top - 1).long()
    weight = col - low
    pick = lambda i: rows.gather(-1, i.unsqueeze(-1)).squeeze(-1)  # noqa: E731
    return pick(low) * (1 - weight) + pick(low + 1) * weight


def _component_bits(blocks: Tensor, tables: dict, slot: int, sampling, mcus, dtype) -> Tensor:
    """Soft bits of one component of one image, ``blocks (rows, cols, 8, 8)``."""
    device = blocks.device
    dc_lengths = tables[(slot, True)].to(device, dtype)
    ac_lengths = tables[(slot, False)].to(device, dtype)
    flat = blocks.flatten(-2)[..., zigzag_index(device)].to(dtype)
    ordered, real = coding_order(flat, sampling, mcus)
    real = real.flatten()
    ordered = ordered.reshape(-1, 64)
    dc = ordered[last_real(real), 0]  # a padding block repeats the previous DC (difference 0) and has no AC
    diff = dc - torch.cat((dc.new_zeros(1), dc[:-1]))
    dc_size = soft_size(diff.abs())
    dc_bits = _interpolate(dc_lengths[:12], dc_size) + dc_size

    ac = ordered[real, 1:]
    magnitude = ac.abs()
    nu = magnitude.clamp(max=1.0)
    size = soft_size(magnitude).clamp(max=10.0)
    cost = _ac_cost_table(ac_lengths)
    run = torch.zeros_like(nu[:, 0])
    ac_bits = torch.zeros_like(run)
    for k in range(63):  # the expected run needs the previous position's
        ac_bits = ac_bits + nu[:, k] * (_interpolate2(cost, run, size[:, k]) + size[:, k])
        run = (1 - nu[:, k]) * (run + 1)
    eob_bits = (1 - nu[:, 62]) * ac_lengths[EOB]
    dummies = (~real).sum()
    return (dc_bits * real).sum() + ac_bits.sum() + eob_bits.sum() + dummies * ac_lengths[EOB]


def rate(c: Coefficients, huffman: Huffman = "standard") -> Tensor:
    """Differentiable estimate of :func:`diffjpeg.bits`: the bits of the entropy-coded scan.

    Smooth in the coefficients almost everywhere (see the module docstring for
    how it is built); gradients flow to ``c.y``, ``c.cb``, ``c.cr`` and, through
    :func:`diffjpeg.encode`, to the image, quality and tables.

    Args:
        c: :class:`Coefficients`, integer-valued or not (soft encoder).
        huffman: ``"standard"`` or ``"optimized"``, as in :func:`diffjpeg.bits`.

    Returns:
        Float tensor of shape ``c.batch_shape`` (dtype of the coefficients).

    Example:
        >>> import diffjpeg
        >>> x = torch.rand(2, 3, 32, 32, requires_grad=True)
        >>> r = rate(diffjpeg.encode(x, quality=50))
        >>> r.sum().backward(); r.shape, bool(x.grad.abs().sum() > 0)
        (torch.Size([2]), True)
    """
    if not isinstance(c, Coefficients):
        raise TypeError(f"c must be diffjpeg.Coefficients, got {type(c).__name__}")
    check_huffman(huffman)
    batch = c.batch_shape
    count = math.prod(batch)
    dtype = c.y.dtype if c.y.is_floating_point() else torch.float32
    components = [b.reshape(count, *b.shape[len(batch):]) for b in c.components]
    mcus = mcu_counts(c.size, c.sampling)
    standard = {(slot, dc): _code_lengths(STANDARD_TABLES[slot][0 if dc else 1]) for slot in (0, 1) for dc in (True, False)}
    symbols = scan_symbols(c) if huffman == "optimized" else [None] * count
    totals = []
    for image in range(count):
        if huffman == "standard":
            tables = standard
        else:  # libjpeg's tables for the rounded coefficients, held constant
            tables = {key: _code_lengths(table) for key, table in scan_tables(symbols[image], huffman).items()}
        bits = sum(
            _component_bits(blocks[image], tables, TABLE_SLOTS[c.color_space][ci], c.sampling[ci], mcus, dtype)
            for ci, blocks in enumerate(components)
        )
        totals.append(bits * STUFFING + PADDING_BITS)
    return torch.stack(totals).reshape(batch)


class Rate(nn.Module):
    """Module form of :func:`rate`.

    Example:
        >>> import diffjpeg
        >>> Rate("optimized")(diffjpeg.encode(torch.rand(3, 16, 16))).shape
        torch.Size([])
    """

    def __init__(self, huffman: Huffman = "standard"):
        super().__init__()
        check_huffman(huffman)
        self.huffman = huffman

    def forward(self, c: Coefficients) -> Tensor:
        return rate(c, self.huffman)
