"""Exact mode's decoder as two Triton kernels: libjpeg-turbo's pixels (as
Pillow decodes them) from quantized coefficients, bit for bit the values of
the stages' integer forms (``_decode_integers`` of
:mod:`diffjpeg.codec.pipeline` and the conversion to the output dtype) as
they run for CUDA tensors. Imported lazily by :mod:`diffjpeg.backends.gpu`
(this module imports Triton); CPU tensors under ``TRITON_INTERPRET=1``.

``plane_kernel`` (per component): round the coefficients and the table
(floats holding integers, half to even as ``torch.round``), clamp them to
2**40 and keep them modulo 2**16, their product modulo 2**16 (the SIMD
dequantization's ``pmullw``, :func:`diffjpeg.stages.quantize.dequantize_integers`),
then jidctint-avx2.asm's ISLOW (:func:`diffjpeg.stages.dct.idct_islow`'s
SIMD form, the passes of :func:`diffjpeg.backends.gpu_kernels.idct_pass`) with
its shortcut where rows 1-7 of the *rounded quantized* block are zero,
written as uint8 into the component's plane of whole blocks.

``pixel_kernel``: each output pixel's samples from the planes, upsampled as
jdsample.c does (:func:`diffjpeg.stages.sampling.upsample_fancy`: h2v1,
h1v2 and h2v2 triangle filters with their biases, edges repeated at the real
downsampled size; replication for a plane at most 2 wide and for the other
ratios), then jdcolor.c's integer YCbCr to RGB with libjpeg's matrix
(:func:`diffjpeg.stages.color.ycbcr_to_rgb_fixed`), clamped, and the 8-bit
level as uint8 or as ``k / 255`` gathered from
:func:`diffjpeg.core.precision.levels_to_unit`'s table (correctly rounded).

Facts relied on: off the CPU ``fits_int16`` is ``False``, so CUDA tensors
take the wrapping dequantization and the SIMD butterflies (where values fit
int16 the CPU's matrix forms give the same values); ``tl.floor``, ``-`` and
comparisons are exact IEEE operations; ``tl.join``/``tl.split``/
``tl.permute`` move values between registers without changing them.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor

from ..core.precision import level_table
from ..stages.sampling import is_filtered
from . import gpu
from .gpu_kernels import B0, B1, B2, G0, G1, G2, R0, R1, R2, RB, RG, RR, idct_pass, stack8, to_sample, unstack8, wrap16

BLOCKS_PER_PROGRAM = 32
PIXELS_PER_PROGRAM = 1024
CLAMP = tl.constexpr(2.0**40)  # dequantize_integers' clamp: no file holds larger values
# pixel_kernel's upsampling: replicate (or copy), and jdsample.c's three triangle filters
REPLICATE, H2V1, H1V2, H2V2 = 0, 1, 2, 3
_FANCY = {(2, 1): H2V1, (1, 2): H1V2, (2, 2): H2V2}


@triton.jit
def _round_half_even(v):
    """``torch.round`` of a float tensor: on the magnitude, whose fraction
    ``a - floor(a)`` is exact, then the sign back (half to even is symmetric)."""
    a = tl.abs(v)
    f = tl.floor(a)
    d = a - f
    odd = (f - 2.0 * tl.floor(f * 0.5)) == 1.0
    r = f + ((d > 0.5) | ((d == 0.5) & odd)).to(f.dtype)
    return tl.where(v < 0, -r, r)


@triton.jit
def _int16(v):
    """A stored value (float holding an integer, or an integer) rounded,
    clamped to 2**40 and kept modulo 2**16, as int32; and whether it is not
    zero once rounded."""
    if v.dtype.is_floating():
        if v.dtype != tl.float64:
            v = v.to(tl.float32)  # float16 and bfloat16 convert exactly
        r = _round_half_even(v)
        nonzero = r != 0
        i = tl.minimum(tl.maximum(r, -CLAMP), CLAMP).to(tl.int64)
    else:
        nonzero = v != 0
        i = v.to(tl.int64)
    return (((i + 32768) & 65535) - 32768).to(tl.int32), nonzero


@triton.jit
def _dequantized_row(x_ptr, t_ptr, at, table_at, mask):
    """One row of blocks (``(N, 8)``, lane = column): its dequantized values
    modulo 2**16 and whether its rounded quantized values are not zero."""
    q, nonzero = _int16(tl.load(x_ptr + at, mask=mask, other=0))
    t, _ = _int16(tl.load(t_ptr + table_at, mask=mask, other=0))
    return wrap16(q * t), nonzero  # residues within 2**15: the int32 product is exact


@triton.jit
def plane_kernel(
    x_ptr, t_ptr, out_ptr, n, rows, cols,
    xs_b, xs_r, xs_c, xs_i, xs_j, ts_b, ts_i, ts_j, plane_stride, row_stride,
    BLOCKS: tl.constexpr,
):
    """Blocks ``(B, rows, cols, 8, 8)`` (any strides) and the component's
    tables ``(B, 8, 8)`` to its uint8 plane ``(B, rows * 8, cols * 8)``,
    ``n = B * rows * cols`` blocks, ``BLOCKS`` per program."""
    block = (tl.program_id(0) * BLOCKS + tl.arange(0, BLOCKS)[:, None]).to(tl.int64)  # (BLOCKS, 1); past 2**31 for large batches
    lane = tl.arange(0, 8)[None, :]  # (1, 8)
    mask = (block < n) & (lane < 8)
    per_image = rows * cols
    b = block // per_image
    r = block % per_image // cols
    c = block % cols
    at = b * xs_b + r * xs_r + c * xs_c + lane * xs_j
    table_at = b * ts_b + lane * ts_j
    i0, _ = _dequantized_row(x_ptr, t_ptr, at, table_at, mask)
    i1, n1 = _dequantized_row(x_ptr, t_ptr, at + xs_i, table_at + ts_i, mask)
    i2, n2 = _dequantized_row(x_ptr, t_ptr, at + 2 * xs_i, table_at + 2 * ts_i, mask)
    i3, n3 = _dequantized_row(x_ptr, t_ptr, at + 3 * xs_i, table_at + 3 * ts_i, mask)
    i4, n4 = _dequantized_row(x_ptr, t_ptr, at + 4 * xs_i, table_at + 4 * ts_i, mask)
    i5, n5 = _dequantized_row(x_ptr, t_ptr, at + 5 * xs_i, table_at + 5 * ts_i, mask)
    i6, n6 = _dequantized_row(x_ptr, t_ptr, at + 6 * xs_i, table_at + 6 * ts_i, mask)
    i7, n7 = _dequantized_row(x_ptr, t_ptr, at + 7 * xs_i, table_at + 7 * ts_i, mask)
    c0, c1, c2, c3, c4, c5, c6, c7 = idct_pass(i0, i1, i2, i3, i4, i5, i6, i7, 11)  # CONST_BITS - PASS1_BITS
    # rows 1-7 of the quantized block zero: the SIMD code's shortcut, every row the DC << PASS1_BITS
    any_ac = (n1 | n2 | n3 | n4 | n5 | n6 | n7).to(tl.int32)
    short = tl.max(any_ac, axis=1)[:, None] == 0
    dc = wrap16(i0 * 4)
    c0, c1, c2, c3 = tl.where(short, dc, c0), tl.where(short, dc, c1), tl.where(short, dc, c2), tl.where(short, dc, c3)
    c4, c5, c6, c7 = tl.where(short, dc, c4), tl.where(short, dc, c5), tl.where(short, dc, c6), tl.where(short, dc, c7)
    # the row pass reads the columns' results transposed: c_k[:, j] is row k, column j
    columns = tl.permute(stack8(c0, c1, c2, c3, c4, c5, c6, c7, BLOCKS), (0, 2, 1))  # [block, k, j]
    k0, k1, k2, k3, k4, k5, k6, k7 = unstack8(columns, BLOCKS)  # k_j[:, i]: row i, column j
    s0, s1, s2, s3, s4, s5, s6, s7 = idct_pass(k0, k1, k2, k3, k4, k5, k6, k7, 18)  # CONST_BITS + PASS1_BITS + 3
    samples = stack8(to_sample(s0), to_sample(s1), to_sample(s2), to_sample(s3), to_sample(s4), to_sample(s5), to_sample(s6), to_sample(s7), BLOCKS)
    row = tl.arange(0, 8)[None, :, None]
    col = tl.arange(0, 8)[None, None, :]
    block3 = block[:, :, None]  # (BLOCKS, 1, 1)
    b3, r3, c3 = b[:, :, None], r[:, :, None], c[:, :, None]
    where = b3 * plane_stride + (r3 * 8 + row) * row_stride + c3 * 8 + col
    tl.store(out_ptr + where, samples.to(tl.uint8), mask=(block3 < n) & (row < 8) & (col < 8))


@triton.jit
def _at(ptr, base, i, j, row_stride, mask):
    return tl.load(ptr + base + i.to(tl.int64) * row_stride + j, mask=mask, other=0).to(tl.int32)


@triton.jit
def _neighbour(i, odd, last):
    """The nearer sample's neighbour for output ``2 i + odd``: ``i - 1`` or
    ``i + 1``, the edge sample repeated at 0 and ``last``."""
    return tl.where(odd == 1, tl.minimum(i + 1, last), tl.maximum(i - 1, 0))


@triton.jit
def _upsampled(ptr, base, row_stride, height, width, y, x, mask, H: tl.constexpr, V: tl.constexpr, MODE: tl.constexpr):
    """A component's sample at output pixel ``(y, x)`` from its plane
    (``height x width`` real samples): jdsample.c's upsampling."""
    if MODE == 1:  # h2v1: (3 x[j] + x[j -+ 1] + 1 or 2) >> 2
        j, odd = x >> 1, x & 1
        v = (3 * _at(ptr, base, y, j, row_stride, mask) + _at(ptr, base, y, _neighbour(j, odd, width - 1), row_stride, mask) + 1 + odd) >> 2
    elif MODE == 2:  # h1v2: the same down each column
        i, odd = y >> 1, y & 1
        v = (3 * _at(ptr, base, i, x, row_stride, mask) + _at(ptr, base, _neighbour(i, odd, height - 1), x, row_stride, mask) + 1 + odd) >> 2
    elif MODE == 3:  # h2v2: column sums 3 nearer + farther, then (3 s[j] + s[j -+ 1] + 8 or 7) >> 4
        i, odd_y = y >> 1, y & 1
        i2 = _neighbour(i, odd_y, height - 1)
        j, odd_x = x >> 1, x & 1
        j2 = _neighbour(j, odd_x, width - 1)
        near = 3 * _at(ptr, base, i, j, row_stride, mask) + _at(ptr, base, i2, j, row_stride, mask)
        far = 3 * _at(ptr, base, i, j2, row_stride, mask) + _at(ptr, base, i2, j2, row_stride, mask)
        v = (3 * near + far + 8 - odd_x) >> 4
    else:  # each sample repeated (H = V = 1: the plane itself)
        v = _at(ptr, base, y // V, x // H, row_stride, mask)
    return v


@triton.jit
def _store_level(out_ptr, at, v, level_ptr, mask, FLOAT: tl.constexpr):
    if FLOAT:  # k / 255 correctly rounded, from levels_to_unit's table
        tl.store(out_ptr + at, tl.load(level_ptr + v, mask=mask, other=0), mask=mask)
    else:
        tl.store(out_ptr + at, v.to(tl.uint8), mask=mask)


@triton.jit
def pixel_kernel(
    p0, ps0, rs0, h0, w0, p1, ps1, rs1, h1, w1, p2, ps2, rs2, h2, w2,
    out_ptr, level_ptr, ycc_ptr, height, width, ycc_plane, tiles_y, tiles_x,
    os_b, os_c, os_y, os_x,
    H0: tl.constexpr, V0: tl.constexpr, M0: tl.constexpr,
    H1: tl.constexpr, V1: tl.constexpr, M1: tl.constexpr,
    H2: tl.constexpr, V2: tl.constexpr, M2: tl.constexpr,
    CHANNELS: tl.constexpr, CONVERT: tl.constexpr, FLOAT: tl.constexpr, YCC: tl.constexpr,
    TILE_H: tl.constexpr, TILE_W: tl.constexpr,
):
    """A ``TILE_H x TILE_W`` tile of output pixels per program: each
    component upsampled from its plane (``p0``..``p2``: image and row
    strides, real height and width), converted (CONVERT: YCbCr to RGB) or
    not, written to ``out`` ``(B, C, H, W)`` (strides ``os_*``) and, with
    YCC, the samples before conversion to the int32 ``ycc`` (contiguous, the
    shape of ``out``, ``ycc_plane = H * W``)."""
    pid = tl.program_id(0)
    tile_x = pid % tiles_x
    tile_y = pid // tiles_x % tiles_y
    image = (pid // tiles_x // tiles_y).to(tl.int64)
    y = tile_y * TILE_H + tl.arange(0, TILE_H)[:, None]
    x = tile_x * TILE_W + tl.arange(0, TILE_W)[None, :]
    mask = (y < height) & (x < width)
    s0 = _upsampled(p0, image * ps0, rs0, h0, w0, y, x, mask, H0, V0, M0)
    at = image * os_b + y.to(tl.int64) * os_y + x.to(tl.int64) * os_x
    ycc_at = image * CHANNELS * ycc_plane + y.to(tl.int64) * width + x
    if CHANNELS == 1:
        _store_level(out_ptr, at, s0, level_ptr, mask, FLOAT)
        if YCC:
            tl.store(ycc_ptr + ycc_at, s0, mask=mask)
    else:
        s1 = _upsampled(p1, image * ps1, rs1, h1, w1, y, x, mask, H1, V1, M1)
        s2 = _upsampled(p2, image * ps2, rs2, h2, w2, y, x, mask, H2, V2, M2)
        if YCC:
            tl.store(ycc_ptr + ycc_at, s0, mask=mask)
            tl.store(ycc_ptr + ycc_at + ycc_plane, s1, mask=mask)
            tl.store(ycc_ptr + ycc_at + 2 * ycc_plane, s2, mask=mask)
        if CONVERT:  # jdcolor.c: the fixed-point sums, >> 16, clamped
            r = tl.minimum(tl.maximum((s0 * R0 + s1 * R1 + s2 * R2 + RR) >> 16, 0), 255)
            g = tl.minimum(tl.maximum((s0 * G0 + s1 * G1 + s2 * G2 + RG) >> 16, 0), 255)
            b = tl.minimum(tl.maximum((s0 * B0 + s1 * B1 + s2 * B2 + RB) >> 16, 0), 255)
            s0, s1, s2 = r, g, b
        _store_level(out_ptr, at, s0, level_ptr, mask, FLOAT)
        _store_level(out_ptr, at + os_c, s1, level_ptr, mask, FLOAT)
        _store_level(out_ptr, at + 2 * os_c, s2, level_ptr, mask, FLOAT)


def _plane(blocks: Tensor, table: Tensor) -> Tensor:
    """One component's uint8 plane ``(B, rows * 8, cols * 8)`` (not cropped)."""
    count, rows, cols = blocks.shape[:3]
    out = torch.empty((count, rows * 8, cols * 8), dtype=torch.uint8, device=blocks.device)
    n = count * rows * cols
    if n:
        # float64 coefficients: half the blocks a program (32 of them took 254 of sm_90's 255 registers a thread)
        per_program = BLOCKS_PER_PROGRAM // 2 if blocks.dtype == torch.float64 else BLOCKS_PER_PROGRAM
        grid = (triton.cdiv(n, per_program),)
        # the rounding's floats exact and in their order: no fused multiply-adds
        plane_kernel[grid](
            blocks, table, out, n, rows, cols, *blocks.stride(), *table.stride(), out.stride(0), out.stride(1),
            BLOCKS=per_program, enable_fp_fusion=False,
        )
    return out


def _upsampling(geo) -> tuple[int, int, int]:
    """``(h, v, mode)`` of a component for pixel_kernel, as upsample_fancy chooses."""
    h, v = geo.scale
    width = geo.downsampled[1]
    mode = _FANCY.get((h, v), REPLICATE) if is_filtered(width, h, v) else REPLICATE
    return h, v, mode


def decode(
    components: list[Tensor], tables: Tensor, geometries, size: tuple[int, int], out_dtype: torch.dtype, color_space: str,
    matrix: Tensor | None = None, *, with_ycc: bool = False, out: Tensor | None = None,
):
    """Exact mode's pixels ``(B, C, H, W)`` in ``out_dtype`` (uint8: the
    8-bit samples; a float dtype: ``k / 255`` correctly rounded), the values
    of ``_decode_integers`` and its conversion; ``None`` where the kernels
    decline (a custom ``matrix``, CMYK or YCCK, more than 3 components,
    sampling ratios above 4, shapes that do not match the geometry, tensors
    the kernels do not take).

    Args:
        components: ``(B, rows, cols, 8, 8)`` quantized blocks per component
            (floats holding integers, rounded half to even here; or integers).
        tables: ``(B, C, 8, 8)`` each component's table (rounded here).
        geometries: each component's :class:`~diffjpeg.core.geometry.ComponentGeometry`.
        size: ``(H, W)``.
        out_dtype: ``torch.uint8`` or a float dtype.
        color_space: ``"YCbCr"`` (converted with libjpeg's matrix), ``"RGB"``
            or ``"grayscale"`` (not converted).
        with_ycc: also return the int32 samples before color conversion
            ``(B, C, H, W)`` (``None`` for one component), as ``_decode_integers``.
        out: a ``(B, C, H, W)`` tensor of ``out_dtype`` (any strides) to write into.

    The caller checks that the tensors are on the kernels' device
    (:func:`diffjpeg.backends.gpu.decode` does).
    """
    if matrix is not None or not gpu.decoder_takes(components, tables, geometries, size, out_dtype, color_space):
        return None
    channels, count = len(components), tables.shape[0]
    height, width = size
    convert = color_space == "YCbCr"
    device = tables.device
    shape = (count, channels, height, width)
    if out is None:
        out = torch.empty(shape, dtype=out_dtype, device=device)
    elif out.shape != shape or out.dtype != out_dtype or out.device != device:
        raise ValueError(f"out must be {out_dtype} of shape {shape} on {device}, got {out.dtype} {tuple(out.shape)} on {out.device}")
    ycc = torch.empty(shape, dtype=torch.int32, device=device) if with_ycc and channels > 1 else None
    planes = [_plane(blocks.detach(), tables[:, ci].detach()) for ci, blocks in enumerate(components)]
    if out.numel():
        modes = [_upsampling(geo) for geo in geometries]
        modes += [modes[0]] * (3 - channels)
        # each plane with its strides and real size (scalars: no copy to the device)
        given = [(p, p.stride(0), p.stride(1), *g.downsampled) for p, g in zip(planes, geometries)]
        given += [given[0]] * (3 - channels)
        tile_w = min(128, max(16, triton.next_power_of_2(width)))
        tile_h = PIXELS_PER_PROGRAM // tile_w
        tiles_y, tiles_x = triton.cdiv(height, tile_h), triton.cdiv(width, tile_w)
        levels = level_table(out_dtype, device) if out_dtype.is_floating_point else out
        pixel_kernel[(count * tiles_y * tiles_x,)](
            *given[0], *given[1], *given[2],
            out, levels, out if ycc is None else ycc, height, width, height * width, tiles_y, tiles_x, *out.stride(),
            *modes[0], *modes[1], *modes[2],
            CHANNELS=channels, CONVERT=convert, FLOAT=out_dtype.is_floating_point, YCC=ycc is not None,
            TILE_H=tile_h, TILE_W=tile_w,
        )
    return (out, ycc) if with_ycc else out
