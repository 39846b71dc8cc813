"""The compiled loops of the real-valued stages against the tensor
operations they replace, bit for bit:

* diffjpeg/backends/_sampling.c: float and soft mode's downsampling and upsampling,
  and the transposes every mode's gradient runs through, over the planes'
  edge cases (one or two samples, odd sizes), both float dtypes, real and
  integer samples, strided planes (views of stacked planes, as the codec
  passes them), and threads sharing one plane's rows;
* diffjpeg/backends/_rounding.c: clamp_ste's rounding to 8-bit samples after a
  scale or a level shift, over ties, signed zeros, infinities and NaN.
"""
import itertools

import numpy as np
import pytest
import torch

import diffjpeg
from diffjpeg.backends import cpu
from diffjpeg.stages.rounding import clamp_ste
from diffjpeg.stages.sampling import downsample, downsample_adjoint, upsample, upsample_adjoint
from tests.helpers import assert_close_to_rounding, both_paths

BUILT = cpu.upsample(torch.zeros(1, 2, 2), 2, 2, False) is not None and cpu.round_clamp(torch.zeros(1, 1), 0.0, 1.0, True) is not None
pytestmark = [
    pytest.mark.paths,  # every test here holds two computation paths equal
    pytest.mark.skipif(not BUILT, reason="the compiled loops were not built (no C compiler at install time), or turned off"),
]

FACTORS = [(2, 1), (1, 2), (2, 2)]
SIDES = [1, 2, 3, 4, 7, 16]


def bits(t: torch.Tensor) -> torch.Tensor:
    return t.contiguous().view(torch.uint8)


def stacked_plane(shape, dtype, seed, integers):
    """The middle of three stacked planes (a strided view), random real or integer samples."""
    g = torch.Generator().manual_seed(seed)
    planes = torch.rand((shape[0], 3) + shape[1:], generator=g, dtype=torch.float64) * 255
    if integers:
        planes = planes.round()
    return planes.to(dtype)[:, 1]


@pytest.mark.parametrize("factors", FACTORS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_downsampling_equals_tensor_operations(factors, dtype):
    h_factor, v_factor = factors
    for (h, w), mode in itertools.product(itertools.product(SIDES, SIDES), ("exact", "float", "soft")):
        x = stacked_plane((3, h * v_factor, w * h_factor), dtype, h * 100 + w, integers=mode != "soft")
        fast, slow = both_paths(lambda: downsample(x, h_factor, v_factor, mode))
        assert fast.shape == slow.shape == (3, h, w) and bits(fast).equal(bits(slow)), (factors, dtype, h, w, mode)


@pytest.mark.parametrize("factors", FACTORS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_upsampling_equals_tensor_operations(factors, dtype):
    for (h, w), mode in itertools.product(itertools.product(SIDES, SIDES), ("exact", "float", "soft")):
        x = stacked_plane((3, h, w), dtype, h * 100 + w, integers=mode != "soft")
        fast, slow = both_paths(lambda: upsample(x, *factors, mode))
        assert fast.shape == slow.shape and bits(fast).equal(bits(slow)), (factors, dtype, h, w, mode)
        # into a view of stacked planes, as the decoder writes
        def into():
            out = torch.full((3, 3, h * factors[1], w * factors[0]), float("nan"), dtype=dtype)
            upsample(x, *factors, mode, out=out[:, 2])
            return out
        fast, slow = both_paths(into)
        assert bits(fast).equal(bits(slow)), (factors, dtype, h, w, mode)


@pytest.mark.parametrize("factors", FACTORS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_transposes_equal_tensor_operations(factors, dtype):
    h_factor, v_factor = factors
    for h, w in itertools.product(SIDES, SIDES):
        g = torch.Generator().manual_seed(h * 100 + w)
        grads = torch.randn(2, 3, h * v_factor, w * h_factor, generator=g, dtype=torch.float64).to(dtype)
        grads[0, 1, 0, 0] = -0.0  # the sign of a zero goes through the same operations
        fast, slow = both_paths(lambda: upsample_adjoint(grads[:, 1], h_factor, v_factor))
        assert fast.shape == slow.shape == (2, h, w) and bits(fast).equal(bits(slow)), (factors, dtype, h, w)
        small = grads[:, 1, :h, :w]  # rows strided: a view of a larger plane

        def spread_into():
            out = torch.full((2, 3, h * v_factor, w * h_factor), float("nan"), dtype=dtype)
            downsample_adjoint(small, h_factor, v_factor, out=out[:, 0])
            return out

        fast, slow = both_paths(lambda: downsample_adjoint(small, h_factor, v_factor))
        assert bits(fast).equal(bits(slow)), (factors, dtype, h, w)
        fast, slow = both_paths(spread_into)
        assert bits(fast).equal(bits(slow)), (factors, dtype, h, w)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("threads", [1, 3])
def test_merged_upsampling_and_color_equal_the_stages(dtype, threads, set_threads):
    """_sampling.c's merged pass (the decoder's chroma upsampling and color
    conversion, rounded, clamped and divided by 255, in one pass) against
    the tensor stages one by one: every factor pair, odd sizes, chroma read
    at their real downsampled size within whole-block planes, luma larger
    than the image, samples beyond [0, 255], threads sharing planes or rows."""
    from diffjpeg.core import dispatch
    from diffjpeg.stages import color

    set_threads(threads)
    rgb = color.ycbcr_to_rgb_matrix(dtype)
    shift = color.ycbcr_to_rgb_shift(rgb, dtype)
    for (h_factor, v_factor), (height, width), count in itertools.product([(1, 1)] + FACTORS, [(13, 21), (70, 9), (1, 6), (16, 16)], (1, 2)):
        g = torch.Generator().manual_seed(height * 100 + width)
        small = (-(-height // v_factor), -(-width // h_factor))
        luma = (torch.rand(count, height + 3, width + 5, generator=g, dtype=torch.float64) * 300 - 20).to(dtype)
        blocks = (torch.rand(count, 2, small[0] + 7, small[1] + 7, generator=g, dtype=torch.float64) * 255).to(dtype)
        cb, cr = blocks[:, 0, : small[0], : small[1]], blocks[:, 1, 2 : small[0] + 2, 3 : small[1] + 3]
        for mode in ("float", "soft"):
            out = torch.full((count, 3, height, width), float("nan"), dtype=dtype)
            assert cpu.merged_upsample(luma, cb, cr, out, rgb, shift, h_factor, v_factor, mode == "float") is out
            with dispatch.using("torch"):
                up = [upsample(c, h_factor, v_factor, mode)[..., :height, :width] for c in (cb, cr)]
                want = color.ycbcr_to_rgb(torch.stack([luma[..., :height, :width], *up], 1), None, mode) / 255.0
            assert bits(out).equal(bits(want)), (h_factor, v_factor, height, width, count, mode, dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("threads", [1, 3])
def test_preprocessing_equals_the_stages(dtype, threads, set_threads):
    """_sampling.c's encoder pass (samples, color conversion and
    downsampling in one pass, edges repeated) against the tensor stages of
    codec.planes.sampled_planes: every factor pair, odd sizes and their
    padded edges, a strided image, threads sharing images or rows; and its
    range check, from the same read, naming what it meets."""
    from diffjpeg.codec import planes
    from diffjpeg.core import dispatch
    from diffjpeg.core.geometry import geometries

    set_threads(threads)
    for (h_factor, v_factor), (height, width), count in itertools.product([(1, 1)] + FACTORS, [(17, 23), (70, 9), (1, 6), (16, 16), (9, 5)], (1, 2)):
        g = torch.Generator().manual_seed(height * 100 + width)
        wide = torch.rand(count, 3, height, width + 4, generator=g, dtype=torch.float64).to(dtype)
        x = wide[..., 2 : width + 2]  # rows strided
        x[0, 0, 0, 0], x[-1, 2, -1, -1] = 1.0, 0.0
        geos = geometries((height, width), ((h_factor, v_factor), (1, 1), (1, 1)))
        for mode in ("float", "soft"):
            got = planes._preprocessed(x, geos, None, mode, x)
            assert got is not None, (h_factor, v_factor, height, width)
            with dispatch.using("torch"):
                want = planes.sampled_planes(x, geos, None, mode, dtype, x)
            for ci, (a, b) in enumerate(zip(got, want)):
                assert bits(a).equal(bits(b)), (h_factor, v_factor, height, width, count, mode, dtype, ci)
    x = torch.rand(2, 3, 16, 16, dtype=dtype)
    x[1, 2, 5, 7] = float("nan")
    geos = geometries((16, 16), ((2, 2), (1, 1), (1, 1)))
    with pytest.raises(ValueError, match="NaN"):
        planes._preprocessed(x, geos, None, "float", x)
    assert planes._preprocessed(x, geos, None, "float", None) is not None  # unchecked: the caller's to check


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("threads", [1, 2])
def test_the_merged_transpose_equals_the_stages(dtype, threads, set_threads):
    """_sampling.c's merged_adjoint (the color conversion's transpose, then
    the upsampler's and the crops', into each component's whole-block
    plane) against codec.planes' ycc_grad and sampled_grad in tensor form:
    every factor pair, odd sizes (zeros beyond the image), a strided
    gradient, luma written into a view of a larger buffer."""
    from diffjpeg.codec import planes
    from diffjpeg.core import dispatch
    from diffjpeg.core.geometry import geometries

    set_threads(threads)  # (its threads share images: two here)
    for (h_factor, v_factor), (height, width) in itertools.product([(1, 1)] + FACTORS, [(17, 23), (70, 9), (16, 16), (9, 5), (8, 6)]):
        geos = geometries((height, width), ((h_factor, v_factor), (1, 1), (1, 1)))
        g = torch.Generator().manual_seed(height * 100 + width)
        grad = torch.randn(2, 3, height, width + 3, generator=g, dtype=torch.float64).to(dtype)[..., 1 : width + 1]
        grad[0, 1, 0, 0] = -0.0
        if planes._merged_factors(geos, upsampled=True) is None:  # replicated, not filtered: the stages' own path
            continue
        got = planes._merged_grads(grad, geos)
        assert got is not None, (h_factor, v_factor, height, width)
        with dispatch.using("torch"):
            ycc = planes.ycc_grad(grad, "YCbCr", None)
            want = [planes.sampled_grad(ycc[:, ci], geo) for ci, geo in enumerate(geos)]
        for ci, (a, b) in enumerate(zip(got[1], want)):
            assert bits(a).equal(bits(b)), (h_factor, v_factor, height, width, dtype, ci)
    set_threads(3)
    assert planes._merged_grads(torch.zeros(2, 3, 16, 16, dtype=dtype), geometries((16, 16), ((2, 2), (1, 1), (1, 1)))) is None  # fewer images than threads


@pytest.mark.parametrize("threads", [2, 3])
def test_threads_sharing_the_rows_of_one_plane_give_the_same_values(threads, set_threads):
    """Fewer planes than threads (a strip of a large image): each thread
    takes rows of every plane; the rows at the seams read their neighbours."""
    set_threads(threads)
    for h, w in [(64, 9), (131, 70), (200, 3)]:
        for factors in FACTORS:
            h_factor, v_factor = factors
            x = stacked_plane((1, h, w), torch.float32, h + w, integers=False)
            g = torch.randn(1, h * v_factor, w * h_factor, generator=torch.Generator().manual_seed(h))
            for fn in (
                lambda: upsample(x, *factors, "soft"),
                lambda: upsample_adjoint(g, *factors),
                lambda: downsample_adjoint(x, *factors),
                lambda: downsample(g, *factors, "soft"),
            ):
                fast, slow = both_paths(fn)
                assert bits(fast).equal(bits(slow)), (threads, h, w, factors)


@pytest.mark.parametrize("mode", ["exact", "float", "soft"])
@pytest.mark.parametrize("subsampling", ["4:2:0", "4:2:2"])
def test_codec_values_and_gradients_equal_tensor_operations(mode, subsampling):
    """The whole layer, forward and backward, threads sharing the planes."""
    x0 = torch.rand(5, 3, 37, 53, generator=torch.Generator().manual_seed(4))
    w = torch.randn(5, 3, 37, 53, generator=torch.Generator().manual_seed(5))

    def run():
        x = x0.clone().requires_grad_()
        y = diffjpeg.jpeg(x, 50, mode=mode, subsampling=subsampling)
        (y * w).sum().backward()
        return y.detach(), x.grad

    (y_fast, g_fast), (y_slow, g_slow) = both_paths(run)
    # the quantizer's loop (_quantize.c) takes the surrogate's tanh from its own exp: soft
    # mode's values and every gradient to rounding; exact and float round F / Q alike
    if mode == "soft":
        assert_close_to_rounding(y_fast, y_slow)
    else:
        assert bits(y_fast).equal(bits(y_slow))
    assert_close_to_rounding(g_fast, g_slow)


def test_the_loops_decline_what_they_cannot_take():
    x = torch.rand(2, 4, 4)
    assert cpu.upsample(x.half(), 2, 2, True) is None  # float32 and float64 only
    assert cpu.upsample(x.requires_grad_(), 2, 2, True) is None  # a gradient to record
    assert cpu.upsample(torch.rand(4, 4, 2).transpose(1, 2), 2, 2, True) is None  # rows not contiguous
    assert cpu.downsample_adjoint(torch.rand(2, 4, 4), 2, 2, out=torch.empty(2, 8, 9)) is None  # out of another shape
    with cpu.enabled(False):
        assert cpu.upsample_adjoint(torch.rand(2, 8, 8), 2, 2) is None


def test_the_loops_check_their_buffers():
    """Whoever calls them: dimensions, kinds, shapes, row strides, factors, plane range."""
    from diffjpeg.backends import _sampling

    src, dst = np.zeros((2, 3, 4), np.float32), np.zeros((2, 6, 8), np.float32)
    assert _sampling.upsample(src, dst, 2, 2, True, 0, 2, 0, 3) is None
    assert _sampling.downsample(dst, src, 2, 2, True, 0, 2, 1, 2) is None
    bad = [
        (src.astype(np.float64), dst, 2, 2),  # kinds differ
        (src.astype(np.int32), dst.astype(np.int32), 2, 2),  # not float
        (src[0], dst[0], 2, 2),  # two dimensions
        (src, dst[:, :5], 2, 2),  # shape
        (src, dst[:, :, ::2], 1, 2),  # rows not contiguous
    ]
    for s, d, h, v in bad:
        with pytest.raises(ValueError, match="bad buffers"):
            _sampling.upsample(s, d, h, v, True, 0, 2, 0, 3)
    with pytest.raises(ValueError, match="factors"):
        _sampling.upsample(src, dst, 3, 1, True, 0, 2, 0, 3)
    for planes, rows in (((0, 3), (0, 3)), ((1, 0), (0, 3)), ((0, 2), (0, 4)), ((0, 2), (2, 1)), ((-1, 2), (0, 3))):
        with pytest.raises(ValueError, match="bad buffers"):  # planes or rows past the end, or reversed
            _sampling.upsample(src, dst, 2, 2, True, *planes, *rows)
    with pytest.raises(ValueError, match="bad buffers"):
        _sampling.upsample_adjoint(dst, src[:, :2], 2, 2, 0, 2, 0, 2)
    with pytest.raises(ValueError, match="bad buffers"):
        _sampling.downsample(dst[:, :5], src, 2, 2, True, 0, 2, 0, 3)
    with pytest.raises(ValueError, match="bad buffers"):
        _sampling.downsample_adjoint(src, dst.copy()[:, :, :6], 2, 2, 0, 2, 0, 3)
    with pytest.raises(TypeError):
        _sampling.downsample_adjoint(src, "dst", 2, 2, 0, 2, 0, 3)
    # the merged pass: kinds, chroma too small for the image, out not (N, 3, H, W), rows past the end, out over an input
    luma, chroma, out, m, c = np.zeros((2, 6, 8), np.float32), np.zeros((2, 3, 4), np.float32), np.zeros((2, 3, 6, 8), np.float32), np.eye(3, dtype=np.float32), np.zeros(3, np.float32)
    assert _sampling.merged(luma, chroma, chroma, out, m, c, 2, 2, True, 0, 2, 0, 6) is None
    for args in ((luma.astype(np.float64), chroma, chroma, out), (luma, chroma[:, :2], chroma[:, :2], out), (luma, chroma, chroma, out[:, :2]),
                 (luma, chroma, chroma[:, :, :3], out), (out[:, 0], chroma, chroma, out)):
        with pytest.raises(ValueError, match="merged: bad arguments"):
            _sampling.merged(*args, m, c, 2, 2, True, 0, 2, 0, 6)
    with pytest.raises(ValueError, match="merged: bad arguments"):
        _sampling.merged(luma, chroma, chroma, out, m, c, 2, 2, True, 0, 2, 0, 7)
    # the encoder's pass: chroma too small for the padded size, padded not a multiple of the factors, rows past the end,
    # an output over the image
    image = np.zeros((2, 3, 6, 8), np.float32)
    assert _sampling.encoder(image, luma, chroma, chroma.copy(), m, c, 2, 2, 6, 8, True, -1.0, 2.0, 0, 2, 0, 3) is True
    for args in ((image, luma, chroma[:, :2], chroma[:, :2].copy(), 6, 8), (image, luma, chroma, chroma.copy(), 7, 8),
                 (image, luma, chroma, chroma.copy(), 6, 10), (image, image[:, 0], chroma, chroma.copy(), 6, 8)):
        with pytest.raises(ValueError, match="encoder: bad arguments"):
            _sampling.encoder(*args[:4], m, c, 2, 2, *args[4:], True, -1.0, 2.0, 0, 2, 0, 3)
    with pytest.raises(ValueError, match="encoder: bad arguments"):
        _sampling.encoder(image, luma, chroma, chroma.copy(), m, c, 2, 2, 6, 8, True, -1.0, 2.0, 0, 2, 0, 4)
    # the merged pass's transpose: chroma smaller than the downsampled size, an output over another, planes past the end
    assert _sampling.merged_adjoint(out, m, luma, chroma, chroma.copy(), 2, 2, 3, 4, 0, 2) is None
    for args in ((out, m, luma, chroma[:, :2], chroma[:, :2].copy()), (out, m, luma, chroma, chroma), (out, m, out[:, 0], chroma, chroma.copy())):
        with pytest.raises(ValueError, match="merged_adjoint: bad arguments"):
            _sampling.merged_adjoint(*args, 2, 2, 3, 4, 0, 2)
    with pytest.raises(ValueError, match="merged_adjoint: bad arguments"):
        _sampling.merged_adjoint(out, m, luma, chroma, chroma.copy(), 2, 2, 3, 4, 0, 3)


def hard_samples(dtype):
    """Ties at every scale used, signed zeros, the bounds, beyond them, infinities and NaN, and random reals."""
    g = torch.Generator().manual_seed(6)
    ties = torch.arange(-3, 260, dtype=torch.float64) + 0.5
    special = torch.tensor([0.0, -0.0, 255.0, 255.49, 255.5, -0.49, -0.5, -1e-30, 1e30, float("inf"), float("-inf"), float("nan")], dtype=torch.float64)
    values = torch.cat([ties, ties / 255, ties - 128, special, torch.rand(5000, generator=g, dtype=torch.float64) * 400 - 70])
    return values.to(dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("rounded", [True, False])
@pytest.mark.parametrize("affine", [{}, {"scale": 255.0}, {"shift": 128.0}])
def test_rounding_to_samples_equals_tensor_operations(dtype, rounded, affine):
    x = hard_samples(dtype).reshape(1, -1)
    for inplace in (False, True):
        fast, slow = both_paths(lambda: clamp_ste(x.clone() if inplace else x, 0.0, 255.0, rounded, inplace, **affine))
        assert bits(fast).equal(bits(slow)), (dtype, rounded, affine, inplace)
    # the rows of a strip of a large image: planes apart, each contiguous
    planes = torch.rand(2, 3, 40, 33, dtype=dtype, generator=torch.Generator().manual_seed(7)) * 1.2 - 0.1
    strip = planes[..., 8:24, :]
    fast, slow = both_paths(lambda: clamp_ste(strip, 0.0, 255.0, rounded, **affine))
    assert bits(fast).equal(bits(slow)) and fast.is_contiguous()


def test_rounding_to_samples_is_shared_among_threads(set_threads):
    set_threads(3)
    x = (torch.rand(3, 70001, generator=torch.Generator().manual_seed(8)) * 1.2 - 0.1).double()
    fast, slow = both_paths(lambda: clamp_ste(x, 0.0, 255.0, True, scale=255.0))
    assert bits(fast).equal(bits(slow))


def test_rounding_to_samples_keeps_its_gradient():
    """scale and shift in the graph: the gradient is scale times the result's, as x * scale + shift gives."""
    x = torch.rand(2, 3, 5, 7, dtype=torch.float64, requires_grad=True)
    w = torch.randn(2, 3, 5, 7, dtype=torch.float64)
    (clamp_ste(x, 0.0, 255.0, True, scale=255.0, shift=1.0) * w).sum().backward()
    assert torch.equal(x.grad, w * 255.0)
    assert cpu.round_clamp(x, 0.0, 255.0, True) is None  # a gradient to record: the tensor operations


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_rounding_loop_checks_the_range_as_it_reads(dtype, set_threads):
    """within: the same values, and None exactly when a value lies outside
    [low, high] or is NaN (the ends inside), wherever it is among the threads' shares."""
    set_threads(3)
    x = torch.rand(3, 70001, dtype=dtype, generator=torch.Generator().manual_seed(9)) * 3 - 1  # [-1, 2)
    x[0, 0], x[2, -1] = -1.0, 2.0
    plain = cpu.round_clamp(x, 0.0, 255.0, True, scale=255.0)
    checked = cpu.round_clamp(x, 0.0, 255.0, True, scale=255.0, within=(-1.0, 2.0))
    assert bits(checked).equal(bits(plain))
    past = torch.tensor([2.0, -1.0], dtype=dtype).nextafter(torch.tensor([3.0, -3.0], dtype=dtype)).tolist()
    for value in [float("nan"), float("inf"), -float("inf"), *past]:
        for spot in [(0, 0), (1, 35000), (2, 70000), (0, 23333), (2, 46667)]:
            y = x.clone()
            y[spot] = value
            assert cpu.round_clamp(y, 0.0, 255.0, True, scale=255.0, within=(-1.0, 2.0)) is None, (value, spot)
    small = x[:, :100].contiguous()  # one call, no threads
    nan = small.clone().fill_(float("nan"))
    assert cpu.round_clamp(nan, 0.0, 255.0, True) is not None and cpu.round_clamp(nan, 0.0, 255.0, True, within=(-1.0, 2.0)) is None
    assert bits(cpu.round_clamp(small, 0.0, 255.0, True, within=(-1.0, 2.0))).equal(bits(cpu.round_clamp(small, 0.0, 255.0, True)))
    with pytest.raises(ValueError, match="out must be None"):
        cpu.round_clamp(x, 0.0, 255.0, True, out=x, within=(-1.0, 2.0))


def test_the_rounding_loop_checks_its_buffers():
    from diffjpeg.backends import _rounding

    a, b = np.zeros((2, 5), np.float32), np.zeros((2, 5), np.float32)
    assert _rounding.round_clamp(a, b, 255.0, None, True, 0.0, 255.0, 0, 5) is None
    for src, dst, lo, hi, start, stop in [
        (a, b.astype(np.float64), 0.0, 1.0, 0, 5),  # kinds differ
        (a.astype(np.int32), b.astype(np.int32), 0.0, 1.0, 0, 5),  # not float
        (a, b[:, :4], 0.0, 1.0, 0, 4),  # shapes differ
        (a[0], b[0], 0.0, 1.0, 0, 5),  # one dimension
        (a, b[:, ::-1], 0.0, 1.0, 0, 5),  # a row not contiguous
        (a, b, 0.0, 1.0, 0, 6),  # past the end
        (a, b, 0.0, 1.0, 3, 2),  # reversed
        (a, b, 1.0, 0.0, 0, 5),  # bounds reversed
        (a, b, float("nan"), 1.0, 0, 5),
    ]:
        with pytest.raises(ValueError, match="bad arguments"):
            _rounding.round_clamp(src, dst, None, None, True, lo, hi, start, stop)
    with pytest.raises(TypeError):
        _rounding.round_clamp(a, b, "255", None, True, 0.0, 1.0, 0, 5)
    assert _rounding.round_clamp(a, b, None, None, True, 0.0, 1.0, 0, 5, (-1.0, 2.0)) is True
    for within in [0.5, (1.0,), (2.0, -1.0), (float("nan"), 1.0)]:
        with pytest.raises((TypeError, ValueError)):
            _rounding.round_clamp(a, b, None, None, True, 0.0, 1.0, 0, 5, within)


def test_writes_into_a_given_tensor_bump_its_version():
    """As an in-place tensor operation does: a backward that saved the tensor notices."""
    x = torch.rand(1, 300, 300)
    assert cpu.round_clamp(x, 0.0, 1.0, True, out=x) is not None and x._version == 1
    out = torch.empty(1, 600, 600)
    assert cpu.upsample(x, 2, 2, True, out) is out and out._version == 1
    w = torch.rand(3, requires_grad=True)
    saved = torch.rand(1, 300, 300)
    y = (w[0] * saved).sum()  # the product saves `saved` for its backward
    cpu.round_clamp(saved, 0.0, 1.0, True, out=saved)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.backward()
