"""Level shift and 8x8 DCT (libjpeg's jfdctint.c) and its inverse (jidctint.c).

Both directions work in the orthonormal scale: ``fdct`` returns the JPEG
standard's F(u, v) (libjpeg's ISLOW output divided by 8) and ``idct`` takes it.

Facts from libjpeg-turbo's ISLOW ("integer, slow") transforms that the exact
forms rely on:

* Rows then columns (forward), columns then rows (inverse), each a butterfly
  (Loeffler-Ligtenberg-Moschytz) with 13-bit constants ``FIX_0_298631336``
  ... ``FIX_3_072711026``; ``CONST_BITS = 13``, ``PASS1_BITS = 2``;
  ``DESCALE(x, n)`` adds ``2**(n-1)`` and shifts right arithmetically.
* Before its final ``DESCALE`` every output of a pass is an integer linear
  form of that pass's inputs, so a pass is ``floor((A x + 2**(n-1)) / 2**n)``
  with an integer matrix ``A`` read off the butterfly (:func:`_butterfly`).
  The forward shifts are 11 then 15; the inverse shifts are 11 then 18 (the
  final ``+3`` removes the factor 8). The shortcuts for all-zero AC columns
  and rows give the same values as the full formula.
* The range limit: the C inverse (jidctint.c) indexes a table with
  ``x & 1023``, which wraps values outside [-512, 511]; the x86-64 and Arm SIMD
  inverses that Pillow's and OpenCV's libjpeg-turbo builds run
  (jidctint-avx2.asm) instead pack pass-1 results to int16 with saturation
  (``packssdw``) and the output to int8 with saturation (``packsswb``) before
  adding 128.  Checked against Pillow with crafted coefficients: it saturates.
  We follow the SIMD builds.
"""
from __future__ import annotations

import math
from functools import lru_cache

import torch
from torch import Tensor, nn

from .rounding import clamp_ste, exact_value

CONST_BITS = 13
PASS1_BITS = 2

# 13-bit constants of jfdctint.c / jidctint.c: round(c * 2**13)
_FIX = {
    "0_298631336": 2446,
    "0_390180644": 3196,
    "0_541196100": 4433,
    "0_765366865": 6270,
    "0_899976223": 7373,
    "1_175875602": 9633,
    "1_501321110": 12299,
    "1_847759065": 15137,
    "1_961570560": 16069,
    "2_053119869": 16819,
    "2_562915447": 20995,
    "3_072711026": 25172,
}


def _odd_part(t0, t1, t2, t3, f):
    """Shared odd-part rotation of both butterflies; returns the four products."""
    z1, z2, z3, z4 = t0 + t3, t1 + t2, t0 + t2, t1 + t3
    z5 = (z3 + z4) * f["1_175875602"]
    t0 = t0 * f["0_298631336"]
    t1 = t1 * f["2_053119869"]
    t2 = t2 * f["3_072711026"]
    t3 = t3 * f["1_501321110"]
    z1 = z1 * -f["0_899976223"]
    z2 = z2 * -f["2_562915447"]
    z3 = z3 * -f["1_961570560"] + z5
    z4 = z4 * -f["0_390180644"] + z5
    return t0 + z1 + z3, t1 + z2 + z4, t2 + z2 + z3, t3 + z1 + z4


def _butterfly(inverse: bool) -> list[list[int]]:
    """Integer matrix of one ISLOW pass before its DESCALE, in units of 2**-13."""
    one = 1 << CONST_BITS
    rows = []
    for j in range(8):
        x = [1 if i == j else 0 for i in range(8)]  # unit input: column j of the matrix
        out = [0] * 8
        if not inverse:
            t0, t7 = x[0] + x[7], x[0] - x[7]
            t1, t6 = x[1] + x[6], x[1] - x[6]
            t2, t5 = x[2] + x[5], x[2] - x[5]
            t3, t4 = x[3] + x[4], x[3] - x[4]
            t10, t13, t11, t12 = t0 + t3, t0 - t3, t1 + t2, t1 - t2
            out[0] = (t10 + t11) * one
            out[4] = (t10 - t11) * one
            z1 = (t12 + t13) * _FIX["0_541196100"]
            out[2] = z1 + t13 * _FIX["0_765366865"]
            out[6] = z1 - t12 * _FIX["1_847759065"]
            out[7], out[5], out[3], out[1] = _odd_part(t4, t5, t6, t7, _FIX)
        else:
            z1 = (x[2] + x[6]) * _FIX["0_541196100"]
            t2 = z1 - x[6] * _FIX["1_847759065"]
            t3 = z1 + x[2] * _FIX["0_765366865"]
            t0, t1 = (x[0] + x[4]) * one, (x[0] - x[4]) * one
            t10, t13, t11, t12 = t0 + t3, t0 - t3, t1 + t2, t1 - t2
            o0, o1, o2, o3 = _odd_part(x[7], x[5], x[3], x[1], _FIX)
            out = [t10 + o3, t11 + o2, t12 + o1, t13 + o0, t13 - o0, t12 - o1, t11 - o2, t10 - o3]
        rows.append(out)
    return [list(r) for r in zip(*rows)]  # rows: outputs, columns: inputs


def _matrices(kind: str, dtype: torch.dtype, device: torch.device) -> Tensor:
    """A transform matrix, cached per kind, dtype and device (built afresh under torch.compile)."""
    if torch.compiler.is_compiling():
        return _build_matrix(kind, dtype, device)
    return _cached_matrix(kind, dtype, device)


def _build_matrix(kind: str, dtype: torch.dtype, device: torch.device) -> Tensor:
    if kind in ("orthonormal_2d", "orthonormal_2d_inverse"):
        # vec(L X R^T) = (L kron R) vec(X): one (N, 64) x (64, 64) GEMM instead
        # of two batched 8x8 products, about 3x faster on the CPU
        c = _build_matrix("orthonormal", torch.float64, torch.device("cpu"))
        c = c.T if kind.endswith("inverse") else c
        return torch.kron(c, c).T.contiguous().to(dtype=dtype, device=device)
    if kind == "orthonormal":
        k = torch.arange(8, dtype=torch.float64)
        c = torch.cos((2 * k[None, :] + 1) * k[:, None] * math.pi / 16) * math.sqrt(2 / 8)
        c[0] /= math.sqrt(2)
        return c.to(dtype=dtype, device=device)
    return torch.tensor(_butterfly(kind == "islow_inverse"), dtype=dtype, device=device)


_cached_matrix = lru_cache(maxsize=None)(_build_matrix)


def dct_matrix(dtype=torch.float32, device=None) -> Tensor:
    """The orthonormal 8-point DCT-II matrix ``C`` (``F = C x C^T``), cached per device and dtype."""
    return _matrices("orthonormal", dtype, torch.device(device or "cpu"))


def _descale(x: Tensor, bits: int) -> Tensor:
    """libjpeg's DESCALE on integer-valued float64 (in place: x is a temporary)."""
    return x.add_(1 << (bits - 1)).mul_(2.0**-bits).floor_()


def _rows_descaled(x: Tensor, matrix: Tensor, bits: int) -> Tensor:
    """``DESCALE(x @ matrix.T, bits)`` over the last axis, the rounding
    constant added by the product itself (one pass fewer)."""
    half = torch.tensor(float(1 << (bits - 1)), dtype=x.dtype, device=x.device)
    return torch.addmm(half, x.reshape(-1, 8), matrix.T).mul_(2.0**-bits).floor_().view(x.shape)


def _separable(x: Tensor, kind: str) -> Tensor:
    """The 2-D orthonormal (inverse) DCT of ``(..., 8, 8)`` blocks as one GEMM."""
    flat = x.reshape(-1, 64)
    return (flat @ _matrices(kind, x.dtype, x.device)).reshape(x.shape)


def fdct_islow(samples: Tensor) -> Tensor:
    """libjpeg's ``jpeg_fdct_islow`` on level-shifted integer samples.

    Args:
        samples: ``(..., 8, 8)`` integer-valued float64, ``sample - 128``.

    Returns:
        ``(..., 8, 8)`` integer-valued float64, 8 times the DCT, as libjpeg.
    """
    a = _matrices("islow_forward", torch.float64, samples.device)
    rows = _rows_descaled(samples, a, CONST_BITS - PASS1_BITS)
    return _descale(torch.einsum("ij,...jk->...ik", a, rows), CONST_BITS + PASS1_BITS)


def idct_islow(coefficients: Tensor) -> Tensor:
    """libjpeg's ``jpeg_idct_islow`` on dequantized integer coefficients.

    Args:
        coefficients: ``(..., 8, 8)`` integer-valued float64, quantized value
            times table entry.

    Returns:
        ``(..., 8, 8)`` samples in [0, 255] (level shift and range limit applied).
        Coefficients whose dequantized values overflow int16 (only hostile
        files have them) may differ from libjpeg-turbo's SIMD code.
    """
    m = _matrices("islow_inverse", torch.float64, coefficients.device)
    columns = _descale(torch.einsum("ij,...jk->...ik", m, coefficients), CONST_BITS - PASS1_BITS).clamp_(-32768, 32767)  # packssdw
    out = _rows_descaled(columns, m, CONST_BITS + PASS1_BITS + 3)
    return out.clamp_(-128, 127).add_(128)  # packsswb, then + CENTERJSAMPLE


def fdct(blocks: Tensor, mode: str = "float") -> Tensor:
    """Level shift (-128) and forward 8x8 DCT of sample blocks.

    Args:
        blocks: ``(..., 8, 8)`` float samples in [0, 255] (integers in exact mode).
        mode: ``"exact"`` gives libjpeg's ISLOW result / 8 (multiples of 1/8);
            ``"float"`` and ``"soft"`` the real orthonormal DCT. Gradient: the
            real DCT's in every mode.

    Returns:
        ``(..., 8, 8)`` DCT coefficients F(u, v) (row: vertical frequency),
        dtype of ``blocks``.

    Example:
        >>> fdct(torch.full((8, 8), 255.0), "exact")[0, 0].item()
        1016.0
    """
    if mode != "exact":
        return _separable(blocks - 128.0, "orthonormal_2d")
    value = fdct_islow(blocks.detach().to(torch.float64) - 128.0).mul_(0.125)
    return exact_value(value, blocks, lambda: _separable(blocks - 128.0, "orthonormal_2d"))


def idct(coefficients: Tensor, mode: str = "float") -> Tensor:
    """Inverse 8x8 DCT, level shift (+128) and clamp to [0, 255].

    Args:
        coefficients: ``(..., 8, 8)`` dequantized coefficients F(u, v)
            (integers in exact mode).
        mode: ``"exact"`` (libjpeg-turbo's ISLOW with its SIMD range limit),
            ``"float"`` (real IDCT, rounded) or ``"soft"`` (real IDCT). The clamp
            is straight-through; the gradient is the real IDCT's.

    Returns:
        ``(..., 8, 8)`` samples in [0, 255], dtype of ``coefficients``.

    Example:
        >>> idct(torch.zeros(8, 8), "exact")[0, 0].item()
        128.0
    """
    if mode != "exact":
        real = _separable(coefficients, "orthonormal_2d_inverse") + 128.0
        return clamp_ste(real, 0.0, 255.0, rounded=mode == "float")
    value = idct_islow(coefficients.detach().to(torch.float64))
    return exact_value(value, coefficients, lambda: _separable(coefficients, "orthonormal_2d_inverse") + 128.0)


class FDCT(nn.Module):
    """Module form of :func:`fdct`.

    Example:
        >>> FDCT("exact")(torch.full((1, 8, 8), 128.0)).abs().max().item()
        0.0
    """

    def __init__(self, mode: str = "float"):
        super().__init__()
        self.mode = mode

    def forward(self, blocks: Tensor) -> Tensor:
        return fdct(blocks, self.mode)


class IDCT(nn.Module):
    """Module form of :func:`idct`.

    Example:
        >>> IDCT("exact")(torch.zeros(1, 8, 8)).unique().tolist()
        [128.0]
    """

    def __init__(self, mode: str = "float"):
        super().__init__()
        self.mode = mode

    def forward(self, coefficients: Tensor) -> Tensor:
        return idct(coefficients, self.mode)
