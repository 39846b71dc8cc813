"""The differentiable rate against the exact bit count."""
import numpy as np
import pytest
import torch

import diffjpeg
from tests.helpers import assert_close_to_rounding, centred_crop

QUALITIES = tuple(range(5, 100, 10))


def crop(name, h=96, w=128):
    return torch.from_numpy(centred_crop(name, h, w)).permute(2, 0, 1).contiguous()


def spearman(a, b) -> float:
    ranks = lambda v: np.argsort(np.argsort(np.asarray(v)))  # noqa: E731
    return float(np.corrcoef(ranks(a), ranks(b))[0, 1])


def calibration(photos, huffman, subsampling="4:2:0", qualities=QUALITIES):
    estimates, exact = [], []
    for name in photos:
        x = crop(name) if isinstance(name, str) else name
        for q in qualities:
            c = diffjpeg.encode(x, quality=q, subsampling=subsampling)
            estimates.append(float(diffjpeg.rate(c, huffman)))
            exact.append(int(diffjpeg.bits(c, huffman)))
    errors = np.abs(np.array(estimates) / np.array(exact) - 1)
    return float(np.median(errors)), spearman(estimates, exact)


@pytest.mark.parametrize("huffman", ["standard", "optimized"])
def test_rate_is_calibrated_against_bits(huffman):
    # every other quality of the sweep: the whole sweep on whole photos is -m slow
    median, rho = calibration(["astronaut", "coffee", "chelsea"], huffman, qualities=QUALITIES[::2])
    assert median <= 0.03, median
    assert rho >= 0.99, rho


@pytest.mark.slow
@pytest.mark.parametrize("subsampling", ["4:2:0", "4:4:4"])
@pytest.mark.parametrize("huffman", ["standard", "optimized"])
def test_rate_on_whole_photos(huffman, subsampling):
    from skimage import data

    photos = [torch.from_numpy(np.ascontiguousarray(getattr(data, n)()[..., :3])).permute(2, 0, 1).contiguous()
              for n in ("astronaut", "coffee", "rocket", "immunohistochemistry")]
    median, rho = calibration(photos, huffman, subsampling)
    assert median <= 0.03 and rho >= 0.99, (median, rho)


def test_rate_is_exact_where_sizes_are_exact():
    """Coefficients and DC differences of magnitude 0 and 1 only: every soft step is exact there."""
    rng = np.random.default_rng(0)
    components = []
    for _ in range(3):  # 3 x 5 blocks each, 4:4:4: coded in raster order
        blocks = torch.tensor(rng.choice([0, 0, 0, 0, 0, 0, 1, -1], size=(3, 5, 8, 8)), dtype=torch.float64)
        differences = torch.tensor(rng.choice([0, 1, -1], size=15), dtype=torch.float64)
        blocks[..., 0, 0] = differences.cumsum(0).reshape(3, 5)
        components.append(blocks)
    c = diffjpeg.Coefficients(*components, qtables=torch.ones(2, 8, 8), sampling="4:4:4", size=(24, 40))
    exact = int(diffjpeg.bits(c))
    estimate = float(diffjpeg.rate(c))
    assert abs(estimate - exact) <= exact / 256 + 8  # only the stuffing and padding are estimated


@pytest.mark.parametrize("forward", ["exact", "float", "soft"])
@pytest.mark.parametrize("huffman", ["standard", "optimized"])
def test_rate_gradients_reach_image_quality_and_tables(forward, huffman):
    x = (crop("astronaut", 32, 48).float() / 255).requires_grad_()
    quality = torch.tensor(40.0, requires_grad=True)
    tables = diffjpeg.standard_tables().clone().requires_grad_()
    r = diffjpeg.rate(diffjpeg.encode(x, quality=quality, qtables=tables, mode=forward), huffman)
    r.backward()
    for name, t in (("image", x), ("quality", quality), ("qtables", tables)):
        assert torch.isfinite(t.grad).all(), name
        assert t.grad.abs().sum() > 0, name
    assert quality.grad > 0  # higher quality, more bits


@pytest.mark.paths
def test_rate_batched_and_module():
    x = torch.rand(2, 3, 3, 16, 24)
    c = diffjpeg.encode(x, quality=60)
    r = diffjpeg.Rate()(c)
    assert r.shape == (2, 3)
    assert_close_to_rounding(r[1, 2], diffjpeg.rate(diffjpeg.encode(x[1, 2], quality=60)))


def test_rate_on_coefficients_of_a_file():
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(crop("coffee").permute(1, 2, 0).numpy()).save(buf, "JPEG", quality=70, optimize=True)
    c = diffjpeg.read(buf.getvalue())
    c.y.requires_grad_()
    r = diffjpeg.rate(c, "optimized")
    r.backward()
    assert abs(float(r.detach()) / int(diffjpeg.bits(c, "optimized")) - 1) < 0.03
    assert torch.isfinite(c.y.grad).all()


def test_rate_arguments():
    with pytest.raises(ValueError, match="huffman"):
        diffjpeg.rate(diffjpeg.encode(torch.rand(3, 8, 8)), "adaptive")
    with pytest.raises(TypeError, match="Coefficients"):
        diffjpeg.rate(torch.rand(3, 8, 8))
