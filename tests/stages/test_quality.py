"""diffjpeg.stages.quality against libjpeg-turbo's jcparam.c (jpeg_quality_scaling,
jpeg_add_quant_table with force_baseline), written out here in integers."""
import pytest
import torch

from diffjpeg.stages.quality import quality_tables, quality_to_scale

# JPEG standard, Annex K.1 and K.2, natural (row-major) order
LUMA = [
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55,
    14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29, 51, 87, 80, 62,
    18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99,
]
CHROMA = [
    17, 18, 24, 47, 99, 99, 99, 99, 18, 21, 26, 66, 99, 99, 99, 99,
    24, 26, 56, 99, 99, 99, 99, 99, 47, 66, 99, 99, 99, 99, 99, 99,
] + [99] * 32


def jpeg_quality_scaling(quality: int) -> int:
    if quality <= 0:
        quality = 1
    if quality > 100:
        quality = 100
    if quality < 50:
        return 5000 // quality
    return 200 - quality * 2


def jpeg_add_quant_table(basic_table, scale_factor, force_baseline=True):
    table = []
    for value in basic_table:
        temp = (value * scale_factor + 50) // 100  # C's long division: both operands are positive
        if temp <= 0:
            temp = 1
        if temp > 32767:
            temp = 32767
        if force_baseline and temp > 255:
            temp = 255
        table.append(temp)
    return table


def jpeg_set_quality(quality: int):
    scale = jpeg_quality_scaling(quality)
    return [jpeg_add_quant_table(LUMA, scale), jpeg_add_quant_table(CHROMA, scale)]


def as_lists(tables: torch.Tensor):
    return [[int(v) for v in t.flatten().tolist()] for t in tables]


def test_every_integer_quality():
    qualities = torch.arange(0, 101, dtype=torch.float32)
    tables = quality_tables(qualities, exact=True)
    assert tables.shape == (101, 2, 8, 8)
    for quality, t in zip(range(101), tables):
        assert as_lists(t) == jpeg_set_quality(quality), quality


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_every_integer_quality_one_at_a_time(dtype):
    for quality in (0, 1, 2, 24, 25, 49, 50, 51, 75, 99, 100):
        assert as_lists(quality_tables(torch.tensor(float(quality), dtype=dtype), exact=True)) == jpeg_set_quality(quality)


def test_scale_factors():
    qualities = list(range(-5, 106))
    scale = quality_to_scale(torch.tensor(qualities, dtype=torch.float64), exact=True)
    assert scale.tolist() == [jpeg_quality_scaling(q) for q in qualities]


def test_fractional_qualities_round_half_up_as_an_int_quality():
    """The exact form takes libjpeg's int quality: the nearest one, halves up,
    after the clamp to [1, 100]."""
    fractions = [q / 4 for q in range(-8, 4 * 102)]
    tables = quality_tables(torch.tensor(fractions, dtype=torch.float64), exact=True)
    for q, t in zip(fractions, tables):
        integer = int(min(100.0, max(1.0, q)) + 0.5)
        assert as_lists(t) == jpeg_set_quality(integer), q


def test_beyond_the_range():
    for q, same_as in ((-3.0, 1), (0.4, 1), (100.6, 100), (250.0, 100)):
        assert as_lists(quality_tables(torch.tensor(q), exact=True)) == jpeg_set_quality(same_as)


def test_continuous_tables_and_their_gradient():
    """exact=False: base * scale / 100 clamped to [1, 255], scale 5000 / q or 200 - 2 q;
    the gradient in quality is that of the unclamped formula (straight-through clamp)."""
    for q in (10.0, 37.5, 50.0, 80.25, 97.0):
        quality = torch.tensor(q, dtype=torch.float64, requires_grad=True)
        tables = quality_tables(quality, exact=False)
        scale = 5000 / q if q < 50 else 200 - 2 * q
        expected = [[min(255.0, max(1.0, b * scale / 100)) for b in t] for t in (LUMA, CHROMA)]
        torch.testing.assert_close(tables.reshape(2, 64), torch.tensor(expected, dtype=torch.float64), rtol=1e-12, atol=1e-12)
        tables.sum().backward()
        dscale = -5000 / q**2 if q < 50 else -2.0
        assert quality.grad.item() == pytest.approx(sum(LUMA + CHROMA) * dscale / 100, rel=1e-12)


def test_exact_tables_gradient_reaches_quality():
    quality = torch.tensor([30.0, 75.0], dtype=torch.float64, requires_grad=True)
    quality_tables(quality, exact=True).sum().backward()
    assert torch.isfinite(quality.grad).all() and (quality.grad < 0).all()
