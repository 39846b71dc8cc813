"""Coefficients as a value: required size, batch indexing, device, dtype, repr."""
import io

import pytest
import torch
from PIL import Image

import diffjpeg


def test_size_is_required():
    c = diffjpeg.encode(torch.rand(1, 3, 16, 16))
    with pytest.raises(TypeError, match="size"):
        diffjpeg.Coefficients(c.y, c.cb, c.cr, c.qtables, c.sampling)


@pytest.mark.paths
def test_indexing_the_batch_equals_coding_each_image():
    x = torch.rand(2, 3, 3, 17, 21)
    c = diffjpeg.encode(x, quality=torch.tensor([[10.0, 50.0, 90.0], [20.0, 60.0, 95.0]]))
    for i in range(2):
        for j in range(3):
            one = c[i, j]
            assert one.batch_shape == torch.Size([]) and one.size == c.size and one.sampling == c.sampling
            assert torch.equal(diffjpeg.decode(one), diffjpeg.decode(c)[i, j])
    assert c[1].batch_shape == (3,) and c[:, 1:].batch_shape == (2, 2)
    assert torch.equal(diffjpeg.decode(c[:, ::2]), diffjpeg.decode(c)[:, ::2])


@pytest.mark.parametrize("index", [(0, 0, 0), ..., None, torch.tensor([0]), True])
def test_indexing_beyond_the_batch_is_refused(index):
    c = diffjpeg.encode(torch.rand(2, 3, 3, 8, 8))
    with pytest.raises(IndexError, match="batch dimension"):
        c[index]


def test_device_dtype_and_a_short_repr():
    c = diffjpeg.encode(torch.rand(2, 1, 9, 9, dtype=torch.float64))
    assert c.device == torch.device("cpu") and c.dtype == torch.float64
    assert repr(c) == (
        "Coefficients(batch=(2,), size=(9, 9), color_space='grayscale', sampling='4:4:4', dtype=torch.float64, device=cpu,\n"
        "             y=(2, 2, 2, 8, 8), qtables=(2, 2, 8, 8), qtable_index=(0,))"
    )
    assert c.to(torch.float32).dtype == torch.float32


def test_repr_of_a_large_batch_is_two_lines_of_shapes():
    # print(coefficients) once printed every coefficient: ~4,500 lines for one small photo
    x = torch.rand(4, 3, 512, 768, requires_grad=True)
    c = diffjpeg.encode(x, quality=50, subsampling="4:2:2")
    text = repr(c)
    assert text == str(c) and text.count("\n") == 1 and len(text) < 300
    for part in ("batch=(4,)", "size=(512, 768)", "color_space='YCbCr'", "sampling='4:2:2'", "dtype=torch.float32",
                 "device=cpu", "requires_grad=True", "y=(4, 64, 96, 8, 8)", "cb=(4, 64, 48, 8, 8)", "cr=(4, 64, 48, 8, 8)",
                 "qtables=(4, 2, 8, 8)", "qtable_index=(0, 1, 1)"):
        assert part in text, part
    assert "requires_grad" not in repr(c.detach())


def test_repr_names_other_sampling_factors_and_color_spaces():
    from tests.helpers import skimage_crop

    c = diffjpeg.encode(torch.rand(3, 16, 16))
    odd = diffjpeg.Coefficients(c.y, c.cb, c.cr, c.qtables, ((1, 2), (1, 1), (1, 1)), (16, 16), color_space="RGB")
    assert "color_space='RGB', sampling='1x2,1x1,1x1'" in repr(odd)
    cmyk = io.BytesIO()
    Image.fromarray(skimage_crop("astronaut", 24, 40)).convert("CMYK").save(cmyk, "JPEG")
    text = repr(diffjpeg.read(cmyk.getvalue()))
    assert "color_space='CMYK'" in text and "k=(3, 5, 8, 8)" in text and "qtable_index=(0, 0, 0, 0)" in text


def test_repr_summarizes_the_progression_of_a_cut_progressive_file():
    from tests.helpers import pillow_file, skimage_crop
    from tests.stages.test_smoothing import cut

    data = pillow_file(skimage_crop("astronaut", 24, 40), progressive=True)
    c = diffjpeg.read(cut(data, 2))  # the DC scan (first bit) and luma's first AC band (zigzag 1..5)
    assert repr(c.progression) == "Progression(exact=(0, 0, 0), partial=(6, 1, 1), missing=(58, 63, 63), last_good_imcu_row=1)"
    assert repr(c).endswith(f", progression={c.progression!r})")
    assert "progression" not in repr(diffjpeg.read(data))
