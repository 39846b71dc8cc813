"""Python inputs as people pass them: PIL images, numpy arrays, lists and
numbers (a TypeError that says how to convert), float images on another scale
(a ValueError), numpy and torch scalars as quality, Pillow's subsampling
numbers, tables shared by a batch, base tables with entries <= 0 (libjpeg's
rule, checked against Pillow's files)."""
import io

import numpy as np
import pytest
import torch
from PIL import Image

import diffjpeg
from diffjpeg.core.check import FLOAT_IMAGE_RANGE, check_image
from tests.helpers import PIL_SUBSAMPLING, assert_identical, pillow_decode, pillow_file, skimage_crop

PHOTO = skimage_crop("astronaut", 40, 56, 100, 150)  # (H, W, 3) uint8
X = torch.from_numpy(PHOTO).permute(2, 0, 1).contiguous()  # (3, H, W) uint8

ENTRY_POINTS = {
    "jpeg": lambda image: diffjpeg.jpeg(image, 50),
    "encode": lambda image: diffjpeg.encode(image, 50),
    "DiffJPEG": lambda image: diffjpeg.DiffJPEG(50)(image),
    "JPEGEncoder": lambda image: diffjpeg.JPEGEncoder(50)(image),
    "random_jpeg": lambda image: diffjpeg.random_jpeg(image, (30, 90)),
    "RandomJPEG": lambda image: diffjpeg.RandomJPEG((30, 90))(image),
}

NOT_TENSORS = {
    "PIL image": (Image.fromarray(PHOTO), "pil_to_tensor"),
    "numpy array": (PHOTO, "torch.from_numpy"),
    "list": (X.tolist(), "torch.tensor"),
    "float": (1904.0, "not an image"),  # kornia's own test of a non-tensor input
}


# ---------------------------------------------------------------- non-tensor images
@pytest.mark.parametrize("entry", ENTRY_POINTS)
@pytest.mark.parametrize("kind", NOT_TENSORS)
def test_non_tensor_images_get_a_type_error_with_a_hint(entry, kind):
    value, hint = NOT_TENSORS[kind]
    if entry == "RandomJPEG":
        # a transform of samples, as torchvision's v2 (tests/training/test_torchvision.py): PIL images, as v2.JPEG does, and a list as a sample
        if kind == "PIL image":
            out = ENTRY_POINTS[entry](value)
            assert isinstance(out, Image.Image) and out.size == value.size and out.mode == value.mode
            return
        if kind == "list":
            with pytest.raises(TypeError, match="found no image in the sample .* torch tensors"):
                ENTRY_POINTS[entry](value)
            return
    with pytest.raises(TypeError, match="image must be a torch.Tensor") as info:
        ENTRY_POINTS[entry](value)
    assert hint in str(info.value)


def test_the_hints_convert_to_what_pillow_saves():
    """The conversions the messages suggest give the image Pillow compresses."""
    pil = Image.fromarray(PHOTO)
    suggested = torch.from_numpy(np.array(pil)).permute(2, 0, 1)
    assert_identical(diffjpeg.jpeg(suggested, 50).permute(1, 2, 0).numpy(), pillow_decode(pillow_file(PHOTO, quality=50)))


# ---------------------------------------------------------------- float images on another scale
@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_a_0_255_float_image_is_refused_naming_the_range(entry):
    with pytest.raises(ValueError, match=r"image is float with values in \[.*must lie in \[0, 1\].*divide by 255"):
        ENTRY_POINTS[entry](X.float())


def test_a_normalized_image_is_refused():
    mean, std = torch.tensor([0.485, 0.456, 0.406])[:, None, None], torch.tensor([0.229, 0.224, 0.225])[:, None, None]
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\]"):
        diffjpeg.jpeg((X.float() / 255 - mean) / std, 50)


def test_values_within_the_tolerated_range_are_clipped_straight_through():
    low, high = FLOAT_IMAGE_RANGE
    x = (torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0)) * (high - low) + low).requires_grad_()
    y = diffjpeg.jpeg(x, 50)
    assert torch.equal(y, diffjpeg.jpeg(x.detach().clamp(0, 1), 50))
    y.sum().backward()
    assert (x.grad != 0).all()  # straight-through: the clipped values still get a gradient


@pytest.mark.parametrize("dtype", (torch.float16, torch.bfloat16, torch.float32, torch.float64), ids=str)
def test_the_range_check_passes_every_float_dtype_and_autocast(dtype):
    """Images in [0, 1] in every dtype (bfloat16 rounds 1 - 1/510 up to 1, which is still in range),
    and under autocast, where the check reads the image as given."""
    x = (X.to(torch.float64) / 255).to(dtype)
    reference = diffjpeg.jpeg(X, 50)
    assert torch.equal(torch.round(diffjpeg.jpeg(x, 50).float() * 255).to(torch.uint8), reference)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.equal(torch.round(diffjpeg.jpeg(x, 50).float() * 255).to(torch.uint8), reference)
    with pytest.raises(ValueError, match="must lie in"):
        diffjpeg.jpeg(x * 255, 50)


def test_the_checks_add_no_graph_break_under_torch_compile():
    """Traced with fullgraph=True: the image checks are shape and dtype checks only
    there (the value read-back is skipped while compiling, as the NaN check is)."""
    checked = torch.compile(lambda image: (check_image(image), image * 2)[1], backend="eager", fullgraph=True)
    assert torch.equal(checked(torch.full((1, 3, 4, 4), 0.5)), torch.ones(1, 3, 4, 4))


# ---------------------------------------------------------------- quality as a scalar of numpy or torch
@pytest.mark.parametrize(
    "quality", [np.int64(50), np.int32(50), np.uint8(50), np.float32(50.0), np.float64(50.0), torch.tensor(50), torch.tensor(50.0),
                torch.tensor([50], dtype=torch.int16)], ids=repr,
)
def test_numpy_and_torch_scalars_are_qualities(quality):
    expected = diffjpeg.jpeg(X, 50)
    assert torch.equal(diffjpeg.jpeg(X, quality), expected)
    assert torch.equal(diffjpeg.DiffJPEG(quality)(X.float() / 255), diffjpeg.DiffJPEG(50)(X.float() / 255))
    assert torch.equal(diffjpeg.JPEGEncoder(quality)(X).y, diffjpeg.encode(X, 50).y)
    if not isinstance(quality, torch.Tensor) or quality.dim() == 0:  # RandomJPEG: a number or a (low, high) pair
        assert diffjpeg.RandomJPEG(quality)(X[None]).equal(expected[None])
        assert diffjpeg.RandomJPEG((quality, quality))(X[None]).equal(expected[None])
    if not isinstance(quality, torch.Tensor):
        layer = diffjpeg.JPEGEncoder(quality)
        assert type(layer.quality) is float  # a plain number in state and repr, not a numpy scalar


@pytest.mark.parametrize("quality", [True, np.bool_(True), torch.tensor(True), "50", torch.tensor(50j)], ids=repr)
def test_bools_and_strings_are_not_qualities(quality):
    with pytest.raises(TypeError, match="quality"):
        diffjpeg.jpeg(X, quality)
    with pytest.raises(TypeError, match="quality"):
        diffjpeg.DiffJPEG(quality)
    with pytest.raises(TypeError, match="quality"):
        diffjpeg.RandomJPEG(quality)


# ---------------------------------------------------------------- Pillow's subsampling numbers
@pytest.mark.parametrize("name", PIL_SUBSAMPLING)
def test_pillow_subsampling_numbers_give_pillows_pixels(name):
    number = PIL_SUBSAMPLING[name]
    pillow = pillow_decode(pillow_file(PHOTO, quality=60, subsampling=number))
    for value in (number, np.int64(number)):
        assert_identical(diffjpeg.jpeg(X, 60, subsampling=value).permute(1, 2, 0).numpy(), pillow)
    assert diffjpeg.encode(X, 60, subsampling=number).subsampling == name
    assert diffjpeg.DiffJPEG(60, subsampling=number).subsampling == name
    assert diffjpeg.JPEGEncoder(60, subsampling=number).subsampling == name
    _, params = diffjpeg.RandomJPEG(60, subsampling=number)(X[None], return_params=True)
    assert params.subsampling == [name]
    _, params = diffjpeg.random_jpeg(X[None].expand(8, -1, -1, -1), 60, subsampling=(0, "4:2:2", 2), return_params=True)
    assert set(params.subsampling) <= {"4:4:4", "4:2:2", "4:2:0"}


@pytest.mark.parametrize("subsampling", [3, -1, True, 1.0, "420", None], ids=repr)
def test_other_subsamplings_are_refused_naming_the_choices(subsampling):
    for call in (lambda: diffjpeg.jpeg(X, 50, subsampling=subsampling), lambda: diffjpeg.DiffJPEG(subsampling=subsampling),
                 lambda: diffjpeg.RandomJPEG(50, subsampling=subsampling)):
        with pytest.raises(ValueError, match=r"subsampling must be one of .*0 \(4:4:4\), 1 \(4:2:2\), 2 \(4:2:0\)"):
            call()


# ---------------------------------------------------------------- tables shared by a batch
def test_a_leading_batch_of_one_in_tables_and_matrices_is_shared():
    x = torch.rand(4, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    tables = torch.randint(1, 60, (2, 8, 8), generator=torch.Generator().manual_seed(2)).float()
    matrix = diffjpeg.stages.color.rgb_to_ycbcr_matrix()
    for quality in (None, 40):
        shared = diffjpeg.jpeg(x, quality, qtables=tables)
        assert torch.equal(diffjpeg.jpeg(x, quality, qtables=tables[None]), shared)
        assert torch.equal(diffjpeg.jpeg(x, quality, qtables=tables[None].expand(4, -1, -1, -1)), shared)
    y = diffjpeg.jpeg(x.reshape(2, 2, 3, 16, 16), 40, qtables=tables[None, None], rgb_to_ycbcr=matrix[None])
    assert torch.equal(y.reshape(4, 3, 16, 16), diffjpeg.jpeg(x, 40, rgb_to_ycbcr=matrix, qtables=tables))
    with pytest.raises(ValueError, match=r"qtables has shape \(3, 2, 8, 8\); expected one of .*\(1, 2, 8, 8\)"):
        diffjpeg.jpeg(x, 40, qtables=tables.expand(3, -1, -1, -1))


# ---------------------------------------------------------------- base table entries <= 0
def _pillow_tables(tables: torch.Tensor) -> list[list[int]]:
    return tables.to(torch.int64).reshape(2, 64).tolist()


@pytest.mark.parametrize("quality", (10, 50, 90))
def test_base_entries_of_zero_follow_libjpeg(quality):
    """libjpeg (jcparam.c, jpeg_add_quant_table) sets a scaled entry <= 0 to 1;
    Pillow passes its qtables through it with the quality's scale."""
    base = diffjpeg.standard_tables()
    base[0, 0, :3] = 0
    base[1, 4:, 4:] = 0
    buf = io.BytesIO()
    Image.fromarray(PHOTO).save(buf, "JPEG", qtables=_pillow_tables(base), quality=quality)
    written = Image.open(buf).quantization
    c = diffjpeg.encode(X, quality, qtables=base)
    assert [c.qtables[i].flatten().to(torch.int64).tolist() for i in (0, 1)] == [list(written[i]) for i in (0, 1)]
    assert_identical(diffjpeg.jpeg(X, quality, qtables=base).permute(1, 2, 0).numpy(), pillow_decode(buf.getvalue()))
    negative = base.clone()
    negative[negative == 0] = -3  # libjpeg's tables are unsigned; here the same rule: a scaled entry <= 0 is 1
    assert torch.equal(diffjpeg.encode(X, quality, qtables=negative).qtables, c.qtables)


def test_learned_base_tables_reaching_zero_keep_a_gradient():
    base = diffjpeg.standard_tables().requires_grad_()
    with torch.no_grad():
        base[0, 0, 0] = 0.0
    x = X.float()[None] / 255
    diffjpeg.jpeg(x, 50, qtables=base, mode="float").sum().backward()
    assert torch.isfinite(base.grad).all() and base.grad.abs().sum() > 0


@pytest.mark.parametrize("entry", (0.0, -1.0))
def test_tables_used_as_given_must_be_positive(entry):
    tables = diffjpeg.standard_tables()
    tables[1, 3, 3] = entry
    with pytest.raises(ValueError, match=r"qtables used as given \(no quality\) must have entries > 0.*divisors"):
        diffjpeg.jpeg(X, qtables=tables)
    with pytest.raises(ValueError, match="entries > 0"):
        diffjpeg.DiffJPEG(quality=None, qtables=tables)
