"""The real-valued stages' Triton kernels (diffjpeg/backends/gpu_stages.py,
gpu_stage_kernels.py) on the CPU, through Triton's interpreter: each slot's
values equal its tensor form's (``torch.equal``, under
``dispatch.using("torch")``), float32 and float64, odd sizes, batches,
strided inputs and ``out=``, but the quantizer's, which agree to the shared
bound; and ``diffjpeg.jpeg`` with ``backend="triton"`` agrees with
``backend="torch"`` forward and backward. The interpreter must be on
before Triton builds a kernel, so each check runs in a process of its own
with ``TRITON_INTERPRET=1`` (tests/backends/interpreter.py)."""
import os
import textwrap

import pytest
import torch

from tests.backends.interpreter import interpreted

pytest.importorskip("triton")


def checked(body: str) -> str:
    """``body`` after the helpers of ``COMMON``, interpreted."""
    return interpreted(COMMON + textwrap.dedent(body))


COMMON = """
import torch
from diffjpeg.backends import gpu_stages as G
from diffjpeg.core import dispatch
from diffjpeg.stages import color, dct, rounding, sampling
g = torch.Generator().manual_seed(0)

def samples(*shape, dtype):
    # integers (float mode's samples) and fractions (soft mode's), some beyond [0, 255]
    x = torch.randint(-20, 280, shape, generator=g).to(dtype)
    return torch.where(torch.rand(shape, generator=g) < 0.5, x, x + torch.rand(shape, generator=g, dtype=dtype))

def same(got, want, *what):
    assert got is not None, ("declined",) + what
    assert got.dtype == want.dtype and torch.equal(got, want), what
"""


def test_the_sampling_kernels_are_the_tensor_forms():
    """downsample, upsample (biased and soft), their adjoints: every factor
    pair, 1x1 to 17x33, batches, a plane viewed in stacked planes, a
    transposed plane, an expanded gradient, and out= into a stacked view."""
    out = checked(
        """
        checks = 0
        for dtype in (torch.float32, torch.float64):
            for fh, fv in ((2, 1), (1, 2), (2, 2)):
                for shape in ((1, 1), (7, 9), (2, 17, 33), (2, 3, 2, 5)):
                    x = samples(*shape, dtype=dtype)
                    big = samples(*shape[:-2], shape[-2] * fv, shape[-1] * fh, dtype=dtype)
                    with dispatch.using("torch"):
                        want = {
                            "up": [sampling._fancy_filter(x, (fh, fv), b) for b in (True, False)],
                            "down": [sampling.downsample(big, fh, fv, m) for m in ("float", "soft")],
                            "up_adjoint": sampling.upsample_adjoint(big.clone(), fh, fv),
                            "down_adjoint": sampling.downsample_adjoint(x, fh, fv),
                        }
                    for b, w in zip((True, False), want["up"]):
                        same(G.upsample(x, fh, fv, b), w, "up", dtype, fh, fv, shape, b)
                    for b, w in zip((True, False), want["down"]):
                        same(G.downsample(big, fh, fv, b), w, "down", dtype, fh, fv, shape, b)
                    same(G.upsample_adjoint(big, fh, fv), want["up_adjoint"], "up_adjoint", dtype, fh, fv, shape)
                    same(G.downsample_adjoint(x, fh, fv), want["down_adjoint"], "down_adjoint", dtype, fh, fv, shape)
                    checks += 6
        # tiles across both sides of a plane (128 columns, 8 rows a tile at this width)
        x, big = samples(1, 19, 75, dtype=torch.float32), samples(1, 38, 150, dtype=torch.float32)
        with dispatch.using("torch"):
            want = [sampling._fancy_filter(x, (2, 2), True), sampling.downsample(big, 2, 2, "soft"),
                    sampling.upsample_adjoint(big.clone(), 2, 2), sampling.downsample_adjoint(x, 2, 2)]
        got = [G.upsample(x, 2, 2, True), G.downsample(big, 2, 2, False), G.upsample_adjoint(big, 2, 2), G.downsample_adjoint(x, 2, 2)]
        for k, (a, b) in enumerate(zip(got, want)):
            same(a, b, "tiles", k)
        # strided planes: chroma viewed in stacked YCbCr planes, a transposed plane, an expanded gradient
        stacked = samples(2, 3, 18, 22, dtype=torch.float32)
        plane, flipped = stacked[:, 1], stacked[:, 2].transpose(-1, -2)
        expanded = torch.rand(1, 1, 9, 11, generator=g).expand(2, 3, 9, 11)
        with dispatch.using("torch"):
            want = [sampling.downsample(plane, 2, 2, "float"), sampling.downsample(flipped, 2, 2, "soft"),
                    sampling._fancy_filter(plane, (2, 1), True), sampling.upsample_adjoint(flipped.clone(), 1, 2),
                    sampling.downsample_adjoint(expanded, 2, 2)]
        got = [G.downsample(plane, 2, 2, True), G.downsample(flipped, 2, 2, False), G.upsample(plane, 2, 1, True),
               G.upsample_adjoint(flipped, 1, 2), G.downsample_adjoint(expanded, 2, 2)]
        for k, (a, b) in enumerate(zip(got, want)):
            same(a, b, "strided", k)
        # out=: each plane written into its place among stacked planes (the decoder's use), others untouched
        small = samples(2, 2, 9, 11, dtype=torch.float32)
        for fh, fv in ((2, 2), (2, 1)):
            into = torch.full((2, 3, 9 * fv, 11 * fh), -1.0)
            with dispatch.using("torch"):
                want = sampling.upsample(small[:, 0], fh, fv, "float")
                want_adjoint = sampling.downsample_adjoint(small[:, 1], fh, fv)
            version = into._version
            assert G.upsample(small[:, 0], fh, fv, True, out=into[:, 1]) is not None
            assert G.downsample_adjoint(small[:, 1], fh, fv, out=into[:, 2]) is not None
            same(into[:, 1], want, "out", fh, fv)
            same(into[:, 2], want_adjoint, "out adjoint", fh, fv)
            assert (into[:, 0] == -1).all() and into._version > version
            checks += 2
        with dispatch.using("triton"):  # the stage's own out= path takes the kernel
            into = torch.zeros(2, 18, 22)
            assert sampling.upsample(small[:, 0], 2, 2, "soft", out=into) is into
        with dispatch.using("torch"):
            same(into, sampling.upsample(small[:, 0], 2, 2, "soft"), "stage out")
        # declined: other dtypes, a gradient to record, windows the tensor form does not take, an out of another dtype
        half = samples(4, 6, dtype=torch.float16)
        assert G.downsample(half, 2, 2, True) is None and G.upsample(half, 2, 2, False) is None
        assert G.downsample(samples(4, 6, dtype=torch.float32).requires_grad_(), 2, 2, True) is None
        assert G.downsample(samples(5, 6, dtype=torch.float32), 2, 2, True) is None
        assert G.upsample_adjoint(samples(4, 7, dtype=torch.float32), 2, 1) is None
        assert G.upsample(small[:, 0], 2, 2, True, out=torch.zeros(2, 18, 22, dtype=torch.float64)) is None
        assert G.downsample(samples(4, 4, dtype=torch.float32), 3, 1, True) is None
        print("ok", checks)
        """
    )
    assert out.split() == ["ok", str(2 * 3 * 4 * 6 + 4)]


def test_the_rounding_transform_and_color_kernels_are_the_tensor_forms():
    """round_clamp (ties, -0.0 from small negatives, huge values, scale and
    shift, contiguous, channels_last and strided, in place, the range
    check); block_transform with both DCT matrices on contiguous and
    transposed blocks; color_apply with and without an offset, a matrix
    shared by the batch (stride 0)."""
    out = checked(
        """
        checks = 0
        for dtype in (torch.float32, torch.float64):
            x = torch.randn(2, 3, 9, 13, generator=g, dtype=torch.float64).mul(200).to(dtype)
            x.view(-1)[:40] = torch.arange(-10, 10, 0.5, dtype=dtype)  # every tie
            x.view(-1)[40:44] = torch.tensor([-0.0, 1e20, -1e20, float("inf")], dtype=dtype)
            cases = [dict(lo=0.0, hi=255.0, rounded=True), dict(lo=0.0, hi=255.0, rounded=False),
                     dict(lo=0.0, hi=255.0, rounded=True, scale=255.0), dict(lo=0.0, hi=255.0, rounded=True, shift=128.0),
                     dict(lo=-5.0, hi=5.0, rounded=True, scale=0.5, shift=-3.25)]
            for case in cases:
                for layout in ("contiguous", "channels_last", "strided"):
                    if layout == "channels_last":
                        y = x.to(memory_format=torch.channels_last)
                    elif layout == "strided":
                        y = torch.zeros(2, 3, 9, 20, dtype=dtype)[..., 3:16].copy_(x)
                    else:
                        y = x.clone()
                    with dispatch.using("torch"):
                        want = rounding.clamp_ste(y.clone(), **case)
                    args = (case["lo"], case["hi"], case["rounded"], case.get("scale"), case.get("shift"))
                    got = G.round_clamp(y, *args)
                    same(got, want, "round_clamp", dtype, case, layout)
                    assert torch.equal(got.signbit(), want.signbit()), ("signs", dtype, case, layout)  # -0.0 where torch has it
                    assert G.round_clamp(y, *args, out=y) is y
                    same(y, want, "in place", dtype, case, layout)
                    checks += 1
            with dispatch.using("triton"):  # the stage's in-place path takes the kernel
                y = x.clone()
                assert rounding.clamp_ste(y, 0.0, 255.0, rounded=True, inplace=True, shift=128.0) is y
            with dispatch.using("torch"):
                same(y, rounding.clamp_ste(x.clone(), 0.0, 255.0, rounded=True, shift=128.0), "stage in place")
            large = torch.randn(3, 40, 50, generator=g, dtype=dtype) * 300  # several programs a line
            with dispatch.using("torch"):
                same(G.round_clamp(large, 0.0, 255.0, True, shift=128.0), rounding.clamp_ste(large, 0.0, 255.0, rounded=True, shift=128.0), "large")
            image = torch.rand(2, 3, 5, 7, generator=g, dtype=dtype)
            assert G.round_clamp(image, 0.0, 255.0, True, scale=255.0, within=(-1.0, 2.0)) is not None
            for bad in (2.5, float("nan")):
                image[1, 2, 3, 4] = bad
                assert G.round_clamp(image, 0.0, 255.0, True, scale=255.0, within=(-1.0, 2.0)) is None

            for n in (1, 130):
                blocks = torch.randn(n, 8, 8, generator=g, dtype=dtype) * 100
                for kind in ("orthonormal", "orthonormal_inverse"):
                    matrix = dct._matrices(kind, dtype, torch.device("cpu"))
                    for b in (blocks, blocks.transpose(1, 2)):
                        same(G.block_transform(b, matrix), dct.block_transform(b, matrix), "dct", dtype, n, kind)
                        checks += 1

            for shape in ((1, 3, 1), (2, 3, 1500), (3, 3, 77)):
                pixels = torch.rand(shape, generator=g, dtype=dtype) * 255
                shared = color.rgb_to_ycbcr_matrix().to(dtype).expand(shape[0], 3, 3)
                own = torch.randn(shape[0], 3, 3, generator=g, dtype=dtype)
                for matrix, offset in ((shared, torch.tensor([0.0, 128.0, 128.0], dtype=dtype).expand(shape[0], 3)),
                                       (own, torch.randn(shape[0], 3, generator=g, dtype=dtype)), (own, None)):
                    same(G.color_apply(pixels, matrix, offset), color.color_product(matrix, pixels, offset), "color", dtype, shape)
                    checks += 1
            strided = (torch.rand(2, 5, 40, generator=g, dtype=dtype) * 255)[:, 1:4, ::2]
            same(G.color_apply(strided, own[:2], None), color.color_product(own[:2], strided, None), "color strided")
        # declined: half precision, a float64 clamp with a bound float32 does not hold, another dtype's matrix
        assert G.round_clamp(torch.rand(4, dtype=torch.float16), 0.0, 1.0, True) is None
        assert G.round_clamp(torch.rand(4, dtype=torch.float64), 0.1, 1.0, True) is None
        assert G.block_transform(torch.rand(2, 8, 8), dct._matrices("orthonormal", torch.float64, torch.device("cpu"))) is None
        print("ok", checks)
        """
    )
    assert out.split() == ["ok", str(2 * (15 + 8 + 9))]


def test_jpeg_through_the_triton_slots_equals_the_tensor_stages():
    """diffjpeg.jpeg, 4:2:0, float32, backend="triton" against "torch", with
    every real-valued slot taken: the round trip (float and soft mode through
    the block pass, exact mode's values from the fused codec and its
    gradient through the block pass's adjoint), and the stages one by one
    where tables are learned (their gradient too; the quantizer's forward
    kernel has its own test): float and exact mode's
    forward bit for bit, soft mode's and every gradient within the shared
    bound (the quantizer's kernels compute the surrogate and the division by
    Q their own way)."""
    out = interpreted(
        """
        import torch
        import diffjpeg
        from diffjpeg.backends import gpu_stages
        from diffjpeg.core import dispatch
        from diffjpeg.stages.quality import quality_tables
        taken = {}
        def counted(slot, kernel):
            def run(*args, **kwargs):
                out = kernel(*args, **kwargs)
                if out is not None:
                    taken[case].add(slot)
                return out
            return run
        from tests.helpers import assert_close_to_rounding
        for slot in ("color_apply", "block_transform", "round_clamp", "downsample", "upsample", "downsample_adjoint", "upsample_adjoint",
                     "quantize", "quantize_adjoint", "quantize_slope", "block_pass", "block_pass_adjoint"):
            dispatch._kernels[slot] = tuple((b, counted(slot, k) if b == "triton" else k) for b, k in dispatch._kernels[slot])
        x0 = torch.rand(2, 3, 17, 23, generator=torch.Generator().manual_seed(0))
        weights = torch.rand(2, 3, 17, 23, generator=torch.Generator().manual_seed(1))
        for case in (("float", False), ("soft", False), ("exact", False), ("exact", True)):
            mode, learned = case
            taken[case] = set()
            results = []
            for backend in ("torch", "triton"):
                x = x0.clone().requires_grad_(True)
                tables = quality_tables(torch.tensor(50.0)).requires_grad_(learned)
                y = diffjpeg.jpeg(x, qtables=tables, mode=mode, subsampling="4:2:0", backend=backend)
                (y * weights).sum().backward()
                results.append((y.detach(), x.grad, tables.grad))
            (y0, g0, t0), (y1, g1, t1) = results
            if mode == "soft":
                assert_close_to_rounding(y1, y0)
            else:
                assert torch.equal(y0, y1), case
            assert_close_to_rounding(g1, g0)
            if learned:
                assert_close_to_rounding(t1, t0)
            print(mode, learned, *sorted(taken[case]))
        """
    )
    lines = [line.split() for line in out.strip().split("\n")]
    pixels = ["color_apply", "round_clamp", "downsample", "upsample"]  # the stages' forward around the planes
    adjoints = ["color_apply", "downsample_adjoint", "upsample_adjoint"]  # and their transposes
    assert lines == [
        ["float", "False", *sorted(set(pixels + adjoints) | {"block_pass", "block_pass_adjoint"})],
        ["soft", "False", *sorted(set(pixels + adjoints) | {"block_pass", "block_pass_adjoint"})],
        ["exact", "False", *sorted(adjoints + ["quantize_slope", "block_pass_adjoint"])],  # the values: the fused codec
        ["exact", "True", *sorted(adjoints + ["block_transform", "quantize_adjoint"])],
    ]


def test_without_the_interpreter_cpu_tensors_stay_on_the_tensor_path():
    from diffjpeg.backends import gpu_stages

    if os.environ.get("TRITON_INTERPRET") == "1":
        pytest.skip("run under the interpreter")
    x = torch.rand(1, 4, 4)
    assert gpu_stages.downsample(x, 2, 2, True) is None
    assert gpu_stages.round_clamp(x, 0.0, 1.0, True) is None
    assert gpu_stages.block_transform(torch.rand(1, 8, 8), torch.eye(8)) is None


def test_the_quantizer_kernels_agree_with_the_tensor_form():
    """quantize and quantize_adjoint (the surrogate's value and derivative,
    the table's gradient summed per program and folded in order): float
    mode's rounding bit for bit, the rest within the shared bound, for every
    surrogate, both float dtypes, per-image and shared tables; the table's
    gradient the same bits at every call; the noise added as drawn."""
    out = checked(
        """
        from tests.helpers import assert_close_to_rounding
        from diffjpeg.stages.quantize import quantize
        from diffjpeg.stages.rounding import Fourier, Noise, as_rounding
        checks = 0
        for dtype, shared in ((torch.float32, False), (torch.float64, True)):
                f0 = (torch.rand(2, 3, 7, 8, 8, generator=g, dtype=torch.float64) - 0.5).mul(400).to(dtype)
                q0 = torch.randint(1, 256, (1 if shared else 2, 1, 1, 8, 8), generator=g).to(dtype)
                f0[:, 0, 0] = ((torch.arange(64, dtype=dtype).reshape(8, 8) - 32 + 0.5) * q0[0, 0, 0])  # F / Q on ties
                for mode, rounding in (("float", "sigmoid"), ("float", "polynomial"), ("soft", "sigmoid"), ("soft", "polynomial"),
                                       ("soft", "fourier"), ("soft", Fourier(order=3, damping="none")), ("float", "linear")):
                    results = {}
                    for backend in ("triton", "torch", "triton"):
                        f, q = f0.clone().requires_grad_(), q0.clone().requires_grad_()
                        with dispatch.using(backend):
                            y = quantize(f, q, mode, rounding)
                            (y * torch.sin(torch.arange(y.numel(), dtype=dtype)).reshape(y.shape)).sum().backward()
                        run = (y.detach(), f.grad, q.grad)
                        if backend in results:
                            assert all(torch.equal(a, b) for a, b in zip(run, results[backend]))  # the same bits again
                        results[backend] = run
                    (y, gf, gq), (y_ref, gf_ref, gq_ref) = results["triton"], results["torch"]
                    if mode == "float":
                        assert torch.equal(y, y_ref), (dtype, rounding)
                    else:
                        assert_close_to_rounding(y, y_ref)
                    assert_close_to_rounding(gf, gf_ref)
                    assert_close_to_rounding(gq, gq_ref)
                    r = as_rounding(rounding)
                    assert_close_to_rounding(G.quantize_slope(f0, q0, r.name, r.parameters()), r.derivative(f0 / q0))
                    checks += 1
        f0 = torch.rand(1, 2, 3, 8, 8, generator=g) * 100
        q0 = torch.full((1, 1, 1, 8, 8), 7.0)
        drawn = []
        for backend in ("triton", "torch"):
            with dispatch.using(backend):
                drawn.append(quantize(f0, q0, "soft", Noise(generator=torch.Generator().manual_seed(4))))
        assert torch.equal(drawn[0], drawn[1])
        assert G.quantize(f0, q0, False, "round", ()) is None and G.quantize(f0.half(), q0.half(), False, "linear", ()) is None
        print(checks)
        """
    )
    assert out.split() == ["14"]


def test_the_block_pass_kernels_agree_with_the_stages():
    """block_pass and block_pass_adjoint (a block's DCT, quantizer and
    inverse DCT in one kernel, and its transpose) against the tensor form of
    diffjpeg.stages.dctmgr: float mode's pixels bit for bit, soft mode's,
    the saved slopes and the gradients within the shared bound, for the
    surrogates, both float dtypes, per-plane and shared tables; a plane read
    at its row stride, in place, and the noise surrogate's draws as drawn."""
    out = checked(
        """
        from tests.helpers import assert_close_to_rounding
        from diffjpeg.stages import dctmgr
        from diffjpeg.stages.rounding import Fourier, Noise, as_rounding
        checks = 0
        for dtype, shared, mode, rounding in ((torch.float32, False, "float", "sigmoid"), (torch.float32, True, "soft", "sigmoid"),
                                              (torch.float32, False, "soft", Fourier(order=3, damping="none")),
                                              (torch.float64, True, "float", "polynomial"), (torch.float64, False, "soft", "polynomial")):
            r = as_rounding(rounding)
            wide = samples(2, 16, 40, dtype=dtype).clamp(0, 255)
            plane = wide[..., 8:32]  # rows 40 apart
            table = torch.randint(1, 60, (1 if shared else 2, 8, 8), generator=g).to(dtype)
            slopes = {b: torch.empty(2, 2, 3, 8, 8, dtype=dtype) if dctmgr.sloped(r) else None for b in ("triton", "torch")}
            grad = samples(2, 16, 24, dtype=dtype)
            c = dct.dct_matrices(dtype)
            y, gx = torch.empty_like(plane), torch.empty_like(grad)
            assert G.block_pass(plane, table, y, c, mode == "soft", r.name, r.parameters(), slopes["triton"]) is y
            assert G.block_pass_adjoint(grad, slopes["triton"], table, gx, c) is gx
            with dispatch.using("torch"):
                y_ref = dctmgr.block_pass(plane, table, mode, r, slopes=slopes["torch"])
                gx_ref = dctmgr.block_pass_adjoint(grad, slopes["torch"], table)
            if mode == "float":
                same(y, y_ref, dtype, rounding)
            else:
                assert_close_to_rounding(y, y_ref)
            if slopes["triton"] is not None:
                assert_close_to_rounding(slopes["triton"], slopes["torch"])
            assert_close_to_rounding(gx, gx_ref)
            checks += 1
        # in place (each program reads its blocks before it writes them), and the noise surrogate's draws
        plane, table = samples(1, 16, 16, dtype=torch.float32).clamp(0, 255), torch.full((1, 8, 8), 9.0)
        with dispatch.using("triton"):
            y = dctmgr.block_pass(plane, table, "float", as_rounding("sigmoid"))
            inplace = plane.clone()
            same(dctmgr.block_pass(inplace, table, "float", as_rounding("sigmoid"), out=inplace), y, "in place")
            g0 = dctmgr.block_pass_adjoint(plane, None, table)
            h = plane.clone()
            same(dctmgr.block_pass_adjoint(h, None, table, out=h), g0, "adjoint in place")
        assert G.block_pass(plane, table, plane.clone(), dct.dct_matrices(), True, "noise", (), None, None) is None  # its draws required
        drawn = []
        for backend in ("triton", "torch"):
            with dispatch.using(backend):
                drawn.append(dctmgr.block_pass(plane, table, "soft", Noise(generator=torch.Generator().manual_seed(4))))
        assert_close_to_rounding(drawn[0], drawn[1])
        print(checks)
        """
    )
    assert out.split() == ["5"]
