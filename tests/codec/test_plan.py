"""One plan per call (diffjpeg.codec.plan): every argument resolved once,
the backend chosen once, and what the plan's compiled path gives equal to
the general pipeline's."""
import numpy as np
import pytest
import torch

import diffjpeg
from diffjpeg.backends import cpu, exact
from diffjpeg.codec.plan import encode_plan, resolve_tables, whole_quality
from diffjpeg.stages.quality import quality_tables, standard_tables
from tests.helpers import assert_close_to_rounding, skimage_crop


def photo(h=37, w=53):
    return torch.from_numpy(np.ascontiguousarray(skimage_crop("astronaut", h, w, 100, 180))).permute(2, 0, 1).contiguous()


def plan_of(image, quality=75, mode="exact", **options):
    defaults = dict(qtables=None, subsampling="4:2:0", rounding=None, rgb_to_ycbcr=None, backend="auto")
    defaults.update(options)
    return encode_plan(image, quality, defaults["qtables"], defaults["subsampling"], mode, defaults["rounding"], defaults["rgb_to_ycbcr"],
                       defaults["backend"])


def test_the_plan_resolves_every_argument_once():
    x = photo().expand(2, 3, 37, 53)
    plan = plan_of(x, 60, subsampling=1)  # Pillow's number for 4:2:2
    assert plan.batch == (2,) and plan.count == 2 and plan.size == (37, 53) and plan.channels == 3
    assert plan.factors == ((2, 1), (1, 1), (1, 1)) and [g.blocks for g in plan.geometries] == [(5, 7), (5, 4), (5, 4)]
    assert torch.equal(plan.tables[1], quality_tables(torch.tensor(60.0), standard_tables(torch.float32, x.device), True))
    assert plan.rounding.name == "sigmoid" and plan.work == torch.float32 and plan.matrix is None
    with pytest.raises(AttributeError):
        plan.mode = "float"  # immutable: the pipeline runs what was decided


def test_the_backend_is_chosen_once_by_the_plan():
    x = photo()
    assert plan_of(x).kernel == exact.available()
    assert not plan_of(x, mode="float").kernel
    assert not plan_of(x, rgb_to_ycbcr=torch.eye(3)).kernel  # a custom matrix: the tensor stages
    given = plan_of(x, qtables=torch.full((2, 8, 8), 300.0), quality=None)  # exact mode clamps them to 255
    assert given.kernel == exact.available() and given.kernel_tables is None and bool((given.tables == 255).all())
    with cpu.enabled(False):
        assert not plan_of(x).kernel
    grad = plan_of(x.float().div(255).requires_grad_())
    assert grad.grad and grad.kernel == exact.available()  # the values still from the kernel


@pytest.mark.skipif(not exact.available(), reason="the compiled codec is not built")
def test_cached_kernel_tables_are_the_plans_tables_and_read_only():
    plan = plan_of(photo().expand(3, 3, 37, 53), 33)
    encoder, decoder = plan.kernel_tables
    assert np.array_equal(encoder, exact.encoder_tables(plan.tables, 3))
    assert np.array_equal(decoder, exact.decoder_tables(plan.tables[:, [0, 1, 1]]))
    assert not encoder.flags.writeable and not decoder.flags.writeable
    assert plan_of(photo(), 33.5).kernel_tables is None  # a fractional quality: tables made per call
    tables = resolve_tables(33, None, torch.Size([3]), True, torch.float32, torch.device("cpu"))
    assert whole_quality(33, None) == 33 and whole_quality(33.5, None) is None and torch.equal(tables, plan.tables)
    tables[0, 0, 0, 0] = 99  # the caller's copy: the cache keeps its values
    assert torch.equal(plan_of(photo().expand(3, 3, 37, 53), 33).tables, plan.tables)


@pytest.mark.paths
@pytest.mark.parametrize("dtype", (torch.uint8, torch.float32, torch.float16, torch.float64), ids=str)
@pytest.mark.parametrize("quality", (5, 75, 97.5))
def test_the_compiled_plan_equals_the_general_pipeline(dtype, quality):
    """jpeg() straight through the compiled codec (no Coefficients between
    encoder and decoder) against encode then decode, and the tensor stages."""
    x = photo().expand(2, 3, 37, 53)
    x = x.clone() if dtype == torch.uint8 else (x.double() / 255).to(dtype)
    y = diffjpeg.jpeg(x, quality)
    decoded = diffjpeg.decode(diffjpeg.encode(x, quality), dtype=torch.uint8 if dtype == torch.uint8 else None)
    assert y.dtype == dtype and torch.equal(y, decoded.to(dtype))
    with cpu.enabled(False):
        assert torch.equal(diffjpeg.jpeg(x, quality), y)


def test_bad_arguments_are_refused_before_anything_runs():
    x = photo()
    with pytest.raises(ValueError, match="mode must be one of"):
        diffjpeg.jpeg(x, 50, mode="fast")
    with pytest.raises(ValueError, match="subsampling"):
        diffjpeg.jpeg(x, 50, subsampling="4:1:1")
    with pytest.raises(TypeError, match="quality must be a number"):
        diffjpeg.jpeg(x, "50")
    with pytest.raises(ValueError, match="NaN"):
        diffjpeg.jpeg(torch.full((3, 8, 8), float("nan")), 50)  # the kernel declines: the general path reports


# ---------------------------------------------------------------- read-backs: none on the hot path
# The meta device refuses any read-back of a value (Tensor.item, bool, tolist):
# where the pipeline runs on it, a GPU, which takes the same tensor stages,
# waits for no value either.
@pytest.mark.parametrize("mode", ("exact", "float", "soft"))
def test_uint8_images_read_nothing_back(mode):
    x = torch.empty(2, 3, 17, 33, dtype=torch.uint8, device="meta")
    y = diffjpeg.jpeg(x, 75, mode=mode)
    assert y.shape == x.shape and y.dtype == torch.uint8 and y.device.type == "meta"


@pytest.mark.parametrize("mode", ("exact", "float", "soft"))
def test_float_images_read_back_only_their_range(mode, monkeypatch):
    """A float image's values are read back once, for the range check (one
    min/max; it names the problem); forward and backward read nothing else."""
    x = torch.empty(2, 3, 17, 33, device="meta", requires_grad=True)
    with pytest.raises(RuntimeError, match="meta"):
        diffjpeg.jpeg(x, 75, mode=mode)  # the range check's read-back
    from diffjpeg.codec import pipeline, planes

    checked = []
    for module in (pipeline, planes):  # the pipeline's check, and the first stage's where its loop does not run
        monkeypatch.setattr(module, "check_image_values", lambda image, *args: checked.append(image))
    y = diffjpeg.jpeg(x, 75, mode=mode)
    y.sum().backward()
    assert len(checked) == 1 and x.grad.shape == x.shape


def test_a_nan_coefficient_is_named_by_the_combined_check():
    c = diffjpeg.encode(torch.rand(1, 3, 16, 16), 50)
    c = diffjpeg.Coefficients(c.y.clone(), c.cb.clone(), c.cr.clone(), c.qtables, sampling=c.sampling, size=c.size)
    c.cr[0, 0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="coefficients.cr contains NaN or Inf"):
        diffjpeg.decode(c, mode="float")


@pytest.mark.paths
@pytest.mark.parametrize("quality", (5, 50, 97))
def test_the_general_idct_taken_off_the_cpu_gives_the_same_pixels(quality, monkeypatch):
    """Off the CPU, exact mode's tensor decode takes the SIMD inverse DCT's
    general form without reading values back to pick the faster one
    (dct.fits_int16 is False there): the same pixels, here forced on the CPU."""
    from diffjpeg.stages import dct, quantize

    x = photo().expand(2, 3, 37, 53).clone()
    with cpu.enabled(False):
        fast = diffjpeg.jpeg(x, quality)
        monkeypatch.setattr(dct, "fits_int16", lambda values, bound=32767: False)
        monkeypatch.setattr(quantize, "fits_int16", lambda values, bound=32767: False)
        general = diffjpeg.jpeg(x, quality)
    assert torch.equal(general, fast) and torch.equal(fast, diffjpeg.jpeg(x, quality))


# ---------------------------------------------------------------- backend=
def test_an_unknown_backend_is_refused_naming_the_choices():
    x = photo()
    c = diffjpeg.encode(x, 50)
    calls = [
        lambda: diffjpeg.jpeg(x, 50, backend="cuda"), lambda: diffjpeg.encode(x, 50, backend="cuda"),
        lambda: diffjpeg.decode(c, backend="cuda"), lambda: diffjpeg.DiffJPEG(50, backend="cuda"),
        lambda: diffjpeg.JPEGEncoder(50, backend="cuda"), lambda: diffjpeg.JPEGDecoder(backend="cuda"),
        lambda: diffjpeg.RandomJPEG(50, backend="cuda"), lambda: diffjpeg.random_jpeg(x, 50, backend="cuda"),
    ]
    for call in calls:
        with pytest.raises(ValueError, match=r"backend must be one of \('auto', 'native', 'triton', 'torch'\), got 'cuda'"):
            call()


def test_the_triton_backend_says_what_it_needs(monkeypatch):
    """Triton's kernels take CUDA tensors (CPU tensors only under its interpreter)."""
    from diffjpeg.backends import gpu

    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    message = "Triton, which does not import" if not gpu.available() else "runs its kernels on cuda tensors, got tensors on cpu"
    with pytest.raises(ValueError, match=message):
        diffjpeg.jpeg(photo(), 50, backend="triton")
    monkeypatch.setattr(gpu, "available", lambda: False)
    with pytest.raises(ValueError, match="backend='triton' needs Triton"):
        diffjpeg.decode(diffjpeg.encode(photo(), 50), backend="triton")


@pytest.mark.paths
@pytest.mark.parametrize("mode", ("exact", "float", "soft"))
def test_every_backend_gives_the_same_values_and_gradients(mode):
    """Which backend runs changes the speed, not the result: the kernels
    give their tensor forms' values bit for bit (tests/backends) but for the
    quantizer's surrogates, whose compiled loop computes tanh its own way:
    soft mode's values and the gradients agree to rounding there."""
    x = photo().expand(2, 3, 37, 53).float().div(255)
    results = {}
    for backend in ("auto", "native", "torch"):
        image = x.clone().requires_grad_()
        y = diffjpeg.jpeg(image, 40, mode=mode, backend=backend)
        y.square().sum().backward()
        results[backend] = (y, image.grad)
    assert torch.equal(results["native"][0], results["auto"][0]) and torch.equal(results["native"][1], results["auto"][1])
    (y, grad), (y_torch, grad_torch) = results["auto"], results["torch"]
    if mode == "soft":
        assert_close_to_rounding(y, y_torch)
    else:
        assert torch.equal(y, y_torch)
    assert_close_to_rounding(grad, grad_torch)


def test_the_torch_backend_takes_no_kernel(monkeypatch):
    from diffjpeg.core import dispatch

    asked = []
    for slot, kernels in list(dispatch._kernels.items()):
        monkeypatch.setitem(dispatch._kernels, slot, tuple((b, lambda *a, k=k, b=b, **kw: asked.append(b) or k(*a, **kw)) for b, k in kernels))
    x = photo().float().div(255).requires_grad_()
    diffjpeg.jpeg(x, 40, mode="float", backend="torch").sum().backward()
    assert asked == []
    diffjpeg.jpeg(x, 40, mode="float", backend="native").sum().backward()
    assert set(asked) == {"native"} or not cpu.available()
    assert not plan_of(photo(), backend="torch").kernel and plan_of(photo(), backend="native").kernel == exact.available()
