"""diffjpeg.stages.color against libjpeg-turbo's jccolor.c (rgb_ycc_start, rgb_ycc_convert)
and jdcolor.c (build_ycc_rgb_table, ycc_rgb_convert), written out here in integers
over every 8-bit input triple."""
import numpy as np
import pytest
import torch

from diffjpeg.stages.color import rgb_to_ycbcr, rgb_to_ycbcr_fixed, ycbcr_to_rgb, ycbcr_to_rgb_fixed

SCALEBITS = 16
ONE_HALF = 1 << (SCALEBITS - 1)
CBCR_OFFSET = 128 << SCALEBITS


def FIX(x: float) -> int:
    """jccolor.c's ``FIX(x) = (JLONG)(x * (1L << SCALEBITS) + 0.5)`` for x > 0."""
    return int(x * (1 << SCALEBITS) + 0.5)


def test_fix_constants_are_libjpegs():
    encoder = [FIX(v) for v in (0.29900, 0.58700, 0.11400, 0.16874, 0.33126, 0.50000, 0.41869, 0.08131)]
    assert encoder == [19595, 38470, 7471, 11059, 21709, 32768, 27439, 5329]
    decoder = [FIX(v) for v in (1.40200, 1.77200, 0.71414, 0.34414)]
    assert decoder == [91881, 116130, 46802, 22554]


def reference_rgb_to_ycbcr(r, g, b):
    """rgb_ycc_convert with rgb_ycc_start's tables summed out (numpy int64)."""
    y = (FIX(0.29900) * r + FIX(0.58700) * g + FIX(0.11400) * b + ONE_HALF) >> SCALEBITS
    # "a rounding fudge-factor of 0.5-epsilon for Cb and Cr": no range limit needed
    cb = (-FIX(0.16874) * r - FIX(0.33126) * g + FIX(0.50000) * b + CBCR_OFFSET + ONE_HALF - 1) >> SCALEBITS
    cr = (FIX(0.50000) * r - FIX(0.41869) * g - FIX(0.08131) * b + CBCR_OFFSET + ONE_HALF - 1) >> SCALEBITS
    return y, cb, cr


def reference_ycbcr_to_rgb(y, cb, cr):
    """ycc_rgb_convert with build_ycc_rgb_table's tables, then range_limit (numpy int64)."""
    x_cb, x_cr = cb - 128, cr - 128
    cr_r = (FIX(1.40200) * x_cr + ONE_HALF) >> SCALEBITS
    cb_b = (FIX(1.77200) * x_cb + ONE_HALF) >> SCALEBITS
    cr_g = -FIX(0.71414) * x_cr
    cb_g = -FIX(0.34414) * x_cb + ONE_HALF
    red = np.clip(y + cr_r, 0, 255)
    green = np.clip(y + ((cb_g + cr_g) >> SCALEBITS), 0, 255)
    blue = np.clip(y + cb_b, 0, 255)
    return red, green, blue


def every_triple(first: range):
    """(first, every second, every third) component value, broadcastable int32 arrays
    of shapes (n, 1, 1), (1, 256, 1), (1, 1, 256): every sum below fits int32."""
    a = np.array(first, dtype=np.int32).reshape(-1, 1, 1)
    return a, np.arange(256, dtype=np.int32).reshape(1, -1, 1), np.arange(256, dtype=np.int32).reshape(1, 1, -1)


def as_planes(*channels) -> torch.Tensor:
    """Broadcastable channels to an int32 ``(1, 3, n, 65536)`` tensor."""
    a, b, c = np.broadcast_arrays(*channels)
    return torch.from_numpy(np.stack([a, b, c]).astype(np.int32)).reshape(1, 3, a.shape[0], -1)


CHUNK = 128  # first-component values per chunk: 8 million triples


def assert_equal_planes(mine: torch.Tensor, expected: list, names: str, inputs) -> None:
    expected = torch.from_numpy(np.stack(np.broadcast_arrays(*expected)).astype(np.int32)).reshape(mine.shape)
    if not torch.equal(mine, expected):
        differ = (mine != expected).reshape(3, -1)
        first = int(differ.any(0).nonzero()[0])
        values = [int(v.ravel()[first]) for v in np.broadcast_arrays(*inputs)]
        raise AssertionError(f"{int(differ.sum())} values differ, first at {names} {values}")


@pytest.mark.parametrize("start", range(0, 256, CHUNK))
def test_rgb_to_ycbcr_fixed_every_rgb_triple(start):
    r, g, b = every_triple(range(start, start + CHUNK))
    expected = reference_rgb_to_ycbcr(r, g, b)
    assert min(e.min() for e in expected) >= 0 and max(e.max() for e in expected) <= 255  # no range limit
    mine = rgb_to_ycbcr_fixed(as_planes(r, g, b))
    assert mine.dtype == torch.int32
    assert_equal_planes(mine, expected, "RGB", (r, g, b))


@pytest.mark.parametrize("start", range(0, 256, CHUNK))
def test_ycbcr_to_rgb_fixed_every_ycbcr_triple(start):
    y, cb, cr = every_triple(range(start, start + CHUNK))
    mine = ycbcr_to_rgb_fixed(as_planes(y, cb, cr))
    assert mine.dtype == torch.int32
    assert_equal_planes(mine, reference_ycbcr_to_rgb(y, cb, cr), "YCbCr", (y, cb, cr))


def test_corners_written_out():
    """The eight RGB corners, values as libjpeg gives them (and jdcolor's doctest pair)."""
    corners = [(r, g, b) for r in (0, 255) for g in (0, 255) for b in (0, 255)]
    mine = rgb_to_ycbcr_fixed(torch.tensor(corners, dtype=torch.int32).T.reshape(1, 3, 1, 8)).reshape(3, -1).T.tolist()
    assert mine == [[int(v) for v in reference_rgb_to_ycbcr(*c)] for c in corners]
    assert mine[0] == [0, 128, 128] and mine[-1] == [255, 128, 128]
    assert mine[4] == [76, 85, 255]  # pure red
    pixel = torch.tensor([128, 128, 255], dtype=torch.int32).reshape(1, 3, 1, 1)
    assert ycbcr_to_rgb_fixed(pixel).flatten().tolist() == [255, 37, 128]


def test_float_exact_mode_equals_the_fixed_forms():
    g = torch.Generator().manual_seed(1)
    x = torch.randint(0, 256, (2, 3, 16, 16), generator=g, dtype=torch.int32)
    for dtype in (torch.float32, torch.float64):
        assert torch.equal(rgb_to_ycbcr(x.to(dtype), mode="exact"), rgb_to_ycbcr_fixed(x).to(dtype))
        assert torch.equal(ycbcr_to_rgb(x.to(dtype), mode="exact"), ycbcr_to_rgb_fixed(x).to(dtype))


def test_custom_matrix_goes_through_fix_and_the_same_formulas():
    """A custom matrix: FIX of each entry (half away from zero), libjpeg's rounding
    constants, then the clamp to [0, 255]; the JFIF matrix given explicitly is the default."""
    g = torch.Generator().manual_seed(2)
    x = torch.randint(0, 256, (1, 3, 8, 32), generator=g, dtype=torch.int32)
    jfif = torch.tensor([[0.299, 0.587, 0.114], [-0.16874, -0.33126, 0.5], [0.5, -0.41869, -0.08131]])
    assert torch.equal(rgb_to_ycbcr_fixed(x, jfif), rgb_to_ycbcr_fixed(x))
    inverse = torch.tensor([[1.0, 0.0, 1.402], [1.0, -0.34414, -0.71414], [1.0, 1.772, 0.0]])
    assert torch.equal(ycbcr_to_rgb_fixed(x, inverse), ycbcr_to_rgb_fixed(x))

    m = (torch.rand(3, 3, generator=g, dtype=torch.float64) - 0.5) * 3
    fixed = [[int(np.sign(v)) * int(abs(v) * 65536 + 0.5) for v in row] for row in m.tolist()]
    pixels = x.reshape(3, -1).T.tolist()
    forward = [[min(255, max(0, (sum(f * c for f, c in zip(row, p)) + bias) >> 16))
                for row, bias in zip(fixed, (ONE_HALF, CBCR_OFFSET + ONE_HALF - 1, CBCR_OFFSET + ONE_HALF - 1))]
               for p in pixels]
    assert rgb_to_ycbcr_fixed(x, m).reshape(3, -1).T.tolist() == forward
    backward = [[min(255, max(0, (row[0] * p[0] + row[1] * (p[1] - 128) + row[2] * (p[2] - 128) + ONE_HALF) >> 16))
                 for row in fixed] for p in pixels]
    assert ycbcr_to_rgb_fixed(x, m).reshape(3, -1).T.tolist() == backward


@pytest.mark.parametrize("convert", [rgb_to_ycbcr, ycbcr_to_rgb])
def test_every_mode_has_the_real_conversions_gradient(convert):
    """Backward is the real matrix product's in every mode: ``M^T w`` per pixel."""
    g = torch.Generator().manual_seed(3)
    x0 = torch.randint(0, 256, (2, 3, 4, 5), generator=g).double()
    w = torch.randn(2, 3, 4, 5, generator=g, dtype=torch.float64)
    if convert is rgb_to_ycbcr:
        m = torch.tensor([[0.299, 0.587, 0.114], [-0.16874, -0.33126, 0.5], [0.5, -0.41869, -0.08131]], dtype=torch.float64)
    else:
        m = torch.tensor([[1.0, 0.0, 1.402], [1.0, -0.34414, -0.71414], [1.0, 1.772, 0.0]], dtype=torch.float64)
    expected = torch.einsum("ck,bchw->bkhw", m, w)
    for mode in ("exact", "float", "soft"):
        x = x0.clone().requires_grad_()
        (convert(x, mode=mode) * w).sum().backward()
        torch.testing.assert_close(x.grad, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("convert", [rgb_to_ycbcr, ycbcr_to_rgb])
def test_soft_conversion_gradcheck_in_image_and_matrix(convert):
    g = torch.Generator().manual_seed(4)
    x = (100 + 40 * torch.rand(1, 3, 3, 4, generator=g, dtype=torch.float64)).requires_grad_()
    if convert is rgb_to_ycbcr:
        m = torch.tensor([[0.299, 0.587, 0.114], [-0.16874, -0.33126, 0.5], [0.5, -0.41869, -0.08131]], dtype=torch.float64)
    else:
        m = torch.tensor([[1.0, 0.0, 1.402], [1.0, -0.34414, -0.71414], [1.0, 1.772, 0.0]], dtype=torch.float64)
    m = m.requires_grad_()
    assert torch.autograd.gradcheck(lambda a, b: convert(a, b, mode="soft"), (x, m))


@pytest.mark.parametrize("convert", [rgb_to_ycbcr, ycbcr_to_rgb])
def test_unknown_mode_is_refused(convert):
    with pytest.raises(ValueError, match="mode"):
        convert(torch.zeros(1, 3, 2, 2), mode="bogus")
