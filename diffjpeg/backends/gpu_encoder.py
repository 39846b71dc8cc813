"""Exact mode's encoder as one Triton kernel: libjpeg-turbo's integer encoder
bit for bit, the values of ``_encode_integers`` in
:mod:`diffjpeg.codec.pipeline` (the stages' tensor forms) for CUDA tensors,
or CPU tensors under ``TRITON_INTERPRET=1``. Imports Triton (about a
second): :mod:`diffjpeg.backends.gpu` imports it when a tensor it could take
first shows up, and checks the device (:func:`diffjpeg.backends.gpu.applies`).

Each program takes ``BLOCKS`` 8x8 blocks of the components that share a
geometry (all three for 4:4:4, luma alone and then both chroma otherwise)
and, per sample, reads the pixels of its downsampling window where they lie
(any strides: channels_last is read in place), so no YCbCr plane is ever
written:

* 8-bit samples: uint8 as is; float images ``round(x * 255)`` clamped to
  [0, 255], in float32 (float16 and bfloat16 widened first, as the codec
  casts them to its float32 work dtype) or float64, rounded half to even as
  ``torch.round``.
* jccolor.c: ``(FIX(m) @ rgb + rounding) >> 16`` (color.rgb_to_ycbcr_fixed
  with libjpeg's matrix, exact int32 sums); grayscale as is.
* Edge replication is index clamping: to the image for the full-resolution
  window (``geo.padded`` repeats the last row and column), to the
  downsampled size ``padded / scale`` for the block grid
  (blocks.replicate_edges twice).
* jcsample.c: ``(window sum + bias) >> log2(h v)``, bias 0,1 alternating
  over output columns for h2v1, 1,2 for h2v2, 1 for h1v2
  (sampling.downsample_biased).
* jfdctint.c on ``sample - 128``: the row pass then the column pass, each
  ``DESCALE(A @ v, n)`` with ISLOW's integer matrix ``A``
  (dct.islow_matrix(False), constants of the kernel), n = 11 then 15. Every
  sum is exact in int32 (dct.fdct_islow's bounds), so summing in any order
  gives its values. A pass works on eight ``(BLOCKS, 8)`` vectors, the
  columns of the tile taken apart with ``tl.split`` (and put back with
  ``tl.join``, a ``tl.permute`` between the passes): registers only.
* jcdctmgr.c's quantize: ``((|x| + c) q) >> r`` with the sign put back
  (quantize.reciprocal_divide), ``(q, c, r)`` of ``8 * table`` computed by
  :func:`diffjpeg.stages.quantize.reciprocal` beforehand.

Facts relied on (Triton's language reference): ``>>`` on signed integers is
arithmetic; int32 ``+``, ``-``, ``*`` are exact within int32; masked loads
and stores touch nothing outside the mask; integer ``//`` is C's (used here
on non-negative values only); ``tl.split``/``tl.join``/``tl.permute``
move values without changing them.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor

from ..stages.color import ENCODER_ROUNDING, fixed_matrix
from ..stages.dct import CONST_BITS, PASS1_BITS, islow_matrix
from ..stages.quantize import reciprocal
from . import gpu
from .gpu_kernels import stack8, unstack8

BLOCKS_PER_PROGRAM = 16
NUM_WARPS = 8  # 4 samples of a (16, 8, 8) tile per thread: about 80-110 registers on sm_90, no spills

# jccolor.c's fixed-point rows (Y, Cb, Cr over R, G, B) and each row's rounding, as Triton takes globals
(Y0, Y1, Y2), (U0, U1, U2), (V0, V1, V2) = [[tl.constexpr(v) for v in row] for row in fixed_matrix(inverse=False)]
YR, UR, VR = [tl.constexpr(v) for v in ENCODER_ROUNDING]
# the passes' DESCALE shifts and rounding terms (jfdctint.c)
PASS1, HALF1 = tl.constexpr(CONST_BITS - PASS1_BITS), tl.constexpr(1 << (CONST_BITS - PASS1_BITS - 1))
PASS2, HALF2 = tl.constexpr(CONST_BITS + PASS1_BITS), tl.constexpr(1 << (CONST_BITS + PASS1_BITS - 1))
LIMIT = tl.constexpr(16383)  # quantize._VALUE_LIMIT: never reached by 8-bit samples
ISLOW = tl.constexpr(tuple(v for row in islow_matrix(inverse=False) for v in row))  # A[k, j] at 8 k + j

_KINDS = {torch.uint8: 0, torch.float16: 1, torch.bfloat16: 1, torch.float32: 1, torch.float64: 2}


@triton.jit
def _level(v):
    """``clamp(round_half_even(v * 255), 0, 255)`` as int32, ``v`` float32
    or float64: clamping to [-1, 256] first changes no result and keeps the
    int conversion in range; ``floor`` and the parity of the floor give the
    tie rule."""
    v = tl.minimum(tl.maximum(v * 255.0, -1.0), 256.0)
    f = tl.floor(v)
    d = v - f  # exact for v >= 0 (Sterbenz, or f = 0); below 0 every outcome clamps to 0
    i = f.to(tl.int32)
    up = (d > 0.5) | ((d == 0.5) & ((i & 1) == 1))
    return tl.minimum(tl.maximum(i + up.to(tl.int32), 0), 255)


@triton.jit
def _load_level(x_ptr, at, mask, KIND: tl.constexpr):
    """The 8-bit sample at ``at``: uint8 (KIND 0), float read as float32 (1) or float64 (2)."""
    v = tl.load(x_ptr + at, mask=mask, other=0)
    if KIND == 0:
        s = v.to(tl.int32)
    elif KIND == 1:
        s = _level(v.to(tl.float32))
    else:
        s = _level(v.to(tl.float64))
    return s


@triton.jit
def _ycc(r, g, b, C: tl.constexpr):
    """Component ``C`` (0 Y, 1 Cb, 2 Cr) of jccolor.c's conversion, clamped as the tensor form does."""
    if C == 0:
        s = r * Y0 + g * Y1 + b * Y2 + YR
    elif C == 1:
        s = r * U0 + g * U1 + b * U2 + UR
    else:
        s = r * V0 + g * V1 + b * V2 + VR
    return tl.minimum(tl.maximum(s >> 16, 0), 255)


@triton.jit
def _downsampled(total, column, SH: tl.constexpr, SV: tl.constexpr):
    """jcsample.c's biased average of a window sum; ``column``: the output column (its parity picks the bias)."""
    if SH == 2 and SV == 2:
        total = total + 1 + (column & 1).to(tl.int32)
    elif SH == 2:
        total = total + (column & 1).to(tl.int32)
    elif SV == 2:
        total = total + 1
    return total >> (SH + SV - 2)  # log2(h v) for ratios 1 or 2


@triton.jit
def _descaled(x0, x1, x2, x3, x4, x5, x6, x7, K: tl.constexpr, BITS: tl.constexpr, HALF: tl.constexpr):
    """Output ``K`` of an ISLOW pass: ``DESCALE(sum_j A[K, j] x_j, BITS)``."""
    total = x0 * ISLOW[8 * K] + x1 * ISLOW[8 * K + 1] + x2 * ISLOW[8 * K + 2] + x3 * ISLOW[8 * K + 3]
    total += x4 * ISLOW[8 * K + 4] + x5 * ISLOW[8 * K + 5] + x6 * ISLOW[8 * K + 6] + x7 * ISLOW[8 * K + 7]
    return (total + HALF) >> BITS


@triton.jit
def _islow_pass(x0, x1, x2, x3, x4, x5, x6, x7, BITS: tl.constexpr, HALF: tl.constexpr):
    """One jfdctint.c pass on eight vectors (the eight inputs of each lane)."""
    return (_descaled(x0, x1, x2, x3, x4, x5, x6, x7, 0, BITS, HALF), _descaled(x0, x1, x2, x3, x4, x5, x6, x7, 1, BITS, HALF),
            _descaled(x0, x1, x2, x3, x4, x5, x6, x7, 2, BITS, HALF), _descaled(x0, x1, x2, x3, x4, x5, x6, x7, 3, BITS, HALF),
            _descaled(x0, x1, x2, x3, x4, x5, x6, x7, 4, BITS, HALF), _descaled(x0, x1, x2, x3, x4, x5, x6, x7, 5, BITS, HALF),
            _descaled(x0, x1, x2, x3, x4, x5, x6, x7, 6, BITS, HALF), _descaled(x0, x1, x2, x3, x4, x5, x6, x7, 7, BITS, HALF))


@triton.jit
def _fdct(x, N: tl.constexpr):
    """jpeg_fdct_islow of ``(N, 8, 8)`` level-shifted samples: the row pass
    on the columns ``x[:, :, j]`` (lane = row), a transpose, the column pass."""
    x0, x1, x2, x3, x4, x5, x6, x7 = unstack8(x, N)
    t0, t1, t2, t3, t4, t5, t6, t7 = _islow_pass(x0, x1, x2, x3, x4, x5, x6, x7, PASS1, HALF1)  # t_k[:, i]: row i's output k
    r0, r1, r2, r3, r4, r5, r6, r7 = unstack8(tl.permute(stack8(t0, t1, t2, t3, t4, t5, t6, t7, N), (0, 2, 1)), N)  # r_i[:, k]
    y0, y1, y2, y3, y4, y5, y6, y7 = _islow_pass(r0, r1, r2, r3, r4, r5, r6, r7, PASS2, HALF2)  # y_u[:, k]
    return tl.permute(stack8(y0, y1, y2, y3, y4, y5, y6, y7, N), (0, 2, 1))


@triton.jit
def _finish(samples, q_ptr, c_ptr, r_ptr, table_at, out_ptr, dct_ptr, out_at, mask,
            WITH_DCT: tl.constexpr, N: tl.constexpr):
    """Level shift, ISLOW FDCT, quantization and the stores of one
    component's ``(N, 8, 8)`` samples."""
    y = _fdct(samples - 128, N)
    q = tl.load(q_ptr + table_at, mask=mask, other=1)
    c = tl.load(c_ptr + table_at, mask=mask, other=0)
    r = tl.load(r_ptr + table_at, mask=mask, other=0)
    v = tl.minimum(tl.maximum(y, -LIMIT), LIMIT)
    magnitude = ((tl.abs(v) + c) * q) >> r
    quantized = tl.where(v < 0, -magnitude, magnitude)
    tl.store(out_ptr + out_at, quantized.to(out_ptr.dtype.element_ty), mask=mask)
    if WITH_DCT:  # exact: |y| < 2**14, times a power of two
        tl.store(dct_ptr + out_at, y.to(dct_ptr.dtype.element_ty) * 0.125, mask=mask)


@triton.jit
def encode_kernel(
    x_ptr, stride_b, stride_c, stride_h, stride_w, height, width,
    q_ptr, c_ptr, r_ptr, table_stride,
    out0, out1, out2, dct0, dct1, dct2,
    n, cols, per_image, down_h, down_w,
    FIRST: tl.constexpr, TABLE0: tl.constexpr, COUNT: tl.constexpr, GRAY: tl.constexpr, KIND: tl.constexpr,
    SH: tl.constexpr, SV: tl.constexpr, WITH_DCT: tl.constexpr, BLOCKS: tl.constexpr,
):
    """Components ``FIRST .. FIRST + COUNT - 1`` (one geometry) of ``n``
    blocks in all (``per_image`` per image, ``cols`` per block row),
    ``BLOCKS`` per program, each block a ``(8, 8)`` slice of ``(BLOCKS, 8,
    8)`` tensors; ``TABLE0``: the first one's table (0 luma, 1 chroma). The
    downsampled plane is ``down_h x down_w``, the image ``height x width``
    (``x_ptr`` with its strides); ``q/c/r_ptr``: ``(T, 2, 64)`` int32
    reciprocals (``table_stride`` 128, or 0 for one shared pair); outputs
    ``(n, 64)`` contiguous."""
    block = (tl.program_id(0) * BLOCKS + tl.arange(0, BLOCKS)).to(tl.int64)[:, None, None]  # int64: big batches
    i = tl.arange(0, 8)[None, :, None]
    j = tl.arange(0, 8)[None, None, :]
    mask = (block < n) & (i < 8) & (j < 8)  # (BLOCKS, 8, 8)
    image = block // per_image
    within = block - image * per_image
    by = within // cols
    bx = within - by * cols
    row = tl.minimum(by * 8 + i, down_h - 1)  # replication of the downsampled plane to whole blocks
    column = tl.minimum(bx * 8 + j, down_w - 1)
    base = image * stride_b
    acc0 = tl.zeros((BLOCKS, 8, 8), dtype=tl.int32)
    acc1 = tl.zeros((BLOCKS, 8, 8), dtype=tl.int32)
    acc2 = tl.zeros((BLOCKS, 8, 8), dtype=tl.int32)
    for dv in tl.static_range(SV):
        top = tl.minimum(row * SV + dv, height - 1) * stride_h  # replication to geo.padded: the last row again
        for dh in tl.static_range(SH):
            at = base + top + tl.minimum(column * SH + dh, width - 1) * stride_w
            if GRAY:
                acc0 += _load_level(x_ptr, at, mask, KIND)
            else:
                red = _load_level(x_ptr, at, mask, KIND)
                green = _load_level(x_ptr, at + stride_c, mask, KIND)
                blue = _load_level(x_ptr, at + 2 * stride_c, mask, KIND)
                acc0 += _ycc(red, green, blue, FIRST)
                if COUNT > 1:
                    acc1 += _ycc(red, green, blue, FIRST + 1)
                if COUNT > 2:
                    acc2 += _ycc(red, green, blue, FIRST + 2)
    out_at = block * 64 + i * 8 + j
    entry = image * table_stride + i * 8 + j
    # luma table for component 0, chroma for 1 and 2
    _finish(_downsampled(acc0, column, SH, SV), q_ptr, c_ptr, r_ptr, entry + TABLE0 * 64,
            out0, dct0, out_at, mask, WITH_DCT, BLOCKS)
    if COUNT > 1:
        _finish(_downsampled(acc1, column, SH, SV), q_ptr, c_ptr, r_ptr, entry + 64,
                out1, dct1, out_at, mask, WITH_DCT, BLOCKS)
    if COUNT > 2:
        _finish(_downsampled(acc2, column, SH, SV), q_ptr, c_ptr, r_ptr, entry + 64,
                out2, dct2, out_at, mask, WITH_DCT, BLOCKS)


def _groups(geometries) -> list[list[int]]:
    """Runs of consecutive components with one geometry (one launch each)."""
    groups: list[list[int]] = []
    for ci, geo in enumerate(geometries):
        if groups and geometries[groups[-1][0]] == geo:
            groups[-1].append(ci)
        else:
            groups.append([ci])
    return groups


def encode(
    x: Tensor, tables: Tensor, geometries, work: torch.dtype, with_dct: bool, matrix: Tensor | None = None,
) -> tuple[list[Tensor], list[Tensor] | None] | None:
    """``_encode_integers`` of :mod:`diffjpeg.codec.pipeline` in one launch
    per group of components sharing a geometry.

    Args:
        x: ``(B, C, H, W)`` images, C = 1 or 3, any strides: uint8, or float
            in [0, 1] (float16 and bfloat16 read as float32, the codec's work
            dtype for them; float64 as float64). NaN is the caller's to
            reject (the codec checks values before exact mode).
        tables: ``(B, 2, 8, 8)`` (or ``(1, 2, 8, 8)``, shared) float tables
            of whole numbers in [1, 255], on ``x``'s device.
        geometries: each component's :class:`diffjpeg.core.geometry.ComponentGeometry`.
        work: float32 or float64, the outputs' dtype.
        with_dct: also return each component's DCT before quantization
            (``fdct_islow * 0.125``), written by the same kernel.
        matrix: a custom RGB to YCbCr matrix: declined (``None``).

    Returns:
        ``(quantized, dct or None)``, per component ``(B, rows, cols, 8, 8)``
        in ``work``; ``None`` where the kernel declines (dtype, shapes,
        ratios other than 1 or 2, a custom matrix, devices that differ).
        The caller checks that the device is the kernels'
        (:func:`diffjpeg.backends.gpu.applies`).
    """
    if matrix is not None or not gpu.encoder_takes(x, tables, geometries, work):
        return None
    count, channels, height, width = x.shape
    device = x.device
    q, c, r = (v.reshape(-1, 2, 64).contiguous() for v in reciprocal(tables.detach().to(torch.int32) * 8))
    quantized = [torch.empty(count, *g.blocks, 8, 8, dtype=work, device=device) for g in geometries]
    dct = [torch.empty_like(o) for o in quantized] if with_dct else None
    for group in _groups(geometries):
        geo = geometries[group[0]]
        n = count * geo.blocks[0] * geo.blocks[1]
        if n == 0:
            continue
        outs = [quantized[ci] for ci in group]
        dcts = [dct[ci] for ci in group] if with_dct else outs
        outs, dcts = outs + [outs[0]] * (3 - len(outs)), dcts + [dcts[0]] * (3 - len(dcts))  # unused slots
        grid = (triton.cdiv(n, BLOCKS_PER_PROGRAM),)
        encode_kernel[grid](
            x.detach(), *x.stride(), height, width,
            q, c, r, 128 if q.shape[0] > 1 else 0,
            *outs, *dcts,
            n, geo.blocks[1], geo.blocks[0] * geo.blocks[1], geo.padded[0] // geo.scale[1], geo.padded[1] // geo.scale[0],
            FIRST=group[0], TABLE0=min(group[0], 1), COUNT=len(group), GRAY=channels == 1, KIND=_KINDS[x.dtype],
            SH=geo.scale[0], SV=geo.scale[1], WITH_DCT=with_dct, BLOCKS=BLOCKS_PER_PROGRAM, num_warps=NUM_WARPS,
            # the float-to-level rounding must be torch's separate multiply and subtract: no FMA
            enable_fp_fusion=False,
        )
    return quantized, dct
