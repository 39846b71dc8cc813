"""torch.func: grad, vmap and jacrev of jpeg, encode and decode in every mode,
with the compiled kernels allowed (``backend="auto"``, which decline the
transforms' wrapped tensors) and without (``"torch"``): the same values and
gradients as the eager calls and autograd."""
import warnings

import pytest
import torch
from torch.func import grad, jacrev, vmap

import diffjpeg
from diffjpeg.core.check import transformed, vmapped
from tests.helpers import assert_close_to_rounding

MODES = ("exact", "float", "soft")
BACKENDS = ("auto", "torch")
CASES = [(m, b) for m in MODES for b in BACKENDS]

pytestmark = [
    pytest.mark.paths,
    # vmap's fallback for in-place ops without a batching rule (clamp_, addcmul_) warns of its speed
    pytest.mark.filterwarnings("ignore:There is a performance drop:UserWarning"),
    # torch.func.jvp's first call imports torch's jvp decompositions, which script functions
    pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning"),
]


def image(shape=(2, 3, 16, 16), seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(shape, generator=g, dtype=dtype)


def weights(shape, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g)


def test_predicates():
    assert not transformed() and not vmapped()
    seen = {}

    def probe(x):
        seen.setdefault("order", []).append((transformed(), vmapped()))
        return x.sum()

    grad(probe)(torch.ones(2))
    vmap(probe)(torch.ones(2, 2))
    vmap(grad(probe))(torch.ones(2, 2))
    grad(lambda x: vmap(probe)(x).sum())(torch.ones(2, 2))
    assert seen["order"] == [(True, False), (True, True), (True, True), (True, True)]
    assert not transformed()


@pytest.mark.parametrize("mode, backend", CASES)
def test_grad_equals_autograd(mode, backend):
    # 17 x 13: edge replication and partial chroma blocks in the adjoints
    x, w = image((2, 3, 17, 13)), weights((2, 3, 17, 13))

    def loss(x):
        return (diffjpeg.jpeg(x, 50, mode=mode, backend=backend) * w).sum()

    leaf = x.clone().requires_grad_()
    (expected,) = torch.autograd.grad(loss(leaf), leaf)
    actual = grad(loss)(x)
    assert expected.abs().sum() > 0
    assert_close_to_rounding(actual, expected)


@pytest.mark.parametrize("mode, backend", CASES)
def test_vmap_equals_batch(mode, backend):
    x = image((3, 3, 16, 24))
    expected = diffjpeg.jpeg(x, 60, mode=mode, backend=backend)
    actual = vmap(lambda xi: diffjpeg.jpeg(xi, 60, mode=mode, backend=backend))(x)
    if mode == "exact":  # 8-bit levels / 255, by the integer forms on both paths
        assert torch.equal(actual, expected)
    else:
        assert_close_to_rounding(actual, expected)


@pytest.mark.parametrize("mode, backend", CASES)
def test_vmap_uint8_and_grayscale(mode, backend):
    levels = (image((2, 1, 9, 11)) * 255).round().to(torch.uint8)
    expected = diffjpeg.jpeg(levels, 40, mode=mode, backend=backend)
    actual = vmap(lambda xi: diffjpeg.jpeg(xi, 40, mode=mode, backend=backend))(levels)
    assert actual.dtype == torch.uint8
    assert torch.equal(actual, expected) if mode == "exact" else (actual.int() - expected.int()).abs().max() <= 1


@pytest.mark.parametrize("mode, backend", CASES)
def test_jacrev_equals_autograd_rows(mode, backend):
    x = image((1, 3, 8, 8))
    rows = torch.tensor([0, 70, 131, 191])  # outputs of each channel

    def f(x):
        return diffjpeg.jpeg(x, 75, mode=mode, backend=backend).flatten()[rows]

    actual = jacrev(f)(x)
    leaf = x.clone().requires_grad_()
    y = f(leaf)
    expected = torch.stack([torch.autograd.grad(y[i], leaf, retain_graph=True)[0] for i in range(len(rows))])
    assert actual.shape == (len(rows),) + x.shape
    assert expected.abs().sum() > 0
    assert_close_to_rounding(actual, expected)


@pytest.mark.parametrize("mode, backend", CASES)
def test_per_sample_grad(mode, backend):
    # vmap(grad(f)): each image's gradient, as autograd gives it for the batch (the images do not interact)
    x, w = image((2, 3, 16, 16)), weights((2, 3, 16, 16))

    def loss(xi, wi):
        return (diffjpeg.jpeg(xi, 30, mode=mode, backend=backend) * wi).sum()

    leaf = x.clone().requires_grad_()
    (expected,) = torch.autograd.grad((diffjpeg.jpeg(leaf, 30, mode=mode, backend=backend) * w).sum(), leaf)
    assert_close_to_rounding(vmap(grad(loss))(x, w), expected)


@pytest.mark.parametrize("mode, backend", CASES)
def test_quality_grad(mode, backend):
    x, w = image((2, 3, 16, 16)), weights((2, 3, 16, 16))

    def loss(q):
        return (diffjpeg.jpeg(x, q, mode=mode, backend=backend) * w).sum()

    q = torch.tensor(37.5)
    leaf = q.clone().requires_grad_()
    (expected,) = torch.autograd.grad(loss(leaf), leaf)
    actual = grad(loss)(q)
    assert expected != 0
    assert_close_to_rounding(actual, expected)


@pytest.mark.parametrize("mode, backend", CASES)
def test_encode_decode_vmap(mode, backend):
    x = image((2, 3, 16, 16))
    c = diffjpeg.encode(x, 50, mode=mode, backend=backend)
    ys, cbs, crs = vmap(lambda xi: diffjpeg.encode(xi, 50, mode=mode, backend=backend).components)(x)
    for actual, expected in zip((ys, cbs, crs), c.components):
        if mode == "soft":  # the soft quantizer's values
            assert_close_to_rounding(actual, expected)
        else:  # whole numbers
            assert torch.equal(actual, expected)

    def decode_one(y, cb, cr, tables):
        one = diffjpeg.Coefficients(y=y, cb=cb, cr=cr, qtables=tables, sampling=c.sampling, size=c.size)
        return diffjpeg.decode(one, mode=mode, backend=backend)

    expected = diffjpeg.decode(c, mode=mode, backend=backend)
    actual = vmap(decode_one)(*c.components, c.qtables)
    if mode == "exact":
        assert torch.equal(actual, expected)
    else:
        assert_close_to_rounding(actual, expected)


@pytest.mark.parametrize("mode", MODES)
def test_decode_grad(mode):
    c = diffjpeg.encode(image((1, 3, 16, 16)), 50, mode=mode)
    w = weights((1, 3, 16, 16))

    def loss(y, cb, cr):
        one = diffjpeg.Coefficients(y=y, cb=cb, cr=cr, qtables=c.qtables, sampling=c.sampling, size=c.size)
        return (diffjpeg.decode(one, mode=mode) * w).sum()

    leaves = [t.clone().requires_grad_() for t in c.components]
    expected = torch.autograd.grad(loss(*leaves), leaves)
    actual = grad(loss, argnums=(0, 1, 2))(*c.components)
    for a, e in zip(actual, expected):
        assert_close_to_rounding(a, e)


def test_vmap_skips_value_checks_grad_keeps_them():
    # under grad the values are there: a [0, 255] image is still refused
    with pytest.raises(ValueError, match="divide by 255"):
        grad(lambda x: diffjpeg.jpeg(x, 50, mode="float").sum())(image() * 255)
    # under vmap they cannot be read back: not checked (check.py's docstring), the call goes through
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = vmap(lambda xi: diffjpeg.jpeg(xi, 50, mode="float"))(image() * 255)
    assert out.shape == (2, 3, 16, 16)


def test_forward_mode_refused_not_zero():
    # the codec's derivatives are backward rules: a tangent would come out zero, silently
    x = image((1, 3, 16, 16))
    with pytest.raises(NotImplementedError, match="forward-mode"):
        torch.func.jvp(lambda x: diffjpeg.jpeg(x, 50, mode="soft"), (x,), (torch.ones_like(x),))
    c = diffjpeg.encode(x, 50)

    def decode_y(y):
        return diffjpeg.decode(diffjpeg.Coefficients(y=y, cb=c.cb, cr=c.cr, qtables=c.qtables, sampling=c.sampling, size=c.size))

    with pytest.raises(NotImplementedError, match="forward-mode"):
        torch.func.jacfwd(decode_y)(c.y)
    forward_ad = torch.autograd.forward_ad
    with forward_ad.dual_level():
        assert torch.equal(diffjpeg.jpeg(x, 50), diffjpeg.jpeg(x.clone(), 50))  # no tangent: runs
        with pytest.raises(NotImplementedError, match="forward-mode"):
            diffjpeg.jpeg(forward_ad.make_dual(x, torch.ones_like(x)), 50)


@pytest.mark.parametrize("mode", ["float", "soft", "exact"])
def test_transforms_take_the_compiled_round_trip(mode, monkeypatch):
    """Under grad, vmap, vmap(grad) and jacrev, every mode runs the compiled
    loops (the block pass; exact mode's compiled codec) through the custom
    operators (diffjpeg.codec.operators), whose implementations get plain
    tensors; the results are the eager calls' bit for bit: the same loops,
    the images independent."""
    from diffjpeg.backends import cpu, exact
    from diffjpeg.codec import planes
    from diffjpeg.stages import dctmgr

    if not cpu.block_pass_built(torch.ones(1)) or not exact.compiled():
        pytest.skip("the compiled loops were not built, or turned off")
    calls = []
    module, name = (planes, "exact_round_trip_values") if mode == "exact" else (dctmgr, "block_pass_kernel")
    real = getattr(module, name)
    monkeypatch.setattr(module, name, lambda *a, **k: calls.append(1) or real(*a, **k))
    x, w = image((2, 3, 16, 24)), weights((2, 3, 16, 24))

    def loss(t, wt):
        return (diffjpeg.jpeg(t, 40, mode=mode) * wt).sum()

    leaf = x.clone().requires_grad_()
    (expected,) = torch.autograd.grad(loss(leaf, w), leaf)
    calls.clear()  # eager calls take the direct path (exact mode's the same round trip)
    assert torch.equal(grad(loss)(x, w), expected)
    assert torch.equal(vmap(grad(loss))(x, w), expected)
    assert torch.equal(vmap(lambda t: diffjpeg.jpeg(t, 40, mode=mode))(x), diffjpeg.jpeg(x, 40, mode=mode))
    rows = torch.tensor([0, 300, 700, 1100])
    jac = jacrev(lambda t: diffjpeg.jpeg(t, 40, mode=mode).flatten()[rows])(x[:1])
    one = x[:1].clone().requires_grad_()
    y = diffjpeg.jpeg(one, 40, mode=mode).flatten()[rows]
    assert torch.equal(jac, torch.stack([torch.autograd.grad(y[i], one, retain_graph=True)[0] for i in range(len(rows))]))
    # four transformed forwards (each component's block pass), and exact mode's eager reference for jacrev
    assert len(calls) == (5 if mode == "exact" else 3 * 4)


def test_second_order_takes_the_tensor_stages():
    """grad of grad: the operators' backward has no derivative, so two reverse
    levels take the tensor stages (as with backend="torch"), whose second
    order is the same within rounding."""
    x = image((1, 3, 8, 8))

    def second(backend):
        return grad(lambda t: grad(lambda u: diffjpeg.jpeg(u, 50, mode="soft", backend=backend).square().sum())(t).sum())(x)

    actual, expected = second("auto"), second("torch")
    assert expected.abs().sum() > 0
    assert_close_to_rounding(actual, expected)


@pytest.mark.parametrize("mode", MODES)
def test_a_loss_of_the_output_and_autograd_around_grad(mode):
    """A loss that is not linear in the pixels (the gradient then carries their
    graph) under vmap(grad); and autograd differentiating grad's result (a second
    reverse level outside the transforms, which the operators leave to the tensor
    stages): the eager results, and the tensor stages' second order."""
    layer = diffjpeg.DiffJPEG(quality=60, mode=mode)
    x = image((3, 3, 16, 16))
    per_sample = vmap(grad(lambda t: layer(t.unsqueeze(0)).square().sum()))(x)
    leaf = x.clone().requires_grad_()
    (expected,) = torch.autograd.grad(layer(leaf).square().sum(), leaf)
    assert torch.equal(per_sample, expected)
    second = []
    for backend in BACKENDS:
        outer = x[:1].clone().requires_grad_()
        g = grad(lambda t: diffjpeg.jpeg(t, 50, mode=mode, backend=backend).square().sum())(outer)
        second.append(torch.autograd.grad(g.square().sum(), outer)[0])
    assert second[1].abs().sum() > 0
    assert_close_to_rounding(second[0], second[1])
