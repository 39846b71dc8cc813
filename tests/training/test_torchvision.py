"""RandomJPEG in torchvision v2 pipelines: samples, passthrough, PIL, video,
replayed draws, same_on_batch, DataLoader workers; and the same class without
torchvision.

The torchvision tests skip where torchvision is not installed. Beside torch's
CPU build, PyPI's torchvision imports only through conftest.py's
``pytest_configure`` (its compiled operators, built for the CUDA build, do not
load); the comparisons with ``v2.JPEG``, which needs them, then skip.
"""
import multiprocessing
import pickle
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest
import torch

import diffjpeg
from diffjpeg import RandomJPEG, RandomJPEGParams, random_jpeg
from tests.helpers import SUBSAMPLINGS, skimage_crop

try:
    from torchvision import tv_tensors
    from torchvision.transforms import v2
except ImportError as error:  # not installed (conftest.py imports a CPU-torch install)
    pytest.skip(f"torchvision does not import: {error}", allow_module_level=True)
from PIL import Image  # noqa: E402


class Plain(RandomJPEG):
    """A subclass: the same behaviour, its own class."""


def photo(h=48, w=64, y=100, x=180):
    return skimage_crop("astronaut", h, w, y, x)  # (H, W, 3) uint8


def chw(a):
    return torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1).contiguous()


def v2_jpeg_runs() -> bool:
    """Whether torchvision's own v2.JPEG runs (its compiled image operators load)."""
    try:
        v2.JPEG(50)(torch.zeros(3, 8, 8, dtype=torch.uint8))
    except RuntimeError:
        return False
    return True


needs_v2_jpeg = pytest.mark.skipif(
    not v2_jpeg_runs(), reason="torchvision's compiled image operators do not load beside this torch build"
)


def boxes():
    return tv_tensors.BoundingBoxes([[1, 2, 30, 40], [5, 5, 9, 9]], format="XYXY", canvas_size=(48, 64))


def mask():
    return tv_tensors.Mask(torch.randint(0, 3, (48, 64), generator=torch.Generator().manual_seed(0)))


# ---------------------------------------------------------------- the class
def test_one_plain_class_in_v2_pipelines():
    """RandomJPEG(...) is RandomJPEG, an nn.Module, whether torchvision is
    loaded or not; v2.Compose hands it samples as it hands them to its own
    transforms."""
    augment = RandomJPEG((30, 95), p=0.5)
    assert type(augment) is RandomJPEG and isinstance(augment, torch.nn.Module)
    assert repr(augment).startswith("RandomJPEG(quality=(30, 95), p=0.5")
    assert type(Plain(50)) is Plain
    assert not hasattr(diffjpeg.training.augment, "TorchvisionRandomJPEG")
    image, b = tv_tensors.Image(chw(photo())), boxes()
    out_image, out_boxes = v2.Compose([v2.RandomHorizontalFlip(p=1.0), RandomJPEG(50)])(image, b)
    flipped = chw(photo()).flip(-1)
    assert isinstance(out_image, tv_tensors.Image) and torch.equal(out_image.as_subclass(torch.Tensor), diffjpeg.jpeg(flipped, 50))
    assert isinstance(out_boxes, tv_tensors.BoundingBoxes) and out_boxes.tolist() == [[34, 2, 63, 40], [55, 5, 59, 9]]


@pytest.mark.parametrize("torchvision", ("missing", "broken"))
def test_import_does_not_load_torchvision_and_without_it_the_same_class(torchvision, tmp_path):
    """`import diffjpeg` and `RandomJPEG(...)` leave torchvision alone; where
    torchvision is missing, or installed but failing to import, RandomJPEG is
    the same class with the same results, takes tuple and dict samples of
    tensors and PIL images, and refuses a positional bool (it was taken for
    return_params)."""
    broken = tmp_path / "torchvision"
    broken.mkdir()
    (broken / "__init__.py").write_text("raise RuntimeError('operator torchvision::nms does not exist')\n")
    script = textwrap.dedent(
        f"""
        import sys, warnings, torch
        if {torchvision == "broken"}:
            sys.path.insert(0, {str(tmp_path)!r})
        if {torchvision == "missing"}:
            sys.modules["torchvision"] = None
        import diffjpeg
        from PIL import Image
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            augment = diffjpeg.RandomJPEG(50)
            x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
            assert torch.equal(augment(x), diffjpeg.jpeg(x, quality=50))
            label = torch.zeros(2, 4)
            y, same = augment(x, label)
            assert torch.equal(y, diffjpeg.jpeg(x, quality=50)) and same is label
            sample = augment({{"image": Image.new("RGB", (16, 8), "tan"), "label": 3}})
            assert isinstance(sample["image"], Image.Image) and sample["label"] == 3
        assert type(augment) is diffjpeg.RandomJPEG, type(augment)
        assert "torchvision" not in sys.modules or sys.modules["torchvision"] is None, "torchvision was imported"
        try:
            augment(x, True)
        except TypeError as error:
            assert "return_params" in str(error), error
        else:
            raise AssertionError("a positional bool was accepted")
        print("ok")
        """
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and run.stdout.strip() == "ok", run.stderr


def test_same_results_as_the_plain_module():
    x = torch.rand(6, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    options = dict(p=0.5, subsampling=SUBSAMPLINGS)
    torch.manual_seed(2)
    a, pa = RandomJPEG((10, 90), **options)(x, return_params=True)
    torch.manual_seed(2)
    b, pb = Plain((10, 90), **options)(x, return_params=True)
    assert torch.equal(a, b) and torch.equal(pa.quality, pb.quality) and torch.equal(pa.applied, pb.applied)
    assert pa.applied.any() and not pa.applied.all()


# ---------------------------------------------------------------- samples
def test_second_element_of_a_sample_is_not_return_params():
    """The issue's bug: v2.Compose hands (image, boxes) as two arguments."""
    image, b = tv_tensors.Image(chw(photo())), boxes()
    out = v2.Compose([RandomJPEG((30, 95))])(image, b)
    assert isinstance(out, tuple) and len(out) == 2
    assert isinstance(out[0], tv_tensors.Image) and out[1] is b
    torch.manual_seed(3)
    again = v2.Compose([RandomJPEG((30, 95))])(image, b)
    torch.manual_seed(3)
    subclassed = Plain((30, 95))(image, b)  # a subclass takes samples alike
    assert torch.equal(again[0], subclassed[0]) and subclassed[1] is b


def test_structured_samples_pass_everything_but_images_through():
    augment = RandomJPEG(40)
    image = tv_tensors.Image(chw(photo()))
    expected = diffjpeg.jpeg(chw(photo()), quality=40)
    b, m, label, extra = boxes(), mask(), 7, torch.tensor([1.0, 2.0])
    sample = {"image": image, "target": {"boxes": b, "masks": m, "labels": [label]}, "extra": extra, "name": "a.png"}
    out = v2.Compose([v2.RandomHorizontalFlip(p=0.0), augment])(sample)
    assert set(out) == set(sample) and out["name"] == "a.png"
    assert isinstance(out["image"], tv_tensors.Image) and torch.equal(out["image"].as_subclass(torch.Tensor), expected)
    assert out["target"]["boxes"] is b and out["target"]["masks"] is m and out["target"]["labels"] == [label]
    assert out["extra"] is extra  # a plain tensor beside an explicit image: passed through (v2's rule)
    # No explicit image: the first plain tensor is the image, the rest pass through.
    x, y = chw(photo()), torch.tensor(3)
    out = augment((x, y))
    assert torch.equal(out[0], expected) and out[1] is y
    out = augment([{"pixels": x}, torch.zeros(5)])
    assert torch.equal(out[0]["pixels"], expected) and torch.equal(out[1], torch.zeros(5))


def test_output_types_as_v2_jpeg():
    """What passes through and what comes out, input by input, as torchvision's
    own v2.JPEG (types; pixels where v2.JPEG runs are in the next test)."""
    a = photo()
    augment = RandomJPEG(60)
    for sample, kinds in [
        (Image.fromarray(a), Image.Image),
        (tv_tensors.Image(chw(a)), tv_tensors.Image),
        (chw(a), torch.Tensor),
        (tv_tensors.Video(chw(a).expand(2, 3, 48, 64)), tv_tensors.Video),
    ]:
        out = augment(sample)
        assert type(out) is type(sample) or isinstance(out, kinds), type(out)
        assert type(out) is (Image.Image if isinstance(sample, Image.Image) else type(sample))
    out = augment(Image.fromarray(a[:, :, 0]))
    assert isinstance(out, Image.Image) and out.mode == "L"


@needs_v2_jpeg
def test_equals_v2_jpeg_pixels_and_passthrough():
    """torchvision's v2.JPEG encodes with libjpeg-turbo at 4:2:0 (tensors) or
    through Pillow (PIL): the exact mode gives its pixels, on every input kind."""
    a = photo()
    for quality in (5, 50, 95):
        ours, theirs = RandomJPEG(quality), v2.JPEG(quality)
        for sample in (chw(a), tv_tensors.Image(chw(a)), torch.stack([chw(a), chw(a[::-1])])):
            assert torch.equal(ours(sample), theirs(sample)), quality
        pil = Image.fromarray(a)
        assert np.array_equal(np.asarray(ours(pil)), np.asarray(theirs(pil)))
        b = boxes()
        ours_out, theirs_out = ours(tv_tensors.Image(chw(a)), b, 3), theirs(tv_tensors.Image(chw(a)), b, 3)
        assert [type(o) for o in ours_out] == [type(o) for o in theirs_out] and ours_out[1] is b and ours_out[2] == 3


@pytest.mark.parametrize("subsampling", SUBSAMPLINGS)
def test_pil_and_tv_images_equal_pillow(pillow_jpeg, subsampling):
    """Exact mode: PIL in, PIL out, Pillow's own pixels at the drawn quality; the
    same for tv_tensors.Image uint8 and float."""
    a = photo(37, 53)
    augment = RandomJPEG((5, 95), subsampling=subsampling, generator=torch.Generator().manual_seed(3))
    for _ in range(3):
        out, params = augment(Image.fromarray(a), return_params=True)
        reference = pillow_jpeg(a, quality=int(params.quality), subsampling=subsampling)
        assert isinstance(out, Image.Image) and out.mode == "RGB" and np.array_equal(np.asarray(out), reference)
        image = tv_tensors.Image(chw(a))
        assert np.array_equal(augment(image, params=params).permute(1, 2, 0).numpy(), reference)
        as_float = augment(tv_tensors.Image(chw(a).float() / 255), params=params)
        assert isinstance(as_float, tv_tensors.Image) and as_float.dtype == torch.float32
        assert np.array_equal(torch.round(as_float * 255).to(torch.uint8).permute(1, 2, 0).numpy(), reference)
    gray = photo(37, 53)[:, :, 1]
    out, params = augment(Image.fromarray(gray), return_params=True)
    assert out.mode == "L" and np.array_equal(np.asarray(out), pillow_jpeg(gray, quality=int(params.quality)))


def test_video_one_draw_per_clip():
    frames = torch.stack([chw(photo(32, 32, y, x)) for y, x in ((100, 180), (120, 200), (140, 220))])  # (T, C, H, W)
    clips = tv_tensors.Video(torch.stack([frames, frames.flip(-1)]))  # (B=2, T=3, C, H, W)
    out, params = RandomJPEG((10, 90), p=1.0)(clips, return_params=True)
    assert isinstance(out, tv_tensors.Video) and out.shape == clips.shape and params.quality.shape == (2,)
    for b in range(2):
        expected = diffjpeg.jpeg(clips[b].as_subclass(torch.Tensor), quality=params.quality[b].item())
        assert torch.equal(out[b].as_subclass(torch.Tensor), expected)


def test_images_of_one_sample_share_the_draw():
    a, b = chw(photo()), chw(photo(48, 64, 200, 100))
    out, params = RandomJPEG((10, 90))(tv_tensors.Image(a), tv_tensors.Image(b), return_params=True)
    q = params.quality.item()
    assert torch.equal(out[0].as_subclass(torch.Tensor), diffjpeg.jpeg(a, quality=q))
    assert torch.equal(out[1].as_subclass(torch.Tensor), diffjpeg.jpeg(b, quality=q))
    with pytest.raises(ValueError, match="batch shape"):
        RandomJPEG(50)(tv_tensors.Image(a), tv_tensors.Image(torch.stack([b, b])))


def test_v2_protocol_make_params_and_transform():
    augment = RandomJPEG((10, 90), p=0.5)
    x = tv_tensors.Image(chw(photo()))
    torch.manual_seed(4)
    drawn = augment.make_params([x])
    assert isinstance(drawn["params"], RandomJPEGParams) and drawn["params"].quality.shape == ()
    direct = augment.transform(x, drawn)
    torch.manual_seed(4)
    assert torch.equal(augment(x), direct)


def test_gradients_flow_through_the_transform():
    x = torch.rand(4, 3, 16, 16, requires_grad=True)
    y, params = RandomJPEG((10, 90), p=0.5, mode="soft", generator=torch.Generator().manual_seed(5))(x, return_params=True)
    y.sum().backward()
    assert torch.isfinite(x.grad).all() and torch.equal(x.grad[~params.applied], torch.ones_like(x.grad[~params.applied]))


# ---------------------------------------------------------------- replayed draws, same_on_batch
@pytest.mark.parametrize("cls", (RandomJPEG, Plain), ids=("torchvision", "plain"))
def test_params_replay_exactly_and_draw_nothing(cls):
    augment = cls((1, 100), p=0.5, subsampling=SUBSAMPLINGS)
    x = torch.rand(8, 3, 19, 23, generator=torch.Generator().manual_seed(6))
    torch.manual_seed(7)
    y, params = augment(x, return_params=True)
    state = torch.get_rng_state()
    again, same = augment(x, params=params, return_params=True)
    assert torch.equal(again, y) and same is params
    assert torch.equal(torch.get_rng_state(), state)  # a replay draws nothing
    other = cls((1, 100), p=0.5, mode="float")  # another module: its mode, the same draws
    replayed = other(x, params=params)
    for i in range(8):
        expected = diffjpeg.jpeg(x[i], quality=params.quality[i].item(), subsampling=params.subsampling[i], mode="float")
        assert torch.equal(replayed[i], expected if params.applied[i] else x[i])
    assert torch.equal(random_jpeg(x, (1, 100), params=params), y)


def test_params_replay_on_a_whole_sample():
    image, b = tv_tensors.Image(chw(photo())), boxes()
    (y, out_boxes), params = RandomJPEG((10, 90))(image, b, return_params=True)
    again = RandomJPEG((10, 90))(image, b, params=params)
    assert torch.equal(again[0], y) and again[1] is b and out_boxes is b


@pytest.mark.parametrize("cls", (RandomJPEG, Plain), ids=("torchvision", "plain"))
def test_bad_params_are_named(cls):
    augment = cls((10, 90))
    x = torch.rand(4, 3, 8, 8)
    good = augment(x, return_params=True)[1]
    with pytest.raises(TypeError, match="params must be a RandomJPEGParams"):
        augment(x, params={"quality": 50})
    with pytest.raises(ValueError, match=r"params.applied has shape \(4,\) but the image's batch shape is \(2,\)"):
        augment(x[:2], params=good)
    bad = [
        RandomJPEGParams(good.applied, good.quality + 200, good.subsampling_index, good.subsamplings),
        RandomJPEGParams(good.applied, good.quality, good.subsampling_index + 1, good.subsamplings),
        RandomJPEGParams(good.applied, good.quality, good.subsampling_index, ("4:1:1",)),
    ]
    for params in bad:
        with pytest.raises(ValueError, match="params"):
            augment(x, params=params)
    with pytest.raises(TypeError, match="params.applied"):
        augment(x, params=RandomJPEGParams(good.applied.int(), good.quality, good.subsampling_index, good.subsamplings))
    with pytest.raises(TypeError, match="return_params must be a bool"):
        augment(x, return_params="yes")


@pytest.mark.parametrize("cls", (RandomJPEG, Plain), ids=("torchvision", "plain"))
def test_return_params_by_position_is_refused(cls):
    """A lone bool after the image would pass through as part of the sample, unnoticed: refused."""
    x = torch.rand(2, 3, 8, 8)
    with pytest.raises(TypeError, match="return_params is keyword-only"):
        cls((10, 90))(x, True)
    y, params = cls((10, 90))(x, return_params=True)
    assert isinstance(params, RandomJPEGParams) and y.shape == x.shape


@pytest.mark.paths
def test_same_on_batch():
    x = torch.rand(64, 3, 8, 8, generator=torch.Generator().manual_seed(8))
    augment = RandomJPEG((1, 100), p=0.5, subsampling=SUBSAMPLINGS, same_on_batch=True)
    seen = set()
    for seed in range(12):
        torch.manual_seed(seed)
        y, params = augment(x, return_params=True)
        assert params.quality.shape == (64,) and (params.quality == params.quality[0]).all()
        assert (params.applied == params.applied[0]).all() and len(set(params.subsampling)) == 1
        expected = diffjpeg.jpeg(x, quality=params.quality[0].item(), subsampling=params.subsampling[0]) if params.applied[0] else x
        assert torch.equal(y, expected)
        seen.add((bool(params.applied[0]), int(params.quality[0])))
    assert {applied for applied, _ in seen} == {True, False} and len({q for _, q in seen}) > 6
    assert "same_on_batch=True" in repr(augment)
    with pytest.raises(TypeError, match="same_on_batch"):
        RandomJPEG(50, same_on_batch=1)
    torch.manual_seed(0)
    one = random_jpeg(x, (1, 100), same_on_batch=True, return_params=True)[1]
    assert (one.quality == one.quality[0]).all()


def test_quality_means_what_the_docstring_says_against_kornia():
    """kornia's RandomJPEG(jpeg_quality=20) draws from (30, 70); ours: a fixed 20,
    and (30, 70) spelled as a range."""
    kornia = pytest.importorskip("kornia")
    theirs = kornia.augmentation.RandomJPEG(jpeg_quality=20.0, p=1.0)
    q = theirs.forward_parameters(torch.Size((2000, 3, 8, 8)))["jpeg_quality"]
    assert 30 <= float(q.min()) < 31 and 69 < float(q.max()) <= 70
    fixed = RandomJPEG(20).draw((2000,)).quality
    assert (fixed == 20).all()
    ranged = RandomJPEG((30, 70)).draw((2000,)).quality
    assert ranged.min() == 30 and ranged.max() == 70
    assert "(50 - q, 50 + q)" in RandomJPEG.__doc__ and "jpeg_quality" in RandomJPEG.__doc__


# ---------------------------------------------------------------- DataLoader workers, pickling
class _Detection(torch.utils.data.Dataset):
    """Samples (image, target dict) as torchvision's detection datasets give them."""

    def __init__(self, transform):
        self.transform = transform
        self.image = Image.fromarray(photo())

    def __len__(self):
        return 8

    def __getitem__(self, i):
        target = {"boxes": boxes(), "labels": torch.tensor([i, i + 1])}
        image, target = self.transform(self.image, target)
        return image, target, torch.utils.data.get_worker_info().id


def _pipeline():
    return v2.Compose([v2.ToImage(), RandomJPEG((1, 100), p=0.8), v2.ToDtype(torch.float32, scale=True)])


def test_compose_pickles():
    pipeline = _pipeline()
    copy = pickle.loads(pickle.dumps(pipeline))
    augment = copy.transforms[1]
    assert type(augment) is type(pipeline.transforms[1]) and augment.p == 0.8 and augment.subsamplings == ("4:2:0",)
    x = Image.fromarray(photo())
    torch.manual_seed(9)
    a = pipeline(x)
    torch.manual_seed(9)
    assert torch.equal(copy(x), a)


def _run_loader(seed):
    torch.manual_seed(seed)
    # fork: the test module, imported by pytest under its own name, need not be importable in the workers
    loader = torch.utils.data.DataLoader(
        _Detection(_pipeline()), batch_size=None, num_workers=2, multiprocessing_context="fork"
    )
    seen = {0: [], 1: []}
    for i, (image, target, worker) in enumerate(loader):
        assert isinstance(image, tv_tensors.Image) and image.dtype == torch.float32 and image.shape == (3, 48, 64)
        assert torch.equal(target["boxes"], boxes()) and torch.equal(target["labels"], torch.tensor([i, i + 1]))
        seen[int(worker)].append(image)
    return seen


@pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(), reason="needs fork")
def test_compose_in_dataloader_workers():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork() in a process with threads (Python 3.12+)
        first, again = _run_loader(0), _run_loader(0)
    assert len(first[0]) == len(first[1]) == 4
    assert all(torch.equal(a, b) for w in (0, 1) for a, b in zip(first[w], again[w]))  # reproducible from the seed
    assert not all(torch.equal(a, b) for a, b in zip(first[0], first[1]))  # each worker its own draws


def test_samples_without_an_image_are_refused():
    augment = RandomJPEG(50)
    with pytest.raises(TypeError, match="image"):
        augment(np.zeros((3, 8, 8), dtype=np.uint8))
    with pytest.raises(TypeError, match="no image in the sample .*BoundingBoxes, int"):
        augment(boxes(), 3)
    with pytest.raises(ValueError, match="mode 'RGB' or 'L', got 'RGBA'"):
        augment(Image.new("RGBA", (8, 8)))
    with pytest.raises(TypeError, match="needs a sample"):
        augment()


@pytest.mark.slow  # 5-16 s: each worker imports torch and torchvision
@needs_v2_jpeg  # spawned workers import torchvision afresh, without conftest's help
@pytest.mark.skipif("spawn" not in multiprocessing.get_all_start_methods(), reason="needs spawn")
def test_spawned_workers_unpickle_the_transform():
    """Workers started afresh find RandomJPEG by its name (the pipeline runs
    as the collate_fn of each sample, in the worker)."""
    images = [Image.fromarray(photo()), Image.fromarray(photo(48, 64, 200, 100))] * 2
    loader = torch.utils.data.DataLoader(
        images, batch_size=None, collate_fn=_pipeline(), num_workers=2, multiprocessing_context="spawn"
    )
    out = list(loader)
    assert len(out) == 4 and all(isinstance(x, tv_tensors.Image) and x.dtype == torch.float32 for x in out)


@pytest.mark.parametrize("dtype", (torch.float16, torch.bfloat16, torch.float32, torch.float64, torch.uint8), ids=str)
def test_every_dtype_through_the_transform(dtype):
    a = chw(photo(24, 40))
    x = a if dtype == torch.uint8 else (a.double() / 255).to(dtype)
    image, label = tv_tensors.Image(x), torch.tensor(1)
    (out, same_label), params = RandomJPEG((10, 90))(image, label, return_params=True)
    assert isinstance(out, tv_tensors.Image) and out.dtype == dtype and same_label is label
    assert torch.equal(out.as_subclass(torch.Tensor), diffjpeg.jpeg(x, quality=params.quality.item()))
