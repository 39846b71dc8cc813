"""The exact decoder's Triton kernels (diffjpeg/backends/gpu_decoder.py) on
the CPU, through Triton's interpreter: bit for bit the values of exact
mode's integer stages (``_decode_integers`` and the conversion to the output
dtype) as CUDA tensors take them (``fits_int16`` is ``False`` off the CPU:
the wrapping dequantization and the SIMD butterflies, forced here on the CPU
reference), and Pillow's pixels for Pillow's and libjpeg's files. Each check
runs in a process of its own with ``TRITON_INTERPRET=1`` (tests/backends/interpreter.py)."""
import os
import textwrap

import pytest
import torch

from tests.backends.interpreter import interpreted as run_interpreted

pytest.importorskip("triton")

# the reference as CUDA tensors compute it, and coefficients for any sampling
PRELUDE = """
import contextlib, io
import numpy as np, torch
from PIL import Image
import diffjpeg
from diffjpeg.backends import gpu_decoder
from diffjpeg.codec.pipeline import _decode_integers
from diffjpeg.core import dispatch
from diffjpeg.core.geometry import geometries
from diffjpeg.core.precision import levels_to_unit
from diffjpeg.stages import dct, quantize
from tests.helpers import pillow_file, skimage_crop

@contextlib.contextmanager
def as_on_cuda():
    saved = dct.fits_int16, quantize.fits_int16
    dct.fits_int16 = quantize.fits_int16 = lambda *args, **kwargs: False
    try:
        with dispatch.using("torch"):
            yield
    finally:
        dct.fits_int16, quantize.fits_int16 = saved

def reference(components, tables, geos, size, color_space, dtype):
    with as_on_cuda():
        samples, ycc = _decode_integers(components, tables, geos, size, None, color_space)
    return (samples.to(torch.uint8) if dtype == torch.uint8 else levels_to_unit(samples, dtype)), ycc

def check(components, tables, geos, size, color_space, dtype, **options):
    got, ycc = gpu_decoder.decode(components, tables, geos, size, dtype, color_space, with_ycc=True, **options)
    want, want_ycc = reference(components, tables, geos, size, color_space, dtype)
    assert got.dtype == dtype and torch.equal(got, want), (size, [g.factors for g in geos], dtype)
    assert (ycc is None and want_ycc is None) or torch.equal(ycc, want_ycc)
    return got

def from_file(data, dtype):
    c = diffjpeg.read(data)
    components = [t.reshape(1, *t.shape[-4:]) for t in c.components]
    got = check(components, c.component_qtables().reshape(1, -1, 8, 8), c.geometries(), c.size, c.color_space, dtype)
    if dtype == torch.uint8:
        pixels = got[0].permute(1, 2, 0).squeeze(-1).numpy()
        assert np.array_equal(pixels, np.asarray(Image.open(io.BytesIO(data)))), c.size

def handmade(sampling, size, seed=0):
    # smooth random coefficients for any sampling factors, as libjpeg writes them
    rng = np.random.default_rng(seed)
    blocks = []
    for geo in geometries(size, sampling):
        b = rng.normal(0, 1, geo.blocks + (8, 8)) * 24 / (1 + np.add.outer(np.arange(8), np.arange(8)))[None, None] ** 1.5
        b[..., 0, 0] = rng.integers(-25, 25, geo.blocks)
        blocks.append(torch.tensor(np.round(b), dtype=torch.float32))
    return diffjpeg.Coefficients(*blocks, qtables=torch.full((2, 8, 8), 4.0), sampling=sampling, size=size)

def wild(geos, batch, dtype, g):
    # coefficients of every magnitude up to 1e5 (products wrap modulo 2**16),
    # half of them fractional or halves (rounded half to even), a row of blocks
    # with rows 1-7 zero (the shortcut, whose DC << 2 may wrap)
    out = []
    for geo in geos:
        magnitude = 10.0 ** torch.randint(0, 6, (batch,) + geo.blocks + (1, 1), generator=g)
        x = torch.randn((batch,) + geo.blocks + (8, 8), generator=g) * magnitude
        x = torch.where(torch.rand(x.shape, generator=g) < 0.5, torch.round(x * 2) / 2, x)
        x[:, 0, :, 1:, :] = 0
        out.append(x.round().to(dtype) if dtype == torch.int32 else x.to(dtype))
    return out
"""


def interpreted(script: str) -> str:
    """``script`` after the prelude, under Triton's interpreter."""
    return run_interpreted(PRELUDE + textwrap.dedent(script))


def test_files_decode_to_the_integer_stages_and_pillows_pixels():
    """Pillow's files at 1x1, 2x2 (no fancy filter at width <= 2), 7x9,
    17x33 and 40x24 (even: the last odd output repeats the edge sample), in
    every subsampling and grayscale, and libjpeg's 4:4:0 (h1v2) files
    written by diffjpeg: the integer stages' values in uint8 and float32,
    and Pillow's pixels."""
    out = interpreted(
        """
        cases = [((1, 1), 2), ((2, 2), 2), ((2, 2), 1), ((7, 9), 0), ((7, 9), 1), ((17, 33), 2), ((40, 24), 2), ((40, 24), 1), ((17, 33), None)]
        for (h, w), subsampling in cases:
            photo = skimage_crop("astronaut" if subsampling is not None else "camera", h, w, 100, 180)
            data = pillow_file(photo, quality=60, **({} if subsampling is None else {"subsampling": subsampling}))
            from_file(data, torch.uint8)
            if (h, w) in ((7, 9), (17, 33)):
                from_file(data, torch.float32)
        for size in ((10, 7), (17, 33)):
            from_file(diffjpeg.write(handmade(((1, 2), (1, 1), (1, 1)), size)), torch.uint8)
        print("ok", len(cases) + 5)
        """
    )
    assert out.split() == ["ok", "14"]


def test_batches_of_any_coefficients_strides_and_samplings():
    """A batch of 2 with coefficients that wrap, round half to even and take
    the shortcut, as float32, float64 and int32, read through strided views;
    4:2:0, 4:2:2, 4:4:0, replication (h4v1, and h2v2 at width 2), luma
    upsampled (chroma at twice its factors), each component with its own
    table; uint8, float32 and float64 outputs, one written into a
    channels-last ``out``; the samples before color conversion too."""
    out = interpreted(
        """
        g = torch.Generator().manual_seed(0)
        cases = [
            (((2, 2), (1, 1), (1, 1)), (17, 33), torch.float32, torch.uint8),
            (((2, 1), (1, 1), (1, 1)), (7, 10), torch.float64, torch.float64),
            (((1, 2), (1, 1), (1, 1)), (10, 7), torch.int32, torch.float32),
            (((4, 1), (1, 1), (1, 1)), (5, 37), torch.float32, torch.float32),
            (((2, 2), (1, 1), (1, 1)), (4, 3), torch.float32, torch.uint8),
            (((1, 1), (2, 2), (2, 2)), (11, 13), torch.float64, torch.uint8),
        ]
        for sampling, size, dtype, out_dtype in cases:
            geos = geometries(size, sampling)
            components = wild(geos, 2, dtype, g)
            components[1] = components[1].transpose(-1, -2).contiguous().transpose(-1, -2)  # column-major blocks
            components[2] = components[2].transpose(0, 1).contiguous().transpose(0, 1)  # batch inside
            tables = torch.randint(1, 300, (2, 3, 8, 8), generator=g).float()
            tables[0, 1] += 0.5  # rounded half to even
            check(components, tables, geos, size, "YCbCr", out_dtype)
        sampling, size = ((2, 2), (1, 1), (1, 1)), (18, 34)
        geos = geometries(size, sampling)
        components, tables = wild(geos, 2, torch.float32, g), torch.randint(1, 100, (2, 3, 8, 8), generator=g).float()
        into = torch.zeros(2, 18, 34, 3, dtype=torch.uint8).permute(0, 3, 1, 2)
        assert check(components, tables, geos, size, "YCbCr", torch.uint8, out=into) is into
        gray = wild(geometries(size, ((1, 1),)), 3, torch.float32, g)
        check(gray, torch.randint(1, 100, (3, 1, 8, 8), generator=g).float(), geometries(size, ((1, 1),)), size, "grayscale", torch.float32)
        check(components, tables, geos, size, "RGB", torch.uint8)
        print("ok", len(cases) + 3)
        """
    )
    assert out.split() == ["ok", "9"]


def test_it_declines_what_it_does_not_compute():
    """A custom matrix, CMYK, and CPU tensors without the interpreter: ``None``."""
    from diffjpeg.backends import gpu_decoder
    from diffjpeg.core.geometry import geometries

    size, sampling = (8, 8), ((1, 1),) * 3
    components, tables = [torch.zeros(1, 1, 1, 8, 8)] * 3, torch.ones(1, 3, 8, 8)
    geos = geometries(size, sampling)
    assert gpu_decoder.decode(components, tables, geos, size, torch.uint8, "YCbCr", torch.eye(3)) is None
    assert gpu_decoder.decode(components + components[:1], torch.ones(1, 4, 8, 8), geometries(size, ((1, 1),) * 4), size, torch.uint8, "CMYK") is None
    if os.environ.get("TRITON_INTERPRET") != "1":  # the device is gpu.decode's to check, as for every kernel module
        from diffjpeg.backends import gpu

        assert gpu.decode(components, tables, geos, size, torch.uint8, "YCbCr") is None


@pytest.mark.slow
def test_every_sampling_and_dtype_sweep():
    """Every component dtype (float16 too, against its float32 values) with
    every sampling the geometry allows up to ratio 4, batch 2."""
    out = interpreted(
        """
        g = torch.Generator().manual_seed(1)
        samplings = [((2, 2), (1, 1), (1, 1)), ((1, 2), (1, 1), (1, 1)), ((4, 1), (1, 1), (1, 1)), ((3, 1), (1, 1), (1, 1)),
                     ((1, 1), (2, 2), (2, 2)), ((2, 2), (1, 2), (2, 1)), ((4, 2), (1, 1), (1, 1)), ((2, 1), (1, 1), (1, 1))]
        count = 0
        for sampling in samplings:
            for size in ((1, 1), (4, 3), (19, 21), (3, 70)):
                geos = geometries(size, sampling)
                for dtype in (torch.float32, torch.float64, torch.int32, torch.float16):
                    components = wild(geos, 2, dtype, g)
                    if dtype == torch.float16:
                        components = [c.clamp(-6e4, 6e4) for c in components]
                    tables = torch.randint(1, 300, (2, 3, 8, 8), generator=g).float()
                    got = gpu_decoder.decode(components, tables, geos, size, torch.uint8, "YCbCr")
                    want, _ = reference([c.float() if c.dtype == torch.float16 else c for c in components], tables, geos, size, "YCbCr", torch.uint8)
                    assert torch.equal(got, want), (sampling, size, dtype)
                    count += 1
        print("ok", count)
        """
    )
    assert out.split() == ["ok", "128"]
