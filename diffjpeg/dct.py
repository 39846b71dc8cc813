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

from .check import check_mode
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


def islow_matrix(inverse: bool) -> tuple[tuple[int, ...], ...]:
    """One ISLOW pass as an integer matrix (rows: outputs), in units of 2**-13."""
    return tuple(tuple(row) for row in _butterfly(inverse))


def _orthonormal() -> list[list[float]]:
    """The orthonormal 8-point DCT-II matrix ``C`` in Python floats (doubles)."""
    return [
        [math.sqrt((1 if u == 0 else 2) / 8) * math.cos((2 * x + 1) * u * math.pi / 16) for x in range(8)]
        for u in range(8)
    ]


def _matrices(kind: str, dtype: torch.dtype, device: torch.device) -> Tensor:
    """A transform matrix, cached per kind, dtype and device (built afresh under torch.compile)."""
    if torch.compiler.is_compiling():
        return _build_matrix(kind, dtype, device)
    return _cached_matrix(kind, dtype, device)


def _build_matrix(kind: str, dtype: torch.dtype, device: torch.device) -> Tensor:
    # built in Python doubles and rounded once to dtype: no float64 tensor
    # for float32 callers
    if kind in ("orthonormal_2d", "orthonormal_2d_inverse"):
        # vec(L X R^T) = (L kron R) vec(X): one (N, 64) x (64, 64) GEMM instead
        # of two batched 8x8 products, about 3x faster on the CPU
        c = _orthonormal()
        if kind.endswith("inverse"):
            c = [list(col) for col in zip(*c)]
        kron = [[c[i // 8][j // 8] * c[i % 8][j % 8] for j in range(64)] for i in range(64)]
        return torch.tensor(kron, dtype=dtype, device=device).T.contiguous()
    if kind == "orthonormal":
        return torch.tensor(_orthonormal(), dtype=dtype, device=device)
    return torch.tensor(islow_matrix(kind == "islow_inverse"), dtype=dtype, device=device)


_cached_matrix = lru_cache(maxsize=None)(_build_matrix)


def dct_matrix(dtype=torch.float32, device=None) -> Tensor:
    """The orthonormal 8-point DCT-II matrix ``C`` (``F = C x C^T``), cached per device and dtype."""
    return _matrices("orthonormal", dtype, torch.device(device or "cpu"))


def _separable(x: Tensor, kind: str) -> Tensor:
    """The 2-D orthonormal (inverse) DCT of ``(..., 8, 8)`` blocks as one GEMM."""
    flat = x.reshape(-1, 64)
    return (flat @ _matrices(kind, x.dtype, x.device)).reshape(x.shape)


def _islow_pass(x: Tensor, matrix: Tensor, bits: int, along_columns: bool) -> Tensor:
    """``DESCALE(matrix @ v, bits)`` for every row (or column) ``v`` of integer
    ``(..., 8, 8)`` blocks: eight elementwise multiply-adds in ``x``'s dtype
    (exact integers; no GEMM, whose precision a backend may lower)."""
    acc = torch.full_like(x, 1 << (bits - 1))
    for j in range(8):
        if along_columns:  # out[k, i] += M[k, j] x[j, i]
            acc.addcmul_(matrix[:, j : j + 1], x[..., j : j + 1, :])
        else:  # out[i, k] += x[i, j] M[k, j]
            acc.addcmul_(x[..., j : j + 1], matrix[:, j])
    return acc >> bits


def fits_int16(values: Tensor) -> bool:
    """Whether every value lies within int16, where :func:`idct_islow` runs in
    int32; always ``False`` under ``torch.compile`` (it would read the values
    back), which then takes the int64 route."""
    return not torch.compiler.is_compiling() and (values.numel() == 0 or bool(values.abs().max() <= 32767))


def dequantized_integers(values: Tensor) -> Tensor:
    """Dequantized coefficients (floats holding integers) as the integer
    tensor :func:`idct_islow` takes: rounded half to even, int32 when every
    value fits int16 (every file an 8-bit encoder writes), else int64
    saturated at 2**35. Under ``torch.compile`` always int64 (the choice
    would read the values back).

    Example:
        >>> dequantized_integers(torch.tensor([2.5, -40000.0]))
        tensor([     2, -40000])
    """
    v = torch.round(values)
    if fits_int16(v):
        return v.to(torch.int32)
    return v.clamp_(-(2.0**35), 2.0**35).to(torch.int64)


def fdct_islow(samples: Tensor) -> Tensor:
    """libjpeg's ``jpeg_fdct_islow`` on level-shifted integer samples.

    Args:
        samples: ``(..., 8, 8)`` int32, ``sample - 128`` in [-128, 127].

    Returns:
        ``(..., 8, 8)`` int32, 8 times the DCT, as libjpeg.

    Every sum fits int32: the rows of the matrix have absolute sums of at most
    65536, so the row pass stays below ``128 * 65536 = 2**23``, its DESCALE by
    11 below 4097, and the column pass below ``4097 * 65536 < 2**29``.

    Example:
        >>> fdct_islow(torch.full((8, 8), 127, dtype=torch.int32))[0, 0].item()
        8128
    """
    a = _matrices("islow_forward", torch.int32, samples.device)
    rows = _islow_pass(samples.to(torch.int32), a, CONST_BITS - PASS1_BITS, along_columns=False)
    return _islow_pass(rows, a, CONST_BITS + PASS1_BITS, along_columns=True)


def idct_islow(coefficients: Tensor) -> Tensor:
    """libjpeg's ``jpeg_idct_islow`` on dequantized integer coefficients.

    Args:
        coefficients: ``(..., 8, 8)`` int32 (values within int16, which is
            every file an 8-bit encoder writes) or int64 (anything up to
            2**35), quantized value times table entry.

    Returns:
        ``(..., 8, 8)`` int32 samples in [0, 255] (level shift and range limit
        applied). Crafted coefficients may differ from libjpeg-turbo's SIMD
        code, which also wraps some 16-bit intermediate sums (a DC-only block
        with a dequantized DC of 10000; entries (0, 0) and (4, 0) both 20000):
        values no 8-bit encoder writes (tests/stages/test_dct.py keeps the
        known cases as an expected failure).

    The rows of the matrix have absolute sums of at most 61214: the column
    pass on int16 values stays below ``61214 * 32767 + 2**10 < 2**31``, and
    so does the row pass on its saturated int16 results.

    Example:
        >>> idct_islow(torch.zeros(8, 8, dtype=torch.int32)).unique().tolist()
        [128]
    """
    m = _matrices("islow_inverse", coefficients.dtype, coefficients.device)
    columns = _islow_pass(coefficients, m, CONST_BITS - PASS1_BITS, along_columns=True)
    columns = columns.clamp_(-32768, 32767).to(torch.int32)  # packssdw
    m = _matrices("islow_inverse", torch.int32, coefficients.device)
    out = _islow_pass(columns, m, CONST_BITS + PASS1_BITS + 3, along_columns=False)
    return out.clamp_(-128, 127).add_(128)  # packsswb, then + CENTERJSAMPLE


def fdct(blocks: Tensor, mode: str = "float") -> Tensor:
    """Level shift (-128) and forward 8x8 DCT of sample blocks.

    Args:
        blocks: ``(..., 8, 8)`` float samples in [0, 255] (exact mode rounds
            them to integers and clamps them to that range, as 8-bit samples).
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
    check_mode(mode)
    if mode != "exact":
        return _separable(blocks - 128.0, "orthonormal_2d")
    samples = torch.round(blocks.detach()).clamp_(0, 255) if blocks.is_floating_point() else blocks
    value = fdct_islow(samples.to(torch.int32) - 128).to(blocks.dtype).mul_(0.125)
    return exact_value(value, blocks, lambda: _separable(blocks - 128.0, "orthonormal_2d"))


def idct(coefficients: Tensor, mode: str = "float") -> Tensor:
    """Inverse 8x8 DCT, level shift (+128) and clamp to [0, 255].

    Args:
        coefficients: ``(..., 8, 8)`` dequantized coefficients F(u, v)
            (rounded to integers in exact mode, see :func:`dequantized_integers`).
        mode: ``"exact"`` (libjpeg-turbo's ISLOW with its SIMD range limit),
            ``"float"`` (real IDCT, rounded) or ``"soft"`` (real IDCT). The clamp
            is straight-through; the gradient is the real IDCT's.

    Returns:
        ``(..., 8, 8)`` samples in [0, 255], dtype of ``coefficients``.

    Example:
        >>> idct(torch.zeros(8, 8), "exact")[0, 0].item()
        128.0
    """
    check_mode(mode)
    if mode != "exact":
        real = _separable(coefficients, "orthonormal_2d_inverse") + 128.0
        return clamp_ste(real, 0.0, 255.0, rounded=mode == "float")
    value = idct_islow(dequantized_integers(coefficients.detach()))
    return exact_value(value, coefficients, lambda: _separable(coefficients, "orthonormal_2d_inverse") + 128.0)


class FDCT(nn.Module):
    """Module form of :func:`fdct`.

    Example:
        >>> FDCT("exact")(torch.full((1, 8, 8), 128.0)).abs().max().item()
        0.0
    """

    def __init__(self, mode: str = "float"):
        super().__init__()
        check_mode(mode)
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
        check_mode(mode)
        self.mode = mode

    def forward(self, coefficients: Tensor) -> Tensor:
        return idct(coefficients, self.mode)
