"""The linear stages' backward as their adjoints (codec's _EncoderGraph and
_DecoderGraph): exact mode without the real-valued forward, float and soft
with their forward under no_grad. The values are the real stages' bit for
bit; the gradients are those of the real stages' graph, which the same calls
build when the adjoints are switched off, to rounding: the adjoints fold the
scaling by 255 into the color matrices (one pass over the gradient fewer)."""
import pytest
import torch

import diffjpeg
from diffjpeg.backends import cpu
from diffjpeg.codec import pipeline as codec
from diffjpeg.stages.color import rgb_to_ycbcr_matrix, ycbcr_to_rgb_matrix
from tests.helpers import assert_close_to_rounding

pytestmark = pytest.mark.paths  # every test here holds two computation paths equal


@pytest.fixture
def real_stages(monkeypatch):
    """A switch after which every mode's graph is the real stages' again."""

    def switch():
        monkeypatch.setattr(codec._EncoderGraph, "applies", staticmethod(lambda *a: False))
        monkeypatch.setattr(codec._DecoderGraph, "applies", staticmethod(lambda *a: False))

    return switch


def grads(f, leaves, weights):
    leaves = [t.detach().clone().requires_grad_() for t in leaves]
    out = f(*leaves)
    return [out.detach()] + list(torch.autograd.grad((out.float() * weights).sum(), leaves))


def assert_same(f, leaves, weights, real_stages):
    fast = grads(f, leaves, weights)
    real_stages()
    real = grads(f, leaves, weights)
    assert fast[0].dtype == real[0].dtype and torch.equal(fast[0], real[0])
    for a, b in zip(fast[1:], real[1:]):
        assert_close_to_rounding(a, b)


CASES = [  # shape, subsampling, dtype
    ((2, 3, 17, 33), "4:2:0", torch.float32),
    ((1, 3, 64, 48), "4:2:2", torch.float32),
    ((1, 3, 23, 9), "4:4:4", torch.float64),
    ((2, 1, 19, 30), "4:2:0", torch.float32),
    ((3, 40, 40), "4:2:0", torch.float16),
    ((1, 3, 24, 16), "4:2:0", torch.bfloat16),
    ((1, 3, 1, 1), "4:2:0", torch.float32),
    ((1, 3, 9, 4), "4:2:0", torch.float32),  # chroma 2 wide: replicated, not filtered (the real stages)
]


@pytest.mark.parametrize("shape, subsampling, dtype", CASES)
@pytest.mark.parametrize("mode", ["exact", "exact/tensor-stages", "float", "soft"])
def test_image_gradient(real_stages, shape, subsampling, dtype, mode):
    g = torch.Generator().manual_seed(sum(shape))
    x = torch.rand(shape, generator=g).to(dtype)
    weights = torch.randn(shape, generator=g)
    with cpu.enabled(not mode.endswith("tensor-stages")):
        assert_same(lambda t: diffjpeg.jpeg(t, 50, subsampling=subsampling, mode=mode.split("/")[0]), [x], weights, real_stages)


@pytest.mark.parametrize("mode", ["exact", "float", "soft"])
@pytest.mark.parametrize("what", ["quality", "qtables", "constant matrices", "rounding"])
def test_other_leaves(real_stages, what, mode):
    g = torch.Generator().manual_seed(3)
    x = torch.rand(2, 3, 20, 28, generator=g)
    weights = torch.randn(x.shape, generator=g)
    if what == "quality":
        f, leaves = (lambda t, q: diffjpeg.jpeg(t, q, mode=mode)), [x, torch.tensor([30.0, 80.0])]
    elif what == "qtables":
        f, leaves = (lambda t, q: diffjpeg.jpeg(t, qtables=q, mode=mode)), [x, torch.rand(2, 2, 8, 8, generator=g) * 40 + 1]
    elif what == "constant matrices":
        forward = rgb_to_ycbcr_matrix() + 0.01 * torch.randn(3, 3, generator=g)
        inverse = ycbcr_to_rgb_matrix() + 0.01 * torch.randn(3, 3, generator=g)
        f, leaves = (lambda t: diffjpeg.jpeg(t, 60, rgb_to_ycbcr=forward, ycbcr_to_rgb=inverse, mode=mode)), [x]
    else:
        f, leaves = (lambda t: diffjpeg.jpeg(t, 60, rounding=diffjpeg.stages.rounding.Fourier(order=3), mode=mode)), [x]
    assert_same(f, leaves, weights, real_stages)


@pytest.mark.parametrize("mode", ["exact", "float", "soft"])
@pytest.mark.parametrize("sampling", [((2, 2), (1, 1), (1, 1)), ((1, 2), (1, 1), (1, 1)), ((4, 1), (1, 1), (1, 1)), ((2, 1), (1, 1), (1, 1))])
def test_decode_gradient(real_stages, sampling, mode):
    """decode alone, coefficients and tables requiring grad, any sampling
    factors (h1v2 filters; h4v1 replicates: the real stages)."""
    encoded = diffjpeg.encode(torch.rand(1, 3, 37, 53, generator=torch.Generator().manual_seed(5)), 70)
    c = diffjpeg.Coefficients(y=torch.zeros(1, 1, 8, 8), cb=torch.zeros(1, 1, 8, 8), cr=torch.zeros(1, 1, 8, 8),
                              qtables=encoded.qtables, sampling=sampling, size=(37, 53))
    g = torch.Generator().manual_seed(6)
    blocks = [torch.round(torch.randn((1,) + geo.blocks + (8, 8), generator=g) * 4) for geo in c.geometries()]
    weights = torch.randn(1, 3, 37, 53, generator=g)

    def f(y, cb, cr, tables):
        return diffjpeg.decode(diffjpeg.Coefficients(y, cb, cr, qtables=tables, sampling=sampling, size=(37, 53)), mode=mode)

    assert_same(f, blocks + [encoded.qtables.float()], weights, real_stages)


@pytest.mark.parametrize("mode", ["exact", "float", "soft"])
def test_second_backward_through_retained_graph(mode):
    x = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(8), requires_grad=True)
    y = diffjpeg.jpeg(x, 50, mode=mode)
    (a,) = torch.autograd.grad(y.sum(), x, retain_graph=True)
    (b,) = torch.autograd.grad(y.sum(), x)
    assert torch.equal(a, b)


@pytest.mark.parametrize("mode", ["exact", "float"])
def test_component_without_gradient(real_stages, mode):
    """Only the luma coefficients reach the loss: the chroma's share of the
    input gradient is zero, as through the real stages."""
    x = torch.rand(1, 3, 24, 32, generator=torch.Generator().manual_seed(9))

    def f(t):
        return diffjpeg.encode(t, 50, mode=mode).y

    weights = torch.randn(1, 3, 4, 8, 8, generator=torch.Generator().manual_seed(10))
    assert_same(f, [x], weights, real_stages)


@pytest.mark.parametrize("mode", ["exact", "float", "soft"])
def test_backward_under_autocast(real_stages, mode):
    """A backward called inside autocast (bfloat16 on the CPU) gives the
    gradient of a backward outside it, bit for bit, and the real stages'
    to rounding: the adjoints run with autocast off, as the stages' forward does. (The real stages' graph does
    not: its built-in nodes run their products in bfloat16 then, up to 0.02
    apart on this image; that was the gradient before the adjoints.)"""
    x = torch.rand(2, 3, 40, 24, generator=torch.Generator().manual_seed(11))
    weights = torch.randn(x.shape, generator=torch.Generator().manual_seed(12))

    def run(inside):
        t = x.clone().requires_grad_()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y = diffjpeg.jpeg(t, 50, mode=mode)
            if inside:
                (y * weights).sum().backward()
        if not inside:
            (y * weights).sum().backward()
        return t.grad

    inside = run(True)
    assert torch.equal(inside, run(False))
    real_stages()
    assert_close_to_rounding(inside, run(False))
