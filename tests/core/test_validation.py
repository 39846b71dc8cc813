"""Bad input: a clear ValueError or TypeError naming the argument. Valid input: never NaN."""
import numpy as np
import pytest
import torch

import diffjpeg
from diffjpeg.stages.rounding import Fourier, Sigmoid

X = torch.rand(1, 3, 8, 8)


@pytest.mark.parametrize(
    "call,error,name",
    [
        (lambda: diffjpeg.jpeg(np.zeros((3, 8, 8))), TypeError, "image"),
        (lambda: diffjpeg.jpeg(torch.rand(8, 8)), ValueError, "image"),
        (lambda: diffjpeg.jpeg(torch.rand(1, 2, 8, 8)), ValueError, "channels"),
        (lambda: diffjpeg.jpeg(torch.rand(1, 3, 0, 8)), ValueError, "empty"),
        (lambda: diffjpeg.jpeg(torch.rand(0, 3, 8, 8)), ValueError, "empty"),
        (lambda: diffjpeg.jpeg(torch.full((1, 3, 8, 8), float("nan"))), ValueError, "image"),
        (lambda: diffjpeg.jpeg(torch.full((1, 3, 8, 8), float("inf"))), ValueError, "image"),
        (lambda: diffjpeg.jpeg(torch.ones(1, 3, 8, 8, dtype=torch.int32)), TypeError, "dtype"),
        (lambda: diffjpeg.jpeg(X, quality=-1), ValueError, "quality"),
        (lambda: diffjpeg.jpeg(X, quality=100.5), ValueError, "quality"),
        (lambda: diffjpeg.jpeg(X, quality=float("nan")), ValueError, "quality"),
        (lambda: diffjpeg.jpeg(X, quality="high"), TypeError, "quality"),
        (lambda: diffjpeg.jpeg(X, quality=True), TypeError, "quality"),
        (lambda: diffjpeg.jpeg(torch.rand(2, 3, 8, 8), quality=torch.tensor([50.0, 60, 70])), ValueError, "quality"),
        (lambda: diffjpeg.jpeg(X, qtables=torch.zeros(2, 8, 8)), ValueError, "qtables"),
        (lambda: diffjpeg.jpeg(X, qtables=-torch.ones(2, 8, 8)), ValueError, "qtables"),
        (lambda: diffjpeg.jpeg(X, qtables=torch.ones(8, 8)), ValueError, "qtables"),
        (lambda: diffjpeg.jpeg(X, qtables=torch.ones(3, 2, 8, 8)), ValueError, "qtables"),
        (lambda: diffjpeg.jpeg(X, qtables=[[1] * 64] * 2), TypeError, "qtables"),
        (lambda: diffjpeg.jpeg(X, qtables=torch.full((2, 8, 8), float("inf"))), ValueError, "qtables"),
        (lambda: diffjpeg.jpeg(X, subsampling="4:1:1"), ValueError, "subsampling"),
        (lambda: diffjpeg.jpeg(X, mode="fast"), ValueError, "mode"),
        (lambda: diffjpeg.jpeg(X, rounding="ceil"), ValueError, "rounding"),
        (lambda: diffjpeg.jpeg(X, rounding=Fourier(order=0)), ValueError, "order"),
        (lambda: diffjpeg.jpeg(X, rounding=Sigmoid(temperature=0.0)), ValueError, "temperature"),
        (lambda: diffjpeg.jpeg(X, rounding=Sigmoid(temperature=float("nan"))), ValueError, "temperature"),
        (lambda: diffjpeg.jpeg(X, rounding=Fourier(order=2.5)), TypeError, "order"),
        (lambda: diffjpeg.jpeg(X, rounding="round"), ValueError, "rounding"),
        (lambda: diffjpeg.jpeg(X, rounding=3), ValueError, "rounding"),
        (lambda: diffjpeg.jpeg(X, rgb_to_ycbcr=torch.eye(4)), ValueError, "rgb_to_ycbcr"),
        (lambda: diffjpeg.jpeg(X, ycbcr_to_rgb="jfif"), TypeError, "ycbcr_to_rgb"),
        (lambda: diffjpeg.decode(X), TypeError, "coefficients"),
        (lambda: diffjpeg.DiffJPEG(learnable=["quality", "gamma"]), ValueError, "learnable"),
        (lambda: diffjpeg.DiffJPEG(quality=None), ValueError, "quality"),
        (lambda: diffjpeg.DiffJPEG(quality=120), ValueError, "quality"),
    ],
)
def test_bad_input_is_named(call, error, name):
    with pytest.raises(error, match=name):
        call()


def test_mismatched_coefficients_rejected():
    c = diffjpeg.encode(torch.rand(1, 3, 16, 16))
    c.size = (32, 32)
    with pytest.raises(ValueError, match="component 0"):
        diffjpeg.decode(c)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), 300.0])
def test_strided_images_are_checked_as_contiguous_ones(bad):
    """Rows of a taller image (what strips hand the encoder), columns and
    channels-last views: NaN, Inf and a [0, 255] scale are refused as in a
    contiguous image (the check reads strided tensors where they lie)."""
    x = torch.rand(2, 3, 64, 48)
    x[1, 2, 40, 30] = bad
    channels_last = x.contiguous(memory_format=torch.channels_last)
    for view in (x[:, :, 32:56], x[:, :, :, 24:40], channels_last):
        assert not view.is_contiguous()
        with pytest.raises(ValueError, match="image"):
            diffjpeg.jpeg(view, quality=50)
        with pytest.raises(ValueError, match="image"):
            diffjpeg.encode(view, quality=50)


@pytest.mark.parametrize("forward", ("exact", "float", "soft"))
@pytest.mark.parametrize("rounding", diffjpeg.ROUNDINGS)
def test_no_nan_on_extremes(forward, rounding):
    cases = [torch.zeros(1, 3, 1, 1), torch.ones(2, 3, 5, 3), torch.rand(1, 1, 9, 17), torch.rand(1, 3, 16, 16) * 3 - 1]  # the whole range clipped (check.FLOAT_IMAGE_RANGE)
    for case in cases:
        for quality in (0.0, 1.0, 100.0):
            x = case.clone().requires_grad_()
            q = torch.tensor(quality, requires_grad=True)
            y = diffjpeg.jpeg(x, quality=q, mode=forward, rounding=rounding)
            assert torch.isfinite(y).all() and (y >= 0).all() and (y <= 1).all()
            y.sum().backward()
            assert torch.isfinite(x.grad).all() and torch.isfinite(q.grad)
