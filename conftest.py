import os
import sys

import pytest
import torch

_torchvision_operators = []  # keeps the operators declared below alive


def pytest_configure(config):
    """Import torchvision, where installed, before any test makes a RandomJPEG
    (which is a torchvision transform where torchvision imports).

    PyPI's Linux torchvision is built against torch's CUDA build. Beside the CPU
    build (``torch==2.13.0+cpu``, as on CI) its compiled operators (nms,
    roi_align, encode_jpeg, ...) do not load, and its import then stops at
    ``register_fake("torchvision::nms")``. Its v2 transforms are Python and need
    none of them: declare the two operators that import registers fake kernels
    for (schemas only; calling them still fails) and import again. A
    torchvision whose operators load is imported as it is. The tests that need
    the compiled operators (``v2.JPEG``) skip when they are missing.
    """
    try:
        import torchvision.transforms.v2  # noqa: F401
    except ImportError:
        return  # not installed: its tests skip
    except RuntimeError as error:
        if "torchvision::" not in str(error):
            raise
        for name in [n for n in sys.modules if n == "torchvision" or n.startswith("torchvision.")]:
            del sys.modules[name]
        library = torch.library.Library("torchvision", "DEF")
        for name in ("nms", "qnms"):
            library.define(f"{name}(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        _torchvision_operators.append(library)
        import torchvision.transforms.v2  # noqa: F401


@pytest.fixture(autouse=True)
def _doctest_torch(doctest_namespace):
    doctest_namespace["torch"] = torch


@pytest.fixture
def set_threads():
    """``torch.set_num_threads`` for one test, restored after it."""
    previous = torch.get_num_threads()
    yield torch.set_num_threads
    torch.set_num_threads(previous)


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
