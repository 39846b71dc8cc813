"""Large images run in strips of MCU rows (diffjpeg.codec.strips): values and input
gradients bit-identical to the whole image's, for every mode, sampling and
surrogate; the strip path is forced on small images by a small strip size."""
import math

import pytest
import torch

from diffjpeg import decode, encode, jpeg
from diffjpeg.codec import strips
from diffjpeg.stages.rounding import ROUNDINGS, Noise
from tests.helpers import assert_close_to_rounding

pytestmark = pytest.mark.paths  # every test here holds two computation paths equal


def whole(x, **options):
    """The whole-image path: jpeg() without strips."""
    mode = options.get("mode", "exact")
    out = decode(encode(x, options.pop("quality", 50), **options), mode=mode)
    return out.to(x.dtype)


def value_and_grad(f, x, weights):
    x = x.clone().requires_grad_()
    out = f(x)
    (out * weights).sum().backward()
    return out.detach(), x.grad


@pytest.fixture
def small_strips(monkeypatch):
    monkeypatch.setattr(strips, "STRIP_PIXELS", 512)


CASES = [  # (shape, subsampling, mode, rounding)
    ((1, 3, 83, 45), "4:2:0", "exact", "sigmoid"),
    ((2, 3, 97, 31), "4:2:0", "float", "polynomial"),
    ((1, 3, 100, 64), "4:2:0", "soft", "sigmoid"),
    ((2, 3, 70, 19), "4:2:2", "exact", "linear"),
    ((1, 3, 77, 40), "4:4:4", "float", "sigmoid"),
    ((1, 1, 90, 37), "4:2:0", "float", "fourier"),
    ((3, 80, 33), "4:2:0", "exact", "polynomial"),
    ((2, 2, 3, 64, 24), "4:2:0", "exact", "sigmoid"),
    ((2, 1, 1, 72, 16), "4:2:0", "float", "sigmoid"),
] + [((1, 3, 64, 48), "4:2:0", mode, r) for mode in ("exact", "float", "soft") for r in ROUNDINGS if (mode, r) != ("soft", "noise")]


@pytest.mark.parametrize("shape, subsampling, mode, rounding", CASES)
def test_strips_bit_identical(small_strips, shape, subsampling, mode, rounding):
    g = torch.Generator().manual_seed(sum(shape))
    x = torch.rand(shape, generator=g)
    weights = torch.randn(shape, generator=g)
    options = dict(subsampling=subsampling, mode=mode, rounding=rounding)
    count = math.prod(shape[:-3])
    assert len(strips.strip_rows(shape[-2], shape[-1], count, 16, strips.STRIP_PIXELS)) > 2  # the strip path runs
    out, grad = value_and_grad(lambda t: jpeg(t, 50, **options), x, weights)
    ref_out, ref_grad = value_and_grad(lambda t: whole(t, **options), x, weights)
    assert torch.equal(out, ref_out)
    assert torch.equal(grad, ref_grad)
    with torch.no_grad():
        assert torch.equal(jpeg(x, 50, **options), ref_out)


@pytest.mark.parametrize("mode", ["exact", "float", "soft"])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_strips_dtypes(small_strips, dtype, mode):
    x = torch.rand(1, 3, 72, 40, generator=torch.Generator().manual_seed(1)).to(dtype)
    weights = torch.randn(1, 3, 72, 40, generator=torch.Generator().manual_seed(2)).to(dtype)
    out, grad = value_and_grad(lambda t: jpeg(t, 30, mode=mode), x, weights)
    ref_out, ref_grad = value_and_grad(lambda t: whole(t, quality=30, mode=mode), x, weights)
    assert out.dtype == grad.dtype == dtype
    assert torch.equal(out, ref_out) and torch.equal(grad, ref_grad)


@pytest.mark.parametrize("mode", ["exact", "float", "soft"])
@pytest.mark.parametrize("pixels", [300, 700, 1500, 4000])
def test_strips_of_other_heights(monkeypatch, pixels, mode):
    """Strip budgets that cut the image into other row counts (a BLAS would
    pick other kernels for each): the same values and gradients."""
    monkeypatch.setattr(strips, "STRIP_PIXELS", pixels)
    x = torch.rand(2, 3, 136, 40, generator=torch.Generator().manual_seed(pixels))
    weights = torch.randn(2, 3, 136, 40, generator=torch.Generator().manual_seed(pixels + 1))
    assert len(strips.strip_rows(136, 40, 2, 16, pixels)) > 1
    out, grad = value_and_grad(lambda t: jpeg(t, 60, mode=mode), x, weights)
    ref_out, ref_grad = value_and_grad(lambda t: whole(t, quality=60, mode=mode), x, weights)
    assert torch.equal(out, ref_out) and torch.equal(grad, ref_grad)


def test_strips_per_image_quality(small_strips):
    x = torch.rand(2, 3, 80, 24, generator=torch.Generator().manual_seed(3))
    weights = torch.randn(2, 3, 80, 24, generator=torch.Generator().manual_seed(4))
    q = torch.tensor([20.0, 90.0])
    out, grad = value_and_grad(lambda t: jpeg(t, q, mode="exact"), x, weights)
    ref_out, ref_grad = value_and_grad(lambda t: whole(t, quality=q, mode="exact"), x, weights)
    assert torch.equal(out, ref_out) and torch.equal(grad, ref_grad)


def test_strips_not_taken_for_noise(small_strips):
    """The noise estimator's soft forward draws its noise per call: the same seed gives the whole image's draw."""
    x = torch.rand(1, 3, 80, 24, generator=torch.Generator().manual_seed(6))
    out = jpeg(x, 50, mode="soft", rounding=Noise(generator=torch.Generator().manual_seed(0)))
    ref = whole(x, mode="soft", rounding=Noise(generator=torch.Generator().manual_seed(0)))
    assert torch.equal(out, ref)


def test_strips_not_taken_for_learned_quality(small_strips):
    """A quality that requires grad gets the whole image's sum (strips would reorder it)."""
    x = torch.rand(1, 3, 80, 24, generator=torch.Generator().manual_seed(5))
    q = torch.tensor(50.0, requires_grad=True)
    jpeg(x, q, mode="float").sum().backward()
    q_ref = torch.tensor(50.0, requires_grad=True)
    whole(x, quality=q_ref, mode="float").sum().backward()
    assert torch.equal(q.grad, q_ref.grad)


def test_strip_rows():
    assert strips.strip_rows(4000, 3000, 1, 16) [0] == (0, 16 * (strips.STRIP_PIXELS // (3000 * 16)))
    rows = strips.strip_rows(3000, 4000, 1, 16)
    assert rows[0][0] == 0 and rows[-1][1] == 3000
    assert all(a[1] == b[0] and a[1] % 16 == 0 for a, b in zip(rows, rows[1:]))
    assert strips.strip_rows(256, 256, 16, 16) == [(0, 256)]  # a batch of small images: one strip


def test_strips_double_backward(small_strips):
    """create_graph=True: the input gradient is itself differentiable, through the whole image's
    graph; the first order bit-identical, the second up to float32 rounding (autograd adds the
    second-order terms through the strip Function in another order)."""
    x0 = torch.rand(1, 3, 72, 24, generator=torch.Generator().manual_seed(7))
    results = []
    for f in (lambda t: jpeg(t, 50, mode="soft"), lambda t: whole(t, mode="soft")):
        x = x0.clone().requires_grad_()
        (g,) = torch.autograd.grad((f(x) ** 2).sum(), x, create_graph=True)
        (gg,) = torch.autograd.grad(g.square().sum(), x)
        results.append((g.detach(), gg))
    assert torch.equal(results[0][0], results[1][0])
    assert_close_to_rounding(results[0][1], results[1][1])


def test_strips_keep_graphs_no_recompute(small_strips):
    """With a gradient each strip's graph is kept: the backward runs no strip again,
    and a second backward through a retained graph gives the same gradient."""
    x = torch.rand(1, 3, 64, 24, generator=torch.Generator().manual_seed(3), requires_grad=True)
    calls = []

    def run(t):
        calls.append(t.shape[-2])
        return jpeg(t, 50, mode="float")

    out = strips.in_strips(run, x, 16, 16)
    forward_calls = len(calls)
    assert forward_calls == len(strips.strip_rows(64, 24, 1, 16, strips.STRIP_PIXELS)) > 2
    weights = torch.randn(out.shape, generator=torch.Generator().manual_seed(4))
    (first,) = torch.autograd.grad((out * weights).sum(), x, retain_graph=True)
    (second,) = torch.autograd.grad((out * weights).sum(), x)
    assert len(calls) == forward_calls
    assert torch.equal(first, second)
    _, ref = value_and_grad(lambda t: whole(t, mode="float"), x.detach(), weights)
    assert torch.equal(first, ref)


def test_strips_output_saved_by_a_stage():
    """A strip's graph is kept without its pixels, except where a stage saved
    them: sigmoid saves its output for its backward, which must survive."""
    x = torch.randn(2, 1, 40, 8, generator=torch.Generator().manual_seed(5), requires_grad=True)
    out = strips.in_strips(torch.sigmoid, x, 8, 0, pixels=64)
    assert out is not None
    out.sum().backward()
    ref = x.detach().clone().requires_grad_()
    torch.sigmoid(ref).sum().backward()
    assert torch.equal(out, torch.sigmoid(x.detach()))
    assert torch.equal(x.grad, ref.grad)


def test_strips_run_returning_its_input():
    """A run that returns its input: values and gradient pass through unchanged."""
    x = torch.rand(1, 1, 40, 8, generator=torch.Generator().manual_seed(6), requires_grad=True)
    out = strips.in_strips(lambda t: t, x, 8, 0, pixels=64)
    out.sum().backward()
    assert torch.equal(out, x.detach()) and torch.equal(x.grad, torch.ones_like(x))


@pytest.mark.parametrize("takes_grad", [False, True])
def test_strips_windows(takes_grad):
    """A run given a Window writes its interior rows into the output itself;
    backward, one that takes the window's gradient rows writes them, and the
    strips add whatever else reaches the strip; one that does not gets them copied."""
    x = torch.rand(2, 1, 48, 8, generator=torch.Generator().manual_seed(8), requires_grad=True)

    def run(t, window=None):
        y = torch.sigmoid(t)
        if window is not None:
            window.write(y)
            if takes_grad:
                y = _TakeGrad.apply(y, window)
        return y

    out = strips.in_strips(run, x, 8, 8, pixels=64, into=(1, torch.float32))
    weights = torch.randn(out.shape, generator=torch.Generator().manual_seed(9))
    (out * weights).sum().backward()
    ref = x.detach().clone().requires_grad_()
    (torch.sigmoid(ref) * weights).sum().backward()
    assert torch.equal(out, torch.sigmoid(x.detach()))
    expected = ref.grad
    if takes_grad:  # the rows _TakeGrad wrote, then the strip's own gradient added
        y = torch.sigmoid(x.detach())
        expected = weights * y * (1 - y) + ref.grad
    assert torch.equal(x.grad, expected)


class _TakeGrad(torch.autograd.Function):
    """Identity whose backward also writes the interior rows of the input's gradient into the window."""

    @staticmethod
    def forward(ctx, y, window):
        ctx.save_for_backward(y)
        ctx.window = window
        return y.view_as(y)

    @staticmethod
    def backward(ctx, grad):
        (y,) = ctx.saved_tensors
        target = ctx.window.take_grad()
        if target is not None:
            target.copy_(ctx.window.rows(grad * y * (1 - y)))
        return grad, None


def test_strips_from_many_threads(small_strips):
    """Each call's strips write through their own windows: eight threads at once
    give every call the values and gradient it gives alone."""
    from concurrent.futures import ThreadPoolExecutor

    g = torch.Generator().manual_seed(12)
    cases = [(torch.rand(1, 3, 80, 24, generator=g), torch.randn(1, 3, 80, 24, generator=g), mode) for mode in ("exact", "float", "soft") * 3]

    def one(case):
        x, weights, mode = case
        return value_and_grad(lambda t: jpeg(t, 50, mode=mode), x, weights)

    alone = [one(c) for c in cases]
    with ThreadPoolExecutor(8) as pool:
        together = list(pool.map(one, cases * 2))
    for (out, grad), (ref_out, ref_grad) in zip(together, alone * 2):
        assert torch.equal(out, ref_out) and torch.equal(grad, ref_grad)


@pytest.mark.parametrize("mode", ["exact", "float"])
def test_strips_under_autocast(small_strips, mode):
    """Under the caller's autocast the strips compute in full precision, as the whole image does."""
    x = torch.rand(1, 3, 72, 40, generator=torch.Generator().manual_seed(13))
    weights = torch.randn(1, 3, 72, 40, generator=torch.Generator().manual_seed(14))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out, grad = value_and_grad(lambda t: jpeg(t, 50, mode=mode), x, weights)
        ref_out, ref_grad = value_and_grad(lambda t: whole(t, mode=mode), x, weights)
    assert out.dtype == torch.float32
    assert torch.equal(out, ref_out) and torch.equal(grad, ref_grad)
