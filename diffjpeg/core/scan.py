"""Scan order: coefficients in zigzag order, blocks in MCU order, and the DC
of MCU padding blocks (libjpeg's jccoefct.c, jctrans.c, jchuff.c, jcphuff.c).

The one home of the order in which a scan codes blocks and coefficients, used
by the entropy coder (:mod:`diffjpeg.bitstream.huffman`), the rate
(:mod:`diffjpeg.bitstream.rate_model`) and the file writers (:mod:`diffjpeg.bitstream.sequential`,
:mod:`diffjpeg.bitstream.progressive`). Facts from the JPEG standard and libjpeg-turbo:

* Within a block, coefficients are coded in zigzag order (T.81 Figure A.6);
  tables are stored in it too.
* A one-component scan codes that component's blocks in raster order, with
  no padding. An interleaved scan codes whole MCUs
  (:func:`diffjpeg.core.geometry.mcu_counts`): per MCU, each component's ``v x h``
  blocks in raster order.
* Blocks past a component's real block count (MCU padding) are "dummy"
  blocks: AC zero, DC equal to the previous block's in coding order, so each
  codes as a zero DC difference and an EOB.
"""
from __future__ import annotations

import torch
from torch import Tensor

from .precision import cached_constant

# natural (row-major) index of the k-th coefficient in zigzag order
ZIGZAG = (
    0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5,
    12, 19, 26, 33, 40, 48, 41, 34, 27, 20, 13, 6, 7, 14, 21, 28,
    35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51,
    58, 59, 52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63,
)  # fmt: skip


@cached_constant
def zigzag_index(device: torch.device) -> Tensor:
    """:data:`ZIGZAG` as a tensor on ``device``: ``blocks.flatten(-2)[..., zigzag_index(d)]``
    (shared by every call: :func:`diffjpeg.core.precision.cached_constant`)."""
    return torch.tensor(ZIGZAG, device=device)


def coding_order(blocks: Tensor, factors: tuple[int, int], mcus: tuple[int, int] | None) -> tuple[Tensor, Tensor]:
    """A component's blocks ``(rows, cols, ...)`` in coding order, with the dummy mask.

    Args:
        blocks: ``(rows, cols, ...)``, e.g. ``(rows, cols, 64)`` zigzag coefficients.
        factors: the component's ``(h, v)`` sampling factors.
        mcus: ``(MCU rows, MCU columns)`` of an interleaved scan, ``None`` for
            a one-component scan.

    Returns:
        ``(ordered (n_mcu, per_mcu, ...), real (n_mcu, per_mcu))``; padding
        blocks are zeros in ``ordered`` and ``False`` in ``real``.

    Example:
        >>> ordered, real = coding_order(torch.arange(6).reshape(2, 3), (2, 2), (1, 2))
        >>> ordered.tolist(), real.tolist()
        ([[0, 1, 3, 4], [2, 0, 5, 0]], [[True, True, True, True], [True, False, True, False]])
    """
    rows, cols = blocks.shape[:2]
    if mcus is None:
        flat = blocks.reshape(rows * cols, 1, *blocks.shape[2:])
        return flat, torch.ones(rows * cols, 1, dtype=torch.bool, device=blocks.device)
    h, v = factors
    padded_rows, padded_cols = mcus[0] * v, mcus[1] * h
    padded = blocks.new_zeros(padded_rows, padded_cols, *blocks.shape[2:])
    padded[:rows, :cols] = blocks
    real = torch.zeros(padded_rows, padded_cols, dtype=torch.bool, device=blocks.device)
    real[:rows, :cols] = True

    def order(t: Tensor) -> Tensor:
        t = t.reshape(mcus[0], v, mcus[1], h, *t.shape[2:]).transpose(1, 2)
        return t.reshape(mcus[0] * mcus[1], v * h, *t.shape[4:])

    return order(padded), order(real)


def last_real(real: Tensor) -> Tensor:
    """For each block of a flat coding order, the index of the last real block
    up to it: a dummy block's DC is ``dc[last_real(real)]``.

    Example:
        >>> last_real(torch.tensor([True, False, False, True, False])).tolist()
        [0, 0, 0, 3, 3]
    """
    return torch.where(real, torch.arange(real.numel(), device=real.device), 0).cummax(0).values


def dc_in_coding_order(blocks: Tensor, factors: tuple[int, int], mcus: tuple[int, int] | None) -> Tensor:
    """The DC of each block in coding order ``(n_mcu, per_mcu)``, dummy blocks
    repeating the previous DC, from zigzag blocks ``(rows, cols, 64)``."""
    ordered, real = coding_order(blocks[..., 0], factors, mcus)
    return ordered.flatten()[last_real(real.flatten())].reshape(ordered.shape)
