"""kornia parity of the codec: per-call quality and tables in the modules'
``forward``, as kornia's ``JPEGCodecDifferentiable`` takes them; and the
inputs of kornia's own JPEG tests (``tests/enhance/test_jpeg.py``: shapes,
batch-of-1 tables, per-call quality, its exceptions) run through a thin
adapter from kornia's arguments to diffjpeg's."""
import pytest
import torch

import diffjpeg


def generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ---------------------------------------------------------------- per-call quality and tables
def test_per_call_quality_replaces_the_modules():
    x = torch.rand(3, 3, 24, 24, generator=generator(0))
    quality = torch.tensor([90.0, 40.0, 5.0])
    layer = diffjpeg.DiffJPEG(75)
    assert torch.equal(layer(x, quality), diffjpeg.jpeg(x, quality))
    assert torch.equal(layer(x, quality=20), diffjpeg.jpeg(x, 20))
    assert torch.equal(layer(x), diffjpeg.jpeg(x, 75))  # the module's own, untouched by the calls before
    encoder = diffjpeg.JPEGEncoder(75)
    assert torch.equal(encoder(x, quality).y, diffjpeg.encode(x, quality).y)


def test_per_call_tables_are_scaled_by_the_modules_quality_or_used_as_given():
    x = torch.rand(2, 3, 16, 16, generator=generator(1))
    tables = torch.randint(1, 90, (2, 2, 8, 8), generator=generator(2)).float()
    assert torch.equal(diffjpeg.DiffJPEG(60)(x, qtables=tables), diffjpeg.jpeg(x, 60, qtables=tables))
    as_given = diffjpeg.DiffJPEG(quality=None, qtables=diffjpeg.standard_tables())
    assert torch.equal(as_given(x, qtables=tables), diffjpeg.jpeg(x, qtables=tables))
    assert torch.equal(as_given(x, 30, tables), diffjpeg.jpeg(x, 30, qtables=tables))
    encoder = diffjpeg.JPEGEncoder(quality=None, qtables=diffjpeg.standard_tables())
    assert torch.equal(encoder(x, qtables=tables).qtables, diffjpeg.encode(x, qtables=tables).qtables)


def test_a_learned_value_cannot_be_replaced_per_call():
    x = torch.rand(1, 3, 16, 16, generator=generator(3))
    layer = diffjpeg.DiffJPEG(75, learnable=True)
    with pytest.raises(ValueError, match="quality is learned by this DiffJPEG"):
        layer(x, quality=50)
    with pytest.raises(ValueError, match="qtables is learned by this DiffJPEG"):
        layer(x, qtables=diffjpeg.standard_tables())
    encoder = diffjpeg.JPEGEncoder(torch.nn.Parameter(torch.tensor(50.0)))
    with pytest.raises(ValueError, match="quality is learned by this JPEGEncoder"):
        encoder(x, quality=20)


def test_learned_tables_with_per_call_quality_get_both_gradients():
    """kornia's use: tables learned by the module, quality given per call."""
    x = torch.rand(2, 3, 16, 16, generator=generator(4))
    layer = diffjpeg.DiffJPEG(learnable=["qtables"])
    quality = torch.tensor([80.0, 30.0], requires_grad=True)
    layer(x, quality).sum().backward()
    assert layer.qtables.grad.abs().sum() > 0 and (quality.grad != 0).all()
    with torch.no_grad():  # the values: the learned tables scaled by the per-call quality
        assert torch.equal(layer(x, quality), diffjpeg.jpeg(x, quality, qtables=layer.qtables))


def test_per_image_quality_and_tables_at_construction():
    x = torch.rand(3, 3, 16, 16, generator=generator(5))
    quality, tables = torch.tensor([10.0, 50.0, 95.0]), torch.randint(1, 60, (3, 2, 8, 8), generator=generator(6)).float()
    assert torch.equal(diffjpeg.DiffJPEG(quality, qtables=tables)(x), diffjpeg.jpeg(x, quality, qtables=tables))
    with pytest.raises(ValueError, match=r"quality has shape \(3,\)"):
        diffjpeg.DiffJPEG(quality)(x[:2])


def test_module_state_and_devices_with_per_call_values():
    layer = diffjpeg.DiffJPEG(75)
    restored = diffjpeg.DiffJPEG(20)
    restored.load_state_dict(layer.state_dict())
    x = torch.rand(1, 3, 8, 8, generator=generator(7))
    assert torch.equal(restored(x), layer(x)) and torch.equal(restored(x, 20), layer(x, 20))


# ---------------------------------------------------------------- kornia's own test inputs
KORNIA_ROUNDING = "polynomial"  # kornia's differentiable_polynomial_rounding: round(x) + (x - round(x))**3 (not our default)


def from_kornia(image, jpeg_quality, quantization_table_y=None, quantization_table_c=None, mode="soft"):
    """kornia.enhance.jpeg_codec_differentiable's arguments, to diffjpeg: the
    two (…, 8, 8) tables stacked into (…, 2, 8, 8); soft mode, which like
    kornia's codec rounds only in the quantizer (polynomial surrogate)."""
    qtables = None
    if quantization_table_y is not None:
        qtables = torch.stack([quantization_table_y, quantization_table_c], dim=-3)
    return diffjpeg.DiffJPEG(quality=None if qtables is not None else 75, qtables=qtables, mode=mode, rounding=KORNIA_ROUNDING)(
        image, jpeg_quality
    )


def explicit(image, quality, qtables):
    """The same call with every argument expanded to one per image: what broadcasting must equal."""
    count = image.shape[:-3].numel()
    quality = quality.reshape(-1).expand(count) if quality.numel() == 1 else quality.reshape(count)
    qtables = qtables.reshape(-1, 2, 8, 8).expand(count, -1, -1, -1) if qtables.shape[:-3].numel() == 1 else qtables.reshape(count, 2, 8, 8)
    return diffjpeg.jpeg(image.reshape(count, *image.shape[-3:]), quality, qtables=qtables, mode="soft", rounding=KORNIA_ROUNDING).reshape(image.shape)


KORNIA_CASES = {  # name in kornia's TestDiffJPEG: image shape, quality shape, table shape (None: the standard tables)
    "test_smoke": ((2, 3, 32, 32), (2,), None),
    "test_smoke_not_div_by_16": ((2, 3, 33, 33), (2,), None),
    "test_multi_batch": ((4, 4, 3, 32, 32), (1,), (16, 8, 8)),
    "test_custom_qt": ((4, 3, 32, 32), (4,), (4, 8, 8)),
    "test_non_batch_param": ((3, 3, 32, 32), (1,), (1, 8, 8)),
    "test_non_batch_inp": ((3, 32, 32), (1,), (8, 8)),
    "test_module": ((4, 3, 16, 16), (4,), (4, 8, 8)),
}


@pytest.mark.parametrize("case", KORNIA_CASES)
def test_kornias_test_inputs(case):
    image_shape, quality_shape, table_shape = KORNIA_CASES[case]
    g = generator(len(case))
    image = torch.rand(image_shape, generator=g, requires_grad=True)
    quality = torch.randint(0, 100, quality_shape, generator=g).float().requires_grad_()
    tables = None if table_shape is None else [torch.randint(1, 255, table_shape, generator=g).float() for _ in range(2)]
    out = from_kornia(image, quality, *(tables or ()))
    assert out.shape == image.shape and torch.isfinite(out).all()
    qtables = diffjpeg.standard_tables() if tables is None else torch.stack(tables, dim=-3)
    expected = explicit(image, quality, qtables) if tables is not None else diffjpeg.jpeg(image, quality, mode="soft", rounding=KORNIA_ROUNDING)
    assert torch.equal(out, expected)
    out.sum().backward()
    assert torch.isfinite(image.grad).all() and torch.isfinite(quality.grad).all() and quality.grad.abs().sum() > 0


def test_kornias_module_with_learned_tables():
    """kornia's test_module_with_param: per-image tables as parameters, quality per call."""
    g = generator(8)
    image = torch.rand(4, 3, 16, 16, generator=g)
    quality = torch.randint(0, 100, (4,), generator=g).float()
    tables = torch.randint(1, 255, (4, 2, 8, 8), generator=g).float()
    layer = diffjpeg.DiffJPEG(qtables=tables, learnable=["qtables"], mode="soft", rounding=KORNIA_ROUNDING)
    out = layer(image, quality)
    assert out.shape == image.shape
    out.sum().backward()
    assert layer.qtables.grad.shape == (4, 2, 8, 8) and layer.qtables.grad.abs().sum() > 0


@pytest.mark.parametrize(
    "call,error,name",
    [  # kornia's test_exception, case by case; diffjpeg names the argument in a TypeError or ValueError
        (lambda: from_kornia(1904.0, torch.tensor([50.0, 60.0])), TypeError, "image must be a torch.Tensor"),
        (lambda: from_kornia(torch.rand(2, 3, 32, 32), torch.full((2, 3, 2, 1), 50.0)), ValueError, "quality has shape"),
        (lambda: diffjpeg.DiffJPEG(quality=None, qtables=torch.full((4, 2, 7, 8), 8.0)), ValueError, "qtables must have shape"),
        (lambda: from_kornia(torch.rand(4, 4, 3, 32, 32), torch.full((16,), 50.0), torch.full((8, 8, 8), 8.0), torch.full((8, 8, 8), 8.0)),
         ValueError, r"qtables has shape \(8, 2, 8, 8\)"),
        (lambda: from_kornia(torch.rand(4, 4, 3, 32, 32), torch.full((8,), 50.0)), ValueError, r"quality has shape \(8,\)"),
    ],
)
def test_kornias_exceptions(call, error, name):
    with pytest.raises(error, match=name):
        call()


def test_kornias_reference_case_matches_kornia():
    """kornia's test_cardinality (a white square at quality 2), against kornia
    itself, to kornia's own tolerance (atol 0.01): soft mode is the same
    real-valued JPEG with the same rounding surrogate."""
    kornia = pytest.importorskip("kornia")
    image = torch.zeros(1, 3, 16, 16)
    image[..., 4:-4, 4:-4] = 1.0
    quality = torch.tensor([2.0])
    ours = from_kornia(image, quality)
    theirs = kornia.enhance.jpeg_codec_differentiable(image, quality)
    assert torch.allclose(ours, theirs, atol=0.01, rtol=0.01)


def test_kornias_module_and_ours_take_the_same_call():
    """``module(image, quality)`` with per-image tables held by the module, on
    kornia's module and on ours, on photos: within a level on average (0.72 to
    0.77 measured: the codecs differ in chroma filtering and clamps), and far
    from it if the per-call quality were ignored (the module's 75 instead)."""
    kornia = pytest.importorskip("kornia")
    from tests.helpers import skimage_crop

    photo = torch.from_numpy(skimage_crop("coffee", 64, 64, 100, 150)).permute(2, 0, 1).float() / 255
    image = torch.stack([photo, photo.flip(-1)])
    quality = torch.tensor([90.0, 20.0])
    g = generator(9)
    qt_y, qt_c = (torch.randint(1, 20, (2, 8, 8), generator=g).float() for _ in range(2))
    theirs = kornia.enhance.JPEGCodecDifferentiable(qt_y, qt_c)(image, quality)
    layer = diffjpeg.DiffJPEG(qtables=torch.stack([qt_y, qt_c], dim=1), mode="soft", rounding=KORNIA_ROUNDING)
    ours = layer(image, quality)
    assert ours.shape == theirs.shape == image.shape
    assert (ours - theirs).abs().mean() < 1 / 255
    assert (layer(image) - theirs).abs().mean() > 2 / 255
