"""The quantizer's compiled loop (diffjpeg/backends/_quantize.c) against the
tensor form it replaces (diffjpeg.stages.quantize.quantize_with_surrogate with
the loops off):

* float mode's values, ``rint(F / Q)``, bit for bit (the same two IEEE operations);
* soft mode's values and every gradient, of the coefficients and of the
  table, within the float/soft contract (the loop's tanh, sin and cos are
  its own), for every surrogate, both float dtypes, per-image and shared tables;
* the table's gradient summed in one fixed order: threads, rows split into
  chunks or not, give the same bits by construction;
* the loop's argument checks, and what it declines.
"""
import numpy as np
import pytest
import torch

from diffjpeg.backends import cpu
from diffjpeg.stages.quantize import quantize
from diffjpeg.stages.rounding import Fourier, Noise, Rounding, Sigmoid
from tests.helpers import assert_close_to_rounding, both_paths

BUILT = cpu.quantize(torch.zeros(1, 1, 8, 8), torch.ones(1, 1, 8, 8), False, "linear", ()) is not None
pytestmark = [
    pytest.mark.paths,
    pytest.mark.skipif(not BUILT, reason="the compiled loops were not built (no C compiler at install time), or turned off"),
]

SURROGATES = ["linear", "polynomial", "fourier", "sigmoid", Fourier(order=3, damping="none"), Sigmoid(temperature=0.05)]


def coefficients_and_table(dtype, images=3, blocks=(5, 7), seed=0, shared=False):
    """DCT-like coefficients (DC up to 1024, ties of F / Q among them) and tables in [1, 255]."""
    g = torch.Generator().manual_seed(seed)
    f = (torch.rand(images, *blocks, 8, 8, generator=g, dtype=torch.float64) - 0.5) * 400
    f[..., 0, 0] *= 5
    q = torch.randint(1, 256, (1 if shared else images, 1, 1, 8, 8), generator=g).to(torch.float64)
    f[:, 0, 0] = (torch.arange(64, dtype=torch.float64).reshape(8, 8) - 32 + 0.5) * q[0, 0, 0]  # F / Q on ties
    return f.to(dtype), q.to(dtype)


def run(f0, q0, mode, rounding, seed=None):
    f, q = f0.clone().requires_grad_(), q0.clone().requires_grad_()
    if isinstance(rounding, str) and rounding == "noise" and seed is not None:
        rounding = Noise(generator=torch.Generator().manual_seed(seed))
    y = quantize(f, q, mode, rounding)
    w = torch.sin(torch.arange(y[0].numel(), dtype=y.dtype)).reshape(y.shape[1:])  # the same weights for every image
    (y * w).sum().backward()
    return y.detach(), f.grad, q.grad


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("rounding", SURROGATES + ["noise"], ids=str)
@pytest.mark.parametrize("mode", ["float", "soft"])
@pytest.mark.parametrize("shared", [False, True])
def test_quantizer_loop_is_the_tensor_form(dtype, rounding, mode, shared):
    f0, q0 = coefficients_and_table(dtype, shared=shared)
    if mode == "soft" and rounding == "linear":
        pytest.skip("quantizes nothing (warns); covered by the gradient of float mode")
    (y, gf, gq), (y_ref, gf_ref, gq_ref) = both_paths(lambda: run(f0, q0, mode, rounding, seed=3))
    if mode == "float":
        assert torch.equal(y, y_ref)
    else:
        assert_close_to_rounding(y, y_ref)
    assert_close_to_rounding(gf, gf_ref)
    assert gq.shape == q0.shape
    assert_close_to_rounding(gq, gq_ref)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_values_without_a_gradient_come_from_the_loop(dtype):
    f, q = coefficients_and_table(dtype)
    for mode, rounding in (("float", "sigmoid"), ("soft", "sigmoid"), ("soft", "fourier")):
        fast, slow = both_paths(lambda: quantize(f, q, mode, rounding))
        if mode == "float":
            assert torch.equal(fast, slow)
        else:
            assert_close_to_rounding(fast, slow)


def test_noise_comes_from_the_generator():
    """The loop adds the generator's draws as the tensor form does: the same values, and the generator moves alike."""
    f, q = coefficients_and_table(torch.float32)
    results = []
    for on in (True, False):
        g = torch.Generator().manual_seed(9)
        with cpu.enabled(on):
            results.append((quantize(f, q, "soft", Noise(generator=g)), g.get_state()))
    assert torch.equal(results[0][0], results[1][0]) and torch.equal(results[0][1], results[1][1])
    spread = results[0][0] - f / q
    assert spread.abs().max() <= 0.5 and abs(spread.var().item() * 12 - 1) < 0.05


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_table_gradient_sums_in_one_order_whatever_the_threads(threads, set_threads):
    """One large image (rows split into chunks among the threads) and a
    batch (rows among the threads): each sum the same bits as on one thread."""
    results = {}
    for n in (1, 3):
        f0, q0 = coefficients_and_table(torch.float32, images=n, blocks=(48, 64), seed=n)  # 3072 blocks: two chunks
        for t in (1, threads):
            set_threads(t)
            results[n, t] = run(f0, q0, "float", "sigmoid")
        for a, b in zip(results[n, 1], results[n, threads]):
            assert torch.equal(a, b), (n, threads)
    # and an image's sums do not depend on the batch it came in
    f0, q0 = coefficients_and_table(torch.float32, images=3, blocks=(48, 64), seed=3)
    alone = run(f0[1:2], q0[1:2], "float", "sigmoid")
    assert torch.equal(alone[2], results[3, 1][2][1:2])


def test_second_derivatives_take_the_tensor_form():
    """A backward that records a graph (create_graph) runs the tensor form, whose graph autograd differentiates."""
    f0, q0 = coefficients_and_table(torch.float64, images=1, blocks=(1, 2))

    def second():
        f = f0.clone().requires_grad_()
        (g,) = torch.autograd.grad(quantize(f, q0, "soft", "sigmoid").square().sum(), f, create_graph=True)
        (h,) = torch.autograd.grad(g.sum(), f)
        return g.detach(), h

    (g, h), (g_ref, h_ref) = both_paths(second)
    assert_close_to_rounding(g, g_ref) and assert_close_to_rounding(h, h_ref)
    assert h.abs().sum() > 0


def test_the_quantizer_loop_declines_what_it_cannot_take():
    f, q = coefficients_and_table(torch.float32)
    assert cpu.quantize(f.half(), q.half(), False, "linear", ()) is None  # float32 and float64 only
    assert cpu.quantize(f, q.double(), False, "linear", ()) is None  # one dtype
    assert cpu.quantize(f, q[:, :, :, :4], False, "linear", ()) is None  # not 8x8 tables
    assert cpu.quantize(f, q.expand(3, 5, 7, 8, 8), False, "linear", ()) is None  # a table per block
    assert cpu.quantize(f[1:], q[1:], False, "linear", ()) is not None  # a view of some images' rows...
    assert cpu.quantize(f.transpose(1, 2), q, False, "linear", ()) is None  # ...but not blocks out of order
    assert cpu.quantize(f.requires_grad_(), q, False, "linear", ()) is None  # a gradient to record

    class Halving(Rounding):  # a surrogate of the caller's: the tensor form, which calls it
        name = "linear"

        def __call__(self, x):
            return x / 2

        def derivative(self, x):
            return torch.full_like(x, 0.5)

    f, q = coefficients_and_table(torch.float32)
    assert torch.equal(quantize(f, q, "soft", Halving()), f / q / 2)


def test_the_quantizer_loop_checks_its_arguments():
    from diffjpeg.backends import _quantize

    f, q = np.zeros((2, 128), np.float32), np.ones((2, 64), np.float32)
    out, partials = np.zeros_like(f), np.zeros((2, 1, 64))
    assert _quantize.forward(f, q, out, None, True, "sigmoid", (4.0, 1.9), 0, 2, 0, 128) is None
    assert _quantize.backward(f, f, q, out, partials, "fourier", (0.5,), 128, 0, 2, 0, 128) is None
    for name, params in (("round", ()), ("sigmoid", (4.0,)), ("sigmoid", (0.0, 1.0)), ("fourier", ()), ("fourier", (float("nan"),))):
        with pytest.raises(ValueError, match="surrogate"):
            _quantize.forward(f, q, out, None, True, name, params, 0, 2, 0, 128)
    bad_forward = [
        (f.astype(np.float64), q, out, None, 0, 2, 0, 128),  # kinds differ
        (f, q[:, :32], out, None, 0, 2, 0, 128),  # not 64 table entries
        (f, q, out[:, :64], None, 0, 2, 0, 128),  # shapes differ
        (f, q, out, None, 0, 3, 0, 128),  # rows past the end
        (f, q, out, None, 0, 2, 32, 128),  # not on a block
        (f[:, :100], q, out[:, :100], None, 0, 2, 0, 100),  # not whole blocks
        (f, q, out, f, 0, 2, 0, 128),  # noise where the surrogate draws none
    ]
    for args in bad_forward:
        with pytest.raises(ValueError, match="bad arguments"):
            _quantize.forward(*args[:4], True, "sigmoid", (4.0, 1.9), *args[4:])
    with pytest.raises(ValueError, match="bad arguments"):  # the noise surrogate needs its draws
        _quantize.forward(f, q, out, None, True, "noise", (), 0, 2, 0, 128)
    bad_backward = [
        (partials[:, :, :32], 64, 0, 2, 0, 128),  # partials of another shape
        (np.zeros((2, 2, 64)), 128, 0, 2, 0, 128),  # as many chunks as the elements make
        (partials.astype(np.float32), 128, 0, 2, 0, 128),  # partials in double
        (partials, 100, 0, 2, 0, 128),  # a chunk of whole blocks
        (np.zeros((2, 2, 64)), 64, 0, 2, 64, 96),  # ranges on chunks
    ]
    for p, chunk, *ranges in bad_backward:
        with pytest.raises(ValueError, match="bad arguments"):
            _quantize.backward(f, f, q, out, p, "linear", (), chunk, *ranges)
    with pytest.raises(ValueError, match="bad arguments"):
        _quantize.fold(partials[:, :, :8], q)
    with pytest.raises(TypeError):
        _quantize.forward(f, q, "out", None, True, "linear", (), 0, 2, 0, 128)
