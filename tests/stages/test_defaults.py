"""The surrogate each forward pass takes by default (``rounding=None``): one
table, diffjpeg.stages.rounding.DEFAULT_ROUNDINGS, stated in the docs and taken by
every signature; and the trade-off the docs give for soft mode's default
(whose forward pass is the surrogate): a sharper sigmoid is closer to the codec."""
import inspect
import pathlib

import pytest
import torch

import diffjpeg
from diffjpeg.core.modes import MODES
from diffjpeg.stages import rounding as R
from diffjpeg.stages.quantize import Quantize, quantize
from diffjpeg.tools.bench.methods import uint8_array
from diffjpeg.tools.metrics import psnr
from tests.helpers import centred_crop

ROOT = pathlib.Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
USAGE = (ROOT / "docs" / "guide" / "usage.md").read_text()  # the guide's page that states the defaults per mode
X = torch.rand(2, 3, 24, 24, generator=torch.Generator().manual_seed(0))


def test_every_mode_has_a_default_and_no_other():
    assert set(R.DEFAULT_ROUNDINGS) == set(MODES)
    for mode in MODES:
        assert R.default_rounding(mode) is R.DEFAULT_ROUNDINGS[mode]
        assert R.as_rounding(None, mode=mode) == R.default_rounding(mode)
    with pytest.raises(ValueError, match="mode"):
        R.default_rounding("bogus")
    with pytest.raises(ValueError, match="rounding"):
        R.as_rounding(None)  # None means a mode's default: without a mode, nothing
    # exact and float: the named default, the surrogate the gradient tasks chose
    assert R.default_rounding("exact") == R.default_rounding("float") == R.as_rounding(R.DEFAULT_ROUNDING)


@pytest.mark.parametrize("mode", MODES)
def test_the_docs_state_each_modes_default(mode):
    """README, the guide's Usage page and diffjpeg.stages.rounding's docstring name each mode's default as its repr."""
    stated = repr(R.default_rounding(mode))
    assert f"`{stated}`" in README
    assert f"`{stated}`" in USAGE
    assert f"``{stated}``" in R.__doc__
    assert f"``{stated}``" in inspect.getdoc(diffjpeg.encode)


@pytest.mark.parametrize("fn", [diffjpeg.encode, diffjpeg.jpeg, diffjpeg.DiffJPEG.__init__, diffjpeg.JPEGEncoder.__init__,
                                diffjpeg.random_jpeg, diffjpeg.RandomJPEG.__init__, quantize, Quantize.__init__,
                                R.soft_round, R.soft_round_derivative])
def test_every_rounding_parameter_defaults_to_none(fn):
    assert inspect.signature(fn).parameters["rounding"].default is None


@pytest.mark.parametrize("mode", MODES)
def test_the_default_is_the_modes_surrogate_bit_for_bit(mode):
    """Values and gradients of jpeg without rounding= equal those with the mode's default given."""
    spec = R.default_rounding(mode)
    outs, grads = [], []
    for options in ({}, {"rounding": spec}):
        x = X.clone().requires_grad_()
        y = diffjpeg.jpeg(x, 50, mode=mode, **options)
        (y * torch.linspace(0, 1, y.numel()).reshape(y.shape)).sum().backward()
        outs.append(y.detach())
        grads.append(x.grad)
    assert torch.equal(outs[0], outs[1])
    assert torch.equal(grads[0], grads[1])
    assert diffjpeg.DiffJPEG(50, mode=mode).rounding == spec
    assert diffjpeg.JPEGEncoder(50, mode=mode).rounding == spec
    assert diffjpeg.RandomJPEG((30, 90), mode=mode).rounding == spec
    assert Quantize(mode).rounding == spec
    c, t = X[0, 0].reshape(-1, 8, 8)[:1] * 80, torch.full((8, 8), 7.0)
    assert torch.equal(quantize(c, t, mode), quantize(c, t, mode, spec))


def test_soft_round_defaults_to_soft_modes_surrogate():
    x = torch.linspace(-2, 2, 101)
    assert torch.equal(R.soft_round(x), R.default_rounding("soft")(x))
    assert torch.equal(R.soft_round_derivative(x), R.default_rounding("soft").derivative(x))


@pytest.mark.parametrize("quality", [10, 50, 90])
def test_a_sharper_sigmoid_brings_the_soft_forward_closer_to_the_codec(quality):
    """Soft mode's forward pass is its surrogate: the sharper sigmoid the docs weigh against soft's
    default (closer to the codec, trains worse) is nearer the exact codec's pixels on a photo."""
    photo = torch.from_numpy(centred_crop("astronaut", 128, 128)).permute(2, 0, 1).float().div(255)[None]
    exact = uint8_array(diffjpeg.jpeg(photo, quality)[0])
    with torch.no_grad():
        default = uint8_array(diffjpeg.jpeg(photo, quality, mode="soft")[0])
        sharper = uint8_array(diffjpeg.jpeg(photo, quality, mode="soft", rounding=R.Sigmoid(temperature=0.03))[0])
    assert psnr(sharper, exact) > psnr(default, exact)


def test_merging_a_run_of_some_layers_keeps_the_other_rows():
    """The evidence for the defaults, benchmarks/results/surrogates.md, gains candidate rows run by run:
    --merge replaces only the cells a run measured, and each run keeps the cells it still holds."""
    from diffjpeg.tools.bench.surrogates import _merged, markdown

    old = {"runs": [{"command": "first", "columns": ["attack q50", "recovery"]}],  # recorded before runs listed layers
           "scores": {"attack q50": {"exact/sigmoid": [90.0], "soft/sigmoid": [95.0], "none": [80.0]}, "recovery": {"exact/sigmoid": [20.0]}},
           "tables": {}}
    new = {"runs": [{"command": "second", "columns": ["attack q50"], "layers": {"attack q50": ["soft/sigmoid", "soft/sigmoid-0.1", "none"]}}],
           "scores": {"attack q50": {"soft/sigmoid": [96.0], "soft/sigmoid-0.1": [85.0], "none": [81.0]}}, "tables": {}}
    merged = _merged(old, new)
    assert merged["scores"]["attack q50"] == {"exact/sigmoid": [90.0], "soft/sigmoid": [96.0], "none": [81.0], "soft/sigmoid-0.1": [85.0]}
    assert merged["scores"]["recovery"] == {"exact/sigmoid": [20.0]}
    assert [r["layers"] for r in merged["runs"]] == [{"attack q50": ["exact/sigmoid"], "recovery": ["exact/sigmoid"]}, new["runs"][0]["layers"]]
    text = markdown(merged["scores"], merged["runs"])
    assert "Layers: exact/sigmoid." in text and "Layers: soft/sigmoid, soft/sigmoid-0.1, none." in text
    # a run whose every cell was measured again is dropped
    assert [r["command"] for r in _merged(merged, {**new, "runs": [{**new["runs"][0], "command": "third"}]})["runs"]] == ["first", "third"]
