"""The Triton kernels of :mod:`diffjpeg.backends.gpu_stages`: the
real-valued stages (float and soft mode's forward, every mode's backward)
for CUDA tensors, or for CPU tensors through Triton's interpreter with
``TRITON_INTERPRET=1``. Imported only when a tensor they could take first
shows up: this module imports Triton, which costs as much as a second.

Each kernel performs its tensor form's IEEE operations, in their order, on
each element, in the tensor's dtype (float32 or float64), so the values are
the tensor form's bit for bit:

* ``downsample_kernel``: :mod:`diffjpeg.stages.sampling`'s window sums in
  ``_window_sums``' order, then jcsample.c's biases, x 1/count, floor
  (``_biased_average``), or x 1/count (soft);
* ``upsample_kernel``: jdsample.c's triangle filter (``_triangle``) down the
  columns, then along the rows (``sampling._FANCY``'s order), libjpeg's
  biases, x 1/scale, floor (``_fancy_biased``), or x 1/scale (soft);
* ``upsample_adjoint_kernel``: ``_triangle_adjoint`` along the rows, then
  down the columns, x 1/scale;
* ``downsample_adjoint_kernel``: the window mean's transpose;
* ``round_clamp_kernel``: :func:`diffjpeg.stages.rounding.clamp_ste`'s
  ``x * scale + shift``, round half to even, clamp;
* ``block_transform_kernel``: :func:`diffjpeg.stages.dct.block_transform`'s
  ``A X A^T`` summed left to right;
* ``color_kernel``: :func:`diffjpeg.stages.color.color_product`'s
  ``((M0 x0 + M1 x1) + M2 x2) + offset``.

Facts relied on: the wrappers launch every kernel with
``enable_fp_fusion=False`` (no FMA fuses a product and a sum that the tensor
operations round apart); Triton's float32 ``/`` lowers to an approximate
division on NVIDIA GPUs (``div.full.f32``), so the kernels multiply by the
exact reciprocal of a power of two (1/2, 1/4, 1/16) instead, the same value
as the tensor forms' division; a Python float literal enters a kernel as a
float32 constant, so only constants exact in float32 appear here; without
fast-math flags (Triton sets none on these operations) LLVM neither
reassociates nor flushes denormals of plain float sums and products, which
the rounding below relies on; ``tl.floor`` is exact. Triton's interpreter
has no libdevice, so rounding half to even is written with IEEE sums (the
same code then runs in the tests and on the GPU).
"""
import triton
import triton.language as tl


@triton.jit
def _round_half_even(v):
    """``torch.round``: for ``|v| < 2**p`` (p the significand's bits),
    ``|v| + 2**p`` lands where the spacing is 1 and rounds to nearest even;
    larger values are integers already. The sign is put back (-0.0 for
    small negatives, as rint gives), and zeros are returned as they are."""
    if v.dtype == tl.float64:
        magic = 4503599627370496.0  # 2**52, exact as a float32 constant
    else:
        magic = 8388608.0  # 2**23
    a = tl.abs(v)
    r = (a + magic) - magic
    r = tl.where(a < magic, r, a)
    r = tl.where(v < 0, r * -1.0, r)  # (Triton's unary minus is 0 - r: +0.0)
    return tl.where(v == 0, v, r)


@triton.jit
def _tile(tiles_w, tiles, BH: tl.constexpr, BW: tl.constexpr):
    """This program's plane (int64) and its ``BH x BW`` tile's rows and columns."""
    pid = tl.program_id(0)
    plane = (pid // tiles).to(tl.int64)
    tile = pid % tiles
    rows = (tile // tiles_w) * BH + tl.arange(0, BH)[:, None]
    columns = (tile % tiles_w) * BW + tl.arange(0, BW)[None, :]
    return plane, rows.to(tl.int64), columns.to(tl.int64)


@triton.jit
def downsample_kernel(src, dst, h, w, s_p, s_r, s_c, d_p, d_r, d_c, tiles_w, tiles,
                      FH: tl.constexpr, FV: tl.constexpr, BIASED: tl.constexpr, BH: tl.constexpr, BW: tl.constexpr):
    """``(N, FV h, FH w)`` planes to ``(N, h, w)``: output ``(i, j)`` from
    the window at ``(FV i, FH j)``."""
    plane, i, j = _tile(tiles_w, tiles, BH, BW)
    mask = (i < h) & (j < w)
    top = src + plane * s_p + (FV * i) * s_r + (FH * j) * s_c
    if FH == 2 and FV == 2:
        total = tl.load(top, mask=mask, other=0.0) + tl.load(top + s_c, mask=mask, other=0.0)
        total = total + tl.load(top + s_r, mask=mask, other=0.0)
        total = total + tl.load(top + s_r + s_c, mask=mask, other=0.0)
    elif FH == 2:
        total = tl.load(top, mask=mask, other=0.0) + tl.load(top + s_c, mask=mask, other=0.0)
    else:
        total = tl.load(top, mask=mask, other=0.0) + tl.load(top + s_r, mask=mask, other=0.0)
    inverse = 1.0 / (FH * FV)  # 0.5 or 0.25: the division by the count, exactly
    if BIASED:
        # jcsample.c's biases by output column: 1, 2 (h2v2), 0, 1 (h2v1), 1 (h1v2); + 0 too (it turns -0.0 to +0.0)
        if FH == 2 and FV == 2:
            total = total + ((j & 1).to(total.dtype) + 1.0)
        elif FH == 2:
            total = total + (j & 1).to(total.dtype)
        else:
            total = total + 1.0
        total = tl.floor(total * inverse)
    else:
        total = total * inverse
    tl.store(dst + plane * d_p + i * d_r + j * d_c, total, mask=mask)


@triton.jit
def _near_far(k, n, F: tl.constexpr):
    """Output index ``k`` along a side of ``n`` inputs upsampled by ``F``:
    its nearer input and the farther one of the triangle filter (edges
    repeated); both ``k`` where the side is not upsampled."""
    if F == 2:
        near = k >> 1
        return near, tl.minimum(tl.maximum(near + 2 * (k & 1) - 1, 0), n - 1)
    return k, k


@triton.jit
def upsample_kernel(src, dst, h, w, s_p, s_r, s_c, d_p, d_r, d_c, tiles_w, tiles,
                    FH: tl.constexpr, FV: tl.constexpr, BIASED: tl.constexpr, BH: tl.constexpr, BW: tl.constexpr):
    """``(N, h, w)`` planes to ``(N, FV h, FH w)``: output ``(r, q)`` from
    ``3 x[near] + x[far]`` (edges repeated) down the columns and/or along the rows."""
    plane, r, q = _tile(tiles_w, tiles, BH, BW)
    mask = (r < FV * h) & (q < FH * w)
    base = src + plane * s_p
    i, far_i = _near_far(r, h, FV)
    j, far_j = _near_far(q, w, FH)
    if FH == 2 and FV == 2:
        # the column pass's sums at this output's column j and its neighbour far_j, then the row pass
        near = 3.0 * tl.load(base + i * s_r + j * s_c, mask=mask, other=0.0) + tl.load(base + far_i * s_r + j * s_c, mask=mask, other=0.0)
        far = 3.0 * tl.load(base + i * s_r + far_j * s_c, mask=mask, other=0.0) + tl.load(base + far_i * s_r + far_j * s_c, mask=mask, other=0.0)
        total = 3.0 * near + far
        parity = q & 1
        scale_inverse = 0.0625
        even_bias = 8.0
        odd_bias = 7.0
    else:
        total = 3.0 * tl.load(base + i * s_r + j * s_c, mask=mask, other=0.0) + tl.load(base + far_i * s_r + far_j * s_c, mask=mask, other=0.0)
        if FH == 2:
            parity = q & 1  # h2v1's biases by column
        else:
            parity = r & 1  # h1v2's by row
        scale_inverse = 0.25
        even_bias = 1.0
        odd_bias = 2.0
    if BIASED:
        total = tl.floor((total + tl.where(parity == 0, even_bias, odd_bias).to(total.dtype)) * scale_inverse)
    else:
        total = total * scale_inverse
    tl.store(dst + plane * d_p + r * d_r + q * d_c, total, mask=mask)


@triton.jit
def _pairs_adjoint(e, o, e_next, o_prev, k, n):
    """``_triangle_adjoint``'s value at ``k`` of ``n`` from its pair ``(e, o)``,
    the next pair's even and the previous pair's odd value, in its passes' order."""
    v = (e + o) * 3.0
    v = tl.where(k + 1 < n, v + e_next, v)
    v = tl.where(k > 0, v + o_prev, v)
    v = tl.where(k == 0, v + e, v)
    return tl.where(k == n - 1, v + o, v)


@triton.jit
def _line_adjoint(line, k, n, step, mask):
    """:func:`_pairs_adjoint` of the pairs at ``line`` (``2 n`` values ``step`` apart)."""
    e = tl.load(line + (2 * k) * step, mask=mask, other=0.0)
    o = tl.load(line + (2 * k + 1) * step, mask=mask, other=0.0)
    e_next = tl.load(line + (2 * k + 2) * step, mask=mask & (k + 1 < n), other=0.0)
    o_prev = tl.load(line + (2 * k - 1) * step, mask=mask & (k > 0), other=0.0)
    return _pairs_adjoint(e, o, e_next, o_prev, k, n)


@triton.jit
def upsample_adjoint_kernel(src, dst, h, w, s_p, s_r, s_c, d_p, d_r, d_c, tiles_w, tiles,
                            FH: tl.constexpr, FV: tl.constexpr, BH: tl.constexpr, BW: tl.constexpr):
    """``(N, FV h, FH w)`` gradients to ``(N, h, w)``: along the rows first
    (h2v2's four rows' values each from its own row), then down the columns."""
    plane, i, j = _tile(tiles_w, tiles, BH, BW)
    mask = (i < h) & (j < w)
    base = src + plane * s_p
    if FH == 2 and FV == 2:
        row = base + (2 * i) * s_r
        e = _line_adjoint(row, j, w, s_c, mask)
        o = _line_adjoint(row + s_r, j, w, s_c, mask)
        e_next = _line_adjoint(row + 2 * s_r, j, w, s_c, mask & (i + 1 < h))
        o_prev = _line_adjoint(row - s_r, j, w, s_c, mask & (i > 0))
        total = _pairs_adjoint(e, o, e_next, o_prev, i, h) * 0.0625
    elif FH == 2:
        total = _line_adjoint(base + i * s_r, j, w, s_c, mask) * 0.25
    else:
        total = _line_adjoint(base + j * s_c, i, h, s_r, mask) * 0.25
    tl.store(dst + plane * d_p + i * d_r + j * d_c, total, mask=mask)


@triton.jit
def downsample_adjoint_kernel(src, dst, h, w, s_p, s_r, s_c, d_p, d_r, d_c, tiles_w, tiles,
                              FH: tl.constexpr, FV: tl.constexpr, BH: tl.constexpr, BW: tl.constexpr):
    """``(N, h, w)`` gradients to ``(N, FV h, FH w)``: each divided by the
    window's size (x its exact reciprocal) and spread over the window."""
    plane, r, q = _tile(tiles_w, tiles, BH, BW)
    mask = (r < FV * h) & (q < FH * w)
    g = tl.load(src + plane * s_p + (r // FV) * s_r + (q // FH) * s_c, mask=mask, other=0.0)
    tl.store(dst + plane * d_p + r * d_r + q * d_c, g * (1.0 / (FH * FV)), mask=mask)


@triton.jit
def round_clamp_kernel(src, dst, flags, n, h, s_p, s_r, d_p, d_r, tiles, scale, shift, lo, hi, low, high,
                       HAS_SCALE: tl.constexpr, HAS_SHIFT: tl.constexpr, ROUNDED: tl.constexpr, CHECK: tl.constexpr,
                       BLOCK: tl.constexpr):
    """Lines of ``n`` contiguous values, ``h`` per plane (line ``r`` of
    plane ``p`` at ``p s_p + r s_r``): ``clamp(round(x * scale + shift), lo,
    hi)``, each step where its flag says, ``BLOCK`` values of a line per
    program. The scalars come as float32 (the wrapper checks that they are
    exact); the clamp keeps NaN and -0.0, as torch's does. ``CHECK``:
    ``flags[program]`` = 1 if a value of its tile lies outside ``[low,
    high]`` or is NaN, else 0."""
    pid = tl.program_id(0)
    line = pid // tiles
    plane = (line // h).to(tl.int64)
    row = (line % h).to(tl.int64)
    k = ((pid % tiles) * BLOCK + tl.arange(0, BLOCK)).to(tl.int64)
    mask = k < n
    v = tl.load(src + plane * s_p + row * s_r + k, mask=mask, other=0.0)
    if CHECK:
        inside = (v >= low) & (v <= high)  # false for NaN
        outside = tl.where(mask, tl.where(inside, 0, 1), 0)
        tl.store(flags + pid, tl.max(outside, axis=0))
    if HAS_SCALE:
        v = v * scale
    if HAS_SHIFT:
        v = v + shift
    if ROUNDED:
        v = _round_half_even(v)
    v = tl.where(v < lo, lo, v).to(v.dtype)
    v = tl.where(v > hi, hi, v).to(v.dtype)
    tl.store(dst + plane * d_p + row * d_r + k, v, mask=mask)


@triton.jit
def _transformed_row(x, m_ptr, i, xs1, xs2, lane, ms0, ms1, inside):
    """``T[i, v] = X[i, 0] A[v, 0] + ... + X[i, 7] A[v, 7]``, left to right:
    ``(BLOCKS, 8)`` over ``v``."""
    t = tl.load(x + i * xs1, mask=inside, other=0.0) * tl.load(m_ptr + lane * ms0)
    for j in tl.static_range(1, 8):
        t = t + tl.load(x + i * xs1 + j * xs2, mask=inside, other=0.0) * tl.load(m_ptr + lane * ms0 + j * ms1)
    return t


@triton.jit
def block_transform_kernel(x_ptr, m_ptr, out_ptr, n, xs0, xs1, xs2, ms0, ms1, BLOCKS: tl.constexpr):
    """``A X A^T`` of ``BLOCKS`` 8x8 blocks per program (block ``b`` at
    ``x_ptr + b xs0``, any strides), into contiguous ``out``: the rows'
    sums ``T``, then ``Y[u, v] = A[u, 0] T[0, v] + ... + A[u, 7] T[7, v]``."""
    block = (tl.program_id(0) * BLOCKS + tl.arange(0, BLOCKS)[:, None]).to(tl.int64)  # (BLOCKS, 1)
    lane = tl.arange(0, 8)[None, :]  # (1, 8): v
    inside = block < n
    x = x_ptr + block * xs0
    t0 = _transformed_row(x, m_ptr, 0, xs1, xs2, lane, ms0, ms1, inside)
    t1 = _transformed_row(x, m_ptr, 1, xs1, xs2, lane, ms0, ms1, inside)
    t2 = _transformed_row(x, m_ptr, 2, xs1, xs2, lane, ms0, ms1, inside)
    t3 = _transformed_row(x, m_ptr, 3, xs1, xs2, lane, ms0, ms1, inside)
    t4 = _transformed_row(x, m_ptr, 4, xs1, xs2, lane, ms0, ms1, inside)
    t5 = _transformed_row(x, m_ptr, 5, xs1, xs2, lane, ms0, ms1, inside)
    t6 = _transformed_row(x, m_ptr, 6, xs1, xs2, lane, ms0, ms1, inside)
    t7 = _transformed_row(x, m_ptr, 7, xs1, xs2, lane, ms0, ms1, inside)
    mask = inside & (lane < 8)
    for u in tl.static_range(8):
        a = m_ptr + u * ms0
        y = tl.load(a) * t0
        y = y + tl.load(a + ms1) * t1
        y = y + tl.load(a + 2 * ms1) * t2
        y = y + tl.load(a + 3 * ms1) * t3
        y = y + tl.load(a + 4 * ms1) * t4
        y = y + tl.load(a + 5 * ms1) * t5
        y = y + tl.load(a + 6 * ms1) * t6
        y = y + tl.load(a + 7 * ms1) * t7
        tl.store(out_ptr + block * 64 + u * 8 + lane, y, mask=mask)


@triton.jit
def color_kernel(x_ptr, m_ptr, o_ptr, out_ptr, pixels, tiles, xs0, xs1, xs2, ms0, ms1, ms2, os0, os1,
                 HAS_OFFSET: tl.constexpr, BLOCK: tl.constexpr):
    """``y[c] = ((M[c, 0] x[0] + M[c, 1] x[1]) + M[c, 2] x[2]) + offset[c]``
    for ``BLOCK`` pixels of one image per program; ``x`` ``(B, 3, P)`` at
    any strides, ``out`` contiguous."""
    pid = tl.program_id(0)
    b = (pid // tiles).to(tl.int64)
    p = ((pid % tiles) * BLOCK + tl.arange(0, BLOCK)).to(tl.int64)
    mask = p < pixels
    x = x_ptr + b * xs0 + p * xs2
    x0 = tl.load(x, mask=mask, other=0.0)
    x1 = tl.load(x + xs1, mask=mask, other=0.0)
    x2 = tl.load(x + 2 * xs1, mask=mask, other=0.0)
    for c in tl.static_range(3):
        m = m_ptr + b * ms0 + c * ms1
        y = tl.load(m) * x0
        y = y + tl.load(m + ms2) * x1
        y = y + tl.load(m + 2 * ms2) * x2
        if HAS_OFFSET:
            y = y + tl.load(o_ptr + b * os0 + c * os1)
        tl.store(out_ptr + (b * 3 + c) * pixels + p, y, mask=mask)
