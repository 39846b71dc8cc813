"""The GPU kernels (diffjpeg/backends/gpu_kernels.py) on the CPU, through
Triton's interpreter: the same values as the tensor forms they replace, bit
for bit. The interpreter must be switched on before Triton builds a kernel,
so each check runs in a process of its own with ``TRITON_INTERPRET=1``
(tests/backends/interpreter.py). Without
Triton (the CPU build of torch does not ship it; the test extra installs
it on Linux) they skip; CI never needs a GPU."""
import os

import pytest
import torch

from tests.backends.interpreter import interpreted

pytest.importorskip("triton")


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


def test_exact_mode_through_the_fused_codec_gives_pillows_pixels():
    """jpeg(backend="triton") in exact mode: the fused encoder and decoder
    kernels, once each per call, nothing of the C backend, and Pillow's
    pixels for uint8 and float inputs at every subsampling; with a gradient,
    the same values as the tensor stages and their gradient to rounding. decode() of
    Pillow's file takes the fused decoder, and with a learned matrix (which
    the fused decoder declines) the inverse DCT's slot kernel."""
    out = interpreted(
        """
        import io
        import numpy as np, torch
        from PIL import Image
        import diffjpeg
        from diffjpeg.backends import gpu
        from diffjpeg.core import dispatch
        from diffjpeg.stages.color import ycbcr_to_rgb_matrix
        from tests.helpers import assert_close_to_rounding, skimage_crop
        taken = []
        def counted(name, kernel):
            def run(*args, **kwargs):
                result = kernel(*args, **kwargs)
                taken.append((name, result is not None))
                return result
            return run
        gpu.encode, gpu.decode = counted("encode", gpu.encode), counted("decode", gpu.decode)
        dispatch._kernels["idct_islow"] = (("triton", counted("idct", gpu.idct_islow)),)
        array = skimage_crop("astronaut", 37, 53, 100, 180)
        u8 = torch.from_numpy(array).permute(2, 0, 1).contiguous()
        for subsampling in (0, 1, 2):
            buffer = io.BytesIO()
            Image.fromarray(array).save(buffer, "JPEG", quality=60, subsampling=subsampling)
            pillow = torch.from_numpy(np.asarray(Image.open(buffer)).copy()).permute(2, 0, 1)
            taken.clear()
            y = diffjpeg.jpeg(u8, 60, subsampling=subsampling, backend="triton")
            assert torch.equal(y, pillow) and taken == [("encode", True), ("decode", True)], (subsampling, taken)
            if subsampling == 2:  # a float image reaches the same kernels (the encoder's float read: test_gpu_encoder.py)
                y = diffjpeg.jpeg(u8.float() / 255, 60, subsampling=subsampling, backend="triton")
                assert torch.equal(torch.round(y * 255), pillow.float()), subsampling
            y = diffjpeg.decode(diffjpeg.read(buffer.getvalue()), dtype=torch.uint8, backend="triton")
            assert torch.equal(y, pillow), subsampling
        x = (u8[None].float() / 255).requires_grad_()
        grads = {}
        for backend in ("triton", "torch"):
            taken.clear()
            y = diffjpeg.jpeg(x, 60, backend=backend)
            grads[backend] = (y.detach(), torch.autograd.grad((y * torch.linspace(0, 1, y.numel()).reshape(y.shape)).sum(), x)[0])
        assert torch.equal(grads["triton"][0], grads["torch"][0])  # the gradient to rounding: the quantizer's kernels (test_gpu_stages.py)
        assert_close_to_rounding(grads["triton"][1], grads["torch"][1])
        taken.clear()
        learned = ycbcr_to_rgb_matrix()
        y = diffjpeg.decode(diffjpeg.read(buffer.getvalue()), ycbcr_to_rgb=learned, backend="triton")
        assert all(name != "decode" for name, _ in taken) and ("idct", True) in taken, taken
        print("ok")
        """
    )
    assert out.split() == ["ok"]


def test_without_the_interpreter_cpu_tensors_stay_on_the_tensor_path():
    from diffjpeg.backends import gpu

    if os.environ.get("TRITON_INTERPRET") == "1":
        pytest.skip("run under the interpreter")
    assert not gpu.applies(torch.zeros(1, 8, 8, dtype=torch.int32))
    assert gpu.idct_islow(torch.zeros(1, 8, 8, dtype=torch.int32)) is None


def test_the_dct_takes_the_fixed_order_where_a_kernel_computes_it(monkeypatch):
    """Off the CPU the DCT is a GEMM unless a kernel of the block_transform
    slot takes the blocks (dispatch.takes, as the GPU's does): then its
    fixed-order form, the CPU's values. On the meta device, with a stand-in
    kernel; backend="torch" allows none, so the GEMM runs."""
    from diffjpeg.core import dispatch
    from diffjpeg.stages import dct

    calls = []

    def kernel(blocks, matrix, shift=None, out=None):  # the slot's signature
        calls.append(blocks.device.type)
        return dct.block_transform(blocks if shift is None else blocks - shift, matrix)

    monkeypatch.setitem(dispatch._kernels, "block_transform", (("triton", kernel),))
    monkeypatch.setitem(dispatch._takes, ("block_transform", "triton"), lambda x: x.device.type == "meta")
    x = torch.zeros(3, 8, 8, device="meta")
    assert dct._separable(x, "orthonormal_2d").shape == x.shape and calls == ["meta"]
    with dispatch.using("torch"):
        assert not dispatch.takes("block_transform", x)
        dct._separable(x, "orthonormal_2d")
    assert calls == ["meta"]
