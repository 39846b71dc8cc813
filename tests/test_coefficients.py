"""Coefficients as a value: required size, batch indexing, device, dtype, repr."""
import pytest
import torch

import diffjpeg


def test_size_is_required():
    c = diffjpeg.encode(torch.rand(1, 3, 16, 16))
    with pytest.raises(TypeError, match="size"):
        diffjpeg.Coefficients(c.y, c.cb, c.cr, c.qtables, c.sampling)


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
    assert repr(c) == "Coefficients(batch=(2,), size=(9, 9), sampling=4:4:4, dtype=torch.float64, device=cpu)"
    assert c.to(torch.float32).dtype == torch.float32
