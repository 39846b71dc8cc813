"""diffjpeg.stages.dct against libjpeg-turbo's jpeg_fdct_islow (jfdctint.c) and its
inverse, written out here as plain Python integer code: jpeg_idct_islow
(jidctint.c) with the range limit of the x86-64 SIMD inverse (pass-1 results
saturated to int16, packssdw; outputs to int8, packsswb; + 128), and that
SIMD inverse itself (jidctint-avx2.asm) step by step, with its 16-bit sums;
the two agree wherever no 16-bit step wraps. Pillow's decoding of crafted
files is the ground truth for the SIMD form (here and tests/codec/test_hostile.py)."""
import math

import numpy as np
import pytest
import torch

from diffjpeg.stages.dct import dct_matrix, dequantized_integers, fdct, fdct_islow, idct, idct_islow, wrap_int16

CONST_BITS, PASS1_BITS = 13, 2
FIX_0_298631336, FIX_0_390180644, FIX_0_541196100, FIX_0_765366865 = 2446, 3196, 4433, 6270
FIX_0_899976223, FIX_1_175875602, FIX_1_501321110, FIX_1_847759065 = 7373, 9633, 12299, 15137
FIX_1_961570560, FIX_2_053119869, FIX_2_562915447, FIX_3_072711026 = 16069, 16819, 20995, 25172


def test_fix_constants_are_round_of_c_times_2_13():
    for name, value in list(globals().items()):
        if name.startswith("FIX_"):
            assert value == round(float(name[4:].replace("_", ".")) * 2**CONST_BITS), name


def DESCALE(x, n):
    return (x + (1 << (n - 1))) >> n


def fdct_1d(d, first_pass):
    """One row (pass 1) or column (pass 2) of jpeg_fdct_islow."""
    tmp0, tmp7 = d[0] + d[7], d[0] - d[7]
    tmp1, tmp6 = d[1] + d[6], d[1] - d[6]
    tmp2, tmp5 = d[2] + d[5], d[2] - d[5]
    tmp3, tmp4 = d[3] + d[4], d[3] - d[4]
    tmp10, tmp13, tmp11, tmp12 = tmp0 + tmp3, tmp0 - tmp3, tmp1 + tmp2, tmp1 - tmp2
    out = [0] * 8
    if first_pass:
        out[0], out[4] = (tmp10 + tmp11) << PASS1_BITS, (tmp10 - tmp11) << PASS1_BITS
        n = CONST_BITS - PASS1_BITS
    else:
        out[0], out[4] = DESCALE(tmp10 + tmp11, PASS1_BITS), DESCALE(tmp10 - tmp11, PASS1_BITS)
        n = CONST_BITS + PASS1_BITS
    z1 = (tmp12 + tmp13) * FIX_0_541196100
    out[2] = DESCALE(z1 + tmp13 * FIX_0_765366865, n)
    out[6] = DESCALE(z1 + tmp12 * -FIX_1_847759065, n)
    z1, z2, z3, z4 = tmp4 + tmp7, tmp5 + tmp6, tmp4 + tmp6, tmp5 + tmp7
    z5 = (z3 + z4) * FIX_1_175875602
    tmp4, tmp5 = tmp4 * FIX_0_298631336, tmp5 * FIX_2_053119869
    tmp6, tmp7 = tmp6 * FIX_3_072711026, tmp7 * FIX_1_501321110
    z1, z2 = z1 * -FIX_0_899976223, z2 * -FIX_2_562915447
    z3, z4 = z3 * -FIX_1_961570560 + z5, z4 * -FIX_0_390180644 + z5
    out[7] = DESCALE(tmp4 + z1 + z3, n)
    out[5] = DESCALE(tmp5 + z2 + z4, n)
    out[3] = DESCALE(tmp6 + z2 + z3, n)
    out[1] = DESCALE(tmp7 + z1 + z4, n)
    return out


def reference_fdct(block):
    """jpeg_fdct_islow on 8x8 level-shifted samples (lists): rows, then columns."""
    rows = [fdct_1d(r, True) for r in block]
    columns = [fdct_1d([rows[i][j] for i in range(8)], False) for j in range(8)]
    return [[columns[j][i] for j in range(8)] for i in range(8)]


def idct_1d(x, shift):
    """One column (pass 1, shift 11) or row (pass 2, shift 18) of jpeg_idct_islow, before the range limit."""
    if all(v == 0 for v in x[1:]):  # the shortcuts for AC terms all zero
        dc = x[0] << PASS1_BITS if shift == CONST_BITS - PASS1_BITS else DESCALE(x[0], PASS1_BITS + 3)
        return [dc] * 8
    z2, z3 = x[2], x[6]
    z1 = (z2 + z3) * FIX_0_541196100
    tmp2, tmp3 = z1 + z3 * -FIX_1_847759065, z1 + z2 * FIX_0_765366865
    tmp0, tmp1 = (x[0] + x[4]) << CONST_BITS, (x[0] - x[4]) << CONST_BITS
    tmp10, tmp13, tmp11, tmp12 = tmp0 + tmp3, tmp0 - tmp3, tmp1 + tmp2, tmp1 - tmp2
    tmp0, tmp1, tmp2, tmp3 = x[7], x[5], x[3], x[1]
    z1, z2, z3, z4 = tmp0 + tmp3, tmp1 + tmp2, tmp0 + tmp2, tmp1 + tmp3
    z5 = (z3 + z4) * FIX_1_175875602
    tmp0, tmp1 = tmp0 * FIX_0_298631336, tmp1 * FIX_2_053119869
    tmp2, tmp3 = tmp2 * FIX_3_072711026, tmp3 * FIX_1_501321110
    z1, z2 = z1 * -FIX_0_899976223, z2 * -FIX_2_562915447
    z3, z4 = z3 * -FIX_1_961570560 + z5, z4 * -FIX_0_390180644 + z5
    tmp0 += z1 + z3
    tmp1 += z2 + z4
    tmp2 += z2 + z3
    tmp3 += z1 + z4
    out = [tmp10 + tmp3, tmp11 + tmp2, tmp12 + tmp1, tmp13 + tmp0, tmp13 - tmp0, tmp12 - tmp1, tmp11 - tmp2, tmp10 - tmp3]
    return [DESCALE(v, shift) for v in out]


def saturate(v, lo, hi):
    return min(hi, max(lo, v))


def reference_idct_c(block):
    """jpeg_idct_islow on 8x8 dequantized coefficients (lists) with the SIMD range limit."""
    columns = [idct_1d([block[i][j] for i in range(8)], CONST_BITS - PASS1_BITS) for j in range(8)]
    work = [[saturate(columns[j][i], -32768, 32767) for j in range(8)] for i in range(8)]  # packssdw
    rows = [idct_1d(r, CONST_BITS + PASS1_BITS + 3) for r in work]
    return [[saturate(v, -128, 127) + 128 for v in r] for r in rows]  # packsswb, + CENTERJSAMPLE


def w16(x):
    """A 16-bit register's value: x modulo 2**16 in [-32768, 32767]."""
    return (x + 32768) % 65536 - 32768


def dodct(x, shift):
    """jidctint-avx2.asm's DODCT on 8 int16 inputs: pmaddwd pairs (exact),
    paddw/psubw for in0 +- in4, z3 = in7 + in3, z4 = in5 + in1 (16-bit),
    the rest 32-bit; DESCALE, then packssdw."""
    in0, in1, in2, in3, in4, in5, in6, in7 = x
    tmp3 = in2 * (FIX_0_541196100 + FIX_0_765366865) + in6 * FIX_0_541196100
    tmp2 = in2 * FIX_0_541196100 + in6 * (FIX_0_541196100 - FIX_1_847759065)
    tmp0, tmp1 = w16(in0 + in4) << CONST_BITS, w16(in0 - in4) << CONST_BITS
    tmp10, tmp13, tmp11, tmp12 = tmp0 + tmp3, tmp0 - tmp3, tmp1 + tmp2, tmp1 - tmp2
    z3, z4 = w16(in7 + in3), w16(in5 + in1)
    z3, z4 = (z3 * (FIX_1_175875602 - FIX_1_961570560) + z4 * FIX_1_175875602,
              z3 * FIX_1_175875602 + z4 * (FIX_1_175875602 - FIX_0_390180644))
    tmp0 = in7 * (FIX_0_298631336 - FIX_0_899976223) + in1 * -FIX_0_899976223 + z3
    tmp1 = in5 * (FIX_2_053119869 - FIX_2_562915447) + in3 * -FIX_2_562915447 + z4
    tmp2 = in5 * -FIX_2_562915447 + in3 * (FIX_3_072711026 - FIX_2_562915447) + z3
    tmp3 = in7 * -FIX_0_899976223 + in1 * (FIX_1_501321110 - FIX_0_899976223) + z4
    out = [tmp10 + tmp3, tmp11 + tmp2, tmp12 + tmp1, tmp13 + tmp0, tmp13 - tmp0, tmp12 - tmp1, tmp11 - tmp2, tmp10 - tmp3]
    assert all(abs(v) < 2**31 - 2**17 for v in out)  # int32 holds them
    return [saturate(DESCALE(v, shift), -32768, 32767) for v in out]


def reference_idct(block, quantized=None):
    """jsimd_idct_islow_avx2 on 8x8 dequantized coefficients (lists), which
    pmullw has already taken modulo 2**16: pass 1 on columns, or, when rows
    1-7 of the quantized block are zero, row 0 << 2 in 16 bits (psllw);
    pass 2 on rows (no shortcut); packsswb; + 128."""
    block = [[w16(v) for v in row] for row in block]
    rows_1_7 = (quantized or block)[1:]
    if not any(any(row) for row in rows_1_7):
        work = [[w16(v << PASS1_BITS) for v in block[0]] for _ in range(8)]
    else:
        columns = [dodct([block[i][j] for i in range(8)], CONST_BITS - PASS1_BITS) for j in range(8)]
        work = [[columns[j][i] for j in range(8)] for i in range(8)]
    rows = [dodct(r, CONST_BITS + PASS1_BITS + 3) for r in work]
    return [[saturate(v, -128, 127) + 128 for v in r] for r in rows]


# ------------------------------------------------------------------ blocks
def sample_blocks():
    """Level-shifted sample blocks: extremes, patterns, random."""
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[0:8, 0:8]
    blocks = [
        np.zeros((8, 8), int), np.full((8, 8), 255), np.full((8, 8), 128), np.full((8, 8), 1),
        (yy + xx) % 2 * 255, (1 - (yy + xx) % 2) * 255,  # checkerboards
        (yy // 4 + xx // 4) % 2 * 255, xx % 2 * 255, yy % 2 * 255,  # coarse checker, stripes
        xx * 255 // 7, yy * 36,  # ramps
    ]
    blocks += list(rng.integers(0, 256, (150, 8, 8)))
    blocks += list(rng.integers(0, 2, (50, 8, 8)) * 255)
    return np.array(blocks) - 128


def coefficient_blocks():
    """Dequantized coefficient blocks within int16, typical to extreme."""
    rng = np.random.default_rng(4)
    blocks = [np.zeros((8, 8), int)]
    for value in (1, -1, 1016, -1024, 2047, 32767, -32768):
        for position in ((0, 0), (0, 1), (1, 0), (7, 7), (4, 0), (3, 5)):
            b = np.zeros((8, 8), int)
            b[position] = value
            blocks.append(b)
    blocks += [np.full((8, 8), v) for v in (32767, -32768, 1000, -1000)]
    yy, xx = np.mgrid[0:8, 0:8]
    blocks += [((yy + xx) % 2 * 2 - 1) * v for v in (100, 4000, 32767)]
    for scale in (4, 64, 1024, 32767):
        blocks += list(rng.integers(-scale, scale + 1, (40, 8, 8)))
    # sparse, as quantization leaves them: the column and row shortcuts
    sparse = rng.integers(-600, 601, (60, 8, 8)) * (rng.random((60, 8, 8)) < 0.1)
    sparse[:, 0, 0] = rng.integers(-1024, 1017, 60)
    blocks += list(sparse)
    return np.clip(np.array(blocks), -32768, 32767)


def test_fdct_islow_equals_jfdctint():
    blocks = sample_blocks()
    mine = fdct_islow(torch.from_numpy(blocks).to(torch.int32))
    assert mine.dtype == torch.int32
    for b, m in zip(blocks.tolist(), mine.tolist()):
        assert m == reference_fdct(b), b


def test_fdct_islow_known_values():
    """The DC of a flat block is 64 times its level (8 times F(0, 0) = 8 * 8 * level)."""
    for level in (-128, -1, 0, 1, 127):
        out = fdct_islow(torch.full((8, 8), level, dtype=torch.int32))
        assert out[0, 0].item() == 64 * level and not out.flatten()[1:].any()


def test_idct_islow_equals_the_simd_inverse():
    blocks = coefficient_blocks()
    mine = idct_islow(torch.from_numpy(blocks).to(torch.int32))
    assert mine.dtype == torch.int32
    for b, m in zip(blocks.tolist(), mine.tolist()):
        assert m == reference_idct(b), b


def test_c_and_simd_inverses_agree_where_no_16_bit_step_wraps():
    """Dequantized values within 8191 and pass-1 results within 16383: the
    matrix passes' domain, where the SIMD inverse is jidctint.c's."""
    blocks = coefficient_blocks()
    small = blocks[np.abs(blocks).max(axis=(1, 2)) <= 8191]
    assert len(small) > 150
    agree = 0
    for b in small.tolist():
        columns = [idct_1d([b[i][j] for i in range(8)], CONST_BITS - PASS1_BITS) for j in range(8)]
        if max(abs(saturate(v, -32768, 32767)) for col in columns for v in col) <= 16383:
            assert reference_idct_c(b) == reference_idct(b), b
            agree += 1
    assert agree > 150


def test_idct_islow_int32_sums_at_their_bound():
    """Every output of a pass at its largest magnitude: each column of the
    block carries the signs of one row of the pass's matrix, times 32767 (the
    butterflies' int32 bound)."""
    blocks = []
    for sign in (1, -1):
        b = [[0] * 8 for _ in range(8)]
        for k in range(8):  # column k maximizes output k: input j has the sign of cos((2k + 1) j pi / 16)
            for j in range(8):
                positive = sign * math.cos((2 * k + 1) * j * math.pi / 16) > 0
                b[j][k] = 32767 if positive else -32768
        blocks.append(b)
    mine = idct_islow(torch.tensor(blocks, dtype=torch.int32))
    assert mine.tolist() == [reference_idct(b) for b in blocks]


def test_idct_islow_takes_values_beyond_int16_modulo_2_16():
    """Products beyond int16 (hostile files) are what pmullw leaves of them."""
    rng = np.random.default_rng(5)
    blocks = list(rng.integers(-(2**35), 2**35 + 1, (20, 8, 8)))
    blocks += list(rng.integers(-(2**20), 2**20 + 1, (20, 8, 8)))
    blocks += [np.full((8, 8), 2**35), np.full((8, 8), -(2**35))]
    b = np.zeros((8, 8), np.int64)
    b[0, 0] = 40000  # DC only: the shortcut, 40000 is -25536 in 16 bits
    blocks.append(b)
    blocks = np.array(blocks, dtype=np.int64)
    mine = idct_islow(torch.from_numpy(blocks))
    for b, m in zip(blocks.tolist(), mine.tolist()):
        assert m == reference_idct(b), b


def test_the_shortcut_follows_the_quantized_block():
    """Rows 1-7 quantized nonzero but dequantized to 0 modulo 2**16: no
    shortcut, so a DC beyond 8191 saturates instead of wrapping (Pillow's
    pixels: NO_SHORTCUT below)."""
    deq = torch.zeros(8, 8, dtype=torch.int32)
    deq[0, 0] = 10000
    quantized = torch.zeros(8, 8, dtype=torch.int32)
    quantized[0, 0], quantized[1, 0] = 500, 512  # 512 * 128 = 65536: 0 in 16 bits
    full = idct_islow(deq, quantized=quantized).tolist()
    assert full == reference_idct(deq.tolist(), quantized.tolist()) == [[255] * 8] * 8
    assert idct_islow(deq).tolist() == reference_idct(deq.tolist()) == [[0] * 8] * 8


def test_dequantized_integers_wrap_as_pmullw():
    assert dequantized_integers(torch.tensor([2.5, -3.5, 32767.0])).tolist() == [2, -4, 32767]
    out = dequantized_integers(torch.tensor([32768.0, 2.0**40, -(2.0**40) - 3, 65536.0 * 7 + 9]))
    assert out.dtype == torch.int32 and out.tolist() == [-32768, 0, 0, 9]


# Blocks of dequantized coefficients within int16 on which libjpeg-turbo's SIMD
# inverse wraps, and what Pillow decodes them to.
DC_ONLY = {(0, 0): 10000}  # << 2 is 40000: wraps to -25536
DC_ONLY_PIXELS = [[0] * 8] * 8
DC_AND_4_0 = {(0, 0): 20000, (4, 0): 20000}  # in0 + in4 = 40000 wraps
DC_AND_4_0_PIXELS = [[v] * 8 for v in (0, 128, 128, 0, 0, 128, 128, 0)]


def block(entries):
    b = np.zeros((8, 8), int)
    for position, value in entries.items():
        b[position] = value
    return b


# Quantized DC 500 and (1, 0) 512 under table entries 20 and 128: 512 * 128
# is 0 in 16 bits, but the quantized block has a nonzero row 1, so pass 1
# takes no shortcut and the DC's 40000 saturates.
NO_SHORTCUT = {(0, 0): 500, (1, 0): 512}
NO_SHORTCUT_TABLE = {(0, 0): 20, (1, 0): 128}
NO_SHORTCUT_PIXELS = [[255] * 8] * 8


def pillow_pixels_of(tmp_path, quantized, table):
    """A one-block grayscale file with these quantized coefficients and
    table, written by libjpeg (jpeglib), as Pillow decodes it."""
    jpeglib = pytest.importorskip("jpeglib")
    from PIL import Image

    base = tmp_path / "base.jpg"
    jpeglib.from_spatial(np.full((8, 8, 1), 128, np.uint8)).write_spatial(str(base), qt=50)
    image = jpeglib.read_dct(str(base))
    image.qt = table.reshape(image.qt.shape).astype(image.qt.dtype)
    image.Y = quantized.reshape(image.Y.shape).astype(image.Y.dtype)
    path = tmp_path / "x.jpg"
    image.write_dct(str(path))
    return np.asarray(Image.open(path)).tolist()


def test_pillow_wraps_on_those_blocks(tmp_path):
    """The ground truth of the test below: files holding those coefficients
    (Q = 20 everywhere, or the tables given) as Pillow's libjpeg-turbo
    decodes them."""
    twenty = np.full((8, 8), 20)
    for entries, pixels in ((DC_ONLY, DC_ONLY_PIXELS), (DC_AND_4_0, DC_AND_4_0_PIXELS)):
        assert pillow_pixels_of(tmp_path, block(entries) // 20, twenty) == pixels
    table = np.maximum(block(NO_SHORTCUT_TABLE), 1)
    assert pillow_pixels_of(tmp_path, block(NO_SHORTCUT), table) == NO_SHORTCUT_PIXELS


def test_idct_islow_wraps_16_bit_sums_as_the_simd_build_does():
    """Pillow's decodes of these blocks (see the test above)."""
    assert idct_islow(torch.from_numpy(block(DC_ONLY)).to(torch.int32)).tolist() == DC_ONLY_PIXELS
    assert idct_islow(torch.from_numpy(block(DC_AND_4_0)).to(torch.int32)).tolist() == DC_AND_4_0_PIXELS
    quantized = torch.from_numpy(block(NO_SHORTCUT)).to(torch.int32)
    table = torch.from_numpy(np.maximum(block(NO_SHORTCUT_TABLE), 1)).to(torch.int32)
    assert idct_islow(wrap_int16(quantized * table), quantized=quantized).tolist() == NO_SHORTCUT_PIXELS


# ------------------------------------------------------------------ float forms
def test_fdct_exact_mode_is_islow_over_8():
    blocks = torch.from_numpy(sample_blocks() + 128)
    expected = fdct_islow(blocks.to(torch.int32) - 128)
    for dtype in (torch.float32, torch.float64):
        out = fdct(blocks.to(dtype), "exact")
        assert out.dtype == dtype and torch.equal(out * 8, expected.to(dtype))


def test_idct_exact_mode_is_islow():
    blocks = torch.from_numpy(coefficient_blocks())
    expected = idct_islow(blocks.to(torch.int32))
    for dtype in (torch.float32, torch.float64):
        out = idct(blocks.to(dtype), "exact")
        assert out.dtype == dtype and torch.equal(out, expected.to(dtype))


def orthonormal_dct(x):
    """The JPEG standard's F(u, v) = C x C^T, C written out from its definition."""
    c = torch.tensor([[math.sqrt((1 if u == 0 else 2) / 8) * math.cos((2 * k + 1) * u * math.pi / 16) for k in range(8)]
                      for u in range(8)], dtype=torch.float64)
    return c @ x @ c.T


def test_float_modes_are_the_orthonormal_dct():
    g = torch.Generator().manual_seed(6)
    x = torch.rand(5, 8, 8, generator=g, dtype=torch.float64) * 255
    for mode in ("float", "soft"):
        torch.testing.assert_close(fdct(x, mode), orthonormal_dct(x - 128), rtol=0, atol=1e-10)
    f = orthonormal_dct(x - 128)
    torch.testing.assert_close(idct(f, "soft"), x, rtol=0, atol=1e-10)
    assert torch.equal(idct(f, "float"), torch.round(x).clamp(0, 255))


def test_every_mode_has_the_real_transforms_gradient():
    g = torch.Generator().manual_seed(7)
    x0 = torch.randint(0, 256, (3, 8, 8), generator=g).double()
    w = torch.randn(3, 8, 8, generator=g, dtype=torch.float64)
    x = x0.clone().requires_grad_()
    (orthonormal_dct(x - 128) * w).sum().backward()
    forward = x.grad
    c0 = orthonormal_dct(x0 - 128).round()
    c = c0.clone().requires_grad_()
    cmat = torch.tensor([[math.sqrt((1 if u == 0 else 2) / 8) * math.cos((2 * k + 1) * u * math.pi / 16) for k in range(8)]
                         for u in range(8)], dtype=torch.float64)
    ((cmat.T @ c @ cmat + 128) * w).sum().backward()
    inverse = c.grad
    for mode in ("exact", "float", "soft"):
        x = x0.clone().requires_grad_()
        (fdct(x, mode) * w).sum().backward()
        torch.testing.assert_close(x.grad, forward, rtol=1e-12, atol=1e-12)
        c = c0.clone().requires_grad_()
        (idct(c, mode) * w).sum().backward()
        torch.testing.assert_close(c.grad, inverse, rtol=1e-12, atol=1e-12)
    x = x0[:1].clone().requires_grad_()
    assert torch.autograd.gradcheck(lambda a: fdct(a, "soft"), (x,))
    c = c0[:1].clone().requires_grad_()
    assert torch.autograd.gradcheck(lambda a: idct(a * 0.01, "soft"), (c,))  # stays inside the clamp


def test_fdct_refuses_an_unknown_mode():
    with pytest.raises(ValueError, match="mode"):
        fdct(torch.zeros(8, 8), "bogus")


def test_idct_refuses_an_unknown_mode():
    with pytest.raises(ValueError, match="mode"):
        idct(torch.zeros(8, 8), "bogus")


@pytest.mark.parametrize("mode", ["float", "soft"])
def test_fdct_of_a_strided_view_is_that_of_its_copy(mode):
    """Blocks cut from a plane are a strided view; fdct shifts them into block
    order in one pass: values and gradient equal those of contiguous blocks."""
    plane = (torch.rand(2, 24, 40, generator=torch.Generator().manual_seed(3)) * 255).requires_grad_()
    view = plane.reshape(2, 3, 8, 5, 8).transpose(-3, -2)
    copy = plane.detach().reshape(2, 3, 8, 5, 8).transpose(-3, -2).contiguous().requires_grad_()
    weights = torch.rand(2, 3, 5, 8, 8, generator=torch.Generator().manual_seed(4))
    a, b = fdct(view, mode), fdct(copy, mode)
    (a * weights).sum().backward()
    (b * weights).sum().backward()
    assert not view.is_contiguous() and torch.equal(a, b)
    assert torch.equal(plane.grad.reshape(2, 3, 8, 5, 8).transpose(-3, -2), copy.grad)


def test_dct_matrix_is_the_callers_own():
    """Writing into the returned matrix leaves the cached one, which later calls return, alone."""
    m = dct_matrix()
    kept = m.clone()
    m.zero_()
    again = dct_matrix()
    assert again is not m and torch.equal(again, kept) and torch.allclose(again @ again.T, torch.eye(8), atol=1e-6)


@pytest.mark.parametrize("shape", [(2, 3, 24, 40), (8,), (8, 9), (1, 9, 8)])
def test_transforms_refuse_what_are_not_blocks(shape):
    """A tensor whose last two dimensions are not 8x8 is refused by name, not cut into blocks of 64 as it comes."""
    with pytest.raises(ValueError, match=r"blocks must be a tensor of shape \(\.\.\., 8, 8\)"):
        fdct(torch.zeros(shape))
    with pytest.raises(ValueError, match=r"coefficients must be a tensor of shape \(\.\.\., 8, 8\)"):
        idct(torch.zeros(shape), "exact")
