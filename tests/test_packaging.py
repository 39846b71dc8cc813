"""Packaging and typing: one version, the SPDX license, py.typed, and
``Literal`` types for every choice argument of the public API."""
import importlib.metadata
import inspect
import typing
from pathlib import Path

import pytest

import diffjpeg
from diffjpeg.bitstream import huffman
from diffjpeg.codec import pipeline as codec
from diffjpeg.core import colorspace, geometry, modes
from diffjpeg.stages import rounding
from diffjpeg.training import losses

ROOT = Path(__file__).resolve().parents[1]
tomllib = pytest.importorskip("tomllib")  # Python 3.11+


def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_one_version_source():
    project = pyproject()["project"]
    assert "version" not in project and "version" in project["dynamic"]
    assert pyproject()["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "diffjpeg.__version__"}
    # the installed metadata was built from that attribute (a stale install, after a bump without reinstalling, fails here)
    assert importlib.metadata.version("diffjpeg") == diffjpeg.__version__


def test_license_is_an_spdx_expression_with_its_file():
    project = pyproject()["project"]
    assert project["license"] == "MIT" and project["license-files"] == ["LICENSE"]
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License") and "the diffjpeg authors" in text
    metadata = importlib.metadata.metadata("diffjpeg")
    assert metadata["License-Expression"] == "MIT"
    assert not any(c.startswith("License ::") for c in metadata.get_all("Classifier") or [])  # PEP 639: not both
    # setuptools reads license = "MIT" from 77 on
    assert any(r.replace(" ", "").startswith("setuptools>=") and int(r.split(">=")[1].split(".")[0]) >= 77
               for r in pyproject()["build-system"]["requires"])


def test_the_package_is_marked_typed():
    assert (Path(diffjpeg.__file__).parent / "py.typed").is_file()
    assert "py.typed" in pyproject()["tool"]["setuptools"]["package-data"]["diffjpeg"]


# each Literal and the values the checks allow at run time: one fact, said once (the tuples derive from the Literals)
LITERALS = [
    (modes.Mode, modes.MODES),
    (geometry.Subsampling, tuple(geometry.SUBSAMPLINGS)),
    (rounding.RoundingName, rounding.ROUNDINGS),
    (huffman.Huffman, huffman.HUFFMAN),
    (losses.Distortion, losses.DISTORTIONS),
    (colorspace.ColorSpace, tuple(colorspace.COLOR_SPACES)),
    (codec.Learnable, codec.LEARNABLE),
]


@pytest.mark.parametrize("literal, allowed", LITERALS, ids=lambda v: str(v)[:40])
def test_each_literal_is_what_the_checks_allow(literal, allowed):
    assert typing.get_args(literal) == allowed


CHOICES = {  # parameter name -> the Literal it must be typed with (alone, or in a union)
    "mode": modes.Mode,
    "subsampling": geometry.Subsampling,
    "rounding": rounding.RoundingName,
    "huffman": huffman.Huffman,
    "distortion": losses.Distortion,
    "color_space": colorspace.ColorSpace,
    "learnable": codec.Learnable,
}


def _public_callables():
    from diffjpeg.bitstream import rate_model
    from diffjpeg.stages import color, dct, quantize, sampling
    from diffjpeg.tools.qtables import evaluate, learn

    seen = []
    for module in (diffjpeg, color, dct, sampling, quantize, rounding, huffman, rate_model, losses, geometry, learn, evaluate):
        for name in getattr(module, "__all__", None) or [n for n in vars(module) if not n.startswith("_")]:
            value = getattr(module, name)
            if (inspect.isfunction(value) or inspect.isclass(value)) and (module is diffjpeg or value.__module__ == module.__name__):
                seen.append(value)
    return list(dict.fromkeys(seen))


def _mentions(hint, literal) -> bool:
    return hint == literal or any(_mentions(arg, literal) for arg in typing.get_args(hint))


def _typed(name: str, hint) -> bool:
    # the stages' inner functions take the surrogate already resolved (as_rounding's result)
    return _mentions(hint, CHOICES[name]) or (name == "rounding" and hint is rounding.Rounding)


def test_choice_arguments_are_typed_with_their_literal():
    checked = 0
    for thing in _public_callables():
        function = thing.__init__ if inspect.isclass(thing) else thing
        if function is object.__init__:
            continue
        hints = typing.get_type_hints(function)  # every annotation resolves
        for name in CHOICES:
            if name in hints and name in inspect.signature(function).parameters:
                assert _typed(name, hints[name]), f"{thing.__qualname__}({name}: {hints[name]})"
                checked += 1
    assert checked >= 40  # jpeg, encode, decode, the modules, the stages, bits, rate, the losses, learn_qtables...
