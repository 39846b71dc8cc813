"""The public API's spellings: keyword-only parameters, ``mode=``, the
rounding spec; the spellings before 0.2 are refused."""
import dataclasses
import importlib
import inspect
import warnings

import pytest
import torch

import diffjpeg
from diffjpeg.stages.rounding import FOURIER_ORDER, ROUNDINGS, Fourier, Linear, Noise, Polynomial, Rounding, Sigmoid, as_rounding

X = torch.rand(2, 3, 16, 24, generator=torch.Generator().manual_seed(0))

# (callable, the parameters that may still be passed by position)
SIGNATURES = [
    (diffjpeg.jpeg, ("image", "quality")),
    (diffjpeg.encode, ("image", "quality")),
    (diffjpeg.decode, ("coefficients",)),
    (diffjpeg.random_jpeg, ("image", "quality")),
    (diffjpeg.DiffJPEG, ("quality",)),
    (diffjpeg.JPEGEncoder, ("quality",)),
    (diffjpeg.JPEGDecoder, ()),
    (diffjpeg.RandomJPEG, ("quality",)),
]


@pytest.mark.parametrize("function, positional", SIGNATURES, ids=lambda v: getattr(v, "__name__", ""))
def test_every_parameter_after_quality_is_keyword_only(function, positional):
    parameters = inspect.signature(function).parameters.values()
    assert tuple(p.name for p in parameters if p.kind is p.POSITIONAL_OR_KEYWORD) == positional
    names = {p.name for p in parameters}
    assert "forward" not in names and "fourier_order" not in names and "temperature" not in names
    if function is not diffjpeg.decode and function is not diffjpeg.JPEGDecoder:
        assert {"mode", "rounding"} <= names


def test_misspelled_arguments_are_refused_at_construction():
    with pytest.raises(TypeError, match="qualty"):
        diffjpeg.JPEGEncoder(qualty=50)
    with pytest.raises(TypeError, match="positional"):
        diffjpeg.jpeg(X, 50, None, "4:2:0", "exact", "linear", 10, 0.25, None, None, "extra")


# The spellings before 0.2 (never released): by position, forward=, fourier_order= and
# temperature=, the forward_mode attribute, the module diffjpeg.rate. Each is Python's own
# TypeError (or AttributeError, ModuleNotFoundError) now, not a result computed some other way.
OLD_SPELLINGS = [
    lambda: diffjpeg.jpeg(X, 50, None, "4:4:4", "float"),
    lambda: diffjpeg.jpeg(X, 50, forward="soft"),
    lambda: diffjpeg.encode(X, 30, None, "4:2:2"),
    lambda: diffjpeg.decode(diffjpeg.encode(X), "float"),
    lambda: diffjpeg.jpeg(X, 50, mode="soft", rounding="fourier", fourier_order=3),
    lambda: diffjpeg.jpeg(X, 50, mode="soft", rounding="sigmoid", temperature=0.5),
    lambda: diffjpeg.DiffJPEG(40, None, "4:4:4", "float"),
    lambda: diffjpeg.DiffJPEG(40, mode="float", temperature=0.5),
    lambda: diffjpeg.JPEGDecoder("float"),
    lambda: diffjpeg.JPEGEncoder(20, forward="float"),
    lambda: diffjpeg.random_jpeg(X, 30, 1.0, "4:4:4"),
    lambda: diffjpeg.RandomJPEG(30, 1.0),
    lambda: diffjpeg.RandomJPEG(30, forward="float"),
    lambda: diffjpeg.soft_round(X, "fourier", 3),
    lambda: diffjpeg.stages.rounding.soft_round_derivative(X, "sigmoid", temperature=0.5),
    lambda: diffjpeg.stages.quantize.quantize(X[0, 0, :8, :8] * 50, torch.full((8, 8), 3.0), "soft", "fourier", 4),
    lambda: diffjpeg.stages.rounding.as_rounding("sigmoid", None, 0.5),
]


@pytest.mark.parametrize("old", OLD_SPELLINGS)
def test_old_spellings_are_refused(old):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # and no warning on the way
        with pytest.raises(TypeError):
            old()


def test_old_attribute_and_module_names_are_gone():
    assert not hasattr(diffjpeg.DiffJPEG(50, mode="float"), "forward_mode")
    assert not hasattr(diffjpeg.RandomJPEG(50), "forward_mode")
    for name in ("diffjpeg.rate", "diffjpeg.deprecation"):  # diffjpeg.rate is the function; its module is rate_model
        with pytest.raises(ModuleNotFoundError):
            importlib.import_module(name)
    assert diffjpeg.rate is diffjpeg.bitstream.rate_model.rate
    assert inspect.ismodule(diffjpeg.bitstream.rate_model)


FLAT_MODULES = ("geometry", "precision", "check", "colorspace", "scan", "coefficients", "color", "sampling", "blocks", "dct",
                "quality", "quantize", "rounding", "smoothing", "markers", "huffman", "sequential", "progressive", "rate_model",
                "native", "strips", "files", "lossless", "rdo", "augment", "losses", "_native", "_libjpeg", "_sampling",
                "_rounding", "_dct", "_color", "_lossless", "_trellis")  # fmt: skip


@pytest.mark.parametrize("name", FLAT_MODULES)
def test_the_flat_module_paths_are_gone(name):
    """The layers (docs/guide/architecture.md) are the only paths: no alias
    module, no attribute of the package under an old module's name."""
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module(f"diffjpeg.{name}")
    assert not inspect.ismodule(getattr(diffjpeg, name, None))


def test_rounding_names_are_the_default_specs():
    assert [as_rounding(n) for n in ROUNDINGS] == [Linear(), Polynomial(), Fourier(order=FOURIER_ORDER, damping="fejer"), Sigmoid(temperature=0.25), Noise()]
    assert [as_rounding(n).name for n in ROUNDINGS] == list(ROUNDINGS)
    spec = Fourier(order=4)
    assert as_rounding(spec) is spec and hash(spec) == hash(Fourier(order=4))
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.order = 5
    # a name and its default spec give the same layer
    assert torch.equal(diffjpeg.jpeg(X, 50, mode="soft", rounding="sigmoid"), diffjpeg.jpeg(X, 50, mode="soft", rounding=Sigmoid()))
    assert repr(diffjpeg.DiffJPEG(50, rounding="fourier")).endswith(f"rounding=Fourier(order={FOURIER_ORDER}, damping='fejer'))")
    assert Noise(generator=torch.Generator()) == Noise() and "generator" not in repr(Noise())


@pytest.mark.parametrize(
    "make, error, match",
    [
        (lambda: Fourier(order=0), ValueError, "order of the fourier rounding must be >= 1"),
        (lambda: Fourier(order=True), TypeError, "order"),
        (lambda: Sigmoid(temperature=-1.0), ValueError, "temperature of the sigmoid rounding must be a finite number > 0"),
        (lambda: Sigmoid(temperature=float("inf")), ValueError, "temperature"),
        (lambda: Sigmoid(temperature="0.1"), TypeError, "temperature"),
        (lambda: as_rounding("cubic"), ValueError, r"rounding must be one of \('linear', 'polynomial', 'fourier', 'sigmoid', 'noise'\)"),
        (lambda: Fourier(order=-3), ValueError, "order of the fourier rounding must be >= 1"),
        (lambda: Fourier(order=float("nan")), TypeError, "order of the fourier rounding must be an int"),
        (lambda: Fourier(order=4, damping="hann"), ValueError, r"damping of the fourier rounding must be one of \('fejer', 'lanczos', 'none'\)"),
        (lambda: Fourier(order=4, damping=None), ValueError, "damping of the fourier rounding"),
        (lambda: Sigmoid(temperature=0.0), ValueError, "temperature of the sigmoid rounding must be a finite number > 0"),
        (lambda: Sigmoid(temperature=float("nan")), ValueError, "temperature of the sigmoid rounding must be a finite number > 0"),
        (lambda: Noise(generator=0), TypeError, "generator of the noise rounding must be a torch.Generator"),
        (lambda: diffjpeg.jpeg(X, 50, rounding="Fourier"), ValueError, "rounding must be one of"),
        (lambda: Noise(generator=torch.Generator())(torch.zeros(2, device="meta")), ValueError, "generator of the noise rounding is on cpu, the tensor on meta"),
        (lambda: diffjpeg.DiffJPEG(50, rounding=Fourier), ValueError, "rounding must be one of"),  # the class, not an instance
    ],
)
def test_bad_rounding_specs_name_the_parameter(make, error, match):
    with pytest.raises(error, match=match):
        make()


class _Scaled(Rounding):
    """A user's own surrogate: straight-through with a slope."""

    name = "scaled"

    def __init__(self, slope):
        self.slope = slope

    def __call__(self, x):
        return torch.round(x).detach() + self.slope * (x - x.detach())

    def derivative(self, x):
        return torch.full_like(x, self.slope)


@pytest.mark.parametrize("mode", ["exact", "float", "soft"])
def test_a_user_defined_rounding_drives_the_quantizer_gradient(mode):
    """The quantizer is the only step whose gradient the surrogate sets, so a
    slope of 2 doubles the image gradient exactly where linear gives 1."""
    x = X.double().requires_grad_()
    grads = []
    for rounding in (Linear(), _Scaled(2.0)):
        x.grad = None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # soft + linear warns that it quantizes nothing: known here
            c = diffjpeg.encode(x, 50, mode=mode, rounding=rounding)
        (c.y * torch.arange(64, dtype=torch.float64).reshape(8, 8)).sum().backward()
        grads.append(x.grad.clone())
    assert torch.allclose(grads[1], 2 * grads[0])


@pytest.mark.parametrize("mode", ["exact", "float", "soft"])
def test_uint8_in_uint8_out_in_every_mode(mode):
    """The float image's result rounded to 8 bits (before, float and soft
    gave uint8 images back as floats in [0, 1], and the demo compared those
    with Pillow's levels)."""
    x = (X * 255).round().to(torch.uint8)
    y = diffjpeg.jpeg(x, 40, mode=mode)
    assert y.dtype == torch.uint8 and y.shape == x.shape
    assert torch.equal(y, torch.round(diffjpeg.jpeg(x.float() / 255, 40, mode=mode) * 255).to(torch.uint8))
