"""diffjpeg.stages.sampling against libjpeg-turbo's jcsample.c (h2v1_downsample,
h2v2_downsample, int_downsample) and jdsample.c (h2v1/h2v2/h1v2 fancy
upsampling, int_upsample), written out here as loops over small planes."""
import itertools

import numpy as np
import pytest
import torch

from diffjpeg.stages.sampling import downsample, downsample_biased, upsample, upsample_fancy


def random_plane(h, w, extremes=False, seed=0):
    rng = np.random.default_rng([seed, h, w, extremes])
    if extremes:  # only 0 and 255: every sum at its largest or smallest
        return (rng.integers(0, 2, (h, w)) * 255).tolist()
    return rng.integers(0, 256, (h, w)).tolist()


def planes(shapes):
    for (h, w), extremes in itertools.product(shapes, (False, True)):
        yield random_plane(h, w, extremes)


# ------------------------------------------------------------------ references
def h2v1_downsample(p):
    out = []
    for row in p:
        bias, out_row = 0, []  # bias = 0,1,0,1,... for successive samples
        for j in range(len(row) // 2):
            out_row.append((row[2 * j] + row[2 * j + 1] + bias) >> 1)
            bias ^= 1
        out.append(out_row)
    return out


def h2v2_downsample(p):
    out = []
    for i in range(len(p) // 2):
        top, bottom = p[2 * i], p[2 * i + 1]
        bias, out_row = 1, []  # bias = 1,2,1,2,... for successive samples
        for j in range(len(top) // 2):
            out_row.append((top[2 * j] + top[2 * j + 1] + bottom[2 * j] + bottom[2 * j + 1] + bias) >> 2)
            bias ^= 3
        out.append(out_row)
    return out


def h1v2_downsample(p):
    """int_downsample with h_expand 1, v_expand 2: (sum + numpix / 2) / numpix."""
    return [[(p[2 * i][j] + p[2 * i + 1][j] + 1) // 2 for j in range(len(p[0]))] for i in range(len(p) // 2)]


def int_upsample(p, h_expand, v_expand):
    """Replication: each sample ``h_expand`` times across, each row ``v_expand`` times down."""
    out = []
    for row in p:
        wide = [v for v in row for _ in range(h_expand)]
        out.extend([list(wide) for _ in range(v_expand)])
    return out


def h2v1_fancy(p):
    out = []
    for row in p:
        n, o = len(row), []
        o += [row[0], (row[0] * 3 + row[1] + 2) >> 2]  # first column
        for j in range(1, n - 1):
            o += [(row[j] * 3 + row[j - 1] + 1) >> 2, (row[j] * 3 + row[j + 1] + 2) >> 2]
        o += [(row[n - 1] * 3 + row[n - 2] + 1) >> 2, row[n - 1]]  # last column
        out.append(o)
    return out


def context(p, i, step):
    """Row ``i + step``, or row ``i`` itself past the edges (jdmainct.c's context rows)."""
    return p[min(max(i + step, 0), len(p) - 1)]


def h1v2_fancy(p):
    out = []
    for i in range(len(p)):
        for step, bias in ((-1, 1), (1, 2)):  # row above, then row below
            far = context(p, i, step)
            out.append([(p[i][j] * 3 + far[j] + bias) >> 2 for j in range(len(p[i]))])
    return out


def h2v2_fancy(p):
    out = []
    for i in range(len(p)):
        for step in (-1, 1):
            far = context(p, i, step)
            s = [p[i][j] * 3 + far[j] for j in range(len(p[i]))]  # column sums
            n, o = len(s), []
            o += [(s[0] * 4 + 8) >> 4, (s[0] * 3 + s[1] + 7) >> 4]  # first column
            for j in range(1, n - 1):
                o += [(s[j] * 3 + s[j - 1] + 8) >> 4, (s[j] * 3 + s[j + 1] + 7) >> 4]
            o += [(s[n - 1] * 3 + s[n - 2] + 8) >> 4, (s[n - 1] * 4 + 7) >> 4]  # last column
            out.append(o)
    return out


def libjpeg_upsample(p, h, v):
    """jdsample.c's choice: fancy h2v1 and h2v2 when the width is above 2, h1v2 always,
    replication otherwise."""
    width = len(p[0])
    if (h, v) == (2, 1) and width > 2:
        return h2v1_fancy(p)
    if (h, v) == (2, 2) and width > 2:
        return h2v2_fancy(p)
    if (h, v) == (1, 2):
        return h1v2_fancy(p)
    return int_upsample(p, h, v)


def as_tensor(p):
    return torch.tensor(p, dtype=torch.int32)


# ------------------------------------------------------------------ downsampling
DOWN_SHAPES = [(2, 2), (2, 4), (4, 2), (2, 16), (6, 10), (8, 8), (16, 24)]
DOWN = {(2, 1): h2v1_downsample, (2, 2): h2v2_downsample, (1, 2): h1v2_downsample}


@pytest.mark.parametrize("factors", list(DOWN))
def test_downsample_biased_equals_jcsample(factors):
    for p in planes(DOWN_SHAPES):
        mine = downsample_biased(as_tensor(p), *factors)
        assert mine.tolist() == DOWN[factors](p), (factors, p)


def test_downsample_biased_batched_planes():
    batch = [random_plane(6, 10, seed=k) for k in range(3)]
    mine = downsample_biased(torch.tensor(batch, dtype=torch.int32).reshape(3, 1, 6, 10), 2, 2)
    assert mine.reshape(3, 3, 5).tolist() == [h2v2_downsample(p) for p in batch]


FLOATS = (torch.float32, torch.float64, torch.bfloat16, torch.float16)


@pytest.mark.parametrize("factors", list(DOWN))
def test_float_downsample_exact_and_float_modes_equal_the_integer_form(factors):
    for p, mode, dtype in itertools.product(planes(DOWN_SHAPES), ("exact", "float"), FLOATS):
        x = as_tensor(p)
        out = downsample(x.to(dtype), *factors, mode=mode)
        assert out.dtype == dtype
        assert torch.equal(out.to(torch.int32), downsample_biased(x, *factors)), (mode, dtype, p)


@pytest.mark.parametrize("factors", list(DOWN))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_soft_downsample_keeps_avg_pool2ds_bits(factors, dtype):
    """Soft mode's window means of real samples, bit for bit those of
    avg_pool2d (the form soft mode's values were defined by): the sums are
    added in its order, from strided views of a plane that is itself a view
    of stacked planes, as the encoder passes it."""
    g = torch.Generator().manual_seed(3)
    h, v = factors
    for batch, height, width in [(16, 64, 64), (3, 18, 34), (1, 2, 2)]:
        stacked = torch.rand(batch, 3, height, width, generator=g, dtype=dtype) * 255
        plane = stacked[:, 1]
        pooled = torch.nn.functional.avg_pool2d(plane.reshape(-1, 1, height, width), (v, h), divisor_override=1)
        expected = pooled.reshape(batch, height // v, width // h).div_(h * v)
        out = downsample(plane, h, v, mode="soft")
        assert out.view(torch.uint8).equal(expected.view(torch.uint8)), (factors, dtype, batch, height, width)


# ------------------------------------------------------------------ upsampling
UP_SHAPES = [(1, 1), (1, 2), (2, 1), (2, 2), (1, 3), (3, 1), (3, 3), (2, 5), (5, 2), (4, 7), (7, 4), (8, 8), (9, 13)]
UP_FACTORS = [(2, 1), (2, 2), (1, 2), (1, 1), (3, 1), (4, 2), (1, 4), (3, 3)]


@pytest.mark.parametrize("factors", UP_FACTORS)
def test_upsample_fancy_equals_jdsample(factors):
    """Every shape, widths 1 and 2 included (replication for h2v1 and h2v2 there,
    h1v2 fancy at any width)."""
    for p in planes(UP_SHAPES):
        mine = upsample_fancy(as_tensor(p), *factors)
        assert mine.tolist() == libjpeg_upsample(p, *factors), (factors, p)


def test_upsample_fancy_known_values():
    """Two rows written out by hand from the C loops."""
    assert upsample_fancy(as_tensor([[0, 4, 8]]), 2, 1).tolist() == [[0, 1, 3, 5, 7, 8]]
    # h1v2: (3 * 0 + 0 + 1) >> 2, (3 * 0 + 100 + 2) >> 2, (3 * 100 + 0 + 1) >> 2, (3 * 100 + 100 + 2) >> 2
    assert upsample_fancy(as_tensor([[0], [100]]), 1, 2).tolist() == [[0], [25], [75], [100]]


def test_upsample_fancy_batched_planes():
    batch = [random_plane(5, 7, seed=k) for k in range(3)]
    mine = upsample_fancy(torch.tensor(batch, dtype=torch.int32).reshape(3, 1, 5, 7), 2, 2)
    assert mine.reshape(3, 10, 14).tolist() == [h2v2_fancy(p) for p in batch]


@pytest.mark.parametrize("factors", UP_FACTORS)
def test_float_upsample_exact_and_float_modes_equal_the_integer_form(factors):
    for p, mode, dtype in itertools.product(planes(UP_SHAPES), ("exact", "float"), FLOATS):
        x = as_tensor(p)
        out = upsample(x.to(dtype), *factors, mode=mode)
        assert out.dtype == dtype
        assert torch.equal(out.to(torch.int32), upsample_fancy(x, *factors)), (mode, dtype, p)


@pytest.mark.parametrize("factors", UP_FACTORS)
def test_upsample_into_out_equals_upsample(factors):
    """``out=`` (a strided view, as the decoder's stacked planes give) holds
    upsample's own result, bit for bit, in every mode and float dtype."""
    h, v = factors
    for p, mode, dtype in itertools.product(planes([(1, 1), (2, 5), (9, 13)]), ("exact", "float", "soft"), FLOATS):
        x = as_tensor(p).to(dtype)
        if mode == "soft":
            x = x + 0.37  # real samples
        stacked = torch.full((3, x.shape[0] * v, x.shape[1] * h), float("nan"), dtype=dtype)
        out = upsample(x, h, v, mode, out=stacked[1])
        assert out.data_ptr() == stacked[1].data_ptr()
        expected = upsample(x, h, v, mode)
        assert out.view(torch.uint8).equal(expected.view(torch.uint8)), (mode, dtype, p)


def test_upsample_into_out_is_refused_where_it_cannot_hold():
    x = torch.zeros(4, 5)
    with pytest.raises(ValueError, match=r"out must be a \(8, 10\) torch.float32"):
        upsample(x, 2, 2, out=torch.zeros(8, 9))
    with pytest.raises(ValueError, match="out must be"):
        upsample(x, 2, 2, out=torch.zeros(8, 10, dtype=torch.float64))
    with pytest.raises(TypeError, match="out must be"):
        upsample(x, 2, 2, out=[[0.0] * 10] * 8)
    with pytest.raises(ValueError, match="without a gradient"):
        upsample(x.requires_grad_(), 2, 2, out=torch.zeros(8, 10))


# ------------------------------------------------------------------ gradients
def real_downsample(x, h, v):
    """The window mean, in plain tensor operations."""
    *lead, height, width = x.shape
    return x.reshape(*lead, height // v, v, width // h, h).mean((-3, -1))


@pytest.mark.parametrize("factors", list(DOWN))
def test_downsample_gradient_is_the_means_in_every_mode(factors):
    g = torch.Generator().manual_seed(1)
    x0 = torch.randint(0, 256, (2, 6, 8), generator=g).double()
    w = torch.randn(2, 6 // factors[1], 8 // factors[0], generator=g, dtype=torch.float64)
    x = x0.clone().requires_grad_()
    (real_downsample(x, *factors) * w).sum().backward()
    expected = x.grad
    for mode in ("exact", "float", "soft"):
        x = x0.clone().requires_grad_()
        (downsample(x, *factors, mode=mode) * w).sum().backward()
        torch.testing.assert_close(x.grad, expected, rtol=1e-12, atol=1e-12)
    x = x0[:1, :4, :4].clone().requires_grad_()
    assert torch.autograd.gradcheck(lambda a: downsample(a, *factors, mode="soft"), (x,))


def real_upsample(x, h, v):
    """The triangle filter as a dense linear map along each filtered axis (3/4, 1/4, edges repeated)."""
    def along(n):
        m = torch.zeros(2 * n, n, dtype=torch.float64)
        for j in range(n):
            m[2 * j, j] += 0.75
            m[2 * j, max(j - 1, 0)] += 0.25
            m[2 * j + 1, j] += 0.75
            m[2 * j + 1, min(j + 1, n - 1)] += 0.25
        return m
    if h == 2:
        x = x @ along(x.shape[-1]).T
    if v == 2:
        x = along(x.shape[-2]) @ x
    return x


@pytest.mark.parametrize("factors", [(2, 1), (2, 2), (1, 2)])
def test_upsample_gradient_is_the_real_filters_in_every_mode(factors):
    g = torch.Generator().manual_seed(2)
    x0 = torch.randint(0, 256, (2, 4, 5), generator=g).double()
    w = torch.randn(2, 4 * factors[1], 5 * factors[0], generator=g, dtype=torch.float64)
    soft = upsample(x0, *factors, mode="soft")
    torch.testing.assert_close(soft, real_upsample(x0, *factors), rtol=1e-12, atol=1e-12)
    x = x0.clone().requires_grad_()
    (real_upsample(x, *factors) * w).sum().backward()
    expected = x.grad
    for mode in ("exact", "float", "soft"):
        x = x0.clone().requires_grad_()
        (upsample(x, *factors, mode=mode) * w).sum().backward()
        torch.testing.assert_close(x.grad, expected, rtol=1e-12, atol=1e-12)
    x = x0[:1, :3, :3].clone().requires_grad_()
    assert torch.autograd.gradcheck(lambda a: upsample(a, *factors, mode="soft"), (x,))


# ------------------------------------------------------------------ arguments
def test_downsample_refuses_an_unknown_mode():
    with pytest.raises(ValueError, match="mode"):
        downsample(torch.zeros(4, 4), 2, 2, "bogus")


def test_upsample_refuses_an_unknown_mode():
    with pytest.raises(ValueError, match="mode"):
        upsample(torch.zeros(4, 4), 2, 2, "bogus")


def test_unsupported_factors_are_refused():
    with pytest.raises(ValueError, match="sampling factors"):
        downsample_biased(torch.zeros(4, 4, dtype=torch.int32), 3, 1)
    with pytest.raises(ValueError, match="sampling factors"):
        upsample_fancy(torch.zeros(4, 4, dtype=torch.int32), 5, 1)
