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
  ``x & 1023``, which wraps values outside [-512, 511]; the x86-64 SIMD
  inverse that Pillow's and OpenCV's libjpeg-turbo builds run
  (jidctint-avx2.asm, and jidctint-sse2.asm, step for step the same) instead
  packs each pass's results to int16 with saturation (``packssdw``) and the
  output to int8 with saturation (``packsswb``) before adding 128.
* That SIMD inverse also computes in 16 bits where the C code has 32
  (:func:`idct_islow` models it; Pillow decodes crafted files as it does):
  it dequantizes with ``pmullw`` (the low 16 bits of coefficient times table
  entry, :func:`wrap_int16`); in each pass the sums ``in0 + in4``,
  ``in0 - in4``, ``z3 = in7 + in3`` and ``z4 = in5 + in1`` are 16-bit
  (``paddw``/``psubw``: they wrap), the products and the rest 32-bit
  (``pmaddwd`` on the 16-bit values, exact); and when rows 1-7 of the
  *quantized* block are all zero, pass 1 is ``in0 << 2`` in 16 bits
  (``psllw``: it wraps) for the whole block, where the full pass would
  saturate. Pass 2 has no such shortcut. None of this changes a value
  unless a dequantized coefficient exceeds 8191 or a pass-1 output 16383,
  which no 8-bit encoder's file reaches; only then does :func:`idct_islow`
  leave its matrix form for the 16-bit butterflies.

The real-valued forms (float and soft modes, and the gradients of every
mode) compute ``A X A^T`` with the orthonormal DCT matrix, on the CPU in one
fixed order of IEEE products and sums per block (:func:`block_transform`;
compiled in ``diffjpeg/backends/_dct.c``, the same values): a block's result does
not depend on the batch, the strip, the thread count or the CPU, where a
BLAS GEMM picks its summation order from all of them. On other devices it
stays one GEMM with the 64x64 Kronecker matrix, whose values agree to float
rounding (the contract of :mod:`diffjpeg.core.precision`).
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ..core import dispatch
from ..core.check import check_blocks, check_mode, traced, vmapped
from ..core.modes import Mode
from ..core.precision import cached_constant
from .rounding import clamp_ste, exact_value, needs_grad

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


@cached_constant
def _matrices(kind: str, dtype: torch.dtype, device: torch.device) -> Tensor:
    """A transform matrix, shared by every call (:func:`diffjpeg.core.precision.cached_constant`)."""
    # built in Python doubles and rounded once to dtype: no float64 tensor
    # for float32 callers
    if kind in ("orthonormal_2d", "orthonormal_2d_inverse"):
        # vec(L X R^T) = (L kron R) vec(X): one (N, 64) x (64, 64) GEMM instead
        # of two batched 8x8 products, about 3x faster where a GEMM runs
        c = _orthonormal()
        if kind.endswith("inverse"):
            c = [list(col) for col in zip(*c)]
        kron = [[c[i // 8][j // 8] * c[i % 8][j % 8] for j in range(64)] for i in range(64)]
        return torch.tensor(kron, dtype=dtype, device=device).T.contiguous()
    if kind in ("orthonormal", "orthonormal_inverse"):  # C, and C^T
        c = _orthonormal()
        return torch.tensor(c if kind == "orthonormal" else [list(col) for col in zip(*c)], dtype=dtype, device=device)
    return torch.tensor(islow_matrix(kind == "islow_inverse"), dtype=dtype, device=device)


def dct_matrix(dtype=torch.float32, device=None) -> Tensor:
    """The orthonormal 8-point DCT-II matrix ``C`` (``F = C x C^T``): a new
    tensor, which the caller may change (the codec's own is cached)."""
    return _matrices("orthonormal", dtype, torch.device(device or "cpu")).clone()


def dct_matrices(dtype: torch.dtype = torch.float32, device=None) -> tuple[Tensor, Tensor]:
    """``C`` and ``C^T``, the matrices of the fixed-order forward and
    inverse transforms (the codec's own, shared: not to be changed)."""
    device = torch.device(device or "cpu")
    return _matrices("orthonormal", dtype, device), _matrices("orthonormal_inverse", dtype, device)


def block_transform(blocks: Tensor, matrix: Tensor) -> Tensor:
    """``A X A^T`` for every 8x8 block ``X`` of ``blocks`` ``(..., 8, 8)``
    (``A``: ``matrix``, 8x8), each output summed in one fixed order:

    * rows: ``T[i, v] = X[i, 0] A[v, 0] + X[i, 1] A[v, 1] + ... + X[i, 7] A[v, 7]``,
    * columns: ``Y[u, v] = A[u, 0] T[0, v] + A[u, 1] T[1, v] + ... + A[u, 7] T[7, v]``,

    left to right, each product and sum one IEEE operation of ``blocks``'
    dtype. So a block's result is the same whatever the batch, the strip or
    the thread split, on every CPU; ``diffjpeg/backends/_dct.c`` computes the same
    values in one pass (this is its tensor form, the reference; a new tensor).

    Example:
        >>> c = dct_matrix(torch.float64)
        >>> x = torch.rand(2, 8, 8, dtype=torch.float64)
        >>> torch.allclose(block_transform(x, c), c @ x @ c.T)
        True
    """
    rows = blocks[..., :, 0:1] * matrix[:, 0]
    for j in range(1, 8):
        rows.add_(blocks[..., :, j : j + 1] * matrix[:, j])
    out = matrix[:, 0:1] * rows[..., 0:1, :]
    for i in range(1, 8):
        out.add_(matrix[:, i : i + 1] * rows[..., i : i + 1, :])
    return out


# the 8x8 matrix A of each 2-D transform (A X A^T), and its adjoint's
_FACTOR = {"orthonormal_2d": "orthonormal", "orthonormal_2d_inverse": "orthonormal_inverse"}
_ADJOINT = {"orthonormal_2d": "orthonormal_2d_inverse", "orthonormal_2d_inverse": "orthonormal_2d"}


def _in_fixed_order(x: Tensor) -> bool:
    """Whether the real-valued transforms of ``x`` run in :func:`block_transform`'s
    order: on the CPU, also under ``torch.compile``, whose C++ keeps each
    product and sum (``-ffp-contract=off`` by default), so that compiled and
    eager transforms agree bit for bit; elsewhere where a kernel computes
    that order (the GPU's, which gives the CPU's values), else one GEMM."""
    return x.device.type == "cpu" or dispatch.takes("block_transform", x)


def _transform(blocks: Tensor, kind: str, shift: float | None = None, out: Tensor | None = None) -> Tensor:
    """The 2-D transform ``kind`` of ``(..., 8, 8)`` blocks (of ``blocks -
    shift``, the level shift) in the fixed order, no graph: into ``out``
    (blocks of ``blocks``' shape at any strides) or a new tensor. The CPU's
    loop reads and writes blocks at their strides (a plane's, as
    :func:`~diffjpeg.stages.blocks.split_blocks` views it): no copy between
    a plane and its blocks."""
    matrix = _matrices(_FACTOR[kind], blocks.dtype, blocks.device)
    x = blocks.detach()
    done = dispatch.run("block_transform", x, matrix, shift, out)
    if done is not None:
        return done
    result = block_transform(x if shift is None else x - shift, matrix)
    return result if out is None else out.copy_(result)


@dispatch.keeps_backends
class _BlockTransform(torch.autograd.Function):
    """:func:`_transform` forward; backward, the adjoint transform the same
    way (``A^T G A``; the shift is a constant), itself differentiable for a
    second order."""

    generate_vmap_rule = True  # torch operations only (no kernel runs under a torch.func transform)

    @staticmethod
    def forward(blocks: Tensor, kind: str, shift: float | None = None) -> Tensor:
        return _transform(blocks, kind, shift)

    @staticmethod
    def setup_context(ctx, inputs, output):
        dispatch.keep(ctx)
        ctx.kind = inputs[1]

    @staticmethod
    def backward(ctx, grad: Tensor):
        return _fixed_order(grad, _ADJOINT[ctx.kind]), None, None


def _fixed_order(x: Tensor, kind: str, shift: float | None = None, out: Tensor | None = None) -> Tensor:
    """The transform ``kind`` of ``(..., 8, 8)`` blocks (``x - shift``) in the
    fixed order, with its graph if ``x`` needs one; into ``out`` where given
    (no graph to record then)."""
    if needs_grad(x):
        y = _BlockTransform.apply(x, kind, shift)
        return y if out is None else out.copy_(y)
    return _transform(x, kind, shift, out)


def _separable(x: Tensor, kind: str, shift: float | None = None, out: Tensor | None = None) -> Tensor:
    """The 2-D orthonormal (inverse) DCT of ``(..., 8, 8)`` blocks (``x -
    shift``): in the fixed order where :func:`_in_fixed_order`, else as one
    GEMM; into ``out`` where given."""
    if _in_fixed_order(x):
        return _fixed_order(x, kind, shift, out)
    if shift is not None:
        x = _level_shift(x) if shift == 128.0 else x - shift
    flat = x.reshape(-1, 64)
    y = (flat @ _matrices(kind, x.dtype, x.device)).reshape(x.shape)
    return y if out is None else out.copy_(y)


def _shifted_in_block_order(blocks: Tensor) -> Tensor:
    """``blocks - 128`` into a new contiguous tensor: blocks cut from a plane
    are a strided view, which the transforms need contiguous; the subtraction
    makes that copy itself instead of a second pass."""
    return torch.sub(blocks, 128.0, out=torch.empty(blocks.shape, dtype=blocks.dtype, device=blocks.device))


class _LevelShift(torch.autograd.Function):
    """:func:`_shifted_in_block_order` forward; backward, the gradient unchanged."""

    generate_vmap_rule = True

    @staticmethod
    def forward(blocks):
        return _shifted_in_block_order(blocks)

    @staticmethod
    def setup_context(ctx, inputs, output):
        pass

    @staticmethod
    def backward(ctx, grad):
        return grad


def _level_shift(blocks: Tensor) -> Tensor:
    """``blocks - 128``, contiguous (see :class:`_LevelShift`)."""
    if blocks.is_contiguous() or traced():  # (out= has no vmap rule)
        return blocks - 128.0
    if not blocks.requires_grad:
        return _shifted_in_block_order(blocks)
    return _LevelShift.apply(blocks)


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


def fits_int16(values: Tensor, bound: int = 32767) -> bool:
    """Whether every value lies within ``[-bound, bound]`` (int16 by
    default); always ``False`` under ``torch.compile``, under
    ``torch.func.vmap`` and off the CPU, where reading the values back would
    break the graph, cannot be done (a batched tensor) or would wait for the
    device: callers then take their general route, which gives the same
    values for every input."""
    if torch.compiler.is_compiling() or values.device.type != "cpu" or vmapped():
        return False
    return values.numel() == 0 or bool(values.abs().max() <= bound)


def wrap_int16(values: Tensor) -> Tensor:
    """Integers modulo 2**16 into [-32768, 32767], as a 16-bit register
    keeps them (int32 or int64 in, the same dtype out).

    Example:
        >>> wrap_int16(torch.tensor([32767, 32768, -40000, 65536 * 3 + 5])).tolist()
        [32767, -32768, 25536, 5]
    """
    return ((values + 32768) & 65535) - 32768


def dequantized_integers(values: Tensor) -> Tensor:
    """Dequantized coefficients (floats holding integers) as the int32 tensor
    :func:`idct_islow` takes: rounded half to even and, beyond int16, kept
    modulo 2**16 as libjpeg-turbo's SIMD dequantization keeps its products
    (values past 2**40, which no file holds, clamped there first).

    Example:
        >>> dequantized_integers(torch.tensor([2.5, -40000.0]))
        tensor([    2, 25536], dtype=torch.int32)
    """
    v = torch.round(values)
    if fits_int16(v):
        return v.to(torch.int32)
    return wrap_int16(v.clamp_(-(2.0**40), 2.0**40).to(torch.int64)).to(torch.int32)


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


# jidctint-avx2.asm's pmaddwd constants: its pairs of 13-bit factors
_F = _FIX
_EVEN = ((_F["0_541196100"] + _F["0_765366865"], _F["0_541196100"]),  # tmp3 = in2 a + in6 b
         (_F["0_541196100"], _F["0_541196100"] - _F["1_847759065"]))  # tmp2
_Z = ((_F["1_175875602"] - _F["1_961570560"], _F["1_175875602"]),  # z3' = z3 a + z4 b
      (_F["1_175875602"], _F["1_175875602"] - _F["0_390180644"]))  # z4'
_ODD = ((_F["0_298631336"] - _F["0_899976223"], -_F["0_899976223"]),  # tmp0 = in7 a + in1 b + z3'
        (_F["2_053119869"] - _F["2_562915447"], -_F["2_562915447"]),  # tmp1 = in5 a + in3 b + z4'
        (-_F["2_562915447"], _F["3_072711026"] - _F["2_562915447"]),  # tmp2 = in5 a + in3 b + z3'
        (-_F["0_899976223"], _F["1_501321110"] - _F["0_899976223"]))  # tmp3 = in7 a + in1 b + z4'


def simd_idct_constants() -> tuple[tuple, tuple, tuple]:
    """The pairs of 13-bit constants of jidctint-avx2.asm's multiply-adds,
    ``(even, z, odd)`` as :func:`_simd_pass` uses them: for a compiled form
    of the same pass (``diffjpeg/backends``)."""
    return _EVEN, _Z, _ODD


def simd_factors() -> tuple[int, ...]:
    """The 16 factors of jidctint-avx2.asm's pmaddwd pairs, in the order
    tmp3, tmp2 (even part), z3', z4' (odd sums), tmp0, tmp1, tmp2, tmp3 (odd
    part), each ``(a, b)`` as :func:`idct_islow`'s butterflies use them."""
    return tuple(v for pairs in (_EVEN, _Z, _ODD) for pair in pairs for v in pair)


def _simd_pass(x: Tensor, bits: int, along_columns: bool) -> Tensor:
    """One pass of jidctint-avx2.asm's DODCT on int32 ``(..., 8, 8)`` blocks
    holding int16 values, with its 16-bit sums wrapping, then DESCALE and
    packssdw. In int32 nothing else overflows: with inputs of magnitude at
    most 32768, the even part stays below ``2**28 + 32768 * 15136`` and the odd
    part below ``32768 * (12299 + 16070)``, their sum below 1.7e9."""
    i = [x[..., k, :] if along_columns else x[..., :, k] for k in range(8)]
    tmp3 = i[2] * _EVEN[0][0] + i[6] * _EVEN[0][1]
    tmp2 = i[2] * _EVEN[1][0] + i[6] * _EVEN[1][1]
    tmp0 = wrap_int16(i[0] + i[4]) * (1 << CONST_BITS)  # paddw
    tmp1 = wrap_int16(i[0] - i[4]) * (1 << CONST_BITS)  # vpsignw + paddw
    tmp10, tmp13, tmp11, tmp12 = tmp0 + tmp3, tmp0 - tmp3, tmp1 + tmp2, tmp1 - tmp2
    z3, z4 = wrap_int16(i[7] + i[3]), wrap_int16(i[5] + i[1])  # paddw
    z3, z4 = z3 * _Z[0][0] + z4 * _Z[0][1], z3 * _Z[1][0] + z4 * _Z[1][1]
    o0 = i[7] * _ODD[0][0] + i[1] * _ODD[0][1] + z3
    o1 = i[5] * _ODD[1][0] + i[3] * _ODD[1][1] + z4
    o2 = i[5] * _ODD[2][0] + i[3] * _ODD[2][1] + z3
    o3 = i[7] * _ODD[3][0] + i[1] * _ODD[3][1] + z4
    out = [tmp10 + o3, tmp11 + o2, tmp12 + o1, tmp13 + o0, tmp13 - o0, tmp12 - o1, tmp11 - o2, tmp10 - o3]
    out = torch.stack(out, dim=-2 if along_columns else -1)
    return ((out + (1 << (bits - 1))) >> bits).clamp_(-32768, 32767)  # DESCALE, packssdw


def _idct_simd16(x: Tensor, quantized: Tensor | None) -> Tensor:
    """jsimd_idct_islow_avx2 on int32 ``(..., 8, 8)`` int16 values, the 16-bit
    steps modelled (see the module docstring)."""
    source = x if quantized is None else quantized
    shortcut = (source[..., 1:, :] == 0).flatten(-2).all(-1)[..., None, None]  # rows 1-7 of the quantized block
    columns = _simd_pass(x, CONST_BITS - PASS1_BITS, along_columns=True)
    dc = wrap_int16(x[..., :1, :] * (1 << PASS1_BITS))  # psllw
    columns = torch.where(shortcut, dc.expand_as(columns), columns)
    out = _simd_pass(columns, CONST_BITS + PASS1_BITS + 3, along_columns=False)
    return out.clamp_(-128, 127).add_(128)  # packsswb, then + CENTERJSAMPLE


def idct_islow(coefficients: Tensor, quantized: Tensor | None = None) -> Tensor:
    """libjpeg-turbo's ISLOW inverse DCT on dequantized integer coefficients,
    as its x86-64 SIMD code computes it (the module docstring says how).

    Args:
        coefficients: ``(..., 8, 8)`` int32 or int64, quantized value times
            table entry; values beyond int16 are taken modulo 2**16, as the
            SIMD dequantization leaves them (:func:`dequantized_integers`).
        quantized: the blocks before dequantization, or ``None`` to take
            ``coefficients``: where rows 1-7 of a quantized block are zero,
            the SIMD code takes its shortcut, which differs from the full
            pass only for a dequantized DC beyond 8191.

    Returns:
        ``(..., 8, 8)`` int32 samples in [0, 255] (level shift and range limit
        applied).

    Where no dequantized value exceeds 8191 and no column-pass output 16383
    (every file an 8-bit encoder writes), no 16-bit step can wrap, and the
    passes run as integer matrices (:func:`islow_matrix`); else, and under
    ``torch.compile``, as the SIMD code's butterflies with their 16-bit sums.
    The rows of the matrix have absolute sums of at most 61214: each pass on
    int16 values stays below ``61214 * 32767 + 2**17 < 2**31``.

    Example:
        >>> idct_islow(torch.zeros(8, 8, dtype=torch.int32)).unique().tolist()
        [128]
        >>> idct_islow(torch.tensor([[10000] + [0] * 7] + [[0] * 8] * 7)).unique().tolist()  # 10000 << 2 wraps
        [0]
    """
    x = coefficients
    if x.dtype == torch.int32:
        done = dispatch.run("idct_islow", x, quantized)  # one kernel on a GPU (diffjpeg.backends.gpu)
        if done is not None:
            return done
    if x.dtype == torch.int32 and fits_int16(x, 8191):  # no sum of two inputs, nor the shortcut's << 2, leaves int16
        m = _matrices("islow_inverse", torch.int32, x.device)
        columns = _islow_pass(x, m, CONST_BITS - PASS1_BITS, along_columns=True).clamp_(-32768, 32767)  # packssdw
        if fits_int16(columns, 16383):  # nor does a sum of two pass-1 outputs
            out = _islow_pass(columns, m, CONST_BITS + PASS1_BITS + 3, along_columns=False)
            return out.clamp_(-128, 127).add_(128)  # packsswb, then + CENTERJSAMPLE
    return _idct_simd16(wrap_int16(x.to(torch.int64)).to(torch.int32), quantized)


def fdct(blocks: Tensor, mode: Mode = "float") -> Tensor:
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
    check_blocks("blocks", blocks)
    check_mode(mode)
    if mode != "exact":
        return _separable(blocks, "orthonormal_2d", shift=128.0)
    samples = torch.round(blocks.detach()).clamp_(0, 255) if blocks.is_floating_point() else blocks
    value = fdct_islow(samples.to(torch.int32) - 128).to(blocks.dtype).mul_(0.125)
    return exact_value(value, blocks, lambda: _separable(blocks, "orthonormal_2d", shift=128.0))


def fdct_adjoint(grad: Tensor, out: Tensor | None = None) -> Tensor:
    """The transpose of :func:`fdct` (its gradient in every mode): the
    gradient of its sample blocks from that of its coefficients, ``(..., 8, 8)``,
    into ``out`` (blocks of that shape at any strides: a plane's) or a new tensor.

    The operations of autograd's backward of the float form, so the result
    is the same bit for bit.

    Example:
        >>> g = torch.zeros(8, 8); g[0, 0] = 8.0
        >>> round(fdct_adjoint(g)[3, 5].item(), 6)
        1.0
    """
    return _separable_transpose(grad, "orthonormal_2d", out)


def _separable_transpose(grad: Tensor, kind: str, out: Tensor | None = None) -> Tensor:
    """The transpose of :func:`_separable` in ``x``, as autograd's backward
    of it computes it: the adjoint transform in the fixed order on the CPU,
    else ``grad @ M^T`` on the ``(N, 64)`` view; into ``out`` where given."""
    if _in_fixed_order(grad):
        return _fixed_order(grad, _ADJOINT[kind], out=out)
    flat = grad.reshape(-1, 64)
    y = flat.mm(_matrices(kind, grad.dtype, grad.device).t()).view(grad.shape)
    return y if out is None else out.copy_(y)


def idct(coefficients: Tensor, mode: Mode = "float") -> Tensor:
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
    check_blocks("coefficients", coefficients)
    check_mode(mode)
    if mode != "exact":
        # level shift, rounding and clamp in place on the product (a
        # temporary), then the view: one new tensor instead of three
        flat = _separable(coefficients, "orthonormal_2d_inverse").reshape(-1, 64)
        real = clamp_ste(flat, 0.0, 255.0, rounded=mode == "float", inplace=True, shift=128.0)
        return real.view(coefficients.shape)
    value = idct_islow(dequantized_integers(coefficients.detach()))
    return exact_value(value, coefficients, lambda: _separable(coefficients, "orthonormal_2d_inverse") + 128.0)


def idct_to_plane(coefficients: Tensor, mode: Mode, plane: Tensor) -> Tensor:
    """:func:`idct` (``"float"`` or ``"soft"``, no gradient) of
    ``(..., BY, BX, 8, 8)`` coefficients written into ``plane``
    (``(..., 8 BY, 8 BX)``, rows contiguous: a view of the decoder's stack,
    say), its blocks in place: the values of ``merge_blocks(idct(...))``
    without the pass that merges. Returns ``plane``."""
    if mode == "exact":
        raise ValueError('idct_to_plane: mode must be "float" or "soft", got "exact"')
    *lead, h, w = plane.shape
    _separable(coefficients.detach(), "orthonormal_2d_inverse", out=plane.view(*lead, h // 8, 8, w // 8, 8).transpose(-3, -2))
    return clamp_ste(plane, 0.0, 255.0, rounded=mode == "float", inplace=True, shift=128.0)


def idct_adjoint(grad: Tensor) -> Tensor:
    """The transpose of :func:`idct` (its gradient in every mode, its clamp
    straight-through): the gradient of the coefficients from that of the
    sample blocks, ``(..., 8, 8)``; autograd's operations for the float
    form, bit for bit.

    Example:
        >>> g = torch.zeros(8, 8); g[0, 0] = 8.0
        >>> round(idct_adjoint(g)[0, 0].item(), 4)
        1.0
    """
    return _separable_transpose(grad, "orthonormal_2d_inverse")


class FDCT(nn.Module):
    """Module form of :func:`fdct`.

    Example:
        >>> FDCT("exact")(torch.full((1, 8, 8), 128.0)).abs().max().item()
        0.0
    """

    def __init__(self, mode: Mode = "float"):
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

    def __init__(self, mode: Mode = "float"):
        super().__init__()
        check_mode(mode)
        self.mode = mode

    def forward(self, coefficients: Tensor) -> Tensor:
        return idct(coefficients, self.mode)
