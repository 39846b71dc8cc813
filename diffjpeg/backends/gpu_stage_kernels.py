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
  ``((M0 x0 + M1 x1) + M2 x2) + offset``;
* ``quantize_kernel``, ``quantize_adjoint_kernel``, ``fold_kernel``: the
  quantizer of float and soft mode and every mode's gradient through it,
  as ``diffjpeg/backends/_quantize.c`` computes them: the exception to
  "bit for bit" above, as there (the surrogates' exp, sine and cosine are
  not torch's; float mode's ``rint(F / Q)`` is the same bits, ``F / Q``
  correctly rounded), and the table's gradient summed per program and
  folded in order, in float64, without atomics;
* ``block_pass_kernel``, ``block_pass_adjoint_kernel``: the block pass of
  :mod:`diffjpeg.stages.dctmgr` (a block's DCT, quantizer and inverse DCT
  together, and its transpose), the transforms' and the clamp's operations
  as above and the quantizer's as ``quantize_kernel``'s, so float mode's
  pixels are the same bits as the stages one by one.

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


# ---------------------------------------------------------------- the quantizer (_quantize.c's counterpart)
# surrogates as _quantize.c numbers them (the wrapper maps rounding.py's names); constexpr,
# the only globals a kernel may read
LINEAR, POLYNOMIAL, FOURIER, SIGMOID, NOISE = (tl.constexpr(k) for k in range(5))


@triton.jit
def _divide(a, b):
    """``a / b`` correctly rounded: float32's ``div_rn`` (Triton's ``/`` is
    approximate in float32 on NVIDIA GPUs), float64's ``/`` (IEEE there)."""
    if a.dtype == tl.float64:
        out = a / b
    else:
        out = tl.math.div_rn(a, b)
    return out


@triton.jit
def _exp_nonpositive(x):
    """``exp(x)`` for ``x <= 0`` (``tl.exp``; below -87, where float32 ends, 0)."""
    return tl.where(x < -87.0, 0.0, tl.exp(tl.maximum(x, -87.0))).to(x.dtype)


@triton.jit
def _cos_sin(u, constants):
    """cos and sin of ``u 2 pi``'s value in ``u``'s dtype, as the tensor form
    takes them (the angle rounded to its dtype first): float64's from
    ``tl.cos`` and ``tl.sin``; float32's computed in float64, ``k pi/2 + r``,
    ``|r| <= pi/4``, Taylor polynomials good to float32 (as _quantize.c),
    where float32's own would lose the angle's reduction. ``constants``:
    float64 2 pi, 2 / pi, pi / 2 (a Python float in a kernel is a float32
    constant, and these are not exact in float32; float32's angle takes
    2 pi in float32, as the tensor form's product does)."""
    if u.dtype == tl.float64:
        angle = u * tl.load(constants)
        c = tl.cos(angle)
        s = tl.sin(angle)
    else:
        t = (u * 6.283185307179586).to(tl.float64)
        k = _round_half_even(t * tl.load(constants + 1))
        r = t - k * tl.load(constants + 2)
        r2 = r * r
        sr = r * (1.0 + r2 * (-1.0 / 6 + r2 * (1.0 / 120 + r2 * (-1.0 / 5040 + r2 * (1.0 / 362880)))))
        cr = 1.0 + r2 * (-0.5 + r2 * (1.0 / 24 + r2 * (-1.0 / 720 + r2 * (1.0 / 40320 + r2 * (-1.0 / 3628800)))))
        quadrant = k - 4.0 * tl.floor(k * 0.25)
        c = tl.where(quadrant == 0.0, cr, tl.where(quadrant == 1.0, -sr, tl.where(quadrant == 2.0, -cr, sr))).to(u.dtype)
        s = tl.where(quadrant == 0.0, sr, tl.where(quadrant == 1.0, cr, tl.where(quadrant == 2.0, -sr, -cr))).to(u.dtype)
    return c, s


@triton.jit
def _surrogate(u, noise, sigma, constants, KIND: tl.constexpr, TERMS: tl.constexpr, SLOPE: tl.constexpr):
    """The surrogate's value ``r(u)`` (``SLOPE`` false) or derivative
    ``r'(u)`` at ``u``, in rounding.py's steps, as _quantize.c computes them
    (the sigmoid's tanh from one exp; fourier's sines by rotation).
    ``sigma``, in ``u``'s dtype: fourier's ``s_k``, then ``s_k / (pi k)``;
    the sigmoid's ``a``, ``1 / scale``, ``4 a / scale`` (a Python float
    argument would come as float32)."""
    if KIND == POLYNOMIAL:
        r = _round_half_even(u)
        d = u - r
        if SLOPE:
            out = d * d * 3.0
        else:
            out = r + d * d * d
    elif KIND == SIGMOID:
        f = tl.floor(u)
        z = ((u - f) - 0.5) * tl.load(sigma)
        e = _exp_nonpositive(tl.abs(z) * -2.0)
        if SLOPE:
            out = (tl.load(sigma + 2) * e) / ((1.0 + e) * (1.0 + e))
        else:
            t = ((1.0 - e) * tl.load(sigma + 1)) / (1.0 + e)
            out = (f + 0.5) + tl.where(z < 0, t * -1.0, t)
    elif KIND == FOURIER:
        cos_t, sin_t = _cos_sin(u, constants)
        c1 = cos_t * -1.0
        s1 = sin_t * -1.0
        c = c1
        s = s1
        if SLOPE:
            total = c1 * tl.load(sigma)
        else:
            total = s1 * tl.load(sigma + TERMS)
        for k in tl.static_range(2, TERMS + 1):
            c_next = c * c1 - s * s1
            s = s * c1 + c * s1
            c = c_next
            if SLOPE:
                total = total + c * tl.load(sigma + k - 1)
            else:
                total = total + s * tl.load(sigma + TERMS + k - 1)
        if SLOPE:
            out = total * 2.0 + 1.0
        else:
            out = total + u
    elif KIND == NOISE:
        if SLOPE:
            out = u * 0.0 + 1.0
        else:
            out = u + (noise - 0.5)
    else:
        if SLOPE:
            out = u * 0.0 + 1.0
        else:
            out = u
    return out.to(u.dtype)


@triton.jit
def _fourier_both(u, sigma, constants, TERMS: tl.constexpr):
    """:func:`_surrogate`'s fourier value and derivative at ``u`` together,
    each by the same operations as there (one angle, one rotation)."""
    cos_t, sin_t = _cos_sin(u, constants)
    c1 = cos_t * -1.0
    s1 = sin_t * -1.0
    c = c1
    s = s1
    slope = c1 * tl.load(sigma)
    value = s1 * tl.load(sigma + TERMS)
    for k in tl.static_range(2, TERMS + 1):
        c_next = c * c1 - s * s1
        s = s * c1 + c * s1
        c = c_next
        slope = slope + c * tl.load(sigma + k - 1)
        value = value + s * tl.load(sigma + TERMS + k - 1)
    return (value + u).to(u.dtype), (slope * 2.0 + 1.0).to(u.dtype)


@triton.jit
def quantize_kernel(f, q, v, noise, sigma, constants, m, s_f, s_q, s_v, s_n, chunks,
                    SOFT: tl.constexpr, KIND: tl.constexpr, TERMS: tl.constexpr, SLOPE: tl.constexpr, BLOCKS: tl.constexpr):
    """Rows of ``m`` coefficients (``BLOCKS`` 8x8 blocks a program, row
    ``chunks`` programs long): ``u = F / Q`` (correctly rounded,
    :func:`_divide`), then ``rint(u)`` or, ``SOFT``, the surrogate's value,
    or, ``SLOPE``, its derivative ``r'(u)``; ``Q`` is the row's 64 table entries."""
    pid = tl.program_id(0)
    row = (pid // chunks).to(tl.int64)
    e = ((pid % chunks) * (BLOCKS * 64) + tl.arange(0, BLOCKS)[:, None] * 64 + tl.arange(0, 64)[None, :]).to(tl.int64)
    mask = e < m
    x = tl.load(f + row * s_f + e, mask=mask, other=0.0)
    table = tl.load(q + row * s_q + tl.arange(0, 64))[None, :]
    u = _divide(x, table)
    if SLOPE:
        out = _surrogate(u, u, sigma, constants, KIND, TERMS, True)
    elif SOFT:
        drawn = u
        if KIND == NOISE:
            drawn = tl.load(noise + row * s_n + e, mask=mask, other=0.0)
        out = _surrogate(u, drawn, sigma, constants, KIND, TERMS, False)
    else:
        out = _round_half_even(u)
    tl.store(v + row * s_v + e, out, mask=mask)


@triton.jit
def quantize_adjoint_kernel(g, f, q, gf, partials, sigma, constants, m, s_g, s_f, s_q, s_o, chunks,
                            KIND: tl.constexpr, TERMS: tl.constexpr, SUMS: tl.constexpr, BLOCKS: tl.constexpr):
    """:func:`quantize_kernel`'s gradients: ``gf = (g r'(u)) (1 / Q)`` and,
    with ``SUMS``, each program's sums over its blocks of
    ``-(g r'(u)) (u (1 / Q))`` into ``partials[program]`` (64 float64
    values): no atomics, one order whatever the launch."""
    pid = tl.program_id(0)
    row = (pid // chunks).to(tl.int64)
    e = ((pid % chunks) * (BLOCKS * 64) + tl.arange(0, BLOCKS)[:, None] * 64 + tl.arange(0, 64)[None, :]).to(tl.int64)
    mask = e < m
    x = tl.load(f + row * s_f + e, mask=mask, other=0.0)
    grad = tl.load(g + row * s_g + e, mask=mask, other=0.0)
    table = tl.load(q + row * s_q + tl.arange(0, 64))[None, :]
    reciprocal = _divide(table * 0.0 + 1.0, table)
    u = _divide(x, table)
    if KIND == LINEAR or KIND == NOISE:
        gu = grad
    else:
        gu = grad * _surrogate(u, u, sigma, constants, KIND, TERMS, True)
    tl.store(gf + row * s_o + e, (gu * reciprocal).to(x.dtype), mask=mask)
    if SUMS:
        term = tl.where(mask, (gu * -1.0) * (u * reciprocal), 0.0).to(tl.float64)
        tl.store(partials + pid.to(tl.int64) * 64 + tl.arange(0, 64), tl.sum(term, axis=0))


@triton.jit
def fold_kernel(partials, out, count, s_out):
    """``out[row]`` = the ``count`` partial sums of ``row`` (64 each) added
    in order, in float64, then rounded once to ``out``'s dtype."""
    row = tl.program_id(0).to(tl.int64)
    k = tl.arange(0, 64)
    total = tl.zeros((64,), dtype=tl.float64)
    for c in range(count):
        total += tl.load(partials + (row * count + c) * 64 + k)
    tl.store(out + row * s_out + k, total.to(out.dtype.element_ty))


# ---------------------------------------------------------------- the block pass (_quantize.c's block_forward and block_backward)
@triton.jit
def _pass_rows(x, m, i, s_r, lane, inside, SHIFT: tl.constexpr):
    """Row ``i`` of ``X A^T`` for the blocks at ``x`` (rows ``s_r`` apart,
    columns contiguous), ``A`` at ``m`` (row-major): ``T[i, v] = X[i, 0]
    A[v, 0] + ... + X[i, 7] A[v, 7]`` left to right, each ``X`` less 128
    first where ``SHIFT`` (the level shift). ``(BLOCKS, 8)`` over ``v``."""
    value = tl.load(x + i * s_r, mask=inside, other=0.0)
    if SHIFT:
        value = value - 128.0
    t = value * tl.load(m + lane * 8)
    for j in tl.static_range(1, 8):
        value = tl.load(x + i * s_r + j, mask=inside, other=0.0)
        if SHIFT:
            value = value - 128.0
        t = t + value * tl.load(m + lane * 8 + j)
    return t


@triton.jit
def _row_pass(x, m, s_r, lane, inside, SHIFT: tl.constexpr):
    """The transform's first pass for the blocks at ``x``: its eight rows, :func:`_pass_rows` each."""
    return (_pass_rows(x, m, 0, s_r, lane, inside, SHIFT), _pass_rows(x, m, 1, s_r, lane, inside, SHIFT),
            _pass_rows(x, m, 2, s_r, lane, inside, SHIFT), _pass_rows(x, m, 3, s_r, lane, inside, SHIFT),
            _pass_rows(x, m, 4, s_r, lane, inside, SHIFT), _pass_rows(x, m, 5, s_r, lane, inside, SHIFT),
            _pass_rows(x, m, 6, s_r, lane, inside, SHIFT), _pass_rows(x, m, 7, s_r, lane, inside, SHIFT))


@triton.jit
def _columns(a, t0, t1, t2, t3, t4, t5, t6, t7, u):
    """Row ``u`` of ``A T``: ``A[u, 0] T[0, v] + ... + A[u, 7] T[7, v]``,
    left to right (``A`` at ``a``, row-major)."""
    y = tl.load(a + u * 8) * t0
    y = y + tl.load(a + u * 8 + 1) * t1
    y = y + tl.load(a + u * 8 + 2) * t2
    y = y + tl.load(a + u * 8 + 3) * t3
    y = y + tl.load(a + u * 8 + 4) * t4
    y = y + tl.load(a + u * 8 + 5) * t5
    y = y + tl.load(a + u * 8 + 6) * t6
    y = y + tl.load(a + u * 8 + 7) * t7
    return y


@triton.jit
def _lane(row, lane, j):
    """Lane ``j`` of each block's row ``(BLOCKS, 8)``, as ``(BLOCKS, 1)``:
    the sum of it and seven +0.0s, which is that value (a -0.0 comes back
    +0.0, which no later sum, product or clamp of the pass tells apart)."""
    return tl.sum(tl.where(lane == j, row, 0.0), axis=1, keep_dims=True)


@triton.jit
def _held_rows(d, lane, i, a):
    """Row ``i`` of ``D A^T`` for a block held in registers as its rows
    ``d`` (``(BLOCKS, 8)``): ``D[i, 0] A[v, 0] + ... + D[i, 7] A[v, 7]``, left to right."""
    t = _lane(d, lane, 0) * tl.load(a + lane * 8)
    for j in tl.static_range(1, 8):
        t = t + _lane(d, lane, j) * tl.load(a + lane * 8 + j)
    return t


@triton.jit
def _block_of(pid, n, bx, per_plane, BLOCKS: tl.constexpr):
    """This program's blocks (``(BLOCKS, 1)``, int64): their number, plane,
    block row and column, and which exist."""
    block = (pid * BLOCKS + tl.arange(0, BLOCKS)[:, None]).to(tl.int64)
    plane = block // per_plane
    rest = block % per_plane
    return block, plane, rest // bx, rest % bx, block < n


@triton.jit
def _inverse_store(d0, d1, d2, d3, d4, d5, d6, d7, lane, ct, out, rounded_clamp: tl.constexpr, ROUNDED: tl.constexpr,
                   s_r, mask):
    """``C^T D C`` of the blocks held as rows ``d0``..``d7``, into the
    blocks at ``out`` (rows ``s_r`` apart): with ``rounded_clamp``, + 128,
    rounded where ``ROUNDED``, clamped to [0, 255] (the inverse DCT's
    output, :func:`diffjpeg.stages.dct.idct`)."""
    t0 = _held_rows(d0, lane, 0, ct)
    t1 = _held_rows(d1, lane, 1, ct)
    t2 = _held_rows(d2, lane, 2, ct)
    t3 = _held_rows(d3, lane, 3, ct)
    t4 = _held_rows(d4, lane, 4, ct)
    t5 = _held_rows(d5, lane, 5, ct)
    t6 = _held_rows(d6, lane, 6, ct)
    t7 = _held_rows(d7, lane, 7, ct)
    for u in tl.static_range(8):
        y = _columns(ct, t0, t1, t2, t3, t4, t5, t6, t7, u)
        if rounded_clamp:
            y = y + 128.0
            if ROUNDED:
                y = _round_half_even(y)
            y = tl.where(y < 0.0, 0.0, y).to(y.dtype)
            y = tl.where(y > 255.0, 255.0, y).to(y.dtype)
        tl.store(out + u * s_r + lane, y, mask=mask)


@triton.jit
def _quantized_row(f, u, table, slopes, noise, block, lane, mask, sigma, constants,
                   SOFT: tl.constexpr, KIND: tl.constexpr, TERMS: tl.constexpr, SLOPED: tl.constexpr):
    """Row ``u`` of ``v Q``, ``v`` the quantizer's value at ``F / Q`` (row
    ``f``), saving ``r'(F / Q)`` where ``SLOPED``; ``table``: the blocks'
    tables (``(BLOCKS, 1)`` pointers)."""
    q = tl.load(table + u * 8 + lane, mask=mask, other=1.0)
    x = _divide(f, q)
    at = block * 64 + u * 8 + lane
    if SOFT and SLOPED and KIND == FOURIER:  # value and slope from one rotation (float64's two spilled on sm_90)
        v, slope = _fourier_both(x, sigma, constants, TERMS)
        tl.store(slopes + at, slope, mask=mask)
    else:
        if SLOPED:
            tl.store(slopes + at, _surrogate(x, x, sigma, constants, KIND, TERMS, True), mask=mask)
        if SOFT:
            drawn = x
            if KIND == NOISE:
                drawn = tl.load(noise + at, mask=mask, other=0.0)
            v = _surrogate(x, drawn, sigma, constants, KIND, TERMS, False)
        else:
            v = _round_half_even(x)
    return v * q


@triton.jit
def block_pass_kernel(src, dst, q, slopes, noise, c, ct, sigma, constants, n, bx, per_plane, s_p, s_r, d_p, d_r, s_q,
                      SOFT: tl.constexpr, KIND: tl.constexpr, TERMS: tl.constexpr, SLOPED: tl.constexpr, BLOCKS: tl.constexpr):
    """``BLOCKS`` 8x8 blocks of ``(P, 8 BY, 8 BX)`` planes a program (rows
    ``s_r`` apart, columns contiguous), samples to samples: ``F = C (X -
    128) C^T``, ``v = rint(F / Q)`` or (``SOFT``) ``r(F / Q)``, ``r'(F / Q)``
    into ``slopes`` where ``SLOPED`` (``(P, BY, BX, 64)`` contiguous, as
    ``noise``), ``clamp(C^T (v Q) C + 128)``, rounded first in float mode.
    ``dst`` may be ``src``: every program reads its blocks whole before the
    barrier and writes them after it."""
    block, plane, i, j, inside = _block_of(tl.program_id(0), n, bx, per_plane, BLOCKS)
    lane = tl.arange(0, 8)[None, :]
    mask = inside & (lane < 8)
    x = src + plane * s_p + (8 * i) * s_r + 8 * j
    t0, t1, t2, t3, t4, t5, t6, t7 = _row_pass(x, c, s_r, lane, inside, True)
    tl.debug_barrier()  # the blocks are read: dst may be src
    table = q + plane * s_q
    d0 = _quantized_row(_columns(c, t0, t1, t2, t3, t4, t5, t6, t7, 0), 0, table, slopes, noise, block, lane, mask, sigma, constants, SOFT, KIND, TERMS, SLOPED)
    d1 = _quantized_row(_columns(c, t0, t1, t2, t3, t4, t5, t6, t7, 1), 1, table, slopes, noise, block, lane, mask, sigma, constants, SOFT, KIND, TERMS, SLOPED)
    d2 = _quantized_row(_columns(c, t0, t1, t2, t3, t4, t5, t6, t7, 2), 2, table, slopes, noise, block, lane, mask, sigma, constants, SOFT, KIND, TERMS, SLOPED)
    d3 = _quantized_row(_columns(c, t0, t1, t2, t3, t4, t5, t6, t7, 3), 3, table, slopes, noise, block, lane, mask, sigma, constants, SOFT, KIND, TERMS, SLOPED)
    d4 = _quantized_row(_columns(c, t0, t1, t2, t3, t4, t5, t6, t7, 4), 4, table, slopes, noise, block, lane, mask, sigma, constants, SOFT, KIND, TERMS, SLOPED)
    d5 = _quantized_row(_columns(c, t0, t1, t2, t3, t4, t5, t6, t7, 5), 5, table, slopes, noise, block, lane, mask, sigma, constants, SOFT, KIND, TERMS, SLOPED)
    d6 = _quantized_row(_columns(c, t0, t1, t2, t3, t4, t5, t6, t7, 6), 6, table, slopes, noise, block, lane, mask, sigma, constants, SOFT, KIND, TERMS, SLOPED)
    d7 = _quantized_row(_columns(c, t0, t1, t2, t3, t4, t5, t6, t7, 7), 7, table, slopes, noise, block, lane, mask, sigma, constants, SOFT, KIND, TERMS, SLOPED)
    _inverse_store(d0, d1, d2, d3, d4, d5, d6, d7, lane, ct, dst + plane * d_p + (8 * i) * d_r + 8 * j, True, not SOFT, d_r, mask)


@triton.jit
def _gradient_row(d, u, table, slopes, block, lane, mask, SLOPED: tl.constexpr):
    """Row ``u`` of ``((D Q) r') (1 / Q)``: the quantizer's transpose, as ``quantize_adjoint_kernel``'s."""
    q = tl.load(table + u * 8 + lane, mask=mask, other=1.0)
    g = d * q
    if SLOPED:
        g = g * tl.load(slopes + block * 64 + u * 8 + lane, mask=mask, other=0.0)
    return g * _divide(q * 0.0 + 1.0, q)


@triton.jit
def block_pass_adjoint_kernel(src, dst, q, slopes, c, ct, n, bx, per_plane, s_p, s_r, d_p, d_r, s_q,
                              SLOPED: tl.constexpr, BLOCKS: tl.constexpr):
    """:func:`block_pass_kernel`'s transpose from the gradient of its
    output (``src``) to that of its input (``dst``, which may be ``src``):
    ``C G C^T``, x Q, x the saved ``r'`` where ``SLOPED``, x 1 / Q, then
    ``C^T (.) C``."""
    block, plane, i, j, inside = _block_of(tl.program_id(0), n, bx, per_plane, BLOCKS)
    lane = tl.arange(0, 8)[None, :]
    mask = inside & (lane < 8)
    x = src + plane * s_p + (8 * i) * s_r + 8 * j
    t0, t1, t2, t3, t4, t5, t6, t7 = _row_pass(x, c, s_r, lane, inside, False)
    tl.debug_barrier()  # the blocks are read: dst may be src
    table = q + plane * s_q
    d0 = _gradient_row(_columns(c, t0, t1, t2, t3, t4, t5, t6, t7, 0), 0, table, slopes, block, lane, mask, SLOPED)
    d1 = _gradient_row(_columns(c, t0, t1, t2, t3, t4, t5, t6, t7, 1), 1, table, slopes, block, lane, mask, SLOPED)
    d2 = _gradient_row(_columns(c, t0, t1, t2, t3, t4, t5, t6, t7, 2), 2, table, slopes, block, lane, mask, SLOPED)
    d3 = _gradient_row(_columns(c, t0, t1, t2, t3, t4, t5, t6, t7, 3), 3, table, slopes, block, lane, mask, SLOPED)
    d4 = _gradient_row(_columns(c, t0, t1, t2, t3, t4, t5, t6, t7, 4), 4, table, slopes, block, lane, mask, SLOPED)
    d5 = _gradient_row(_columns(c, t0, t1, t2, t3, t4, t5, t6, t7, 5), 5, table, slopes, block, lane, mask, SLOPED)
    d6 = _gradient_row(_columns(c, t0, t1, t2, t3, t4, t5, t6, t7, 6), 6, table, slopes, block, lane, mask, SLOPED)
    d7 = _gradient_row(_columns(c, t0, t1, t2, t3, t4, t5, t6, t7, 7), 7, table, slopes, block, lane, mask, SLOPED)
    _inverse_store(d0, d1, d2, d3, d4, d5, d6, d7, lane, ct, dst + plane * d_p + (8 * i) * d_r + 8 * j, False, False, d_r, mask)
