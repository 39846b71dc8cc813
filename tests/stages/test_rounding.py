"""The surrogates' stated facts (bounds, kernels, means, value and derivative
consistent), the noise estimator, and the warning for a soft forward that
rounds nothing."""
import math
import threading
import warnings

import pytest
import torch

import diffjpeg
from diffjpeg.stages.rounding import FOURIER_DAMPINGS, Fourier, Noise, Sigmoid, as_rounding, soft_round
from tests.helpers import assert_close_to_rounding

X = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
GRID = torch.linspace(-2, 2, 8001, dtype=torch.float64)  # 2000 points per period: half-integers on it


@pytest.mark.parametrize("order", [1, 2, 3, 5, 10])
def test_undamped_fourier_derivative_is_the_dirichlet_kernel(order):
    """1 + 2 sum cos(k p), p = 2 pi x + pi: 2K + 1 at half-integers, (-1)**K at integers."""
    r = Fourier(order=order, damping="none")
    half, whole = torch.tensor([-0.5, 0.5, 1.5], dtype=torch.float64), torch.tensor([-1.0, 0.0, 2.0], dtype=torch.float64)
    assert torch.allclose(r.derivative(half), torch.full((3,), 2.0 * order + 1, dtype=torch.float64), atol=1e-9)
    assert torch.allclose(r.derivative(whole), torch.full((3,), 1.0 if order % 2 == 0 else -1.0, dtype=torch.float64), atol=1e-9)
    assert float(r.derivative(GRID).max()) == pytest.approx(2 * order + 1, abs=1e-6)
    assert float(r.derivative(GRID).min()) < 0  # Gibbs ringing: negative lobes


@pytest.mark.parametrize("order", [1, 2, 3, 5, 10])
def test_fejer_derivative_is_the_fejer_kernel(order):
    """(sin((K+1) p/2) / sin(p/2))**2 / (K+1): never negative, K+1 at half-integers, mean 1."""
    r = Fourier(order=order, damping="fejer")
    p = 2 * math.pi * GRID + math.pi
    away = torch.sin(p / 2).abs() > 1e-3  # the closed form is 0/0 at half-integers
    kernel = (torch.sin((order + 1) * p / 2) / torch.sin(p / 2)) ** 2 / (order + 1)
    d = r.derivative(GRID)
    assert torch.allclose(d[away], kernel[away], atol=1e-9)
    assert float(d.min()) >= -1e-12
    assert float(d.max()) == pytest.approx(order + 1, abs=1e-6)
    # monotone value: the surrogate never runs backwards
    assert bool((r(GRID).diff() >= -1e-12).all())


@pytest.mark.parametrize("damping", FOURIER_DAMPINGS)
@pytest.mark.parametrize("order", [1, 4, 10])
def test_fourier_mean_slope_is_one_and_value_matches_derivative(damping, order):
    r = Fourier(order=order, damping=damping)
    period = torch.arange(10000, dtype=torch.float64) / 10000
    assert float(r.derivative(period).mean()) == pytest.approx(1.0, abs=1e-9)
    # r(x) - x is periodic with mean 0: r(x + 1) = r(x) + 1, and r(n) = n at integers
    assert torch.allclose(r(GRID + 1), r(GRID) + 1, atol=1e-9)
    assert torch.allclose(r(torch.arange(-3.0, 4.0, dtype=torch.float64)), torch.arange(-3.0, 4.0, dtype=torch.float64), atol=1e-9)
    # the closed-form backward is the value's derivative (finite differences)
    x = (torch.rand(64, dtype=torch.float64, generator=torch.Generator().manual_seed(1)) * 6 - 3).requires_grad_()
    assert torch.autograd.gradcheck(r, (x,))


def test_lanczos_rings_less_than_none():
    for order in (3, 10):
        none, lanczos, fejer = (Fourier(order=order, damping=d).derivative(GRID) for d in ("none", "lanczos", "fejer"))
        assert float(fejer.max()) < float(lanczos.max()) < float(none.max())
        assert float(none.min()) < float(lanczos.min()) < 0 <= float(fejer.min()) + 1e-12


def test_fourier_damping_changes_the_layer_gradient_but_not_the_exact_forward():
    x = X.clone().requires_grad_()
    outs = {}
    for damping in FOURIER_DAMPINGS:
        x.grad = None
        y = diffjpeg.jpeg(x, 50, rounding=Fourier(order=10, damping=damping))
        y.sum().backward()
        outs[damping] = (y.detach(), x.grad.clone())
    assert torch.equal(outs["none"][0], outs["fejer"][0])
    assert not torch.allclose(outs["none"][1], outs["fejer"][1])


def test_noise_is_uniform_reproducible_and_has_slope_one():
    g = torch.Generator().manual_seed(3)
    x = torch.linspace(-5, 5, 200_000, dtype=torch.float64, requires_grad=True)
    y = Noise(generator=g)(x)
    u = (y - x).detach()
    assert float(u.min()) >= -0.5 and float(u.max()) <= 0.5
    assert float(u.mean()) == pytest.approx(0.0, abs=0.005) and float(u.var()) == pytest.approx(1 / 12, rel=0.02)
    y.sum().backward()
    assert torch.equal(x.grad, torch.ones_like(x))
    # the same generator state, the same draws; torch.manual_seed governs the default
    assert torch.equal(Noise(generator=torch.Generator().manual_seed(3))(x.detach()), y.detach())
    torch.manual_seed(5)
    a = soft_round(x.detach(), "noise")
    torch.manual_seed(5)
    assert torch.equal(a, soft_round(x.detach(), "noise"))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_noise_keeps_dtype_and_soft_layer_adds_noise_before_dequantizing(dtype):
    x = X.to(dtype)
    r = Noise(generator=torch.Generator().manual_seed(0))
    assert r(x).dtype == dtype
    # in the soft forward the quantized coefficients are F / Q + u: not integers, within 1/2 of the float forward's
    soft = diffjpeg.encode(X.double(), 50, mode="soft", rounding=r)
    rounded = diffjpeg.encode(X.double(), 50, mode="float", rounding="noise")
    assert (soft.y - soft.y.round()).abs().max() > 0.1
    assert (soft.y - rounded.y).abs().max() <= 1.0 + 1e-9
    # every dtype in, that dtype out, through the layer
    y = diffjpeg.jpeg(x, 50, mode="soft", rounding=r)
    assert y.dtype == dtype and bool(torch.isfinite(y.float()).all())


def test_noise_keeps_the_exact_forward_and_gives_the_straight_through_gradient():
    x = X.clone().requires_grad_()
    y = diffjpeg.jpeg(x, 30, rounding="noise")
    assert torch.equal(y.detach(), diffjpeg.jpeg(X, 30))
    y.square().sum().backward()
    g_noise = x.grad.clone()
    x.grad = None
    diffjpeg.jpeg(x, 30, rounding="linear").square().sum().backward()
    assert torch.equal(g_noise, x.grad)


@pytest.mark.paths
def test_noise_under_autocast_and_from_threads():
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = diffjpeg.jpeg(X, 50, mode="soft", rounding="noise")
    assert y.dtype == X.dtype and bool(torch.isfinite(y).all())
    # threads drawing from their own generators get what one thread gets
    expected = [diffjpeg.jpeg(X, 50, mode="soft", rounding=Noise(generator=torch.Generator().manual_seed(i))) for i in range(4)]
    got = [None] * 4

    def work(i):
        got[i] = diffjpeg.jpeg(X, 50, mode="soft", rounding=Noise(generator=torch.Generator().manual_seed(i)))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(torch.equal(a, b) for a, b in zip(expected, got))


@pytest.mark.paths
@pytest.mark.slow  # about 2 minutes on 2 loaded cores: soft mode traced twice
def test_noise_and_damped_fourier_under_torch_compile():
    for rounding in ("fourier", Fourier(order=3, damping="lanczos")):
        f = torch.compile(lambda x, r=rounding: diffjpeg.jpeg(x, 50, mode="soft", rounding=r), backend="aot_eager")
        assert_close_to_rounding(f(X), diffjpeg.jpeg(X, 50, mode="soft", rounding=rounding))
    f = torch.compile(lambda x: diffjpeg.jpeg(x, 50, mode="soft", rounding="noise"), backend="aot_eager")
    y = f(X)
    assert y.shape == X.shape and bool(torch.isfinite(y).all())


def test_soft_linear_warns_once_per_call_site_and_nothing_else_warns():
    def call(mode, rounding):
        return diffjpeg.jpeg(X, 50, mode=mode, rounding=rounding)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        for _ in range(3):
            diffjpeg.jpeg(X, 50, mode="soft", rounding="linear")  # one line: one warning
        diffjpeg.DiffJPEG(50, mode="soft", rounding="linear")(X)
    messages = [str(w.message) for w in caught if "quantizes nothing" in str(w.message)]
    assert len(messages) == 2 and 'mode="exact"' in messages[0]
    assert all(w.filename == __file__ for w in caught if "quantizes nothing" in str(w.message))  # the user's line
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for mode in ("exact", "float"):
            call(mode, "linear")
        for rounding in ("polynomial", "sigmoid", "fourier", "noise"):
            call("soft", rounding)


def test_sigmoid_and_named_specs_unchanged():
    assert as_rounding("sigmoid") == Sigmoid(temperature=0.25)
    assert isinstance(as_rounding("noise"), Noise)


@pytest.mark.parametrize("rounding", [Sigmoid(), Sigmoid(temperature=0.1), diffjpeg.stages.rounding.Polynomial()])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_derivative_in_place_equals_recorded(rounding, dtype):
    """The backward computes r'(x) in place on one temporary; a double
    backward (autograd recording) takes the out-of-place steps: the same
    operations in the same order, so the same bits."""
    x = torch.cat([torch.randn(5000, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 30,
                   torch.tensor([0.5, -0.5, 1.5, 0.0, -0.0, 3.0, -2.5, 1e-30])]).to(dtype)
    fast = rounding.derivative(x)
    with torch.enable_grad():
        recorded = rounding.derivative(x.clone().requires_grad_())
    assert recorded.requires_grad and torch.equal(fast, recorded.detach())
