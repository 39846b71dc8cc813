"""The exact forward pass against the real codec: Pillow and OpenCV (libjpeg-turbo)."""
import numpy as np
import pytest
import torch

import diffjpeg
from diffjpeg.backends import cpu, exact
from tests.helpers import SUBSAMPLINGS, assert_identical, skimage_crop

QUALITIES = (1, 2, 5, 10, 25, 50, 75, 90, 95, 100)
RNG = np.random.default_rng(2026)


@pytest.fixture(autouse=True, params=["native", "tensor"])
def codec_path(request):
    """Every test here runs on both exact paths: the compiled kernel and the tensor stages."""
    if request.param == "native" and not exact.compiled():
        pytest.skip("the compiled kernel was not built (no C compiler at install time)")
    with cpu.enabled(request.param == "native"):
        yield request.param


def _photo(name, h=None, w=None):
    return skimage_crop(name, h, w)


def synthetic():
    yy, xx = np.mgrid[0:45, 0:70]
    return {
        "noise": RNG.integers(0, 256, (37, 53, 3), dtype=np.uint8),
        "primaries": (np.kron(RNG.integers(0, 2, (6, 9, 3)), np.ones((5, 7, 1))) * 255).astype(np.uint8),
        "checkerboard": np.repeat(((yy + xx) % 2 * 255).astype(np.uint8)[..., None], 3, 2),
        "checker_colors": (np.stack([(yy + xx) % 2, 1 - (yy + xx) % 2, (yy // 3) % 2], -1) * 255).astype(np.uint8),
        "ramp": np.stack([xx * 255 // 69, yy * 255 // 44, (xx + yy) * 255 // 113], -1).astype(np.uint8),
    }


def ours(array, **kwargs):
    """Run diffjpeg on a uint8 HWC or HW numpy image, return the same layout."""
    x = torch.from_numpy(array)
    x = x[None] if array.ndim == 2 else x.permute(2, 0, 1)
    y = diffjpeg.jpeg(x, **kwargs)
    return y[0].numpy() if array.ndim == 2 else y.permute(1, 2, 0).numpy()


@pytest.mark.parametrize("quality", QUALITIES)
@pytest.mark.parametrize("subsampling", SUBSAMPLINGS)
def test_photo_matches_pillow(quality, subsampling, pillow_jpeg):
    a = _photo("astronaut", 203, 141)  # odd size: partial blocks and MCUs
    assert_identical(ours(a, quality=quality, subsampling=subsampling), pillow_jpeg(a, quality, subsampling))


@pytest.mark.parametrize("name", ["noise", "primaries", "checkerboard", "checker_colors", "ramp"])
@pytest.mark.parametrize("quality", QUALITIES)
@pytest.mark.parametrize("subsampling", SUBSAMPLINGS)
def test_synthetic_matches_pillow(name, quality, subsampling, pillow_jpeg):
    a = synthetic()[name]
    assert_identical(ours(a, quality=quality, subsampling=subsampling), pillow_jpeg(a, quality, subsampling))


@pytest.mark.parametrize("quality", QUALITIES)
def test_grayscale_matches_pillow(quality, pillow_jpeg):
    for a in (_photo("camera", 77, 101), synthetic()["noise"][..., 0], synthetic()["checkerboard"][..., 0]):
        a = np.ascontiguousarray(a)
        assert_identical(ours(a, quality=quality), pillow_jpeg(a, quality))


SIZES = [(1, 1), (1, 7), (7, 1), (2, 2), (2, 5), (3, 3), (4, 6), (5, 9), (8, 8), (9, 9), (15, 17), (16, 16), (17, 33), (31, 8), (33, 65)]


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("subsampling", SUBSAMPLINGS)
def test_sizes_match_pillow(size, subsampling, pillow_jpeg):
    a = _photo("chelsea", *size)
    for quality in (5, 75):
        assert_identical(ours(a, quality=quality, subsampling=subsampling), pillow_jpeg(a, quality, subsampling))
    g = np.ascontiguousarray(a[..., 1])
    assert_identical(ours(g, quality=50), pillow_jpeg(g, 50))


def test_large_photo_matches_pillow(pillow_jpeg):
    a = _photo("astronaut")  # 512 x 512
    for quality, subsampling in ((30, "4:2:0"), (85, "4:4:4")):
        assert_identical(ours(a, quality=quality, subsampling=subsampling), pillow_jpeg(a, quality, subsampling))


@pytest.mark.parametrize("subsampling", SUBSAMPLINGS)
def test_custom_tables_match_pillow(subsampling, pillow_jpeg):
    tables = RNG.integers(1, 256, (2, 64))
    a = synthetic()["ramp"]
    reference = pillow_jpeg(a, None, subsampling, [list(map(int, t)) for t in tables])
    mine = ours(a, qtables=torch.tensor(tables, dtype=torch.float32).reshape(2, 8, 8), subsampling=subsampling)
    assert_identical(mine, reference)


def test_quality_tables_match_libjpeg():
    """Tables libjpeg writes for every integer quality, read back from Pillow's files."""
    import io

    from PIL import Image

    for quality in range(0, 101):
        buf = io.BytesIO()
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(buf, "JPEG", quality=quality)
        written = Image.open(buf).quantization
        mine = diffjpeg.quality_tables(torch.tensor(float(quality)))
        for i in (0, 1):
            assert mine[i].flatten().tolist() == [float(v) for v in written[i]], quality


@pytest.mark.paths
@pytest.mark.parametrize("mode", ["exact", "float"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_tables_of_a_number_quality_are_those_of_a_tensor_quality(mode, dtype):
    """A whole-number quality's tables come from a cache (codec._whole_quality_tables):
    the same bits as a tensor quality's, built per call, for every quality
    0-100 and batch shape; the caller's coefficients own their tables."""
    x = torch.rand(2, 3, 3, 8, 8, generator=torch.Generator().manual_seed(0), dtype=dtype)
    for quality in (*range(0, 101), 75.0, np.int64(30), np.float32(90.0)):
        cached = diffjpeg.encode(x, quality, mode=mode).qtables
        built = diffjpeg.encode(x, torch.tensor(float(quality)), mode=mode).qtables
        assert cached.shape == built.shape == (2, 3, 2, 8, 8) and torch.equal(cached, built), quality
    c = diffjpeg.encode(x[0, 0], 50, mode=mode)
    c.qtables.fill_(7.0)  # the caller's own tensor: the next call still gets libjpeg's tables
    assert torch.equal(diffjpeg.encode(x[0, 0], 50, mode=mode).qtables, diffjpeg.quality_tables(torch.tensor(50.0), exact=mode == "exact").to(dtype))


def test_tables_with_quality_scale_like_libjpeg(pillow_jpeg):
    """Custom base tables plus quality: scaled as jpeg_set_quality scales the standard ones."""
    a = synthetic()["noise"]
    base = diffjpeg.standard_tables()
    assert_identical(ours(a, qtables=base, quality=40), pillow_jpeg(a, 40))


@pytest.mark.parametrize("quality", (3, 50, 97))
@pytest.mark.parametrize("flag,subsampling", [(0x111111, "4:4:4"), (0x211111, "4:2:2"), (0x221111, "4:2:0")])
def test_matches_opencv(quality, flag, subsampling):
    cv2 = pytest.importorskip("cv2")
    a = np.ascontiguousarray(_photo("coffee", 99, 131))
    ok, encoded = cv2.imencode(".jpg", a[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality, cv2.IMWRITE_JPEG_SAMPLING_FACTOR, flag])
    assert ok
    decoded = cv2.imdecode(encoded, cv2.IMREAD_COLOR)[..., ::-1]
    assert_identical(ours(a, quality=quality, subsampling=subsampling), decoded)


def test_float_input_rounds_to_8_bits_first(pillow_jpeg):
    a = synthetic()["ramp"]
    x = torch.from_numpy(a).permute(2, 0, 1).double() / 255.0
    x = x + (torch.rand_like(x) - 0.5) * 0.9 / 255.0  # still rounds to the same 8-bit values
    y = diffjpeg.jpeg(x, quality=60)
    assert y.dtype == torch.float64
    reference = torch.from_numpy(pillow_jpeg(a, 60)).permute(2, 0, 1).double()
    assert torch.equal(torch.round(y * 255.0), reference)
    assert torch.equal(y * 255.0, reference)  # outputs are exact multiples of 1/255


def test_encode_decode_is_jpeg():
    x = torch.rand(2, 3, 19, 23)
    for forward in ("exact", "float", "soft"):
        c = diffjpeg.encode(x, quality=35, mode=forward)
        assert torch.equal(diffjpeg.decode(c, mode=forward), diffjpeg.jpeg(x, quality=35, mode=forward))


def test_decode_saturates_like_libjpeg_turbo_simd(tmp_path):
    """Coefficients whose inverse DCT leaves [-512, 511]: Pillow's libjpeg-turbo clamps, it does not wrap."""
    jpeglib = pytest.importorskip("jpeglib")
    from PIL import Image

    base = tmp_path / "base.jpg"
    jpeglib.from_spatial(np.full((16, 16, 1), 128, np.uint8)).write_spatial(str(base), qt=50)
    image = jpeglib.read_dct(str(base))
    rng = np.random.default_rng(7)
    table = torch.tensor(image.qt[0], dtype=torch.float32)
    out_of_range = 0
    for trial in range(20):
        amplitude = 2 + trial // 2
        image.Y = rng.integers(-amplitude, amplitude + 1, image.Y.shape).astype(image.Y.dtype)
        path = tmp_path / f"x{trial}.jpg"
        image.write_dct(str(path))
        c = diffjpeg.Coefficients(
            y=torch.tensor(image.Y, dtype=torch.float32)[None],
            cb=None,
            cr=None,
            qtables=torch.stack([table, table])[None],
            sampling="4:4:4",
            size=(16, 16),
        )
        mine = torch.round(diffjpeg.decode(c)[0, 0] * 255).to(torch.uint8).numpy()
        assert_identical(mine, np.asarray(Image.open(path)))
        out_of_range += int(np.abs(np.asarray(image.Y, float) * image.qt[0]).sum() > 4096)
    assert out_of_range > 0  # the sweep did reach values a wrapping IDCT would get wrong


@pytest.mark.slow
@pytest.mark.parametrize("subsampling", SUBSAMPLINGS)
def test_every_quality_matches_pillow(subsampling, pillow_jpeg):
    images = [_photo("astronaut", 131, 157), synthetic()["noise"], synthetic()["checker_colors"]]
    for quality in range(0, 101):
        for a in images:
            assert_identical(ours(a, quality=quality, subsampling=subsampling), pillow_jpeg(a, quality, subsampling))
        g = np.ascontiguousarray(images[0][..., 0])
        assert_identical(ours(g, quality=quality), pillow_jpeg(g, quality))
