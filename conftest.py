import os

import pytest
import torch

# The deprecated aliases of diffjpeg.tools' modules hold no doctests and warn on
# import; tests/test_tools.py imports and checks them.
collect_ignore = [f"diffjpeg/{name}.py" for name in ("tables", "demo", "cli", "benchmark")]


@pytest.fixture(autouse=True)
def _doctest_torch(doctest_namespace):
    doctest_namespace["torch"] = torch


@pytest.fixture
def pillow_jpeg():
    """:func:`tests.helpers.pillow_roundtrip` (imported here, not at the top: the
    ``tests`` package resolves once pytest has collected from it)."""
    from tests.helpers import pillow_roundtrip

    return pillow_roundtrip


def devices_under_test() -> list[str]:
    """The devices the device x dtype tests run on: ``DIFFJPEG_TEST_DEVICES``
    (comma-separated), else the CPU and whichever of CUDA and MPS is present."""
    listed = os.environ.get("DIFFJPEG_TEST_DEVICES", "")
    if listed.strip():
        return [d.strip() for d in listed.split(",") if d.strip()]
    devices = ["cpu"]
    if torch.cuda.is_available():
        devices.append("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        devices.append("mps")
    return devices


FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


@pytest.fixture(params=devices_under_test())
def device(request) -> torch.device:
    """Every device of :func:`devices_under_test`, one test each (as kornia's tests)."""
    return torch.device(request.param)


@pytest.fixture(params=FLOAT_DTYPES, ids=lambda d: str(d).replace("torch.", ""))
def dtype(request, device) -> torch.dtype:
    """Every float dtype, one test each; MPS has no float64."""
    if device.type == "mps" and request.param == torch.float64:
        pytest.skip("MPS has no float64")
    return request.param
