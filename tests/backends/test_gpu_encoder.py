"""The exact encoder's Triton kernel (diffjpeg/backends/gpu_encoder.py) on
the CPU, through Triton's interpreter: the values of the integer stages
(``_encode_integers`` of diffjpeg/codec/pipeline.py) bit for bit, and the
coefficients of Pillow's files. As in test_gpu.py, each check runs in a fresh
process with ``TRITON_INTERPRET=1``; without Triton they skip."""
import textwrap

import pytest

from tests.backends.interpreter import interpreted

pytest.importorskip("triton")

# shared by the scripts: one case against the tensor stages
CHECK = """
import torch
from diffjpeg.backends import gpu_encoder
from diffjpeg.codec.pipeline import _encode_integers
from diffjpeg.core.geometry import geometries, subsampling_factors
from diffjpeg.stages.quality import quality_tables

def check(x, sampling, tables, work=torch.float32, with_dct=True, reference=None):
    geos = geometries(tuple(x.shape[-2:]), sampling)
    got = gpu_encoder.encode(x, tables, geos, work, with_dct)
    assert got is not None, (x.shape, x.dtype, sampling)
    reference = x if reference is None else reference
    if reference.is_floating_point() and reference.dtype != work:
        reference = reference.to(work)  # as the codec casts float16 and bfloat16 before the stages
    want = _encode_integers(reference, tables.expand(x.shape[0], 2, 8, 8), geos, None, work)
    assert len(got[0]) == len(want[0])
    for a, b in zip(got[0], want[0]):
        assert a.dtype == b.dtype and torch.equal(a, b), (x.shape, x.dtype, sampling)
    if with_dct:
        for a, b in zip(got[1], want[1]):
            assert a.dtype == b.dtype and torch.equal(a, b), (x.shape, x.dtype, sampling, "dct")
    else:
        assert got[1] is None
"""


def checked(script: str) -> str:
    """``script`` run by :func:`interpreted` after :data:`CHECK`."""
    return interpreted(CHECK + textwrap.dedent(script))


def test_the_encoder_kernel_is_the_integer_stages():
    """Odd and whole-block sizes under every ratio the encoder offers (h2v1,
    h1v2, h2v2, chroma at full resolution beside subsampled luma), uint8 and
    float images, per-image and shared tables, with and without the DCT."""
    out = checked(
        """
        g = torch.Generator().manual_seed(0)
        samplings = [subsampling_factors(s) for s in ("4:4:4", "4:2:2", "4:2:0")]
        samplings += [((1, 2), (1, 1), (1, 1)), ((2, 2), (1, 2), (1, 2)), ((2, 2), (2, 1), (2, 1))]
        tables = quality_tables(torch.tensor([10.0, 95.0]))
        cases = 0
        for n, (h, w) in enumerate(((1, 1), (7, 9), (8, 8), (17, 33), (40, 24))):
            x = torch.randint(0, 256, (2, 3, h, w), generator=g, dtype=torch.uint8)
            for sampling in samplings[n % 2 :: 2]:  # each at two sizes at least, odd and even
                check(x, sampling, tables)
                cases += 1
            check(x[:, :1], ((1, 1),), tables)  # grayscale
            cases += 1
            if n in (1, 4):
                check(torch.rand(2, 3, h, w, generator=g), samplings[2], tables, with_dct=False)
                cases += 1
        print("ok", cases)
        """
    )
    assert out.split() == ["ok", "22"]


def test_float_images_round_half_to_even_as_torch_round():
    """float32 levels at and around every half (k + 0.5) / 255 and a little
    outside [0, 1]; float16 and bfloat16 read as float32 (ties among them:
    0.5 * 255 = 127.5); float64 images in float64 with float64 outputs;
    channels_last read in place; shared tables."""
    out = checked(
        """
        g = torch.Generator().manual_seed(1)
        k = torch.arange(-3, 259, dtype=torch.float64)
        near = torch.cat([((k + 0.5) / 255).float(), (k / 255).float(), torch.tensor([0.5, -0.01, 1.01, 2.0, -1.0])])
        near = torch.cat([near, torch.nextafter(near, torch.tensor(2.0)), torch.nextafter(near, torch.tensor(-2.0))])
        x = near[torch.randperm(near.numel(), generator=g)][: 2 * 3 * 13 * 20].reshape(2, 3, 13, 20)
        x[0, :, 0, :] = 0.5  # exact ties in every dtype
        tables = quality_tables(torch.tensor([30.0, 80.0]))
        shared = quality_tables(torch.tensor([75.0]))
        sampling = subsampling_factors("4:2:0")
        check(x, sampling, tables)
        check(x, subsampling_factors("4:4:4"), tables)
        check(x[:, :1], ((1, 1),), shared)
        for dtype in (torch.float16, torch.bfloat16):
            check(x.to(dtype), sampling, tables)
        check(x.double(), sampling, tables, work=torch.float64)
        check(x.mul(255).clamp(0, 255).to(torch.uint8), sampling, tables, work=torch.float64)
        last = torch.randint(0, 256, (2, 21, 11, 3), generator=g, dtype=torch.uint8).permute(0, 3, 1, 2)
        assert last.is_contiguous(memory_format=torch.channels_last)
        check(last, subsampling_factors("4:2:2"), tables)
        check(last.float().div(255), subsampling_factors("4:2:0"), shared)
        view = torch.rand(2, 3, 30, 40, generator=g)[:, :, 3:20:2, 5:33:3]  # a strided view
        check(view, subsampling_factors("4:2:0"), tables, reference=view.contiguous())
        # declined: a custom matrix, an integer dtype other than uint8, ratios past 2, two channels
        small = torch.zeros(1, 3, 8, 8, dtype=torch.uint8)
        geos = geometries((8, 8), subsampling_factors("4:2:0"))
        assert gpu_encoder.encode(small, shared, geos, torch.float32, False, matrix=torch.eye(3)) is None
        assert gpu_encoder.encode(small.to(torch.int16), shared, geos, torch.float32, False) is None
        assert gpu_encoder.encode(small, shared, geometries((8, 8), ((4, 1), (1, 1), (1, 1))), torch.float32, False) is None
        assert gpu_encoder.encode(small[:, :2], shared, geos[:2], torch.float32, False) is None
        empty = gpu_encoder.encode(small[:0], shared, geos, torch.float32, True)
        assert [tuple(t.shape) for t in empty[0]] == [(0, 1, 1, 8, 8)] * 3
        print("ok")
        """
    )
    assert out.split() == ["ok"]


def test_the_kernel_gives_the_coefficients_of_pillows_files():
    """Pillow (libjpeg-turbo) saves a photo; the kernel's quantized blocks,
    with the file's tables, are the file's coefficients: color under every
    subsampling, and grayscale."""
    out = interpreted(
        """
        import torch
        import diffjpeg
        from diffjpeg.backends import gpu_encoder
        from diffjpeg.core.geometry import geometries
        from tests.helpers import pillow_file, skimage_crop
        rgb = skimage_crop("astronaut", 37, 53, 100, 180)
        gray = skimage_crop("camera", 29, 43, 200, 100)
        files = [(rgb, dict(quality=q, subsampling=s)) for q, s in ((60, 0), (85, 1), (40, 2))] + [(gray, dict(quality=70))]
        for array, options in files:
            c = diffjpeg.read(pillow_file(array, **options))
            x = torch.from_numpy(array)
            x = x.permute(2, 0, 1)[None] if x.dim() == 3 else x[None, None]
            tables = c.qtables[[0, min(1, c.qtables.shape[0] - 1)]][None]
            got, _ = gpu_encoder.encode(x, tables, geometries(c.size, c.sampling), torch.float32, False)
            stored = [c.y, c.cb, c.cr][: len(got)]
            assert all(torch.equal(a[0], b) for a, b in zip(got, stored)), options
        print("ok", len(files))
        """
    )
    assert out.split() == ["ok", "4"]


@pytest.mark.slow
def test_the_encoder_kernel_sweep():
    """Every ratio at more sizes (several programs per launch, tiles across
    block rows and images), every input dtype, with and without the DCT."""
    out = checked(
        """
        g = torch.Generator().manual_seed(2)
        samplings = [subsampling_factors(s) for s in ("4:4:4", "4:2:2", "4:2:0")]
        samplings += [((1, 2), (1, 1), (1, 1)), ((2, 2), (1, 2), (1, 2)), ((2, 2), (2, 1), (2, 1)), ((1, 1),)]
        tables = quality_tables(torch.tensor([5.0, 35.0, 75.0, 100.0]))
        cases = 0
        for h, w in ((1, 9), (9, 1), (15, 16), (16, 15), (31, 47), (64, 8), (8, 72)):
            base = torch.rand(4, 3, h, w, generator=g)
            for sampling in samplings:
                x = base[:, : len(sampling)]
                for image in (x, x.half(), x.bfloat16(), x.mul(255).round().to(torch.uint8)):
                    check(image, sampling, tables, with_dct=cases % 2 == 0)
                    cases += 1
                check(x.double(), sampling, tables, work=torch.float64)
                cases += 1
        print("ok", cases)
        """
    )
    assert out.split() == ["ok", str(7 * 7 * 5)]
