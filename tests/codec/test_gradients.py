"""Surrogate gradients: finite, nonzero, consistent across batching, dtypes and torch.compile."""
import pytest
import torch

import diffjpeg
from diffjpeg.stages.rounding import soft_round, soft_round_derivative
from tests.helpers import assert_close_to_rounding

FORWARDS = ("exact", "float", "soft")


def image(seed=0, shape=(2, 3, 20, 27), dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(shape, generator=g, dtype=dtype)


@pytest.mark.parametrize("forward", FORWARDS)
@pytest.mark.parametrize("rounding", diffjpeg.ROUNDINGS)
def test_gradients_finite_and_nonzero(forward, rounding):
    for q0 in (1.0, 37.5, 100.0):
        x = image().requires_grad_()
        quality = torch.tensor(q0, requires_grad=True)
        options = dict(mode=forward, rounding=rounding)
        y = diffjpeg.jpeg(x, quality=quality, **options)
        loss = ((y - x.detach()) ** 2).mean() + y.mean()
        loss.backward()
        assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
        assert torch.isfinite(quality.grad) and quality.grad != 0, (q0, quality.grad)
    tables = diffjpeg.standard_tables().requires_grad_()
    enc = torch.tensor(diffjpeg.stages.color.JFIF_RGB_TO_YCBCR).requires_grad_()
    dec = torch.tensor(diffjpeg.stages.color.JFIF_YCBCR_TO_RGB).requires_grad_()
    y = diffjpeg.jpeg(image(1), qtables=tables, quality=60.0, rgb_to_ycbcr=enc, ycbcr_to_rgb=dec, **options)
    ((y - image(1)) ** 2).mean().backward()
    for t in (tables, enc, dec):
        assert torch.isfinite(t.grad).all() and t.grad.abs().sum() > 0


@pytest.mark.parametrize("rounding", [r if r in ("sigmoid", "fourier") else pytest.param(r, marks=pytest.mark.slow) for r in diffjpeg.ROUNDINGS])
def test_soft_pipeline_gradcheck(rounding):
    """Through the quantizer's compiled loop (float64) where it is built: the
    default and the one with the most code in the loop by default, the rest slow-marked."""
    # mid-range values: no clipping, where the soft pipeline is smooth
    # (the noise moves coefficients by up to half a step: a flatter image and finer tables keep it off the clips)
    x = (0.3 + 0.4 * image(2, (1, 3, 8, 8), torch.float64)) if rounding != "noise" else (0.45 + 0.1 * image(2, (1, 3, 8, 8), torch.float64))
    x.requires_grad_()
    quality = torch.tensor(37.3 if rounding != "noise" else 92.3, dtype=torch.float64, requires_grad=True)
    tables = (diffjpeg.standard_tables(torch.float64) * 0.8).requires_grad_()

    def spec():  # the noise estimator draws the same noise at every evaluation, as gradcheck needs
        return diffjpeg.stages.rounding.Noise(generator=torch.Generator().manual_seed(0)) if rounding == "noise" else rounding

    def f(x, quality):
        return diffjpeg.jpeg(x, quality=quality, mode="soft", rounding=spec())

    def g(tables):
        return diffjpeg.jpeg(x.detach(), qtables=tables, mode="soft", rounding=spec(), subsampling="4:4:4")

    assert torch.autograd.gradcheck(f, (x, quality), eps=1e-6, atol=1e-5)
    assert torch.autograd.gradcheck(g, (tables,), eps=1e-6, atol=1e-5)


@pytest.mark.parametrize("rounding", diffjpeg.ROUNDINGS)
def test_surrogate_derivative_matches_autograd(rounding):
    x = torch.linspace(-3.2, 3.2, 301, dtype=torch.float64).requires_grad_()
    (d,) = torch.autograd.grad(soft_round(x, rounding).sum(), x)
    assert torch.allclose(d, soft_round_derivative(x.detach(), rounding), atol=1e-9)


def test_surrogates_approximate_rounding():
    x = torch.linspace(-5, 5, 1001, dtype=torch.float64)
    # continuous surrogates sit half-way at the ties k + 1/2, the cubic jumps there
    for rounding, bound in (("polynomial", 0.375), ("fourier", 0.5), ("sigmoid", 0.5), ("linear", 0.5)):
        assert (soft_round(x, rounding) - torch.round(x)).abs().max() <= bound + 1e-9, rounding
    far_from_ties = (x - torch.round(x)).abs() < 0.25
    assert (soft_round(x, "sigmoid") - torch.round(x))[far_from_ties].abs().max() < 0.25


@pytest.mark.paths
@pytest.mark.parametrize("forward", FORWARDS)
def test_batched_equals_per_image(forward):
    x = image(3, (3, 3, 17, 21))
    quality = torch.tensor([10.0, 55.5, 90.0])
    tables = torch.stack([diffjpeg.standard_tables() * s for s in (0.5, 1.0, 2.0)])
    batched = diffjpeg.jpeg(x, quality=quality, mode=forward)
    batched_tables = diffjpeg.jpeg(x, qtables=tables, mode=forward)
    for i in range(3):
        assert_close_to_rounding(batched[i], diffjpeg.jpeg(x[i], quality=quality[i], mode=forward))
        assert_close_to_rounding(batched_tables[i], diffjpeg.jpeg(x[i], qtables=tables[i], mode=forward))


def test_any_batch_shape():
    x = image(4, (2, 2, 3, 9, 10))
    y = diffjpeg.jpeg(x, quality=torch.full((2, 2), 50.0))
    assert y.shape == x.shape
    assert torch.equal(y[1, 0], diffjpeg.jpeg(x[1, 0], quality=50))


def test_exact_is_dtype_independent():
    x = image(5, (1, 3, 24, 24), torch.float64)
    assert torch.equal(diffjpeg.jpeg(x, quality=30).float(), diffjpeg.jpeg(x.float(), quality=30))


def test_uint8_in_uint8_out():
    x = (image(6) * 255).round().to(torch.uint8)
    y = diffjpeg.jpeg(x, quality=50)
    assert y.dtype == torch.uint8 and y.shape == x.shape
    assert torch.equal(y, torch.round(diffjpeg.jpeg(x.float() / 255, quality=50) * 255).to(torch.uint8))


def test_learnable_layer_trains():
    layer = diffjpeg.DiffJPEG(quality=50.0, learnable=True)
    names = {n for n, _ in layer.named_parameters()}
    assert names == {"quality", "qtables", "rgb_to_ycbcr", "ycbcr_to_rgb"}
    x = image(7)
    before = diffjpeg.jpeg(x, quality=50.0)
    assert torch.equal(layer(x), before)  # starts exactly at libjpeg's codec
    optimizer = torch.optim.SGD(layer.parameters(), lr=1.0)
    loss = ((layer(x) - x) ** 2).mean()
    loss.backward()
    optimizer.step()
    assert all(torch.isfinite(p).all() for p in layer.parameters())
    assert layer.quality.item() != 50.0


@pytest.mark.paths
@pytest.mark.slow  # 25 s of dynamo tracing (the default run traces only the input checks: test_inputs, fullgraph)
def test_torch_compile_exact_traces_and_matches_eager():
    """Exact mode through dynamo and AOT autograd (inductor's code generation
    for the integer codec takes minutes): one graph, values bit for bit and
    gradients those of eager."""
    x = image(8, (2, 3, 16, 24)).requires_grad_()
    quality = torch.tensor([30.0, 80.0], requires_grad=True)
    compiled = torch.compile(lambda x, q: diffjpeg.jpeg(x, quality=q, subsampling="4:2:0"), backend="aot_eager", fullgraph=True)
    y = compiled(x, quality)
    y.sum().backward()
    grads = x.grad.clone(), quality.grad.clone()
    x.grad = quality.grad = None
    eager = diffjpeg.jpeg(x, quality=quality, subsampling="4:2:0")
    eager.sum().backward()
    assert torch.equal(y, eager)
    assert_close_to_rounding(grads[0], x.grad)
    assert_close_to_rounding(grads[1], quality.grad)


@pytest.mark.paths
@pytest.mark.slow  # inductor's code generation: 20-30 s each on 2 cores; the exact trace above stays in the default run
@pytest.mark.parametrize("forward", ("float", "soft"))
def test_torch_compile(forward):
    x = image(8, (1, 3, 16, 24)).requires_grad_()
    compiled = torch.compile(lambda x: diffjpeg.jpeg(x, quality=40.0, subsampling="4:2:2", mode=forward))
    y = compiled(x)
    y.sum().backward()
    grad = x.grad.clone()
    x.grad = None
    eager = diffjpeg.jpeg(x, quality=40.0, subsampling="4:2:2", mode=forward)
    eager.sum().backward()
    assert_close_to_rounding(y, eager)
    assert_close_to_rounding(grad, x.grad)


@pytest.mark.paths
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("forward", FORWARDS)
def test_cuda_matches_cpu(forward):
    x = image(9, (2, 3, 33, 17))
    cpu = diffjpeg.jpeg(x, quality=45, mode=forward)
    xc = x.cuda().requires_grad_()
    gpu = diffjpeg.jpeg(xc, quality=torch.tensor(45.0, device="cuda"), mode=forward)
    gpu.sum().backward()
    assert gpu.device.type == "cuda" and torch.isfinite(xc.grad).all()
    if forward == "exact":
        assert torch.equal(gpu.cpu(), cpu)
    else:
        assert (gpu.cpu() - cpu).abs().max() <= 1.0 / 255 + 1e-6
