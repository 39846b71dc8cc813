"""The Triton kernels of :mod:`diffjpeg.backends.gpu`, compiled for CUDA
(or run by Triton's interpreter on CPU tensors with ``TRITON_INTERPRET=1``).
Imported only when a tensor they could take first shows up: this module
imports Triton, which costs as much as a second.

``ycc_kernel``: :func:`diffjpeg.stages.color.ycbcr_to_rgb_fixed` with
libjpeg's matrix (jdcolor.c's integer sums, >> 16, clamped), ``BLOCK``
pixels per program.

``idct_kernel``: :func:`diffjpeg.stages.dct.idct_islow`'s SIMD form
(``dct._simd_pass`` twice, the shortcut, packsswb, + 128) on int32 blocks,
each value first taken modulo 2**16 as the SIMD dequantization leaves it,
``BLOCKS`` blocks per program.
"""
import triton
import triton.language as tl

from ..stages.color import fixed_matrix
from ..stages.dct import simd_idct_constants

# the multiply-adds' constants, as Triton takes globals: constexpr
(E00, E01), (E10, E11) = [[tl.constexpr(c) for c in pair] for pair in simd_idct_constants()[0]]
(Z00, Z01), (Z10, Z11) = [[tl.constexpr(c) for c in pair] for pair in simd_idct_constants()[1]]
(O00, O01), (O10, O11), (O20, O21), (O30, O31) = [[tl.constexpr(c) for c in pair] for pair in simd_idct_constants()[2]]

@triton.jit
def wrap16(v):
    return ((v + 32768) & 65535) - 32768  # a 16-bit register's value (paddw, psllw)

@triton.jit
def stack8(a0, a1, a2, a3, a4, a5, a6, a7, N: tl.constexpr):
    """Eight ``(N, 8)`` tensors as one ``(N, 8, 8)``, ``a_k`` at ``[:, :, k]``."""
    x = tl.join(tl.join(tl.join(a0, a4), tl.join(a2, a6)), tl.join(tl.join(a1, a5), tl.join(a3, a7)))
    return tl.reshape(x, (N, 8, 8))  # index 4t + 2u + w of the nested joins' [t, u, w]


@triton.jit
def unstack8(x, N: tl.constexpr):
    """``(N, 8, 8)`` to its eight ``[:, :, k]`` (the inverse of ``stack8``): register moves, no memory."""
    even, odd = tl.split(tl.reshape(x, (N, 8, 2, 2, 2)))
    e0, e1 = tl.split(even)
    o0, o1 = tl.split(odd)
    a0, a4 = tl.split(e0)
    a2, a6 = tl.split(e1)
    a1, a5 = tl.split(o0)
    a3, a7 = tl.split(o1)
    return a0, a1, a2, a3, a4, a5, a6, a7


@triton.jit
def idct_pass(i0, i1, i2, i3, i4, i5, i6, i7, BITS: tl.constexpr):
    """One DODCT pass on eight int32 vectors of int16 values: the even and
    odd parts with their 16-bit sums, DESCALE, packssdw (dct._simd_pass)."""
    tmp3 = i2 * E00 + i6 * E01
    tmp2 = i2 * E10 + i6 * E11
    tmp0 = wrap16(i0 + i4) * (1 << 13)
    tmp1 = wrap16(i0 - i4) * (1 << 13)
    tmp10, tmp13, tmp11, tmp12 = tmp0 + tmp3, tmp0 - tmp3, tmp1 + tmp2, tmp1 - tmp2
    z3 = wrap16(i7 + i3)
    z4 = wrap16(i5 + i1)
    z3, z4 = z3 * Z00 + z4 * Z01, z3 * Z10 + z4 * Z11
    o0 = i7 * O00 + i1 * O01 + z3
    o1 = i5 * O10 + i3 * O11 + z4
    o2 = i5 * O20 + i3 * O21 + z3
    o3 = i7 * O30 + i1 * O31 + z4
    return (_descale(tmp10 + o3, BITS), _descale(tmp11 + o2, BITS), _descale(tmp12 + o1, BITS), _descale(tmp13 + o0, BITS),
            _descale(tmp13 - o0, BITS), _descale(tmp12 - o1, BITS), _descale(tmp11 - o2, BITS), _descale(tmp10 - o3, BITS))


@triton.jit
def to_sample(v):
    return tl.minimum(tl.maximum(v, -128), 127) + 128  # packsswb, then + CENTERJSAMPLE


@triton.jit
def _descale(v, BITS: tl.constexpr):
    return tl.minimum(tl.maximum((v + (1 << (BITS - 1))) >> BITS, -32768), 32767)  # DESCALE, packssdw

@triton.jit
def idct_kernel(x_ptr, shortcut_ptr, columns_ptr, out_ptr, n, BLOCKS: tl.constexpr):
    """``BLOCKS`` blocks per program: the column pass on their rows (each
    row a vector over the block's 8 columns), its results through
    ``columns_ptr`` (the row pass reads them transposed), the row pass,
    packsswb and + 128."""
    block = (tl.program_id(0) * BLOCKS + tl.arange(0, BLOCKS)[:, None]).to(tl.int64)  # (BLOCKS, 1); offsets past 2**31 for large batches
    lane = tl.arange(0, 8)[None, :]  # (1, 8)
    mask = (block < n) & (lane < 8)
    base = block * 64 + lane
    r0 = wrap16(tl.load(x_ptr + base + 0, mask=mask, other=0))
    r1 = wrap16(tl.load(x_ptr + base + 8, mask=mask, other=0))
    r2 = wrap16(tl.load(x_ptr + base + 16, mask=mask, other=0))
    r3 = wrap16(tl.load(x_ptr + base + 24, mask=mask, other=0))
    r4 = wrap16(tl.load(x_ptr + base + 32, mask=mask, other=0))
    r5 = wrap16(tl.load(x_ptr + base + 40, mask=mask, other=0))
    r6 = wrap16(tl.load(x_ptr + base + 48, mask=mask, other=0))
    r7 = wrap16(tl.load(x_ptr + base + 56, mask=mask, other=0))
    c0, c1, c2, c3, c4, c5, c6, c7 = idct_pass(r0, r1, r2, r3, r4, r5, r6, r7, 11)  # CONST_BITS - PASS1_BITS
    # rows 1-7 of the quantized block zero: the SIMD code's shortcut, every row the DC << PASS1_BITS
    short = tl.load(shortcut_ptr + block, mask=block < n, other=0) != 0
    dc = wrap16(r0 * 4)
    c0, c1, c2, c3 = tl.where(short, dc, c0), tl.where(short, dc, c1), tl.where(short, dc, c2), tl.where(short, dc, c3)
    c4, c5, c6, c7 = tl.where(short, dc, c4), tl.where(short, dc, c5), tl.where(short, dc, c6), tl.where(short, dc, c7)
    tl.store(columns_ptr + base + 0, c0, mask=mask)
    tl.store(columns_ptr + base + 8, c1, mask=mask)
    tl.store(columns_ptr + base + 16, c2, mask=mask)
    tl.store(columns_ptr + base + 24, c3, mask=mask)
    tl.store(columns_ptr + base + 32, c4, mask=mask)
    tl.store(columns_ptr + base + 40, c5, mask=mask)
    tl.store(columns_ptr + base + 48, c6, mask=mask)
    tl.store(columns_ptr + base + 56, c7, mask=mask)
    tl.debug_barrier()  # the program's own stores, read back transposed below
    across = block * 64 + lane * 8  # column k of the block: one element of each row
    k0 = tl.load(columns_ptr + across + 0, mask=mask, other=0)
    k1 = tl.load(columns_ptr + across + 1, mask=mask, other=0)
    k2 = tl.load(columns_ptr + across + 2, mask=mask, other=0)
    k3 = tl.load(columns_ptr + across + 3, mask=mask, other=0)
    k4 = tl.load(columns_ptr + across + 4, mask=mask, other=0)
    k5 = tl.load(columns_ptr + across + 5, mask=mask, other=0)
    k6 = tl.load(columns_ptr + across + 6, mask=mask, other=0)
    k7 = tl.load(columns_ptr + across + 7, mask=mask, other=0)
    s0, s1, s2, s3, s4, s5, s6, s7 = idct_pass(k0, k1, k2, k3, k4, k5, k6, k7, 18)  # CONST_BITS + PASS1_BITS + 3
    # out[row, k]: s_k holds column k over the rows (lane = row)
    tl.store(out_ptr + across + 0, to_sample(s0), mask=mask)
    tl.store(out_ptr + across + 1, to_sample(s1), mask=mask)
    tl.store(out_ptr + across + 2, to_sample(s2), mask=mask)
    tl.store(out_ptr + across + 3, to_sample(s3), mask=mask)
    tl.store(out_ptr + across + 4, to_sample(s4), mask=mask)
    tl.store(out_ptr + across + 5, to_sample(s5), mask=mask)
    tl.store(out_ptr + across + 6, to_sample(s6), mask=mask)
    tl.store(out_ptr + across + 7, to_sample(s7), mask=mask)


# jdcolor.c's fixed-point matrix and each channel's rounding with the chroma offset folded in (color.decoder_rounding)
_YCC = fixed_matrix(inverse=True)
(R0, R1, R2), (G0, G1, G2), (B0, B1, B2) = [[tl.constexpr(v) for v in row] for row in _YCC]
RR, RG, RB = [tl.constexpr((1 << 15) - 128 * (row[1] + row[2])) for row in _YCC]


@triton.jit
def ycc_kernel(x_ptr, out_ptr, plane, total, BLOCK: tl.constexpr):
    """``(B, 3, H, W)`` int32 YCbCr samples to RGB, ``plane = H * W``: pixel
    ``p`` of image ``b`` at ``b * 3 * plane + c * plane + p``."""
    index = (tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)).to(tl.int64)  # offsets past 2**31 for large batches
    mask = index < total
    at = (index // plane) * 3 * plane + index % plane
    y = tl.load(x_ptr + at, mask=mask, other=0)
    cb = tl.load(x_ptr + at + plane, mask=mask, other=0)
    cr = tl.load(x_ptr + at + 2 * plane, mask=mask, other=0)
    r = (y * R0 + cb * R1 + cr * R2 + RR) >> 16
    g = (y * G0 + cb * G1 + cr * G2 + RG) >> 16
    b = (y * B0 + cb * B1 + cr * B2 + RB) >> 16
    tl.store(out_ptr + at, tl.minimum(tl.maximum(r, 0), 255), mask=mask)
    tl.store(out_ptr + at + plane, tl.minimum(tl.maximum(g, 0), 255), mask=mask)
    tl.store(out_ptr + at + 2 * plane, tl.minimum(tl.maximum(b, 0), 255), mask=mask)
