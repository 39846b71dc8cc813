"""Quantization (libjpeg's jcdctmgr.c) and dequantization (the IDCT's multiplier table).

Facts from libjpeg-turbo that the exact form relies on:

* The ISLOW forward DCT output is 8 times F(u, v), so libjpeg divides by
  ``8 * Q``.
* It divides by multiplying with a reciprocal (``compute_reciprocal``): for
  divisor ``d`` with ``b = floor(log2 d)`` and ``r = 16 + b`` (16 = bits of the
  SIMD build's ``DCTELEM``), ``q = 2**r // d``, ``c = d // 2``; if ``d`` is a power
  of two, ``q //= 2`` and ``r -= 1``; else if ``2**r % d <= d // 2``, ``c += 1``;
  else ``q += 1``.  Then ``|x| -> ((|x| + c) * q) >> r`` with the sign restored.
  This is not always ``round(x / d)``.
* Decoding multiplies each quantized value by its table entry.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from .rounding import (
    DEFAULT_FOURIER_ORDER,
    DEFAULT_TEMPERATURE,
    needs_grad,
    round_with_surrogate,
    soft_round,
)

_DCTELEM_BITS = 16


def reciprocal_divide(values: Tensor, divisors: Tensor) -> Tensor:
    """libjpeg-turbo's ``quantize``: divide integers by integer divisors through reciprocals.

    Args:
        values: integer-valued float64 tensor (ISLOW DCT outputs).
        divisors: integer-valued float64 tensor broadcastable to ``values``, >= 2.

    Returns:
        Integer-valued float64 quotients, same shape as the broadcast.
    """
    # The constants per divisor in float64, where every value here is an exact
    # integer (no integer division: inductor's CPU kernels raised
    # ZeroDivisionError on it under torch.compile).
    d = divisors.to(torch.float64)
    b = torch.floor(torch.log2(d))
    b = b - (torch.pow(2.0, b) > d).to(d.dtype)  # guard log2's rounding near powers of two
    b = b + (torch.pow(2.0, b + 1) <= d).to(d.dtype)
    r = _DCTELEM_BITS + b
    two_r = torch.pow(2.0, r)
    q = torch.floor(two_r / d)  # quotients of integers below 2**28: floor is exact
    rem = two_r - q * d
    c = torch.floor(d / 2)
    power_of_two = rem == 0
    q = torch.where(power_of_two, torch.floor(q / 2), torch.where(rem <= c, q, q + 1))
    r = torch.where(power_of_two, r - 1, r)
    c = torch.where(~power_of_two & (rem <= c), c + 1, c)
    # per element, exact: ((|x| + c) * q) >> r is floor(|x| k + c k) with
    # k = q 2**-r; both products and the sum are (|x| + c) q < 2**53 scaled by
    # a power of two, so float64 holds them exactly (|x| < 2**30)
    x = values.to(torch.float64)
    k = q * torch.pow(2.0, -r)
    magnitude = torch.addcmul((c * k).expand_as(x), x.abs(), k).floor_()
    return magnitude.copysign_(x).add_(0.0)  # no -0.0


def quantize(
    coefficients: Tensor,
    table: Tensor,
    mode: str = "float",
    rounding: str = "polynomial",
    fourier_order: int = DEFAULT_FOURIER_ORDER,
    temperature: float = DEFAULT_TEMPERATURE,
) -> Tensor:
    """Quantize DCT coefficients: ``round(F / Q)``.

    Args:
        coefficients: ``(..., 8, 8)`` DCT coefficients F(u, v) (multiples of
            1/8 in exact mode, as :func:`diffjpeg.dct.fdct` gives).
        table: ``(..., 8, 8)`` quantization table broadcastable to
            ``coefficients``, entries in [1, 255] (integers in exact mode).
        mode: ``"exact"`` (libjpeg's reciprocal division), ``"float"``
            (``round``) or ``"soft"`` (the surrogate itself).
        rounding: the surrogate whose derivative is the backward pass in every
            mode (see :mod:`diffjpeg.rounding`).

    Returns:
        ``(..., 8, 8)`` quantized coefficients (integer-valued except in soft
        mode), dtype of ``coefficients``. Differentiable in both inputs.

    Example:
        >>> quantize(torch.full((8, 8), 20.0), torch.full((8, 8), 8.0), "exact")[0, 0].item()
        3.0
    """
    if mode == "soft":
        return soft_round(coefficients / table, rounding, fourier_order, temperature)
    value = None
    if mode == "exact":
        dct_out = torch.round(coefficients.detach().to(torch.float64) * 8.0)
        divisors = torch.round(table.detach().to(torch.float64)) * 8.0
        value = reciprocal_divide(dct_out, divisors).to(coefficients.dtype)
        if not needs_grad(coefficients, table):
            return value
    return round_with_surrogate(coefficients / table, rounding, value, fourier_order, temperature)


def dequantize(quantized: Tensor, table: Tensor) -> Tensor:
    """Multiply quantized coefficients by their table entries (``q * Q``).

    Example:
        >>> dequantize(torch.ones(8, 8), torch.full((8, 8), 3.0))[0, 0].item()
        3.0
    """
    return quantized * table


class Quantize(nn.Module):
    """Module form of :func:`quantize`.

    Example:
        >>> Quantize("float", "linear")(torch.full((8, 8), 20.0), torch.full((8, 8), 8.0))[0, 0].item()
        2.0
    """

    def __init__(
        self,
        mode: str = "float",
        rounding: str = "polynomial",
        fourier_order: int = DEFAULT_FOURIER_ORDER,
        temperature: float = DEFAULT_TEMPERATURE,
    ):
        super().__init__()
        self.mode, self.rounding = mode, rounding
        self.fourier_order, self.temperature = fourier_order, temperature

    def forward(self, coefficients: Tensor, table: Tensor) -> Tensor:
        return quantize(coefficients, table, self.mode, self.rounding, self.fourier_order, self.temperature)


class Dequantize(nn.Module):
    """Module form of :func:`dequantize`.

    Example:
        >>> Dequantize()(torch.ones(8, 8), torch.full((8, 8), 3.0)).sum().item()
        192.0
    """

    def forward(self, quantized: Tensor, table: Tensor) -> Tensor:
        return dequantize(quantized, table)
