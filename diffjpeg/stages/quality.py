"""Quantization tables and quality scaling (libjpeg's jcparam.c).

Facts from jcparam.c that the exact codec relies on:

* ``jpeg_quality_scaling``: quality <= 0 acts as 1, > 100 as 100; the scale
  factor in percent is ``5000 / quality`` below 50 and ``200 - 2 * quality`` from 50.
* ``jpeg_add_quant_table``: ``(base * scale + 50) / 100`` in integer division,
  then at least 1 and, with ``force_baseline`` (as ``jpeg_set_quality`` and Pillow
  use), at most 255.
* The base tables are those of the JPEG standard's Annex K, in natural
  (row-major) order here.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from .rounding import clamp_ste, floor_ste, straight_through

# JPEG standard, Annex K.1 (luminance) and K.2 (chrominance), natural order.
DEFAULT_QUALITY = 75  # libjpeg's: jpeg_set_defaults() calls jpeg_set_quality(cinfo, 75, TRUE) (jcparam.c)
STANDARD_LUMA_TABLE = (
    (16, 11, 10, 16, 24, 40, 51, 61),
    (12, 12, 14, 19, 26, 58, 60, 55),
    (14, 13, 16, 24, 40, 57, 69, 56),
    (14, 17, 22, 29, 51, 87, 80, 62),
    (18, 22, 37, 56, 68, 109, 103, 77),
    (24, 35, 55, 64, 81, 104, 113, 92),
    (49, 64, 78, 87, 103, 121, 120, 101),
    (72, 92, 95, 98, 112, 100, 103, 99),
)
STANDARD_CHROMA_TABLE = (
    (17, 18, 24, 47, 99, 99, 99, 99),
    (18, 21, 26, 66, 99, 99, 99, 99),
    (24, 26, 56, 99, 99, 99, 99, 99),
    (47, 66, 99, 99, 99, 99, 99, 99),
    (99, 99, 99, 99, 99, 99, 99, 99),
    (99, 99, 99, 99, 99, 99, 99, 99),
    (99, 99, 99, 99, 99, 99, 99, 99),
    (99, 99, 99, 99, 99, 99, 99, 99),
)


def standard_tables(dtype: torch.dtype = torch.float32, device=None) -> Tensor:
    """The Annex K base tables, shape ``(2, 8, 8)`` (luma, chroma), natural order.

    Example:
        >>> standard_tables()[0, 0, 0].item()
        16.0
    """
    return torch.tensor((STANDARD_LUMA_TABLE, STANDARD_CHROMA_TABLE), dtype=dtype, device=device)


def quality_to_scale(quality: Tensor, exact: bool = False) -> Tensor:
    """libjpeg's ``jpeg_quality_scaling``: quality in [0, 100] to a percentage.

    Args:
        quality: float tensor of any shape; fractional values allowed.
        exact: round quality to the nearest integer forward and use libjpeg's
            integer division ``5000 / q`` (straight-through gradient), as
            ``jpeg_set_quality`` takes an int.

    Returns:
        The scale factor in percent, same shape. Differentiable in ``quality``.

    Example:
        >>> quality_to_scale(torch.tensor([10.0, 50.0, 90.0]))
        tensor([500., 100.,  20.])
    """
    q = clamp_ste(quality, 1.0, 100.0)  # quality 0 behaves as 1, as in libjpeg
    if exact:
        q = straight_through(q, torch.floor(q + 0.5))
    low = 5000.0 / q
    if exact:
        low = floor_ste(low)  # C integer division
    return torch.where(q < 50, low, 200.0 - 2.0 * q)


def scale_tables(tables: Tensor, scale: Tensor, exact: bool = True) -> Tensor:
    """libjpeg's ``jpeg_add_quant_table`` with ``force_baseline``.

    Args:
        tables: base tables ``(..., 2, 8, 8)``, float.
        scale: percentages broadcastable against ``tables[..., 0, 0, 0]``.
        exact: integer forward ``floor((base * scale + 50) / 100)``; otherwise the
            continuous ``base * scale / 100`` (the straight-through surrogate of
            that floor). Either way the result is clamped to [1, 255]
            (straight-through).

    Returns:
        Quantization tables of the shape of ``tables``, in [1, 255].
    """
    s = scale.reshape(scale.shape + (1, 1, 1))
    if exact:
        # (base*scale + 50) // 100 in integers: round base*scale first, as the C
        # code multiplies two ints; the surrogate keeps base*scale's gradient.
        product = straight_through(tables * s, torch.round(tables * s))
        scaled = floor_ste((product + 50.0) / 100.0)
    else:
        scaled = tables * s / 100.0
    return clamp_ste(scaled, 1.0, 255.0)


def quality_tables(quality: Tensor, base: Tensor | None = None, exact: bool = True) -> Tensor:
    """Quantization tables for a quality, as ``jpeg_set_quality`` makes them.

    Args:
        quality: ``(B,)`` or scalar float tensor in [0, 100].
        base: base tables ``(2, 8, 8)`` or ``(B, 2, 8, 8)``; Annex K if ``None``.
        exact: integer libjpeg tables forward (quality rounded to an integer);
            otherwise continuous tables. Gradients flow to quality and base.

    Returns:
        ``quality.shape + (2, 8, 8)`` tables in [1, 255].

    Example:
        >>> quality_tables(torch.tensor(50.0))[0, 0, :4]
        tensor([16., 11., 10., 16.])
    """
    if base is None:
        base = standard_tables(quality.dtype, quality.device)
    return scale_tables(base, quality_to_scale(quality, exact), exact)


class QualityTables(nn.Module):
    """Module form of :func:`quality_tables`.

    Example:
        >>> QualityTables()(torch.tensor([75.0])).shape
        torch.Size([1, 2, 8, 8])
    """

    def __init__(self, exact: bool = True):
        super().__init__()
        self.exact = exact

    def forward(self, quality: Tensor, base: Tensor | None = None) -> Tensor:
        return quality_tables(quality, base, self.exact)
