"""jpeg()'s float and soft mode through the block pass (diffjpeg.stages.dctmgr:
a block's DCT, quantizer and inverse DCT in one compiled pass, forward and
backward) against the stages one by one:

* the block pass's kernel against its tensor form: float mode's samples bit
  for bit (the same IEEE operations in the same order); soft mode's
  samples, the saved derivatives and the gradients within the float/soft
  contract (the tensor form's tanh, sine and cosine are torch's);
* jpeg() against decode(encode()), which runs the separate compiled loops
  (exact mode: the compiled exact codec's values, the quantizer's
  derivative at its DCT, the same adjoints):
  the same operations in the same order, so values and input gradients are
  the same bits by construction, for every surrogate, sampling, odd sizes,
  grayscale, per-image tables and both float dtypes; a second derivative
  within the contract;
* when jpeg() takes it, and that bad input is still refused.
"""
import pytest
import torch

import diffjpeg
from diffjpeg import decode, encode, jpeg
from diffjpeg.backends import cpu
from diffjpeg.codec import pipeline
from diffjpeg.codec.plan import encode_plan
from diffjpeg.stages import dctmgr
from diffjpeg.stages.blocks import split_blocks
from diffjpeg.stages.dct import fdct
from diffjpeg.stages.rounding import Fourier, Noise, Sigmoid, as_rounding
from tests.helpers import assert_close_to_rounding, both_paths

BUILT = cpu.block_pass_takes(torch.zeros(1, 8, 8), torch.ones(1, 8, 8))
pytestmark = [
    pytest.mark.paths,
    pytest.mark.skipif(not BUILT, reason="the compiled loops were not built (no C compiler at install time), or turned off"),
]

SURROGATES = ["linear", "polynomial", "fourier", "sigmoid", "noise", Fourier(order=3, damping="none"), Sigmoid(temperature=0.05)]


def surrogate(rounding, seed=3):
    """A fresh surrogate (the noise one with a seeded generator, so that two runs draw alike)."""
    if rounding == "noise":
        return Noise(generator=torch.Generator().manual_seed(seed))
    return as_rounding(rounding)


def planes_and_tables(dtype, images=3, blocks=(3, 5), shared=False, seed=0):
    g = torch.Generator().manual_seed(seed)
    plane = (torch.rand(images, blocks[0] * 8, blocks[1] * 8, generator=g, dtype=torch.float64) * 255).to(dtype)
    table = torch.randint(1, 100, (1 if shared else images, 8, 8), generator=g).to(dtype)
    return plane, table


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("rounding", SURROGATES, ids=str)
@pytest.mark.parametrize("mode", ["float", "soft"])
@pytest.mark.parametrize("shared", [False, True])
def test_block_pass_is_its_tensor_form(dtype, rounding, mode, shared):
    plane, table = planes_and_tables(dtype, shared=shared)
    if mode == "soft" and rounding == "linear":
        pytest.skip("quantizes nothing (warns); covered by float mode")

    def run():
        rule = surrogate(rounding)
        slopes = torch.empty(split_blocks(plane).shape, dtype=dtype) if dctmgr.sloped(rule) else None
        out = dctmgr.block_pass(plane, table, mode, rule, slopes=slopes)
        grad = torch.sin(torch.arange(plane.numel(), dtype=dtype)).reshape(plane.shape)
        return out, slopes, dctmgr.block_pass_adjoint(grad, slopes, table)

    (out, slopes, grad), (out_ref, slopes_ref, grad_ref) = both_paths(run)
    if slopes is not None:  # r'(F / Q) at the DCT's own values
        expected = surrogate(rounding).derivative(fdct(split_blocks(plane), "float") / table.reshape(-1, 1, 1, 8, 8))
        assert_close_to_rounding(slopes, expected)
        assert_close_to_rounding(slopes_ref, expected)
    if mode == "float":
        assert torch.equal(out, out_ref)
    else:
        assert_close_to_rounding(out, out_ref, scale=255.0)
    assert_close_to_rounding(grad, grad_ref)


def test_block_pass_in_place_and_into_strided_planes():
    """``out`` may be the plane itself, or a plane of a larger tensor (rows at
    another distance): the same values as into a new tensor."""
    plane, table = planes_and_tables(torch.float32)
    rounding = as_rounding("sigmoid")
    expected = dctmgr.block_pass(plane, table, "float", rounding)
    stack = torch.zeros(plane.shape[0], 2, *plane.shape[1:])
    dctmgr.block_pass(plane, table, "float", rounding, out=stack[:, 1])
    assert torch.equal(stack[:, 1], expected) and not stack[:, 0].any()
    own = plane.clone()
    assert dctmgr.block_pass(own, table, "float", rounding, out=own) is own
    assert torch.equal(own, expected)


def weights_like(out):
    return torch.cos(torch.arange(out.numel(), dtype=out.dtype)).reshape(out.shape)


def value_and_grad(f, x):
    x = x.clone().requires_grad_()
    out = f(x)
    (grad,) = torch.autograd.grad(out, x, weights_like(out))
    return out.detach(), grad


CASES = [  # (shape, subsampling)
    ((2, 3, 32, 48), "4:2:0"),
    ((1, 3, 23, 37), "4:2:0"),
    ((2, 3, 17, 40), "4:2:2"),
    ((1, 3, 24, 9), "4:4:4"),
    ((2, 1, 13, 21), "4:2:0"),  # grayscale
]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("rounding", SURROGATES, ids=str)
@pytest.mark.parametrize("mode", ["float", "soft", "exact"])
@pytest.mark.parametrize("shape, subsampling", CASES, ids=str)
def test_jpeg_is_encode_then_decode(shape, subsampling, mode, rounding, dtype):
    if mode == "soft" and rounding == "linear":
        pytest.skip("quantizes nothing (warns); covered by float mode")
    x = torch.rand(shape, generator=torch.Generator().manual_seed(1), dtype=dtype)
    options = dict(subsampling=subsampling, mode=mode)
    out, grad = value_and_grad(lambda t: jpeg(t, 37, rounding=surrogate(rounding), **options), x)
    ref_out, ref_grad = value_and_grad(lambda t: decode(encode(t, 37, rounding=surrogate(rounding), **options), mode=mode), x)
    assert torch.equal(out, ref_out)
    assert torch.equal(grad, ref_grad)


def test_per_image_tables_and_a_batch_shape():
    x = torch.rand(2, 2, 3, 16, 24, generator=torch.Generator().manual_seed(2))
    quality = torch.tensor([[10.0, 90.0], [50.0, 30.0]])
    out, grad = value_and_grad(lambda t: jpeg(t, quality, mode="float"), x)
    ref_out, ref_grad = value_and_grad(lambda t: decode(encode(t, quality, mode="float"), mode="float"), x)
    assert torch.equal(out, ref_out) and torch.equal(grad, ref_grad)


def test_second_derivative_through_the_stages():
    """create_graph=True: the gradient is itself differentiable (the stages' own graph, run again from the image)."""
    x0 = torch.rand(1, 3, 16, 24, generator=torch.Generator().manual_seed(7))
    results = []
    for f in (lambda t: jpeg(t, 50, mode="soft"), lambda t: decode(encode(t, 50, mode="soft"), mode="soft")):
        x = x0.clone().requires_grad_()
        (g,) = torch.autograd.grad((f(x) ** 2).sum(), x, create_graph=True)
        (gg,) = torch.autograd.grad(g.square().sum(), x)
        results.append((g.detach(), gg))
    assert torch.equal(results[0][0], results[1][0])
    assert_close_to_rounding(results[0][1], results[1][1])


def plan(x, mode="float", **options):
    return encode_plan(x, options.pop("quality", 50), options.pop("qtables", None), options.pop("subsampling", "4:2:0"), mode,
                       options.pop("rounding", None), options.pop("rgb_to_ycbcr", None), options.pop("backend", "auto"))


def applies(plan, ycbcr_to_rgb=None) -> bool:
    with pipeline._kernels_of(plan.backend):  # as jpeg() asks
        return pipeline._round_trip_applies(plan, ycbcr_to_rgb, None)


def test_when_jpeg_takes_the_block_pass():
    x = torch.rand(1, 3, 16, 16)
    assert applies(plan(x))
    assert applies(plan(x, "soft", rounding="noise"))
    assert applies(plan(x.double(), backend="native"))
    assert not applies(plan(x, "exact"))  # the compiled exact codec
    assert not applies(plan(x, backend="torch"))
    assert not applies(plan(x), torch.eye(3))  # a matrix of the caller's
    assert not applies(plan(x, quality=torch.tensor(50.0, requires_grad=True)))  # tables that learn
    assert not applies(plan(x, rounding=Fourier(order=65)))  # longer than the loop's series
    with cpu.enabled(False):
        assert not applies(plan(x))


def test_exact_mode_with_a_gradient_takes_the_round_trip(monkeypatch):
    from diffjpeg.codec import planes

    calls = []
    real = planes.exact_round_trip_values
    monkeypatch.setattr(planes, "exact_round_trip_values", lambda *a, **k: calls.append(1) or real(*a, **k))
    x = torch.rand(1, 3, 16, 16, requires_grad=True)
    jpeg(x, 50).sum().backward()
    jpeg(x.detach(), 50)  # without a gradient: the compiled round trip alone
    assert len(calls) == 1


def test_the_block_pass_runs(monkeypatch):
    calls = []
    real = dctmgr.block_pass
    monkeypatch.setattr(dctmgr, "block_pass", lambda *a, **k: calls.append(1) or real(*a, **k))
    jpeg(torch.rand(1, 3, 16, 16, requires_grad=True), 50, mode="float").sum().backward()
    assert len(calls) == 3


@pytest.mark.parametrize("mode", ["float", "soft"])
def test_bad_images_still_refused(mode):
    with pytest.raises(ValueError, match="image"):
        jpeg(torch.full((1, 3, 8, 8), float("nan")), 50, mode=mode)
    with pytest.raises(ValueError, match="image"):
        jpeg(torch.full((1, 3, 8, 8), 255.0, requires_grad=True), 50, mode=mode)


def test_module_learning_quality_takes_the_stages():
    layer = diffjpeg.DiffJPEG(quality=50, mode="float", learnable=["quality"])
    y = layer(torch.rand(1, 3, 16, 16))
    y.sum().backward()
    assert layer.quality.grad is not None and torch.isfinite(layer.quality.grad).all()
