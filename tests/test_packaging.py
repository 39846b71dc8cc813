"""Packaging and typing: one version, the SPDX license, py.typed, the
sdist and the wheel built from it, and ``Literal`` types for every choice
argument of the public API."""
import importlib.metadata
import inspect
import subprocess
import sys
import tarfile
import typing
import zipfile
from pathlib import Path

import pytest

import diffjpeg
from diffjpeg.bitstream import huffman
from diffjpeg.codec import pipeline as codec
from diffjpeg.core import colorspace, dispatch, geometry, modes
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
    (dispatch.Backend, dispatch.BACKENDS),
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
    "backend": dispatch.Backend,
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


def _package_sources() -> set[str]:
    """Every file of the package's source tree that a build needs, relative to the root."""
    skip = {".so", ".pyc", ".pyd"}
    return {
        str(p.relative_to(ROOT)) for p in (ROOT / "diffjpeg").rglob("*")
        if p.is_file() and p.suffix not in skip and "__pycache__" not in p.parts
    }


def _sdist(tmp_path: Path) -> Path:
    run = subprocess.run([sys.executable, "setup.py", "-q", "sdist", "-d", str(tmp_path)], cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-2000:]
    (archive,) = tmp_path.glob("diffjpeg-*.tar.gz")
    return archive


def test_the_sdist_carries_every_source_and_no_test_data(tmp_path):
    """After the move into layers: every module, the C sources and the
    header they share, the package data, and nothing of tests/data (files
    under their own license)."""
    with tarfile.open(_sdist(tmp_path)) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    missing = sorted(_package_sources() - names)
    assert missing == [], missing
    assert {"setup.py", "pyproject.toml", "README.md", "LICENSE", "diffjpeg/backends/_loops.h"} <= names
    assert not [n for n in names if n.startswith("tests/data")]


@pytest.mark.slow  # compiles the nine extensions: about a minute on 2 cores
def test_a_wheel_builds_from_the_sdist_with_every_extension(tmp_path):
    sdist = _sdist(tmp_path / "sdist")
    run = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", str(sdist), "-w", str(tmp_path)],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-2000:]
    (wheel,) = tmp_path.glob("diffjpeg-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    built = {n.split("/")[-1].split(".")[0] for n in names if n.startswith("diffjpeg/backends/_") and n.endswith(".so")}
    assert built == {"_native", "_sampling", "_rounding", "_color", "_dct", "_quantize", "_lossless", "_trellis", "_libjpeg"}
    modules = {p for p in _package_sources() if p.endswith(".py")}
    assert modules <= names, sorted(modules - names)
    assert not [n for n in names if n.startswith("tests/")]
