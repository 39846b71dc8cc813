"""RateDistortionLoss: the rate-distortion objective as a library object."""
import pytest
import torch

import diffjpeg
from diffjpeg import RateDistortionLoss


def test_terms_are_rate_per_pixel_and_mse_and_their_weighted_sum():
    x = torch.rand(2, 3, 24, 40, generator=torch.Generator().manual_seed(0))
    c = diffjpeg.encode(x, quality=60)
    y = diffjpeg.decode(c)
    out = RateDistortionLoss(lmbda=0.05, huffman="standard")(y, x, c)
    bits = diffjpeg.rate(c, huffman="standard").sum()
    torch.testing.assert_close(out.bits, bits)
    torch.testing.assert_close(out.bpp, bits / (2 * 24 * 40))
    torch.testing.assert_close(out.distortion, ((y - x) * 255).pow(2).mean())
    torch.testing.assert_close(out.loss, out.bpp + 0.05 * out.distortion)


def test_gradients_reach_the_tables():
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    tables = diffjpeg.standard_tables().requires_grad_()
    c = diffjpeg.encode(x, qtables=tables, rounding="sigmoid")
    RateDistortionLoss(lmbda=0.01)(diffjpeg.decode(c), x, c).loss.backward()
    assert tables.grad is not None and bool(tables.grad.abs().sum() > 0)


@pytest.mark.parametrize("kwargs, match", [
    ({"lmbda": 0}, "lambda"),
    ({"lmbda": float("inf")}, "lambda"),
    ({"lmbda": True}, "lambda"),
    ({"distortion": "psnr"}, "distortion"),
    ({"huffman": "best"}, "huffman"),
])
def test_rejects_bad_settings(kwargs, match):
    with pytest.raises(ValueError, match=match):
        RateDistortionLoss(**kwargs)


def test_ssim_without_kornia_is_a_clear_import_error(monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "kornia", None)
    monkeypatch.setitem(__import__("sys").modules, "kornia.metrics", None)
    with pytest.raises(ImportError, match="needs kornia"):
        RateDistortionLoss(distortion="ssim")


def test_ssim_distortion():
    pytest.importorskip("kornia")
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    c = diffjpeg.encode(x, quality=20)
    out = RateDistortionLoss(lmbda=2.0, distortion="ssim")(diffjpeg.decode(c), x, c)
    assert 0 < float(out.distortion) < 1
    identical = RateDistortionLoss(distortion="ssim")(x, x, c)
    assert abs(float(identical.distortion)) < 1e-6
