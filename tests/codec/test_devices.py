"""Exact wherever it trains: every device x dtype (the ``device`` and ``dtype``
fixtures of conftest.py), with and without gradients, under autocast, on the
kernel and on the tensor stages, and from many threads."""
import contextlib
import copy
import io
import threading

import numpy as np
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

import diffjpeg
from diffjpeg.backends import cpu, exact
from diffjpeg.core.precision import levels_to_unit, working_dtype
from diffjpeg.stages.blocks import MergeBlocks, SplitBlocks
from diffjpeg.stages.color import RGBToYCbCr, YCbCrToRGB
from diffjpeg.stages.dct import FDCT, IDCT
from diffjpeg.stages.quality import STANDARD_CHROMA_TABLE, STANDARD_LUMA_TABLE, QualityTables
from diffjpeg.stages.quantize import Dequantize, Quantize
from diffjpeg.stages.sampling import Downsample, Upsample
from tests.helpers import PIL_SUBSAMPLING, SUBSAMPLINGS, pillow_roundtrip, skimage_crop


def photo(height=37, width=45):
    return skimage_crop("astronaut", height, width, 100, 200)


def pillow(array, quality, subsampling):
    return pillow_roundtrip(array, quality, PIL_SUBSAMPLING[subsampling])


def as_image(array, dtype, device):
    """uint8 HWC -> (1, 3, H, W) in ``dtype`` on ``device``: k / 255 rounded to ``dtype``."""
    return (torch.from_numpy(array).permute(2, 0, 1)[None].to(torch.float32) / 255).to(device=device, dtype=dtype)


def unit(levels, dtype):
    """8-bit levels (HWC uint8) as the (1, C, H, W) values ``k / 255`` that exact
    mode returns in ``dtype``: divided on the CPU in the working dtype (float32,
    float64 for float64), then rounded to ``dtype``."""
    k = torch.from_numpy(levels).permute(2, 0, 1)[None]
    return k if dtype == torch.uint8 else (k.to(working_dtype(dtype)) / 255).to(dtype)


def levels(y):
    """8-bit levels of a decoded image in any float dtype (see diffjpeg.core.precision)."""
    return torch.round(y.detach().to("cpu", torch.float32) * 255).to(torch.uint8)[0].permute(1, 2, 0).numpy()


def autocast_contexts(device):
    yield "off", contextlib.nullcontext()
    if device.type == "cpu":
        yield "bfloat16", torch.autocast("cpu", dtype=torch.bfloat16)
    elif device.type == "cuda":
        yield "float16", torch.autocast("cuda", dtype=torch.float16)
        yield "bfloat16", torch.autocast("cuda", dtype=torch.bfloat16)


@pytest.fixture(params=["kernel", "tensor"])
def codec_path(request, device):
    """The compiled kernel (CPU only) and the tensor stages."""
    if request.param == "kernel" and (device.type != "cpu" or not exact.compiled()):
        pytest.skip("the compiled kernel runs on the CPU, when built")
    with cpu.enabled(request.param == "kernel"):
        yield request.param


def test_every_8bit_level_survives_every_dtype(dtype):
    k = torch.arange(256)
    assert torch.equal(torch.round((k / 255).to(dtype).float() * 255).long(), k)


def test_levels_to_unit_divides_as_the_cpu_on_every_device(device, dtype):
    """Not ``k / 255`` on the device: CUDA multiplies by the reciprocal instead."""
    k = torch.arange(256, dtype=torch.int32)
    expected = (k.to(working_dtype(dtype)) / 255).to(dtype)
    got = levels_to_unit(k.to(device).reshape(16, 16), working_dtype(dtype)).to(dtype)
    assert got.shape == (16, 16) and torch.equal(got.cpu().flatten(), expected)


@pytest.mark.paths
@pytest.mark.parametrize("subsampling", SUBSAMPLINGS)
@pytest.mark.parametrize("grad", [False, True], ids=["nograd", "grad"])
def test_exact_matches_pillow_in_every_dtype(device, dtype, grad, subsampling, codec_path):
    a = photo()
    for quality in (5, 50, 95):
        expected = pillow(a, quality, subsampling)
        for name, context in autocast_contexts(device):
            x = as_image(a, dtype, device).requires_grad_(grad)
            with context:
                y = diffjpeg.jpeg(x, quality=quality, subsampling=subsampling)
            assert y.dtype == dtype and y.device.type == device.type
            differ = levels(y) != expected
            assert not differ.any(), f"q{quality} autocast {name}: {differ.sum()} values differ"
            # the levels and the very bits: k / 255 rounded once to the dtype, on every device
            assert torch.equal(y.detach().cpu(), unit(expected, dtype)), f"q{quality} autocast {name}: values are not k / 255"
            if grad:
                (y.float() * torch.linspace(-1, 1, y.numel(), device=device).reshape(y.shape)).sum().backward()
                assert x.grad.dtype == dtype and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def libjpeg_tables(quality):
    """jcparam.c's jpeg_set_quality, written out in integers."""
    quality = max(1, min(100, quality))
    scale = 5000 // quality if quality < 50 else 200 - 2 * quality
    return [[[min(255, max(1, (v * scale + 50) // 100)) for v in row] for row in t] for t in (STANDARD_LUMA_TABLE, STANDARD_CHROMA_TABLE)]


def test_encode_tables_equal_libjpeg_in_every_dtype(device, dtype):
    x = torch.rand(1, 3, 8, 8).to(device=device, dtype=dtype)
    for quality in range(0, 101):
        for q in (quality, torch.tensor(float(quality), device=device, dtype=dtype)):
            tables = diffjpeg.encode(x, quality=q).qtables
            assert tables.dtype == (torch.float64 if dtype == torch.float64 else torch.float32)
            assert tables.cpu().long().tolist() == [libjpeg_tables(quality)], quality


def test_libjpeg_tables_written_out_are_pillows():
    from PIL import Image

    for quality in (1, 10, 50, 90, 100):
        buffer = io.BytesIO()
        Image.new("RGB", (8, 8)).save(buffer, "JPEG", quality=quality)
        pil = Image.open(io.BytesIO(buffer.getvalue())).quantization  # natural order
        ours = libjpeg_tables(quality)
        assert [[v for row in t for v in row] for t in ours] == [list(pil[0]), list(pil[1])]


@pytest.mark.paths
@pytest.mark.parametrize("forward", ["float", "soft"])
def test_float_and_soft_give_float32_values_in_every_dtype(device, dtype, forward):
    """Half-precision images and autocast: float32's values, rounded once to the output dtype."""
    if dtype == torch.float64:
        pytest.skip("float64 computes in float64")
    x = as_image(photo(), dtype, device)
    reference = diffjpeg.jpeg(x.float(), quality=5, mode=forward, rounding="sigmoid").to(dtype)
    for name, context in autocast_contexts(device):
        with context:
            y = diffjpeg.jpeg(x, quality=5, mode=forward, rounding="sigmoid")
        assert y.dtype == dtype
        assert torch.equal(y, reference), f"autocast {name}: up to {(y.float() - reference.float()).abs().max() * 255} levels"


@pytest.mark.parametrize("forward", ["exact", "float", "soft"])
@pytest.mark.parametrize("rounding", diffjpeg.ROUNDINGS)
def test_gradients_finite_and_nonzero_in_every_dtype(device, dtype, forward, rounding):
    x = as_image(photo(16, 24), dtype, device).requires_grad_()
    quality = torch.tensor(37.0, device=device, dtype=dtype, requires_grad=True)
    tables = diffjpeg.standard_tables(dtype, device).requires_grad_()
    y = diffjpeg.jpeg(x, quality=quality, qtables=tables, mode=forward, rounding=rounding)
    assert y.dtype == dtype
    ((y.float() - x.detach().float()) ** 2).mean().backward()
    # soft + linear quantizes nothing: its loss does not depend on the tables
    # (float32 gives 1e-14, rounding noise, float16 zero)
    for t in (x,) if (forward, rounding) == ("soft", "linear") else (x, quality, tables):
        assert t.grad.dtype == dtype and torch.isfinite(t.grad).all() and t.grad.abs().sum() > 0


def test_decode_of_read_file_in_every_dtype(device, dtype):
    """Coefficients read in float32 or float64, decoded in any dtype; read
    refuses dtypes that cannot hold 16-bit coefficients."""
    from PIL import Image

    a = photo()
    buffer = io.BytesIO()
    Image.fromarray(a).save(buffer, "JPEG", quality=60)
    if dtype in (torch.float16, torch.bfloat16):
        with pytest.raises(ValueError, match="dtype must be torch.float32 or torch.float64"):
            diffjpeg.read(buffer.getvalue(), dtype=dtype)
    c = diffjpeg.read(buffer.getvalue(), dtype=torch.float64 if dtype == torch.float64 else torch.float32, device=device)
    c = c.to(dtype)  # quality 60: every coefficient and table entry fits bfloat16's integers
    y = diffjpeg.decode(c)[None]
    assert not (levels(y) != np.array(Image.open(buffer))).any()
    assert torch.equal(y.cpu(), unit(np.array(Image.open(buffer)), y.dtype))  # the working dtype


# ---------------------------------------------------------------- no float64
class _Dtypes(TorchDispatchMode):
    """Records the dtype of every tensor each op takes or returns."""

    def __init__(self):
        super().__init__()
        self.float64 = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in torch.utils._pytree.tree_leaves((args, kwargs, out)):
            if isinstance(t, torch.Tensor) and t.dtype == torch.float64:
                self.float64.append(str(func))
        return out


@pytest.mark.parametrize("image_dtype", [torch.float16, torch.bfloat16, torch.float32])
@pytest.mark.parametrize("subsampling", SUBSAMPLINGS)
def test_exact_tensor_stages_use_no_float64(image_dtype, subsampling):
    """What MPS lacks and consumer GPUs run at 1/32 speed: not one op, forward or backward."""
    x = torch.rand(2, 3, 21, 30).to(image_dtype).requires_grad_()
    quality = torch.tensor([20.0, 80.0], requires_grad=True)
    with cpu.enabled(False), _Dtypes() as seen:
        y = diffjpeg.jpeg(x, quality=quality, subsampling=subsampling)
        y.float().sum().backward()
        c = diffjpeg.encode(x.detach(), quality=50, subsampling=subsampling)
        diffjpeg.decode(c)
        gray = diffjpeg.jpeg(x[:, :1], quality=quality)
        gray.float().sum().backward()
    assert seen.float64 == []


# ---------------------------------------------------------------- modules
def every_module():
    """One instance of every nn.Module the package defines, with tensors in it where it takes them."""
    tables = diffjpeg.standard_tables()
    return [
        diffjpeg.DiffJPEG(quality=60),
        diffjpeg.DiffJPEG(quality=60, qtables=tables, learnable=True),
        diffjpeg.JPEGEncoder(quality=torch.tensor(60.0), qtables=tables, rgb_to_ycbcr=diffjpeg.stages.color.rgb_to_ycbcr_matrix()),
        diffjpeg.JPEGDecoder(ycbcr_to_rgb=diffjpeg.stages.color.ycbcr_to_rgb_matrix()),
        diffjpeg.RandomJPEG((30, 90)),
        diffjpeg.Rate(),
        RGBToYCbCr("exact", diffjpeg.stages.color.rgb_to_ycbcr_matrix()),
        YCbCrToRGB("float", torch.nn.Parameter(diffjpeg.stages.color.ycbcr_to_rgb_matrix())),
        Downsample(2, 2, "exact"),
        Upsample(2, 2, "exact"),
        SplitBlocks(),
        MergeBlocks(),
        FDCT("exact"),
        IDCT("exact"),
        Quantize("exact"),
        Dequantize(),
        QualityTables(),
        diffjpeg.RateDistortionLoss(lmbda=0.03),
    ]


def test_every_module_class_is_covered():
    import inspect

    from diffjpeg.tools.qtables import QTableParameters

    defined = set()
    for module in (diffjpeg, diffjpeg.stages.color, diffjpeg.stages.sampling, diffjpeg.stages.blocks, diffjpeg.stages.dct, diffjpeg.stages.quantize, diffjpeg.stages.quality, diffjpeg.rate, diffjpeg.training.losses, diffjpeg.training.augment, diffjpeg.codec.pipeline):
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, torch.nn.Module) and cls.__module__.startswith("diffjpeg"):
                defined.add(cls)
    covered = {c for m in every_module() for c in type(m).__mro__} | {QTableParameters}
    assert defined <= covered, defined - covered


def test_modules_move_cast_save_and_copy(device, dtype):
    for module in every_module():
        tensors = dict(module.named_parameters()) | dict(module.named_buffers())
        state = copy.deepcopy(module.state_dict())
        assert set(state) == set(tensors), type(module).__name__
        moved = copy.deepcopy(module).to(device=device, dtype=dtype)
        for name, t in list(moved.named_parameters()) + list(moved.named_buffers()):
            assert t.device.type == device.type and t.dtype == dtype, (type(module).__name__, name)
        fresh = copy.deepcopy(module)
        fresh.load_state_dict({k: v.clone() for k, v in state.items()})
        for k, v in fresh.state_dict().items():
            assert torch.equal(v, state[k])


def test_codec_modules_run_on_device(device, dtype):
    x = as_image(photo(16, 16), dtype, device)
    for module in every_module()[:5]:
        module = module.to(device)
        if isinstance(module, diffjpeg.JPEGDecoder):
            out = module(diffjpeg.encode(x, quality=60))
        else:
            out = module(x)
        out = out.y if isinstance(out, diffjpeg.Coefficients) else out
        assert out.device.type == device.type and torch.isfinite(out.float()).all()
    layer = diffjpeg.DiffJPEG(quality=60).to(device)
    assert not (levels(layer(x)) != levels(diffjpeg.jpeg(x, quality=60))).any()


# ---------------------------------------------------------------- validation
def other_device(device):
    return torch.device("meta") if device.type != "meta" else torch.device("cpu")


@pytest.mark.parametrize("name", ["quality", "qtables", "rgb_to_ycbcr", "ycbcr_to_rgb"])
def test_arguments_on_another_device_are_named(device, dtype, name):
    x = torch.rand(1, 3, 8, 8, device=device, dtype=dtype)
    elsewhere = other_device(device)
    values = {
        "quality": torch.tensor(50.0, device=elsewhere),
        "qtables": diffjpeg.standard_tables(device=elsewhere),
        "rgb_to_ycbcr": diffjpeg.stages.color.rgb_to_ycbcr_matrix(device=elsewhere),
        "ycbcr_to_rgb": diffjpeg.stages.color.ycbcr_to_rgb_matrix(device=elsewhere),
    }
    with pytest.raises(ValueError, match=rf"{name} is on {elsewhere.type}.*on {device.type}"):
        diffjpeg.jpeg(x, **{name: values[name]})


def test_coefficients_on_mixed_devices_are_named(device):
    c = diffjpeg.encode(torch.rand(1, 3, 16, 16, device=device))
    c.cb = c.cb.to(other_device(device))
    with pytest.raises(ValueError, match="coefficients.cb is on"):
        diffjpeg.decode(c)


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_coefficients_are_refused(device, dtype, value):
    c = diffjpeg.encode(torch.rand(1, 3, 16, 16, device=device, dtype=dtype))
    c.y[0, 0, 0, 0, 0] = value
    with pytest.raises(ValueError, match="coefficients.y contains NaN or Inf"):
        diffjpeg.decode(c)


@pytest.mark.parametrize("value, match", [(float("nan"), "image contains NaN or Inf"), (float("inf"), "image contains NaN or Inf"),
                                          (255.0, r"image is float with values in \[.*, 255\].*divide by 255"),
                                          (-1.5, r"image is float with values in \[-1.5, .*\]; float images must lie in \[0, 1\]")])
@pytest.mark.parametrize("mode", ["exact", "float", "soft"])
def test_bad_image_values_are_refused(device, dtype, mode, value, match, codec_path):
    """The range check, read by the compiled first pass where it runs (CPU
    float32/float64) and by check_image_values elsewhere: one message in
    every dtype, with and without a gradient, under autocast."""
    x = torch.rand(2, 3, 19, 21, device=device).to(dtype)
    x[1, 2, 17, 3] = value
    for grad in (False, True):
        for _, context in autocast_contexts(device):
            with context, pytest.raises(ValueError, match=match):
                diffjpeg.jpeg(x.clone().requires_grad_(grad), quality=50, mode=mode)


# ---------------------------------------------------------------- threads
@pytest.mark.paths
def test_codec_from_many_threads_equals_one_thread():
    g = torch.Generator().manual_seed(11)
    images = [torch.rand(2, 3, 19 + i, 23, generator=g) for i in range(8)]

    def work(x):
        c = diffjpeg.encode(x, quality=40)
        return c.y, diffjpeg.decode(c), diffjpeg.jpeg(x, quality=40), diffjpeg.jpeg(x, quality=70, mode="float")

    expected = [work(x) for x in images]
    results = [None] * 8
    barrier = threading.Barrier(8)

    def run(i):
        barrier.wait()
        results[i] = [work(images[i]) for _ in range(5)]

    threads = [threading.Thread(target=run, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i in range(8):
        for got in results[i]:
            assert all(torch.equal(a, b) for a, b in zip(got, expected[i]))


# ---------------------------------------------------------------- inference mode
AFTER_INFERENCE = """
import torch, diffjpeg
from diffjpeg.stages.color import RGBToYCbCr
from diffjpeg.stages.dct import FDCT, IDCT
from diffjpeg.stages.blocks import split_blocks
x = torch.rand(2, 3, 24, 40, generator=torch.Generator().manual_seed(0))
layers = {m: diffjpeg.DiffJPEG(quality=60, mode=m, learnable=True) for m in ("exact", "float", "soft")}
losses = diffjpeg.training.losses.RateDistortionLoss()
def run(mode):
    yield diffjpeg.jpeg(x.clone().requires_grad_(), 50, mode=mode)
    yield diffjpeg.jpeg(x, torch.tensor([40.0, 70.0], requires_grad=True), mode=mode)
    yield diffjpeg.jpeg(x, 50, mode=mode, rgb_to_ycbcr=diffjpeg.stages.color.rgb_to_ycbcr_matrix().requires_grad_())
    yield diffjpeg.jpeg(x, 50, mode=mode, ycbcr_to_rgb=diffjpeg.stages.color.ycbcr_to_rgb_matrix().requires_grad_())
    yield layers[mode](x)
    yield diffjpeg.rate(diffjpeg.encode(x.clone().requires_grad_(), 50, mode=mode))
    c = diffjpeg.encode(x.clone().requires_grad_(), 50, mode=mode)
    yield losses(diffjpeg.decode(c, mode=mode), x, c).loss
    yield IDCT()(FDCT()(split_blocks(RGBToYCbCr()(x * 255)).requires_grad_()))
with torch.inference_mode():  # the first calls of the process: every cache filled here
    for mode in layers:
        for out in run(mode):
            pass
for mode in layers:
    for i, out in enumerate(run(mode)):
        params = [p for p in layers[mode].parameters()] if i == 4 else []
        leaves = [t for t in params if t.grad is None]
        out.float().sum().backward()
        assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in leaves), (mode, i)
        print(mode, i, "ok")
"""


def test_training_after_inference_mode_first_calls():
    """Constants the codec caches (transform matrices, the zigzag index,
    level tables) are not inference tensors when the process's first calls
    ran under ``torch.inference_mode()``: autograd would refuse to save them
    (a learned color matrix, the rate). A fresh process, so the caches start empty."""
    import subprocess
    import sys

    run = subprocess.run([sys.executable, "-c", AFTER_INFERENCE], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.split("\n").count("exact 0 ok") == 1 and len(run.stdout.split()) == 3 * 3 * 8, run.stdout
