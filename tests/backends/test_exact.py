"""The compiled exact path (diffjpeg/backends/_native.c) against the tensor stages, bit for bit.

tests/codec/test_exact_mode.py runs its Pillow and OpenCV comparisons on both paths; here the
two paths meet on what Pillow cannot make: odd sizes, every input dtype,
per-image tables, sampling from other encoders, hostile coefficients,
threads and fork.
"""
import multiprocessing
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

import diffjpeg
from diffjpeg import Coefficients
from diffjpeg.backends import cpu, exact
from diffjpeg.core.geometry import component_geometry
from tests.helpers import assert_close_to_rounding, both_paths

pytestmark = [
    pytest.mark.paths,  # every test here holds two computation paths equal
    pytest.mark.skipif(not exact.compiled(), reason="the compiled kernel was not built (no C compiler at install time)"),
]


def assert_same(a, b):
    if isinstance(a, Coefficients):
        assert a.sampling == b.sampling and a.size == b.size
        assert torch.equal(a.qtables, b.qtables)
        for x, y in zip(a.components, b.components):
            assert_same(x, y)
        return
    assert a.dtype == b.dtype and a.shape == b.shape
    assert torch.equal(a, b) or torch.allclose(a, b, rtol=0, atol=0, equal_nan=True), f"{(a != b).sum()} values differ"


def image(shape, dtype, seed):
    g = torch.Generator().manual_seed(seed)
    if dtype == torch.uint8:
        return torch.randint(0, 256, shape, generator=g, dtype=torch.uint8)
    # beyond [0, 1] too: the 8-bit clamp is part of the path
    return (torch.rand(shape, generator=g, dtype=torch.float64) * 1.2 - 0.1).to(dtype)


SIZES = [(1, 1), (1, 17), (9, 1), (2, 3), (7, 9), (8, 8), (15, 17), (16, 16), (23, 40), (33, 65)]


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("subsampling", ["4:4:4", "4:2:2", "4:2:0"])
@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32, torch.float64])
def test_encode_and_decode_equal_tensor_stages(size, subsampling, dtype):
    x = image((2, 3) + size, dtype, seed=size[0] * 100 + size[1])
    quality = torch.tensor([1.0, 63.0])
    c_fast, c_slow = both_paths(lambda: diffjpeg.encode(x, quality=quality, subsampling=subsampling))
    assert_same(c_fast, c_slow)
    y_fast, y_slow = both_paths(lambda: diffjpeg.decode(c_fast))
    assert_same(y_fast, y_slow)
    j_fast, j_slow = both_paths(lambda: diffjpeg.jpeg(x, quality=quality, subsampling=subsampling))
    assert_same(j_fast, j_slow)


@pytest.mark.parametrize("size", [(1, 1), (5, 3), (20, 31)])
def test_grayscale_and_batch_shapes(size):
    x = image((2, 2, 1) + size, torch.float32, seed=7)
    quality = torch.tensor([[0.0, 100.0], [49.0, 50.0]])
    c_fast, c_slow = both_paths(lambda: diffjpeg.encode(x, quality=quality))
    assert_same(c_fast, c_slow)
    assert_same(*both_paths(lambda: diffjpeg.decode(c_fast)))


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32, torch.float64])
def test_rows_of_a_taller_image_are_read_in_place(channels, dtype):
    """A strip's rows (a view with planes further apart than its own size)
    encode as their contiguous copy would, without that copy; other layouts
    are copied first."""
    x = image((2, channels, 70, 24), dtype, seed=11)
    rows = x[:, :, 16:48]
    samples, stride, step = exact._planes(rows)
    assert stride == 70 * 24 and step == 1 and samples.ctypes.data == rows.data_ptr()
    columns = x[:, :, 16:48, 2:20]  # rows not contiguous: copied
    assert exact._planes(columns)[1] == 32 * 18
    for view in (rows, columns):
        c_fast, c_slow = both_paths(lambda: diffjpeg.encode(view, quality=40))
        assert_same(c_fast, c_slow)
        assert_same(c_fast, diffjpeg.encode(view.contiguous(), quality=40))


@pytest.mark.parametrize("dtype", (torch.uint8, torch.float32, torch.float64), ids=str)
@pytest.mark.parametrize("count", (1, 2))
def test_channels_last_images_are_read_and_written_in_place(count, dtype):
    """A channels-last image (a PIL image's layout, what v2.ToImage gives)
    is read where it lies, as its contiguous copy would be; jpeg's output
    keeps its layout, with the contiguous copy's values."""
    x = image((count, 3, 37, 29), dtype, seed=5)
    last = x.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2)
    samples, stride, step = exact._planes(last)
    assert (stride, step) == (1, 3) and samples.ctypes.data == last.data_ptr()
    one = last[0]  # (3, H, W) as v2.ToImage makes it, reshaped to a batch of one inside
    assert exact._planes(one.reshape(1, 3, 37, 29))[1:] == (1, 3)
    for view, plain in ((last, x), (one, x[0])):
        assert_same(diffjpeg.encode(view, quality=40), diffjpeg.encode(plain, quality=40))
        y = diffjpeg.jpeg(view, 40)
        assert torch.equal(y, diffjpeg.jpeg(plain, 40)) and y.stride()[-3:] == view.stride()[-3:]  # channels last still
        assert torch.equal(y, both_paths(lambda v=view: diffjpeg.jpeg(v, 40))[1])


def test_per_image_tables():
    g = torch.Generator().manual_seed(3)
    x = image((3, 3, 24, 19), torch.float32, seed=3)
    tables = torch.randint(1, 256, (3, 2, 8, 8), generator=g).float()
    for kwargs in ({"qtables": tables}, {"qtables": tables, "quality": 30}, {"qtables": tables * 3, "quality": 90}):
        c_fast, c_slow = both_paths(lambda: diffjpeg.encode(x, **kwargs))
        assert_same(c_fast, c_slow)
        assert_same(*both_paths(lambda: diffjpeg.decode(c_fast)))


@pytest.mark.parametrize(
    "sampling",
    [
        ((1, 2), (1, 1), (1, 1)),
        ((2, 2), (1, 2), (2, 1)),
        ((4, 1), (1, 1), (1, 1)),
        ((3, 1), (1, 1), (1, 1)),
        ((2, 1), (2, 1), (2, 1)),
        ((1, 2), (1, 2), (1, 2)),  # equal factors above 1: every ratio is 1
        ((1, 3),),  # grayscale files may declare any factors
        ((2, 2),),
    ],
)
@pytest.mark.parametrize("size", [(1, 1), (3, 5), (21, 34)])
def test_decode_other_sampling_factors(sampling, size):
    """Files from other encoders: ratios of 1 and 2 run compiled, others (4:1:1,
    ratio 3) go to the tensor stages; both give the tensor stages' result."""
    g = torch.Generator().manual_seed(11)
    max_factors = (max(h for h, _ in sampling), max(v for _, v in sampling))
    comps = []
    for f in sampling:
        blocks = component_geometry(size, f, max_factors).blocks
        comps.append(torch.randint(-20, 21, (2, *blocks, 8, 8), generator=g).float())
    comps += [None] * (3 - len(comps))
    tables = torch.randint(1, 30, (2, 2, 8, 8), generator=g).float()
    c = Coefficients(y=comps[0], cb=comps[1], cr=comps[2], qtables=tables, sampling=sampling, size=size)
    assert_same(*both_paths(lambda: diffjpeg.decode(c)))


def _legal_samplings():
    import itertools

    factors = [(h, v) for h in (1, 2, 4) for v in (1, 2, 4)]
    out = [((h, v),) for h in (1, 2, 3, 4) for v in (1, 2, 3, 4)]
    for sampling in itertools.product(factors, repeat=3):
        try:
            Coefficients(y=torch.zeros(1), cb=torch.zeros(1), cr=torch.zeros(1), qtables=torch.ones(2, 8, 8), sampling=sampling, size=(1, 1))
        except ValueError:
            continue
        out.append(sampling)
    return out


@pytest.mark.parametrize("strip", [1, 8])
def test_every_legal_sampling_decodes_like_tensor_stages(strip, monkeypatch):
    """Every sampling a file may declare with factors 1, 2, 4 (and 3 for
    grayscale), at three sizes: the kernel takes ratios of 1 and 2, the
    tensor stages the rest, and both give the same images."""
    monkeypatch.setattr(exact, "STRIP_MCU_ROWS", strip)
    g = torch.Generator().manual_seed(strip)
    samplings = _legal_samplings()
    assert len(samplings) > 150
    for sampling in samplings:
        max_factors = (max(h for h, _ in sampling), max(v for _, v in sampling))
        for size in ((1, 1), (13, 7), (35, 50)):
            comps = [torch.randint(-40, 41, (1, *component_geometry(size, f, max_factors).blocks, 8, 8), generator=g).float() for f in sampling]
            comps += [None] * (3 - len(comps))
            tables = torch.randint(1, 20, (1, 2, 8, 8), generator=g).float()
            c = Coefficients(y=comps[0], cb=comps[1], cr=comps[2], qtables=tables, sampling=sampling, size=size)
            assert_same(*both_paths(lambda: diffjpeg.decode(c)))


@pytest.mark.parametrize("sampling", [((1, 2), (1, 1), (1, 1)), ((2, 2), (1, 2), (2, 1)), ((1, 2), (1, 2), (1, 2)), ((2, 2),), ((2, 1),)])
def test_gradients_through_other_samplings_equal_tensor_stages(sampling):
    g = torch.Generator().manual_seed(len(sampling))
    size = (27, 19)
    max_factors = (max(h for h, _ in sampling), max(v for _, v in sampling))
    comps0 = [torch.randint(-30, 31, (2, *component_geometry(size, f, max_factors).blocks, 8, 8), generator=g).float() for f in sampling]
    tables0 = torch.randint(1, 20, (2, 2, 8, 8), generator=g).float()

    def run():
        comps = [t.clone().requires_grad_() for t in comps0]
        tables = tables0.clone().requires_grad_()
        padded = comps + [None] * (3 - len(comps))
        out = diffjpeg.decode(Coefficients(y=padded[0], cb=padded[1], cr=padded[2], qtables=tables, sampling=sampling, size=size))
        (out * torch.linspace(-1, 1, out.numel()).reshape(out.shape)).sum().backward()
        return torch.cat([out.detach().flatten()] + [t.grad.flatten() for t in comps + [tables]])

    assert_same(*both_paths(run))


@pytest.mark.parametrize("height", [5, 16, 45, 130])
def test_pillow_grayscale_declaring_2x2_decodes_like_pillow(height):
    """Pillow writes grayscale with subsampling=2 as one 2x2 component: the
    kernel's strips then differ from the file's MCU rows."""
    import io

    from PIL import Image

    a = np.random.default_rng(height).integers(0, 256, (height, 37), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(a).save(buffer, "JPEG", quality=60, subsampling=2)
    c = diffjpeg.read(buffer.getvalue())
    assert c.sampling == ((2, 2),)
    expected = np.array(Image.open(io.BytesIO(buffer.getvalue())))
    decoded = diffjpeg.decode(c)
    assert np.array_equal(torch.round(decoded[0] * 255).to(torch.uint8).numpy(), expected)
    assert_same(*both_paths(lambda: diffjpeg.decode(c)))


def test_hostile_coefficients_give_the_tensor_result():
    """Out-of-range values: int16 overflow (the int64 routes), beyond 2**35
    (handed to the tensor stages, which saturate there), fractions;
    infinities and NaN are refused on both paths."""
    g = torch.Generator().manual_seed(5)
    base = torch.randint(-50, 51, (3, 2, 2, 8, 8), generator=g).double()
    base[0, 0, 0, 0, 0] = 40000.0  # dequantized beyond int16
    base[1, 1, 1, 3, 4] = -(2.0**34)
    base[2, 0, 1, 0, 0] = 2.0**40
    base[:, :, :, 5, 5] += 0.5  # rounds half to even
    tables = torch.randint(1, 256, (3, 2, 8, 8), generator=g).double()
    for rows in ([0], [1], [2], [0, 1, 2]):
        y = base[rows]
        c = Coefficients(y=y, cb=y.clone(), cr=y.flip(1).contiguous(), qtables=tables[rows], sampling="4:4:4", size=(13, 16))
        assert_same(*both_paths(lambda: diffjpeg.decode(c)))
    for value in (float("inf"), float("nan")):
        y = base[:1].clone()
        y[0, 1, 0, 2, 2] = value
        c = Coefficients(y=y, cb=y.clone(), cr=y.clone(), qtables=tables[:1], sampling="4:4:4", size=(13, 16))
        for path in (True, False):
            with cpu.enabled(path), pytest.raises(ValueError, match="NaN or Inf"):
                diffjpeg.decode(c)


def test_whole_coefficients_route_takes_plain_cases_only():
    """decode's route straight to the kernel (exact.decode_coefficients)
    takes what needs nothing else, with decode's values, and hands every
    other case to the general path, which checks it and decodes it."""
    c = diffjpeg.encode(torch.rand(2, 3, 21, 30), quality=60)
    direct = exact.decode_coefficients(c)
    assert direct is not None
    assert_same(direct, both_paths(lambda: diffjpeg.decode(c))[1])
    assert_same(exact.decode_coefficients(c, as_uint8=True), torch.round(direct * 255).to(torch.uint8))
    assert_same(exact.decode_coefficients(c.to(torch.float64)), diffjpeg.decode(c.to(torch.float64)))
    gray = diffjpeg.encode(torch.rand(3, 1, 9, 17), quality=30)
    assert_same(exact.decode_coefficients(gray), both_paths(lambda: diffjpeg.decode(gray))[1])
    wants_grad = Coefficients(y=c.y.clone().requires_grad_(), cb=c.cb, cr=c.cr, qtables=c.qtables, sampling=c.sampling, size=c.size)
    assert exact.decode_coefficients(wants_grad) is None
    with torch.no_grad():  # no graph wanted: the kernel alone
        assert_same(exact.decode_coefficients(wants_grad), direct)
    wrong_shape = Coefficients(y=c.y[:, :, :-1], cb=c.cb, cr=c.cr, qtables=c.qtables, sampling=c.sampling, size=c.size)
    assert exact.decode_coefficients(wrong_shape) is None
    with pytest.raises(ValueError, match="component 0 has shape"):
        diffjpeg.decode(wrong_shape)
    # values the kernel declines: the general path's checks raise or its tensor stages decode
    for value in (float("nan"), float("inf")):
        y = c.y.clone()
        y[1, 0, 0, 0, 0] = value
        bad = Coefficients(y=y, cb=c.cb, cr=c.cr, qtables=c.qtables, sampling=c.sampling, size=c.size)
        assert exact.decode_coefficients(bad) is None
        with pytest.raises(ValueError, match="NaN or Inf"):
            diffjpeg.decode(bad)
    unused = torch.cat([c.qtables, torch.full((2, 1, 8, 8), float("nan"))], dim=1)  # a third table no component uses
    spare = Coefficients(y=c.y, cb=c.cb, cr=c.cr, qtables=unused, sampling=c.sampling, size=c.size)
    assert exact.decode_coefficients(spare) is None
    with pytest.raises(ValueError, match="qtables contains NaN"):
        diffjpeg.decode(spare)
    big = c.qtables.clone()
    big[0, 0, 0, 0] = 70000.0  # beyond what the kernel dequantizes exactly: the tensor stages
    large = Coefficients(y=c.y, cb=c.cb, cr=c.cr, qtables=big, sampling=c.sampling, size=c.size)
    assert exact.decode_coefficients(large) is None
    assert_same(*both_paths(lambda: diffjpeg.decode(large)))


def _extreme_blocks(seed: int) -> Coefficients:
    """Blocks that push the inverse DCT to its int16 limits: dequantized
    values up to +-32767 (the most the non-wide path takes), blocks of one
    value, alternating signs, single coefficients, halves; pass 1 saturates
    on many."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(-32767, 32768, (1, 6, 6, 8, 8), generator=g).double()
    y[0, 0, 0] = 32767.0
    y[0, 0, 1] = -32767.0
    y[0, 0, 2] = 32767.0 * (torch.arange(64).reshape(8, 8) % 2 * 2 - 1)
    y[0, 0, 3] = torch.where(torch.rand(8, 8, generator=g) < 0.5, 32767.0, -32767.0)
    y[0, 0, 4] = 0.0
    y[0, 0, 4, 3, 5] = -32767.0
    y[0, 0, 5] = (torch.arange(64).reshape(8, 8) - 31.5) * 3  # halves: rounded to even
    y[0, 1] = torch.randint(-300, 301, (6, 8, 8), generator=g).double()  # ordinary values beside them
    y[0, 2] = torch.randint(-8191, 8192, (6, 8, 8), generator=g).double()  # the matrix form's limit ...
    y[0, 3, 0] = 8191.0  # ... with pass-1 results beyond 16383: pass 2 as the SIMD butterflies
    y[0, 3, 1] = 0.0
    y[0, 3, 1, 0, 0] = -8191.0
    y[0, 3, 2] = 8191.0 * (torch.arange(64).reshape(8, 8) % 3 - 1)
    small = torch.randint(-2000, 2001, (1, 3, 3, 8, 8), generator=g).double()
    tables = torch.stack([torch.ones(8, 8), torch.randint(1, 17, (8, 8), generator=g).float()])[None]
    return Coefficients(y=y.float(), cb=small.float(), cr=(-small).float(), qtables=tables, sampling="4:2:0", size=(45, 48))


def test_inverse_dct_limits_equal_tensor_stages():
    """The kernel's inverse DCT (AVX2's 16-bit multiply-adds where the CPU
    has them) saturates exactly where libjpeg-turbo's SIMD code does."""
    for seed in range(3):
        c = _extreme_blocks(seed)
        assert_same(*both_paths(lambda: diffjpeg.decode(c)))


def test_color_conversion_over_the_chroma_plane_equals_tensor_stages():
    """Flat blocks (DC only, table 1: level 128 + DC / 8) put every 5th Cb
    and Cr level beside each other and Y from 0 to 255: the kernel's color
    conversion (AVX2's 16-bit form where the CPU has it) clamps and rounds
    as the tensor stages do, at both ends."""
    levels = torch.tensor(list(range(0, 256, 5)) + [255])
    n = len(levels)
    cb, cr = torch.meshgrid(levels, levels, indexing="ij")
    y = (torch.arange(n * n).reshape(n, n) * 37) % 256
    blocks = torch.zeros(3, n, n, 8, 8)
    for component, level in enumerate((y, cb, cr)):
        blocks[component, :, :, 0, 0] = 8.0 * (level - 128)
    c = Coefficients(y=blocks[0], cb=blocks[1], cr=blocks[2], qtables=torch.ones(2, 8, 8), sampling="4:4:4", size=(8 * n, 8 * n - 3))
    fast, slow = both_paths(lambda: diffjpeg.decode(c))
    assert_same(fast, slow)
    assert set(torch.round(fast * 255).unique().tolist()) >= {0.0, 255.0}


def _decoded_digest() -> str:
    """sha256 of the kernel's decodes of ordinary and extreme blocks."""
    import hashlib

    c = diffjpeg.encode(torch.rand(2, 3, 37, 50, generator=torch.Generator().manual_seed(1)), quality=90)
    out = [diffjpeg.decode(c), diffjpeg.decode(c[0].to(torch.float64))] + [diffjpeg.decode(_extreme_blocks(s)) for s in range(3)]
    return hashlib.sha256(b"".join(o.numpy().tobytes() for o in out)).hexdigest()


def test_avx2_intrinsics_and_portable_kernel_agree():
    """DIFFJPEG_NO_INTRINSICS=1 makes the kernel take its portable inverse DCT
    and color conversion: they give the same samples, byte for byte, on
    ordinary and extreme blocks."""
    code = ("import sys; sys.path.insert(0, '.'); from diffjpeg.backends import _native; from tests.backends.test_exact import _decoded_digest; "
            "print(_native.intrinsics, _decoded_digest())")
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root,
                         env={**os.environ, "DIFFJPEG_NO_INTRINSICS": "1"})
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["0", _decoded_digest()]


def test_large_outputs_are_prepared_and_threads_agree():
    """Outputs from exact.PREPARED_BYTES on are given huge pages and faulted
    in before the threads start (_native.prepare); the values are the same
    on one thread and on several, and prepare takes writable buffers only."""
    from diffjpeg.backends import _native

    c = diffjpeg.encode(torch.rand(3, 3, 512, 512, generator=torch.Generator().manual_seed(4)), quality=85)
    assert 3 * 3 * 512 * 512 * 4 >= exact.PREPARED_BYTES
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = diffjpeg.decode(c)
        torch.set_num_threads(3)
        assert torch.equal(diffjpeg.decode(c), one)
    finally:
        torch.set_num_threads(threads)
    assert_same(one[1:2], both_paths(lambda: diffjpeg.decode(c[1:2]))[1])
    assert _native.prepare(bytearray(8 << 20)) is None
    with pytest.raises((TypeError, BufferError)):
        _native.prepare(bytes(16))


def test_non_integer_tables_decode_on_tensor_stages():
    x = torch.rand(1, 3, 16, 16)
    c = diffjpeg.encode(x, qtables=torch.full((2, 8, 8), 7.3), mode="float")
    assert not torch.equal(c.qtables, c.qtables.round())
    assert_same(*both_paths(lambda: diffjpeg.decode(c)))


def test_mixed_component_dtypes():
    c = diffjpeg.encode(torch.rand(2, 3, 16, 24), quality=40)
    mixed = Coefficients(y=c.y.double(), cb=c.cb, cr=c.cr, qtables=c.qtables, sampling=c.sampling, size=c.size)
    assert_same(*both_paths(lambda: diffjpeg.decode(mixed)))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("subsampling", ["4:4:4", "4:2:2", "4:2:0"])
@pytest.mark.parametrize("rounding", diffjpeg.ROUNDINGS)
def test_gradients_equal_tensor_stages(dtype, subsampling, rounding):
    """With gradients the kernel gives the values and the real stages the
    graph; the values are the tensor stages' bit for bit, the gradients
    (image, quality, tables) theirs to rounding (the quantizer's loop
    computes the surrogate's derivative and sums the tables' gradient its
    own way, diffjpeg/backends/_quantize.c)."""
    g = torch.Generator().manual_seed(len(subsampling) + len(rounding))
    x0 = torch.rand(2, 3, 21, 30, generator=g, dtype=dtype)
    t0 = torch.rand(2, 8, 8, generator=g, dtype=dtype) * 40 + 1
    weights = torch.randn(2, 3, 21, 30, generator=g, dtype=dtype)

    def run():
        x = x0.clone().requires_grad_()
        q = torch.tensor([20.4, 77.0], dtype=dtype, requires_grad=True)
        t = t0.clone().requires_grad_()
        y = diffjpeg.jpeg(x, quality=q, qtables=t, subsampling=subsampling, rounding=rounding)
        assert y.requires_grad
        (y * weights).sum().backward()
        return y.detach(), x.grad, q.grad, t.grad

    fast, slow = both_paths(run)
    assert_same(fast[0], slow[0])
    for a, b in zip(fast[1:], slow[1:]):
        assert_close_to_rounding(a, b)


def test_coefficient_gradients_equal_tensor_stages():
    """Optimizing in the JPEG domain: gradients to the coefficients and the tables of decode."""
    c0 = diffjpeg.encode(torch.rand(2, 3, 19, 26), quality=45)

    def run():
        y, cb, cr, t = (v.clone().requires_grad_() for v in (c0.y, c0.cb, c0.cr, c0.qtables))
        out = diffjpeg.decode(Coefficients(y=y, cb=cb, cr=cr, qtables=t, sampling=c0.sampling, size=c0.size))
        (out * torch.linspace(-1, 1, out.numel()).reshape(out.shape)).sum().backward()
        return torch.cat([out.detach().flatten()] + [v.grad.flatten() for v in (y, cb, cr, t)])

    assert_same(*both_paths(run))


@pytest.mark.parametrize("strip", [1, 2, 3])
@pytest.mark.parametrize("subsampling", ["4:4:4", "4:2:2", "4:2:0"])
def test_strips_of_mcu_rows_join_seamlessly(strip, subsampling, monkeypatch):
    """Images are cut into strips of MCU rows; with strips of 1 to 3 MCU rows
    every seam (and every fancy-upsampling context row across one) is tested
    on heights around multiples of 8 and 16."""
    monkeypatch.setattr(exact, "STRIP_MCU_ROWS", strip)
    for height in (1, 7, 8, 9, 15, 16, 17, 31, 33, 47, 64, 65, 97):
        x = image((2, 3, height, 13), torch.float32, seed=height)
        c_fast, c_slow = both_paths(lambda: diffjpeg.encode(x, quality=70, subsampling=subsampling))
        assert_same(c_fast, c_slow)
        assert_same(*both_paths(lambda: diffjpeg.decode(c_fast)))
        assert_same(*both_paths(lambda: diffjpeg.jpeg((x * 255).round().to(torch.uint8), quality=70, subsampling=subsampling)))


@pytest.mark.parametrize("sampling", [((1, 2), (1, 1), (1, 1)), ((2, 2), (1, 2), (2, 1))])
def test_strips_with_vertical_only_sampling(sampling, monkeypatch):
    monkeypatch.setattr(exact, "STRIP_MCU_ROWS", 1)
    g = torch.Generator().manual_seed(13)
    size = (45, 21)
    max_factors = (max(h for h, _ in sampling), max(v for _, v in sampling))
    comps = [torch.randint(-30, 31, (1, *component_geometry(size, f, max_factors).blocks, 8, 8), generator=g).float() for f in sampling]
    c = Coefficients(y=comps[0], cb=comps[1], cr=comps[2], qtables=torch.full((1, 2, 8, 8), 3.0), sampling=sampling, size=size)
    assert_same(*both_paths(lambda: diffjpeg.decode(c)))


def test_one_large_image_is_shared_among_threads(set_threads):
    """A single image's strips go to different threads; the result is the same."""
    set_threads(3)
    x = image((1, 3, 403, 77), torch.float32, seed=4)
    assert_same(*both_paths(lambda: diffjpeg.jpeg(x, quality=55)))


def test_threads_do_not_change_results(set_threads):
    x = image((7, 3, 40, 33), torch.float32, seed=9)
    set_threads(1)
    one = diffjpeg.jpeg(x, quality=35)
    set_threads(3)
    assert torch.equal(one, diffjpeg.jpeg(x, quality=35))


def test_concurrent_callers_get_their_own_results(set_threads):
    """Several user threads calling at once share the kernel's pool safely."""
    from concurrent.futures import ThreadPoolExecutor

    inputs = [image((3, 3, 40 + 8 * k, 24), torch.float32, seed=20 + k) for k in range(6)]
    serial = [diffjpeg.jpeg(x, quality=40 + k) for k, x in enumerate(inputs)]
    set_threads(2)
    with ThreadPoolExecutor(4) as pool:
        parallel = list(pool.map(lambda k: diffjpeg.jpeg(inputs[k], quality=40 + k), range(6)))
    for a, b in zip(serial, parallel):
        assert torch.equal(a, b)


@pytest.mark.parametrize("mode", ["exact", "float", "soft"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_range_check_read_by_the_kernel_equals_the_tensor_check(dtype, mode, set_threads):
    """The compiled first pass (the kernel; float's and soft's scaling loop)
    checks the image's values as it reads them (the range check's own pass
    is saved); wherever a bad value lies (any image, channel, strip and
    thread's share), the same ValueError as the tensor path's, with or
    without a gradient; the range's own ends are accepted."""
    set_threads(3)
    low, high = diffjpeg.core.check.FLOAT_IMAGE_RANGE
    base = image((3, 3, 83, 29), dtype, seed=31)
    spots = [(0, 0, 0, 0), (2, 2, 82, 28), (1, 1, 40, 13), (2, 0, 70, 3), (0, 2, 17, 27)]
    def beyond(end, direction):  # the next value of dtype past the range's end
        return torch.nextafter(torch.tensor(end, dtype=dtype), torch.tensor(direction, dtype=dtype)).item()

    outside = [float("nan"), float("inf"), -float("inf"), beyond(high, 3.0), beyond(low, -3.0), 255.0, -1.5]
    for value in outside:
        for spot in spots:
            x = base.clone()
            x[spot] = value
            for grad in (False, True):
                errors = []
                for on in (True, False):
                    with cpu.enabled(on), pytest.raises(ValueError) as error:
                        diffjpeg.jpeg(x.clone().requires_grad_(grad), quality=50, mode=mode)
                    errors.append(str(error.value))
                assert errors[0] == errors[1], (value, spot, grad)
    x = base.clone()
    x[0, 0, 0, 0], x[2, 2, 82, 28] = low, high
    fast, slow = both_paths(lambda: diffjpeg.encode(x, quality=50, mode=mode).y)
    if mode == "soft":  # the surrogate's values from the quantizer's loop (_quantize.c): to rounding
        assert_close_to_rounding(fast, slow)
    else:
        assert_same(fast, slow)


def _child(queue):
    torch.set_num_threads(2)
    queue.put(diffjpeg.jpeg(torch.full((4, 3, 8, 8), 0.5), quality=50).sum().item())


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
def test_forked_child_can_use_the_thread_pool(set_threads):
    """A child forked after the pool started would otherwise wait forever on it."""
    set_threads(2)
    expected = diffjpeg.jpeg(torch.full((4, 3, 8, 8), 0.5), quality=50).sum().item()  # starts the pool here
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_child, args=(queue,))
    child.start()
    child.join(timeout=60)
    alive = child.is_alive()
    if alive:
        child.kill()
    assert not alive, "the forked child hung"
    assert child.exitcode == 0
    assert queue.get(timeout=5) == expected


def test_environment_variable_turns_it_off():
    code = "import diffjpeg.backends.exact as n; print(n.compiled(), n.available())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, "DIFFJPEG_NATIVE": "0"})
    assert out.stdout.split() == ["True", "False"]


def _good_calls():
    """Keyword arguments of a valid encode and decode of one 8 x 8 RGB image."""
    from diffjpeg.core.geometry import component_geometry

    _, geometry = exact.layout(1, 8, (component_geometry((8, 8), (1, 1), (1, 1)),) * 3)
    blocks = tuple(np.zeros((1, 1, 1, 8, 8), np.float32) for _ in range(3))
    common = dict(count=1, height=8, width=8, tables=np.ones((1, 3 * 64), np.int32), geometry=geometry, items=np.array([[0, 0, 1]], np.int32),
                  plane_stride=64, sample_stride=1)
    encode = dict(common, image=np.zeros((1, 3, 8, 8), np.uint8), image_kind=0, blocks=blocks, blocks_kind=1, dct=None, constants=exact._constants(False),
                  within=None)
    decode = dict(common, image=np.zeros((1, 3, 8, 8), np.float32), image_kind=1, blocks=blocks, blocks_kind=1, constants=exact._constants(True),
                  tables=np.ones((1, 3 * 64)), convert=1, invert=0)  # decode's tables: float64, rounded there
    return encode, decode


def test_kernel_rejects_bad_calls():
    """The kernel checks what it is given, whoever calls it: every argument,
    by keyword only; buffer sizes (without overflow), kinds, geometry, tables, items."""
    from diffjpeg.backends import _native
    from diffjpeg.core.geometry import component_geometry

    encode, decode = _good_calls()
    assert _native.encode(**encode) is True
    assert _native.decode(**decode) is True
    geometry, outs = encode["geometry"], encode["blocks"]

    def refuses(fn, good, error, match, **changes):
        with pytest.raises(error, match=match):
            fn(**{**good, **changes})

    with pytest.raises(TypeError):
        _native.encode(*encode.values())
    for call, good in ((_native.encode, encode), (_native.decode, decode)):
        with pytest.raises(TypeError, match="required"):
            call(**{k: v for k, v in good.items() if k != "items"})
        refuses(call, good, TypeError, "keyword", colour=1)
        refuses(call, good, ValueError, "image", image=good["image"][:, :2].copy())
        refuses(call, good, ValueError, "image", image=good["image"], count=2, items=np.array([[1, 0, 1]], np.int32))
        refuses(call, good, ValueError, "image", plane_stride=65)  # planes further apart than the buffer holds
        refuses(call, good, ValueError, "bad arguments", plane_stride=63)  # planes overlapping
        refuses(call, good, ValueError, "bad arguments", plane_stride=1, sample_stride=2)  # interleaved: as many samples apart as channels
        refuses(call, good, ValueError, "bad arguments", plane_stride=64, sample_stride=3)  # interleaved: the channels 1 apart
        refuses(call, good, ValueError, "bad arguments", sample_stride=0)
        assert call(**{**good, "plane_stride": 1, "sample_stride": 3}) is True  # channels last: the same 192 samples
        refuses(call, good, ValueError, "overflows", plane_stride=2**62)
        refuses(call, good, ValueError, "constants", constants=good["constants"][:-1].copy())
        refuses(call, good, ValueError, "constants", constants=np.concatenate([good["constants"], [0]]).astype(np.int32))
        refuses(call, good, ValueError, "geometry", geometry=geometry[:, :7].copy())  # the old 7-column rows
        refuses(call, good, ValueError, "tables", tables=good["tables"][:, : 2 * 64].copy())
        refuses(call, good, ValueError, "blocks", blocks=outs[:2] + (np.zeros((1, 1, 1, 8, 7), np.float32),))
        refuses(call, good, ValueError, "blocks", blocks_kind=2)  # float64 blocks in float32 buffers
        for column, value in ((0, 3), (1, 0), (2, 9), (3, 3), (4, 2), (5, 0), (6, 7), (7, 16)):
            bad = geometry.copy()
            bad[1, column] = value
            refuses(call, good, ValueError, "bad geometry", geometry=bad)
        for changes in ({"image_kind": 5}, {"blocks_kind": 0}, {"blocks": outs[:2]}, {"blocks": list(outs)}, {"count": -1},
                        {"height": 0}, {"width": 2**28 + 1}):
            refuses(call, good, ValueError, "bad arguments", **changes)
        # sizes whose products would wrap round past 2**64 to a small number
        refuses(call, good, ValueError, "overflows", count=2**30, height=2**28, width=2**28, plane_stride=2**56)
        for bad in ([[1, 0, 1]], [[0, 0, 2]], [[0, 1, 1]], [[-1, 0, 1]]):
            refuses(call, good, ValueError, "items", items=np.array(bad, np.int32))
    # written buffers must be writable; read ones need not be
    refuses(_native.encode, encode, BufferError, None, blocks=tuple(o.copy() for o in outs[:2]) + (b"x" * 256,))
    refuses(_native.decode, decode, BufferError, None, image=b"x" * (3 * 64 * 4))
    assert _native.encode(**{**encode, "image": bytes(3 * 64)}) is True
    # within: a (lo, hi) pair, lo <= hi
    refuses(_native.encode, encode, TypeError, None, within=0.5)
    refuses(_native.encode, encode, TypeError, None, within=(0.0,))
    refuses(_native.encode, encode, ValueError, "bad arguments", within=(1.0, 0.0))
    refuses(_native.encode, encode, ValueError, "bad arguments", within=(float("nan"), 1.0))
    # decode declines tables it cannot take exactly (the tensor path decodes those); it rounds the others
    for bad in (np.nan, np.inf, 65535.5 + 1, -65537.0):
        tables = decode["tables"].copy()
        tables[0, 70] = bad
        assert _native.decode(**{**decode, "tables": tables}) is False
    assert _native.decode(**{**decode, "tables": decode["tables"] * 65535.4}) is True
    refuses(_native.encode, encode, ValueError, "1..255", tables=encode["tables"] * 0)
    refuses(_native.encode, encode, ValueError, "1..255", tables=encode["tables"] * 256)
    refuses(_native.encode, encode, ValueError, "bad arguments", dct=outs[:2])
    refuses(_native.encode, encode, ValueError, "dct", dct=outs[:2] + (np.zeros(3, np.float32),))
    refuses(_native.encode, encode, BufferError, None, dct=outs[:2] + (b"x" * 256,))
    # decode's color steps: YCbCr to RGB needs three channels; invert names existing channels; encode takes 1 or 3
    for changes in ({"convert": 2}, {"convert": -1}, {"invert": 8}, {"invert": -1}):
        refuses(_native.decode, decode, ValueError, "bad arguments", **changes)
    four = dict(geometry=exact.layout(1, 8, (component_geometry((8, 8), (1, 1), (1, 1)),) * 4)[1], tables=np.ones((1, 4 * 64)),
                blocks=outs + outs[:1])
    assert _native.decode(**{**decode, **four, "image": np.zeros((1, 4, 8, 8), np.float32), "invert": 15}) is True
    refuses(_native.encode, encode, ValueError, "bad arguments", **four, image=np.zeros((1, 4, 8, 8), np.uint8))
    one = dict(geometry=geometry[:1].copy(), tables=np.ones((1, 64)), blocks=outs[:1], image=np.zeros((1, 1, 8, 8), np.float32))
    assert _native.decode(**{**decode, **one, "convert": 0}) is True
    refuses(_native.decode, decode, ValueError, "bad arguments", **one)
