"""The GPU kernels (diffjpeg/backends/gpu_kernels.py) on the CPU, through
Triton's interpreter: the same values as the tensor forms they replace, bit
for bit. The interpreter must be switched on before Triton builds a kernel,
so each check runs in a fresh process with ``TRITON_INTERPRET=1``. Without
Triton (the CPU build of torch does not ship it; the test extra installs
it on Linux) they skip; CI never needs a GPU."""
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

pytest.importorskip("triton")
ROOT = Path(__file__).resolve().parents[2]


def interpreted(script: str) -> str:
    run = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)], cwd=ROOT, capture_output=True, text=True, timeout=300,
        env={**os.environ, "TRITON_INTERPRET": "1", "PYTHONPATH": str(ROOT)},
    )
    assert run.returncode == 0, run.stderr[-3000:]
    return run.stdout


def test_the_inverse_dct_kernel_is_the_simd_form():
    """Ordinary blocks, every int16 value (the 16-bit sums wrap), the
    shortcut (rows 1-7 zero), and a shortcut decided by the quantized block
    while the dequantized one differs: equal to dct._simd_pass's model."""
    out = interpreted(
        """
        import torch
        from diffjpeg.backends import gpu
        from diffjpeg.stages import dct
        g = torch.Generator().manual_seed(0)
        ordinary = torch.randint(-300, 301, (130, 8, 8), generator=g, dtype=torch.int32)
        wrapping = torch.randint(-32768, 32768, (70, 8, 8), generator=g, dtype=torch.int32)
        short = torch.zeros(70, 8, 8, dtype=torch.int32)
        short[:, 0] = torch.randint(-32768, 32768, (70, 8), generator=g, dtype=torch.int32)
        quantized = short.clone()
        short[::2, 3, 5] = 7  # dequantized rows 1-7 not zero, the quantized ones are: the shortcut still holds
        cases = [(ordinary, None), (wrapping, None), (short, None), (short, quantized), (ordinary[:0], None)]
        for x, q in cases:
            got = gpu.idct_islow(x, q)
            assert got is not None and torch.equal(got, dct._idct_simd16(x, q)), (x.shape, q is None)
        print("ok", len(cases))
        """
    )
    assert out.split() == ["ok", "5"]


def test_the_color_kernel_is_jdcolors_integer_conversion():
    out = interpreted(
        """
        import torch
        from diffjpeg.backends import gpu
        from diffjpeg.core import dispatch
        from diffjpeg.stages import color
        g = torch.Generator().manual_seed(1)
        for shape in ((2, 3, 19, 23), (1, 3, 1, 1), (3, 3, 40, 8)):
            x = torch.randint(0, 256, shape, generator=g, dtype=torch.int32)
            got = gpu.ycbcr_to_rgb_fixed(x)
            with dispatch.using("torch"):
                want = color.ycbcr_to_rgb_fixed(x)
            assert got is not None and torch.equal(got, want), shape
        print("ok")
        """
    )
    assert out.split() == ["ok"]


def test_exact_decode_through_the_kernels_gives_pillows_pixels():
    """decode(backend="triton") takes the kernels from the idct_islow slot
    for every component and the color slot for every image (and nothing of
    the C backend): Pillow's pixels."""
    out = interpreted(
        """
        import io
        import numpy as np, torch
        from PIL import Image
        import diffjpeg
        from diffjpeg.backends import gpu
        from diffjpeg.core import dispatch
        from tests.helpers import skimage_crop
        taken = []
        def counted(kernel):
            def run(*args):
                out = kernel(*args)
                taken.append((kernel.__name__, out is not None))
                return out
            return run
        dispatch._kernels["idct_islow"] = (("triton", counted(gpu.idct_islow)),)
        dispatch._kernels["ycbcr_to_rgb_fixed"] = (("triton", counted(gpu.ycbcr_to_rgb_fixed)),)
        for subsampling in (0, 1, 2):
            buffer = io.BytesIO()
            Image.fromarray(skimage_crop("astronaut", 37, 53, 100, 180)).save(buffer, "JPEG", quality=60, subsampling=subsampling)
            y = diffjpeg.decode(diffjpeg.read(buffer.getvalue()), dtype=torch.uint8, backend="triton")
            assert np.array_equal(y.permute(1, 2, 0).numpy(), np.asarray(Image.open(buffer)))
        print("ok", all(t for _, t in taken), sum(n == "idct_islow" for n, _ in taken), sum(n == "ycbcr_to_rgb_fixed" for n, _ in taken))
        """
    )
    assert out.split() == ["ok", "True", "9", "3"]


def test_without_the_interpreter_cpu_tensors_stay_on_the_tensor_path():
    from diffjpeg.backends import gpu

    if os.environ.get("TRITON_INTERPRET") == "1":
        pytest.skip("run under the interpreter")
    assert not gpu.applies(torch.zeros(1, 8, 8, dtype=torch.int32))
    assert gpu.idct_islow(torch.zeros(1, 8, 8, dtype=torch.int32)) is None
