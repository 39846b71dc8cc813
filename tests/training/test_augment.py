"""RandomJPEG: draw statistics, agreement with jpeg() and Pillow, randomness, workers, devices, compile."""
import math
import multiprocessing

import numpy as np
import pytest
import torch

import diffjpeg
from diffjpeg import RandomJPEG, random_jpeg
from tests.helpers import SUBSAMPLINGS, assert_close_to_rounding, skimage_crop


def image(seed, shape=(3, 16, 16)):
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed))


def photo(h=48, w=64):
    return skimage_crop("astronaut", h, w, 100, 180)


def chi_square(counts, expected):
    counts = np.asarray(counts, dtype=np.float64)
    return float(((counts - expected) ** 2 / expected).sum())


# ---------------------------------------------------------------- statistics
N = 20000  # draws per statistics test


def test_share_applied_and_integer_qualities_uniform():
    torch.manual_seed(0)
    x = torch.rand(N, 1, 8, 8)
    y, params = RandomJPEG((1, 100), p=0.3)(x, return_params=True)
    # Share applied ~ Binomial(N, 0.3): within 5 standard deviations (false alarm < 1e-6).
    applied = int(params.applied.sum())
    assert abs(applied - 0.3 * N) <= 5 * math.sqrt(N * 0.3 * 0.7)
    assert torch.equal(y[~params.applied], x[~params.applied])  # not selected: unchanged
    # Qualities: whole numbers covering 1..100; chi-square over the 100 values (99
    # degrees of freedom) below scipy.stats.chi2.isf(1e-6, 99) = 180.79.
    q = params.quality
    assert torch.equal(q, q.round()) and q.min() == 1 and q.max() == 100
    counts = torch.bincount(q.long(), minlength=101)[1:]
    assert (counts > 0).all()
    assert chi_square(counts, N / 100) < 180.79


def test_fractional_qualities_uniform():
    torch.manual_seed(1)
    params = random_jpeg(torch.rand(N, 1, 8, 8), (20.5, 60.0), mode="soft", fractional=True, return_params=True)[1]
    q = params.quality.double().sort().values
    assert q.min() >= 20.5 and q.max() <= 60.0 and not torch.equal(q, q.round())
    # Kolmogorov-Smirnov distance to U(20.5, 60): the DKW inequality bounds it by
    # sqrt(ln(2 / 1e-6) / (2 N)) = 0.01905 with probability 1 - 1e-6.
    cdf = (q - 20.5) / (60.0 - 20.5)
    ranks = torch.arange(1, N + 1, dtype=torch.float64)
    distance = torch.maximum(ranks / N - cdf, cdf - (ranks - 1) / N).max().item()
    assert distance < math.sqrt(math.log(2 / 1e-6) / (2 * N))


def test_subsampling_drawn_uniformly_per_sample():
    torch.manual_seed(2)
    params = random_jpeg(torch.rand(N, 3, 8, 8), 50, p=0.0, subsampling=SUBSAMPLINGS, return_params=True)[1]
    counts = [params.subsampling.count(s) for s in SUBSAMPLINGS]
    assert chi_square(counts, N / 3) < 27.63  # scipy.stats.chi2.isf(1e-6, 2)


def test_p_zero_is_identity_p_one_always_compresses():
    x = image(3, (64, 3, 8, 8)).requires_grad_()
    y, params = RandomJPEG((10, 20), p=0.0)(x, return_params=True)
    assert y is x and not params.applied.any()
    y, params = RandomJPEG((10, 20), p=1.0)(x, return_params=True)
    assert params.applied.all()
    assert torch.equal(y, diffjpeg.jpeg(x, quality=params.quality))


# ---------------------------------------------------------------- agreement
@pytest.mark.paths
@pytest.mark.parametrize("batch", ((12,), (2, 3)))
def test_applied_samples_equal_jpeg_at_drawn_quality(batch):
    torch.manual_seed(4)
    x = torch.rand(batch + (3, 19, 23))
    y, params = RandomJPEG((5, 95), p=0.5, subsampling=SUBSAMPLINGS)(x, return_params=True)
    assert params.applied.shape == batch and params.applied.any() and not params.applied.all()
    names = iter(params.subsampling)
    for i in np.ndindex(*batch):
        name = next(names)
        if params.applied[i]:
            expected = diffjpeg.jpeg(x[i], quality=params.quality[i].item(), subsampling=name)
        else:
            expected = x[i]
        assert torch.equal(y[i], expected), (i, name)


@pytest.mark.paths
def test_fractional_float_forward_equals_jpeg():
    torch.manual_seed(5)
    x = torch.rand(6, 3, 16, 16)
    y, params = random_jpeg(x, (30, 40), p=0.5, mode="float", fractional=True, return_params=True)
    for i in range(6):
        q = params.quality[i].item()
        expected = diffjpeg.jpeg(x[i], quality=q, mode="float") if params.applied[i] else x[i]
        assert_close_to_rounding(y[i], expected)


def test_single_image_and_uint8():
    torch.manual_seed(6)
    a = torch.from_numpy(photo()).permute(2, 0, 1).contiguous()
    seen = set()
    for _ in range(8):
        y, params = RandomJPEG((20, 80), p=0.5)(a, return_params=True)
        assert y.dtype == torch.uint8 and y.shape == a.shape and params.quality.shape == ()
        if params.applied:
            assert torch.equal(y, diffjpeg.jpeg(a, quality=params.quality.item()))
        else:
            assert y is a
        seen.add(bool(params.applied))
    assert seen == {True, False}


def test_exact_equals_pillow_at_drawn_quality(pillow_jpeg):
    """Each output is what Pillow writes and reads back at the drawn quality and subsampling."""
    a = photo()
    x = torch.from_numpy(a).permute(2, 0, 1).contiguous()
    augment = RandomJPEG((5, 95), subsampling=SUBSAMPLINGS, generator=torch.Generator().manual_seed(7))
    for _ in range(4):
        y, params = augment(x, return_params=True)
        reference = pillow_jpeg(a, quality=int(params.quality), subsampling=params.subsampling[0])
        assert np.array_equal(y.permute(1, 2, 0).numpy(), reference), (params.quality, params.subsampling)
        as_float = RandomJPEG(int(params.quality), subsampling=params.subsampling[0])(x / 255.0)
        assert torch.equal(torch.round(as_float * 255).to(torch.uint8), y)  # float in [0, 1]: the same pixels


def test_tensor_subclass_is_kept():
    class Tagged(torch.Tensor):
        pass

    x = image(8, (2, 3, 8, 8)).as_subclass(Tagged)
    assert type(RandomJPEG(50)(x)) is Tagged
    assert RandomJPEG(50, p=0.0)(x) is x


# ---------------------------------------------------------------- randomness
def test_same_seed_same_output_different_seed_different():
    augment = RandomJPEG((1, 100), p=0.5, subsampling=SUBSAMPLINGS)
    x = image(9, (8, 3, 16, 16))
    torch.manual_seed(10)
    a, pa = augment(x, return_params=True)
    torch.manual_seed(10)
    b, pb = augment(x, return_params=True)
    torch.manual_seed(11)
    c, pc = augment(x, return_params=True)
    assert torch.equal(a, b) and torch.equal(pa.quality, pb.quality) and torch.equal(pa.applied, pb.applied)
    assert not torch.equal(pa.quality, pc.quality) and not torch.equal(a, c)
    # p only thresholds its own draw: the same seed gives the same qualities for any p.
    torch.manual_seed(10)
    assert torch.equal(RandomJPEG((1, 100), p=0.9, subsampling=SUBSAMPLINGS)(x, return_params=True)[1].quality, pa.quality)


def test_explicit_generator():
    x = image(12, (8, 3, 16, 16))
    state = torch.get_rng_state()
    a, pa = RandomJPEG((1, 100), p=0.5, generator=torch.Generator().manual_seed(3))(x, return_params=True)
    b, pb = random_jpeg(x, (1, 100), p=0.5, generator=torch.Generator().manual_seed(3), return_params=True)
    assert torch.equal(torch.get_rng_state(), state)  # the global stream is untouched
    assert torch.equal(a, b) and torch.equal(pa.quality, pb.quality)
    g = torch.Generator().manual_seed(3)
    augment = RandomJPEG((1, 100), generator=g)
    first, second = augment(x, return_params=True)[1], augment(x, return_params=True)[1]
    assert not torch.equal(first.quality, second.quality)  # the generator advances


class _Photos(torch.utils.data.Dataset):
    def __init__(self):
        self.augment = RandomJPEG((1, 100))
        self.x = image(13, (3, 16, 16))

    def __len__(self):
        return 8

    def __getitem__(self, i):
        y, params = self.augment(self.x, return_params=True)
        assert torch.equal(y, diffjpeg.jpeg(self.x, quality=params.quality))
        return int(params.quality), torch.utils.data.get_worker_info().id


def _qualities_by_worker(seed):
    torch.manual_seed(seed)
    # fork: the test module, imported by pytest under its own name, need not be importable in the workers
    loader = torch.utils.data.DataLoader(_Photos(), batch_size=None, num_workers=2, multiprocessing_context="fork")
    seen = {0: [], 1: []}
    for quality, worker in loader:
        seen[int(worker)].append(int(quality))
    return seen


@pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(), reason="needs fork")
def test_dataloader_workers_distinct_and_reproducible():
    first, again, other = _qualities_by_worker(0), _qualities_by_worker(0), _qualities_by_worker(1)
    assert len(first[0]) == len(first[1]) == 4
    assert first[0] != first[1]  # each worker has its own stream
    assert first == again  # reproducible from the main process's seed
    assert first != other


# ---------------------------------------------------------------- gradients
@pytest.mark.parametrize("forward", ("exact", "soft"))
def test_gradients(forward):
    torch.manual_seed(14)
    x = torch.rand(8, 3, 16, 16, requires_grad=True)
    w = torch.rand(8, 3, 16, 16)
    y, params = RandomJPEG((10, 90), p=0.5, mode=forward, rounding="fourier")(x, return_params=True)
    (y * w).sum().backward()
    applied = params.applied
    assert applied.any() and not applied.all()
    assert torch.isfinite(x.grad).all()
    assert torch.equal(x.grad[~applied], w[~applied])  # identity where not compressed
    assert (x.grad[applied].flatten(1).abs().sum(1) > 0).all()
    assert not torch.allclose(x.grad[applied], w[applied])


# ---------------------------------------------------------------- validation
X = torch.rand(1, 3, 8, 8)


@pytest.mark.parametrize(
    "kwargs,error,name",
    [
        (dict(quality=-1), ValueError, "quality"),
        (dict(quality=101), ValueError, "quality"),
        (dict(quality=(60, 40)), ValueError, "quality"),
        (dict(quality=(10, float("nan"))), ValueError, "quality"),
        (dict(quality=(10,)), TypeError, "quality"),
        (dict(quality=(10, 20, 30)), TypeError, "quality"),
        (dict(quality="high"), TypeError, "quality"),
        (dict(quality=True), TypeError, "quality"),
        (dict(quality=(10.5, 20)), ValueError, "fractional"),
        (dict(quality=(10, 20), p=-0.1), ValueError, "p must"),
        (dict(quality=(10, 20), p=1.5), ValueError, "p must"),
        (dict(quality=(10, 20), p=float("nan")), ValueError, "p must"),
        (dict(quality=(10, 20), p="0.5"), TypeError, "p must"),
        (dict(quality=(10, 20), p=True), TypeError, "p must"),
        (dict(quality=(10, 20), subsampling="4:1:1"), ValueError, "subsampling"),
        (dict(quality=(10, 20), subsampling=()), ValueError, "subsampling"),
        (dict(quality=(10, 20), subsampling=("4:2:0", "4:2:1")), ValueError, "subsampling"),
        (dict(quality=(10, 20), subsampling=420), ValueError, "subsampling"),
        (dict(quality=(10, 20), mode="fast"), ValueError, "mode"),
        (dict(quality=(10, 20), rounding="ceil"), ValueError, "rounding"),
        (dict(quality=(10, 20), rounding="round"), ValueError, "rounding"),
        (dict(quality=(10, 20), fractional=True), ValueError, "fractional"),  # with mode="exact"
        (dict(quality=(10, 20), fractional=1), TypeError, "fractional"),
        (dict(quality=(10, 20), generator=42), TypeError, "generator"),
    ],
)
def test_bad_arguments_are_named(kwargs, error, name):
    with pytest.raises(error, match=name):
        RandomJPEG(**kwargs)
    with pytest.raises(error, match=name):
        random_jpeg(X, **kwargs)


@pytest.mark.parametrize(
    "bad,error,name",
    [
        (np.zeros((3, 8, 8)), TypeError, "image"),
        (torch.rand(8, 8), ValueError, "image"),
        (torch.rand(1, 2, 8, 8), ValueError, "channels"),
        (torch.full((1, 3, 8, 8), float("nan")), ValueError, "image"),
        (torch.ones(1, 3, 8, 8, dtype=torch.int32), TypeError, "dtype"),
    ],
)
def test_bad_images_are_named_even_when_not_compressed(bad, error, name):
    with pytest.raises(error, match=name):
        RandomJPEG(50, p=0.0)(bad)


# ---------------------------------------------------------------- compile, devices, torchvision
@pytest.mark.paths
@pytest.mark.slow  # inductor again (15-30 s): test_gradients compiles float mode in the default run
def test_torch_compile_matches_eager():
    """The draws stay eager (same values as without compiling); the JPEG is compiled."""
    augment = RandomJPEG((20, 90), p=0.5, subsampling="4:4:4", mode="float")
    compiled = torch.compile(augment)
    x = image(15, (4, 3, 16, 16)).requires_grad_()
    torch.manual_seed(16)
    y, params = compiled(x, return_params=True)
    y.sum().backward()
    grad, x.grad = x.grad, None
    torch.manual_seed(16)
    eager, eager_params = augment(x, return_params=True)
    eager.sum().backward()
    assert params.applied.any() and not params.applied.all()
    assert torch.equal(params.quality, eager_params.quality) and torch.equal(params.applied, eager_params.applied)
    assert_close_to_rounding(y, eager)
    assert_close_to_rounding(grad, x.grad)


@pytest.mark.paths
@pytest.mark.slow  # 25-70 s of tracing per case on 2 cores
@pytest.mark.parametrize("rounding", ["polynomial", "sigmoid"])
def test_torch_compile_exact_traces_and_matches_eager(rounding):
    """Exact forward through dynamo and AOT autograd (no inductor code generation,
    which takes minutes for the integer codec): bit for bit the eager result,
    with two subsamplings selected per sample inside the graph."""
    augment = RandomJPEG((20, 90), p=0.5, subsampling=("4:2:0", "4:4:4"), rounding=rounding)
    compiled = torch.compile(augment, backend="aot_eager")
    x = image(20, (4, 3, 16, 16)).requires_grad_()
    torch.manual_seed(1)
    y, params = compiled(x, return_params=True)
    y.sum().backward()
    grad, x.grad = x.grad, None
    torch.manual_seed(1)
    eager = augment(x)
    eager.sum().backward()
    assert params.applied.any() and not params.applied.all()
    assert torch.equal(y, eager)
    assert_close_to_rounding(grad, x.grad)  # sigmoid's tanh as AOT autograd orders the float32 ops: up to 7e-7 apart


@pytest.mark.paths
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu():
    augment = RandomJPEG((5, 95), p=0.5, subsampling=SUBSAMPLINGS)
    x = image(17, (8, 3, 19, 23))
    torch.manual_seed(18)
    cpu, cpu_params = augment(x, return_params=True)
    xc = x.cuda().requires_grad_()
    torch.manual_seed(18)  # the default draws are on the CPU: same draws on every device
    gpu, gpu_params = augment(xc, return_params=True)
    gpu.sum().backward()
    assert gpu.device.type == "cuda" and torch.isfinite(xc.grad).all()
    assert torch.equal(gpu_params.quality, cpu_params.quality) and torch.equal(gpu.cpu(), cpu)
    g = torch.Generator("cuda").manual_seed(0)
    y, params = RandomJPEG((5, 95), p=0.5, subsampling=SUBSAMPLINGS, generator=g)(xc, return_params=True)
    assert y.device.type == "cuda" and params.quality.device.type == "cuda"


def test_torchvision_v2_compose():
    v2 = pytest.importorskip("torchvision.transforms.v2")
    from PIL import Image
    from torchvision import tv_tensors

    a = photo()
    pipeline = v2.Compose([v2.ToImage(), v2.ToDtype(torch.float32, scale=True), RandomJPEG((30, 90))])
    torch.manual_seed(19)
    y = pipeline(Image.fromarray(a))
    torch.manual_seed(19)
    q = int(RandomJPEG((30, 90))(torch.zeros(3, 8, 8), return_params=True)[1].quality)
    assert isinstance(y, tv_tensors.Image) and y.dtype == torch.float32
    x = torch.from_numpy(a).permute(2, 0, 1)
    assert torch.equal(y.as_subclass(torch.Tensor), diffjpeg.jpeg(x, quality=q).float() / 255)
    uint8 = v2.Compose([v2.ToImage(), RandomJPEG((30, 90), p=0.5), v2.ToDtype(torch.float32, scale=True)])
    assert uint8(Image.fromarray(a)).shape == (3, 48, 64)
