"""The API reference (docs/, Sphinx) covers the public API. The build itself,
with warnings as errors, runs in .ci/run (``python -m sphinx -E -W``)."""
import re
from pathlib import Path

import diffjpeg

DOCS = Path(__file__).resolve().parents[1] / "docs"


def _documented() -> set[str]:
    text = "\n".join(p.read_text() for p in DOCS.glob("*.rst"))
    return set(re.findall(r"^\.\. auto\w+:: ([\w.]+)", text, re.M))


def test_every_name_of_diffjpeg_all_has_an_entry():
    missing = [name for name in diffjpeg.__all__ if f"diffjpeg.{name}" not in _documented()]
    assert not missing, f"add these to docs/api.rst: {missing}"


def test_every_library_module_and_the_tools_entry_points_have_a_page():
    package = Path(diffjpeg.__file__).parent
    modules = {
        "diffjpeg." + ".".join(m.relative_to(package).with_suffix("").parts)
        for m in package.glob("*/*.py")
        if not m.stem.startswith("_") and m.parts[-2] != "tools"
    }
    assert {"diffjpeg.stages.dct", "diffjpeg.codec.plan", "diffjpeg.backends.cpu"} <= modules  # the layers are read
    own_page = {"diffjpeg.codec.pipeline", "diffjpeg.core.coefficients", "diffjpeg.training.augment"}  # their public names are on the api page
    # their import needs Triton; diffjpeg.backends.gpu documents them
    own_page |= {f"diffjpeg.backends.{m}" for m in ("gpu_kernels", "gpu_encoder", "gpu_decoder", "gpu_stage_kernels")}
    missing = sorted(modules - own_page - _documented())
    assert not missing, f"add an automodule for: {missing}"
    assert {"diffjpeg.tools.cli.main", "diffjpeg.tools.qtables.learn", "diffjpeg.tools.images"} <= _documented()
