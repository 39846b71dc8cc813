"""The fused exact codec as custom operators (diffjpeg/backends/gpu_ops.py)
on the CPU through Triton's interpreter (tests/backends/interpreter.py):
under ``torch.compile`` (fullgraph, eager and aot_eager) and under
``torch.func``'s ``vmap`` and ``grad`` the ops run the kernels, with
Pillow's pixels and the eager call's values and gradients bit for bit;
eager calls keep the direct path; ``torch.library.opcheck`` passes on
each op. Without Triton they skip."""
import textwrap

import pytest

from tests.backends.interpreter import interpreted

pytest.importorskip("triton")

# counts the kernel modules' entry points (what the ops' implementations
# call) and the direct path's wrappers; a dynamo backend that records the ops
# in its graphs and runs them eagerly
COUNTING = """
import io
import numpy as np, torch
from PIL import Image
import diffjpeg
from diffjpeg.backends import gpu, gpu_operators, gpu_ops
from tests.helpers import skimage_crop
calls = []
def counted(name, fn):
    def run(*args, **kwargs):
        calls.append(name)
        return fn(*args, **kwargs)
    return run
encoder, decoder = gpu._kernels("gpu_encoder"), gpu._kernels("gpu_decoder")
encoder.encode, decoder.decode = counted("kernel encode", encoder.encode), counted("kernel decode", decoder.decode)
gpu.encode, gpu.decode = counted("direct encode", gpu.encode), counted("direct decode", gpu.decode)
graphs = []
def recording(gm, inputs):
    graphs.append(str(gm.graph))
    return gm.forward
array = skimage_crop("astronaut", 13, 21, 100, 180)
u8 = torch.from_numpy(array).permute(2, 0, 1).contiguous()
def pillow(subsampling, a=array):
    buffer = io.BytesIO()
    Image.fromarray(a).save(buffer, "JPEG", quality=60, subsampling=subsampling)
    return torch.from_numpy(np.asarray(Image.open(buffer)).copy()).permute(2, 0, 1)
KERNELS = ["kernel encode", "kernel decode"]
"""


def test_torch_compile_takes_the_ops_with_pillows_pixels():
    """fullgraph compile (a recording eager backend): uint8 at 4:2:0 and
    float32 at 4:4:4 give Pillow's pixels, the ops in the graph, the
    kernels run by them (not by the direct wrappers)."""
    out = interpreted(COUNTING + textwrap.dedent(COMPILED.format(cases="((2, u8), (0, u8.float() / 255))")))
    assert out.split() == ["ok"]


COMPILED = """
for subsampling, x in {cases}:
    want = pillow(subsampling)
    f = torch.compile(lambda x: diffjpeg.jpeg(x, 60, subsampling=subsampling, backend="triton"), backend=recording, fullgraph=True)
    calls.clear()
    y = f(x)
    got = y if y.dtype == torch.uint8 else torch.round(y * 255).to(torch.uint8)
    assert torch.equal(got, want) and calls == KERNELS, (subsampling, x.dtype, calls)
    assert "diffjpeg.exact_encode" in graphs[-1] and "diffjpeg.exact_decode" in graphs[-1]
print("ok")
"""


@pytest.mark.slow
def test_torch_compile_takes_the_ops_everywhere():
    """The other dtype at each subsampling, and aot_eager with a gradient:
    the values from the ops, the gradient of eager's tensor stages."""
    out = interpreted(COUNTING + textwrap.dedent(COMPILED.format(cases="((0, u8), (2, u8.float() / 255), (1, u8.float().half() / 255))")))
    assert out.split() == ["ok"]
    out = interpreted(
        COUNTING
        + textwrap.dedent(
            """
            x = (u8[None].float() / 255).requires_grad_()
            weight = torch.linspace(0, 1, x.numel()).reshape(x.shape)
            y = diffjpeg.jpeg(x, 60, backend="torch")
            want = (y.detach(), torch.autograd.grad((y * weight).sum(), x)[0])
            calls.clear()
            f = torch.compile(lambda x: diffjpeg.jpeg(x, 60, backend="triton"), backend="aot_eager", fullgraph=True)
            y = f(x)
            grad = torch.autograd.grad((y * weight).sum(), x)[0]
            assert calls == KERNELS, calls
            assert torch.equal(y.detach(), want[0]) and torch.equal(grad, want[1])
            print("ok")
            """
        )
    )
    assert out.split() == ["ok"]


def test_vmap_and_grad_take_the_ops():
    """vmap over a uint8 batch: the batched eager call bit for bit (which
    takes the direct path), through the ops; vmap of grad over a float
    batch: each image's values and autograd's gradient (the tensor stages'
    values and gradient, which the kernels give bit for bit)."""
    out = interpreted(
        COUNTING
        + textwrap.dedent(
            """
            batch = torch.stack([u8, u8.flip(-1)])
            calls.clear()
            want = diffjpeg.jpeg(batch, 60, backend="triton")
            assert calls == ["direct encode", "kernel encode", "direct decode", "kernel decode"], calls  # eagerly: no op
            calls.clear()
            got = torch.func.vmap(lambda x: diffjpeg.jpeg(x, 60, backend="triton"))(batch)
            assert torch.equal(got, want) and calls == KERNELS, calls
            x = batch.float() / 255
            weight = torch.linspace(0, 1, x[0].numel()).reshape(x[0].shape)
            def loss(image, backend="triton"):
                y = diffjpeg.jpeg(image, 60, backend=backend)
                return (y * weight).sum(), y
            leaves = x.clone().requires_grad_()
            values = diffjpeg.jpeg(leaves, 60, backend="torch")
            grads = torch.stack([torch.autograd.grad(loss(leaf, "torch")[0], leaf)[0] for leaf in leaves.unbind()])
            calls.clear()
            got_grads, got_values = torch.func.vmap(torch.func.grad(loss, has_aux=True))(x)
            assert calls == KERNELS, calls
            assert torch.equal(got_values, values.detach()) and torch.equal(got_grads, grads)
            print("ok")
            """
        )
    )
    assert out.split() == ["ok"]


@pytest.mark.slow
def test_vmap_and_grad_take_the_ops_everywhere():
    """vmap of a float batch against the batched eager call, grad alone (to rounding)."""
    out = interpreted(
        COUNTING
        + textwrap.dedent(
            """
            x = torch.stack([u8, u8.flip(-1)]).float() / 255
            want = diffjpeg.jpeg(x, 60, backend="triton")
            calls.clear()
            assert torch.equal(torch.func.vmap(lambda x: diffjpeg.jpeg(x, 60, backend="triton"))(x), want) and calls == KERNELS, calls
            weight = torch.linspace(0, 1, x[0].numel()).reshape(x[0].shape)
            loss = lambda image: (diffjpeg.jpeg(image, 60, backend="triton") * weight).sum()
            leaf = x[0].clone().requires_grad_()
            want = torch.autograd.grad(loss(leaf), leaf)[0]
            calls.clear()
            got = torch.func.grad(loss)(x[0])
            assert calls == KERNELS, calls
            # to rounding: eager takes the quantizer's Triton kernels, a torch.func transform its tensor form
            from tests.helpers import assert_close_to_rounding
            assert_close_to_rounding(got, want)
            print("ok")
            """
        )
    )
    assert out.split() == ["ok"]


OPS = """
import torch
from diffjpeg.backends import gpu, gpu_operators, gpu_ops
g = torch.Generator().manual_seed(0)
image = torch.rand(2, 3, 9, 17, generator=g)
tables = torch.randint(1, 60, (2, 2, 8, 8), generator=g).float()
gray = torch.randint(0, 256, (1, 1, 7, 9), generator=g, dtype=torch.uint8)
each = tables[:, [0, 1, 1]].contiguous()
SAMPLING = [2, 2, 1, 1, 1, 1]
"""


def test_opcheck_passes_on_each_op():
    """torch.library.opcheck (schema, fake implementation, aot dispatch) on
    small inputs: the encoder at 4:2:0 with its DCT, the decoder of
    grayscale; the kernel reads every dtype gpu.encoder_takes lets through;
    eagerly the ops do not apply."""
    out = interpreted(
        OPS
        + textwrap.dedent(
            """
            encoder = gpu._kernels("gpu_encoder")
            assert set(encoder._KINDS) == set(gpu.CODEC_DTYPES)  # what gpu.encoder_takes lets through, the kernel reads
            assert not gpu_ops.applies(image)  # eagerly: the direct path
            torch.library.opcheck(gpu_operators.exact_encode, (image, tables, SAMPLING, torch.float32, True))
            out = gpu_operators.exact_encode(image, tables, SAMPLING, torch.float32, True)
            assert [tuple(o.shape) for o in out] == [(2, 2, 3, 8, 8), (2, 1, 2, 8, 8), (2, 1, 2, 8, 8)] * 2
            blocks = gpu_operators.exact_encode(gray, tables[:1], [1, 1], torch.float32, False)
            torch.library.opcheck(gpu_operators.exact_decode, (blocks, each[:1, :1], [1, 1], [7, 9], torch.float32, "grayscale"))
            print("ok")
            """
        )
    )
    assert out.split() == ["ok"]


@pytest.mark.slow
def test_opcheck_and_the_vmap_rules_everywhere():
    """opcheck on the other cases; the vmap rules against the op called
    image by image, with the vmapped dimension inside and the tables shared
    or batched."""
    out = interpreted(
        OPS
        + textwrap.dedent(
            """
            torch.library.opcheck(gpu_operators.exact_encode, (gray, tables[:1], [1, 1], torch.float64, False))
            quantized = gpu_operators.exact_encode(image, tables, SAMPLING, torch.float32, False)
            for args in ((quantized, each, SAMPLING, [9, 17], torch.uint8, "YCbCr"), (quantized, each, SAMPLING, [9, 17], torch.float32, "RGB")):
                torch.library.opcheck(gpu_operators.exact_decode, args)
            stacked = torch.stack([image, image.flip(-1)], 1)
            for t, dims in ((tables[:1], (1, None)), (torch.stack([tables, tables.flip(0)]), (1, 0))):
                got = torch.func.vmap(lambda x, t: gpu_operators.exact_encode(x, t, SAMPLING, torch.float32, True), in_dims=dims)(stacked, t)
                for k in range(2):
                    want = gpu_operators.exact_encode(stacked[:, k], t if dims[1] is None else t[k], SAMPLING, torch.float32, True)
                    assert all(torch.equal(a[k], b) for a, b in zip(got, want))
            blocks = [torch.stack([q, q.flip(0)], 1) for q in quantized]
            got = torch.func.vmap(lambda c, t: gpu_operators.exact_decode(c, t, SAMPLING, [9, 17], torch.uint8, "YCbCr"), in_dims=(1, None))(blocks, each)
            for k in range(2):
                assert torch.equal(got[k], gpu_operators.exact_decode([b[:, k] for b in blocks], each, SAMPLING, [9, 17], torch.uint8, "YCbCr"))
            print("ok")
            """
        )
    )
    assert out.split() == ["ok"]
