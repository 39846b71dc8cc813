"""Helpers shared by the test files: photos from scikit-image, Pillow round trips,
subsampling names, identity checks. Import as ``from tests.helpers import ...``
(pytest's importlib mode resolves the ``tests`` package from the root)."""
import io

import numpy as np

from diffjpeg.core.geometry import PILLOW_SUBSAMPLING
from diffjpeg.core.geometry import SUBSAMPLINGS as _NAMES

SUBSAMPLINGS = tuple(_NAMES)
PIL_SUBSAMPLING = PILLOW_SUBSAMPLING  # Pillow's subsampling= values


def skimage_crop(name="astronaut", h=None, w=None, top=0, left=0) -> np.ndarray:
    """``h x w`` (all of it where ``None``) from ``top, left`` of a scikit-image
    photo, as contiguous uint8 (H, W, 3) or (H, W): colour photos lose any alpha."""
    from skimage import data

    a = getattr(data, name)()
    if a.ndim == 3:
        a = a[..., :3]
    return np.ascontiguousarray(a[top : None if h is None else top + h, left : None if w is None else left + w])


def centred_crop(name, h, w) -> np.ndarray:
    """The ``h x w`` middle of a scikit-image photo (as :func:`skimage_crop`)."""
    from skimage import data

    height, width = getattr(data, name)().shape[:2]
    return skimage_crop(name, h, w, (height - h) // 2, (width - w) // 2)


def pillow_file(array: np.ndarray, **options) -> bytes:
    """``array`` saved as JPEG by Pillow with ``options``, the file's bytes."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(array).save(buf, "JPEG", **options)
    return buf.getvalue()


def pillow_decode(data: bytes) -> np.ndarray:
    """A JPEG file decoded by Pillow."""
    from PIL import Image

    return np.array(Image.open(io.BytesIO(data)))


def pillow_pixels(array: np.ndarray, **options) -> np.ndarray:
    """Save ``array`` as JPEG with Pillow and load it back."""
    return pillow_decode(pillow_file(array, **options))


def pillow_roundtrip(array: np.ndarray, quality=None, subsampling=None, qtables=None) -> np.ndarray:
    """Save ``array`` (H, W) or (H, W, 3) uint8 as JPEG with Pillow and load it back;
    only the options given are passed (Pillow's defaults otherwise)."""
    options = {}
    if quality is not None:
        options["quality"] = quality
    if subsampling is not None:
        options["subsampling"] = subsampling
    if qtables is not None:
        options["qtables"] = qtables
    return pillow_pixels(array, **options)


def assert_identical(mine: np.ndarray, reference: np.ndarray) -> None:
    """Same shape and every value equal, else how many differ."""
    assert mine.shape == reference.shape
    diff = mine.astype(int) != reference.astype(int)
    assert not diff.any(), f"{diff.sum()} of {diff.size} values differ"


def decoded_pixels(data: bytes, **options) -> np.ndarray:
    """``data`` read by diffjpeg (``options`` as :func:`diffjpeg.read`) and
    decoded in exact mode, as uint8 (H, W, 3) or (H, W) like Pillow's."""
    import torch

    import diffjpeg

    x = torch.round(diffjpeg.decode(diffjpeg.read(data, **options)) * 255).to(torch.uint8)
    return x[0].numpy() if x.shape[0] == 1 else x.permute(1, 2, 0).numpy()


def both_paths(fn):
    """``fn()`` with the compiled loops (diffjpeg.backends.cpu), then with the tensor stages."""
    from diffjpeg.backends import cpu

    with cpu.enabled(True):
        fast = fn()
    with cpu.enabled(False):
        slow = fn()
    return fast, slow


def assert_close_to_rounding(actual, expected, scale=None) -> None:
    """The float/soft contract between two computation paths
    (:func:`diffjpeg.core.precision.rounding_tolerance`, whose docstring justifies
    the bound): same shape and dtype, NaN where the other has NaN, and every
    value within ``k eps scale``, ``scale`` the largest magnitude of
    ``expected`` unless given. The one place tests compare paths that are
    not equal by construction."""
    import torch

    from diffjpeg.core.precision import ROUNDING_UNITS, rounding_tolerance

    assert actual.shape == expected.shape and actual.dtype == expected.dtype, (actual.shape, actual.dtype, expected.shape, expected.dtype)
    a, e = actual.detach().cpu().double(), expected.detach().cpu().double()
    nan = torch.isnan(e)
    assert torch.equal(torch.isnan(a), nan), "NaN in one path, not in the other"
    a, e = a[~nan], e[~nan]
    if scale is None:
        scale = e.abs().max().item() if e.numel() else 0.0
    tolerance = rounding_tolerance(expected.dtype, scale)
    diff = (a - e).abs()
    bad = int((diff > tolerance).sum())
    assert not bad, (f"{bad} of {diff.numel()} values differ by more than {tolerance:.3g} "
                     f"({ROUNDING_UNITS} eps x scale {scale:.3g}); the largest by {diff.max().item():.3g}")
