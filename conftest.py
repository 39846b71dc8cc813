import io

import numpy as np
import pytest
import torch


@pytest.fixture(autouse=True)
def _doctest_torch(doctest_namespace):
    doctest_namespace["torch"] = torch


def pillow_roundtrip(array: np.ndarray, quality=None, subsampling=None, qtables=None) -> np.ndarray:
    """Save ``array`` (H, W) or (H, W, 3) uint8 as JPEG with Pillow and load it back."""
    from PIL import Image

    buf = io.BytesIO()
    options = {}
    if quality is not None:
        options["quality"] = quality
    if subsampling is not None:
        options["subsampling"] = subsampling
    if qtables is not None:
        options["qtables"] = qtables
    Image.fromarray(array).save(buf, "JPEG", **options)
    return np.array(Image.open(io.BytesIO(buf.getvalue())))


@pytest.fixture
def pillow_jpeg():
    return pillow_roundtrip
