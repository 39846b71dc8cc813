"""Real-world files (tests/data/real: cameras and editors, with EXIF, XMP,
restart intervals, progressive scans, unusual sampling) decode as Pillow
decodes them, strictly, through read + decode and read_image alike."""
import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import diffjpeg

FILES = sorted((Path(__file__).resolve().parents[1] / "data" / "real").glob("*.jp*g"))


def test_the_files_are_there():
    assert len(FILES) == 12, FILES


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_real_file_decodes_as_pillow_decodes_it(path):
    data = path.read_bytes()
    reference = np.asarray(Image.open(io.BytesIO(data)))
    image = diffjpeg.read_image(data)  # strict: nothing in these files is damaged
    assert np.array_equal(image.permute(1, 2, 0).numpy(), reference)
    c = diffjpeg.read(data)
    assert torch.equal(diffjpeg.decode(c, dtype=torch.uint8), image)
    assert torch.equal(torch.round(diffjpeg.decode(c) * 255).to(torch.uint8), image)
