"""Every Triton kernel variant the library launches, compiled ahead of time
for an NVIDIA H100/H200 (CUDA sm_90) on a machine without a GPU.

The other GPU tests run the kernels through Triton's interpreter, which is
laxer than the real compiler (dtypes in ``tl.where``, int32/int64 mixing,
shapes). Here the library runs under the interpreter on small CPU tensors
(exact mode's ``jpeg`` for every input dtype and subsampling, with and
without a gradient; float and soft mode with a gradient; the fused decoder
of coefficients; every ``gpu_stages`` slot in float32 and float64 with each
flag combination and tile shape, the quantizer with every surrogate;
``idct_islow`` and ``ycbcr_to_rgb_fixed``)
while every launch is recorded: the kernel, each argument's type (a
tensor's dtype and whether its address is 16-byte aligned, a scalar's
value) and the launch's keywords (constexprs, ``num_warps``,
``enable_fp_fusion``). A second process without the interpreter binds each
launch as ``JITFunction.run`` does (Triton's own specialization: pointer
dtypes, integers equal to 1 or divisible by 16) and compiles each distinct
(kernel, signature, constexprs, options) with ``triton.compile`` for
``GPUTarget("cuda", 90, 32)``, ptxas (shipped in the triton wheel) included.

Checked for each variant: it compiles; ptxas reports no spill stores or
loads (its ``-v`` log, which Triton prints with ``TRITON_DUMP_PTXAS_LOG=1``:
registers per thread, stack frame, spills); and where the launch passes
``enable_fp_fusion=False`` (the kernels whose float arithmetic must round
as the tensor forms' separate operations do) neither the PTX has an
``fma`` nor the SASS an ``FFMA``/``DFMA``/``HFMA2`` that multiplies two
values (ptxas loads constants with ``HFMA2.MMA R, -RZ, RZ, c, c``, a
product of zeros: a move, not counted). The table of variants
(registers, spills, compile seconds) is printed, and written to
``$DIFFJPEG_GPU_COMPILE_REPORT`` where that is set. Slow (a few minutes):
``pytest -m slow``. Without Triton it skips; where Triton's CUDA backend or
its ptxas cannot compile here it skips saying why.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from tests.backends.interpreter import ROOT, interpreted

pytest.importorskip("triton")

# run under the interpreter: the library's launches, recorded; printed as JSON (the last line)
RECORD = """
import json
import torch
from triton.runtime.interpreter import InterpretedFunction

launches = {}
_run = InterpretedFunction.run

def describe(v):
    if isinstance(v, torch.Tensor):
        return {"tensor": str(v.dtype).removeprefix("torch."), "aligned": v.data_ptr() % 16 == 0}
    assert type(v) in (bool, int, float), (type(v), v)  # what the binder sees, as it is
    return v

def recorded(self, *args, grid, warmup, **kwargs):
    entry = {"module": self.fn.__module__, "name": self.fn.__name__,
             "args": [describe(a) for a in args], "kwargs": {k: describe(v) for k, v in kwargs.items()}}
    launches.setdefault(json.dumps(entry, sort_keys=True), entry)
    return _run(self, *args, grid=grid, warmup=warmup, **kwargs)

InterpretedFunction.run = recorded

import diffjpeg
from diffjpeg.backends import gpu, gpu_decoder, gpu_stages as G
from diffjpeg.core.geometry import geometries
from diffjpeg.stages.dct import dct_matrices
g = torch.Generator().manual_seed(0)
FLOATS = (torch.float32, torch.float64)

# exact mode's jpeg: every input dtype, 4:4:4, 4:2:2, 4:2:0 and grayscale, without and with a gradient
base = torch.rand(2, 3, 17, 33, generator=g)
for dtype in (torch.uint8, torch.float32, torch.float16, torch.bfloat16, torch.float64):
    for subsampling, channels in (("4:4:4", 3), ("4:2:2", 3), ("4:2:0", 3), ("4:2:0", 1)):
        x = base[:, :channels]
        x = x.mul(255).round().to(torch.uint8) if dtype == torch.uint8 else x.to(dtype)
        for grad in (False, True) if dtype.is_floating_point else (False,):
            image = x.clone().requires_grad_(grad)
            y = diffjpeg.jpeg(image, 50, subsampling=subsampling, backend="triton")
            assert y.shape == image.shape
            if grad:
                torch.autograd.grad(y.float().sum(), image)
    last = base.mul(255).round().to(torch.uint8) if dtype == torch.uint8 else base.to(dtype)
    diffjpeg.jpeg(last.contiguous(memory_format=torch.channels_last), 50, backend="triton")  # read in place
# float and soft mode, forward and backward: the stage slots as the library calls them
for dtype in FLOATS:
    for mode in ("float", "soft"):
        for subsampling in ("4:2:0", "4:2:2"):
            image = base.to(dtype).requires_grad_()
            torch.autograd.grad(diffjpeg.jpeg(image, 50, mode=mode, subsampling=subsampling, backend="triton").sum(), image)

# the fused decoder of coefficients: component and output dtypes, color spaces, fancy and replicated upsampling
def decoded(sampling, size, dtype=torch.float32, out_dtype=torch.uint8, color_space="YCbCr", **options):
    geos = geometries(size, sampling)
    components = [torch.randint(-60, 60, (2,) + geo.blocks + (8, 8), generator=g).to(dtype) for geo in geos]
    tables = torch.randint(1, 100, (2, len(geos), 8, 8), generator=g).float()
    assert gpu_decoder.decode(components, tables, geos, size, out_dtype, color_space, **options) is not None
    return components, tables, geos

samplings = [((1, 1),) * 3, ((2, 1), (1, 1), (1, 1)), ((2, 2), (1, 1), (1, 1)), ((1, 2), (1, 1), (1, 1)),
             ((4, 1), (1, 1), (1, 1)), ((3, 1), (1, 1), (1, 1)), ((4, 2), (1, 1), (1, 1)),
             ((1, 1), (2, 2), (2, 2)), ((2, 2), (1, 2), (2, 1))]
for sampling in samplings:
    decoded(sampling, (17, 33))
decoded(((2, 2), (1, 1), (1, 1)), (4, 3))  # chroma 2 wide: replicated
for dtype in (torch.float32, torch.int32, torch.float64, torch.float16):
    for out_dtype in (torch.uint8, torch.float32, torch.float64):
        decoded(((2, 2), (1, 1), (1, 1)), (17, 33), dtype, out_dtype)
        decoded(((2, 1), (1, 1), (1, 1)), (17, 33), dtype, out_dtype, "RGB")
        decoded(((1, 1),), (17, 33), dtype, out_dtype, "grayscale")
for width in (5, 30, 60, 200):  # every tile width
    decoded(((2, 2), (1, 1), (1, 1)), (9, width))
decoded(((2, 2), (1, 1), (1, 1)), (17, 33), with_ycc=True)
into = torch.zeros(2, 17, 33, 3, dtype=torch.uint8).permute(0, 3, 1, 2)
decoded(((2, 2), (1, 1), (1, 1)), (17, 33), out=into)  # a channels_last out
components, tables, geos = decoded(((2, 2), (1, 1), (1, 1)), (17, 33))
gpu.decode([c.transpose(-1, -2) for c in components], tables, geos, (17, 33), torch.uint8, "YCbCr")  # strided blocks

# every gpu_stages slot in float32 and float64
def power(n, low, high):
    return max(low, min(high, 1 << max(0, n - 1).bit_length()))

for dtype in FLOATS:
    small = torch.rand(2, 12, 70, generator=g, dtype=dtype) * 255
    for fh, fv in G.FACTOR_PAIRS:
        big = torch.rand(2, 12 * fv, 70 * fh, generator=g, dtype=dtype) * 255
        for biased in (True, False):
            assert G.downsample(big, fh, fv, biased) is not None and G.upsample(small, fh, fv, biased) is not None
        assert G.upsample_adjoint(big, fh, fv) is not None and G.downsample_adjoint(small, fh, fv) is not None
        assert G.downsample(big.transpose(-1, -2).contiguous().transpose(-1, -2), fh, fv, True) is not None  # strided
        stacked = torch.zeros(2, 3, 12 * fv, 70 * fh, dtype=dtype)
        assert G.upsample(small, fh, fv, True, out=stacked[:, 1]) is not None
        assert G.downsample_adjoint(small, fh, fv, out=stacked[:, 2]) is not None
    # every tile shape (BH x BW) the wrappers choose, at h2v1 (rows of any count)
    for bw in (16, 32, 64, 128):
        for bh in [1 << k for k in range(11) if (1 << k) <= 1024 // bw]:
            wide, narrow = torch.rand(1, bh, 2 * bw, dtype=dtype), torch.rand(1, bh, bw // 2, dtype=dtype)
            assert G.downsample(wide, 2, 1, True) is not None and G.upsample_adjoint(wide, 2, 1) is not None
            assert G.upsample(narrow, 2, 1, True) is not None and G.downsample_adjoint(narrow, 2, 1) is not None
    # round_clamp: each flag combination, each block length, in place and strided
    x = torch.randn(3, 40, 50, generator=g, dtype=dtype) * 300
    for scale in (None, 255.0):
        for shift in (None, 128.0):
            for rounded in (True, False):
                for within in (None, (-1e9, 1e9)):
                    assert G.round_clamp(x, 0.0, 255.0, rounded, scale, shift, within=within) is not None
    for n in (100, 200, 400):
        assert G.round_clamp(torch.randn(n, generator=g, dtype=dtype), 0.0, 255.0, True) is not None
    y = x.clone()
    assert G.round_clamp(y, 0.0, 255.0, True, shift=128.0, out=y) is y
    assert G.round_clamp(torch.zeros(2, 3, 9, 20, dtype=dtype)[..., 3:16], 0.0, 255.0, True) is not None
    assert G.round_clamp(x.reshape(3, 2, 20, 50).contiguous(memory_format=torch.channels_last), 0.0, 255.0, True) is not None
    # the DCT and the color product
    blocks = torch.randn(130, 8, 8, generator=g, dtype=dtype)
    matrix = torch.randn(8, 8, generator=g, dtype=dtype)
    assert G.block_transform(blocks, matrix) is not None and G.block_transform(blocks.transpose(1, 2), matrix) is not None
    pixels = torch.rand(2, 3, 1500, generator=g, dtype=dtype)
    own = torch.randn(2, 3, 3, generator=g, dtype=dtype)
    assert G.color_apply(pixels, own, None) is not None and G.color_apply(pixels, own, torch.randn(2, 3, generator=g, dtype=dtype)) is not None
    assert G.color_apply(pixels, own[:1].expand(2, 3, 3), torch.zeros(3, dtype=dtype).expand(2, 3)) is not None
    # the quantizer: every surrogate (fourier of orders 1 and 3), rounded and soft, per-image and shared tables' gradients
    f = torch.randn(2, 3, 7, 8, 8, generator=g, dtype=dtype) * 100
    q = torch.rand(2, 1, 1, 8, 8, generator=g, dtype=dtype) * 50 + 1
    for name, parameters in (("linear", ()), ("polynomial", ()), ("sigmoid", (4.0, 1.93)), ("fourier", (0.5,)),
                             ("fourier", (1.0, 1.0, 1.0)), ("noise", ())):
        for soft in (False, True):
            assert G.quantize(f, q, soft, name, parameters, torch.rand(f.shape, dtype=dtype) if name == "noise" else None) is not None
        assert G.quantize_slope(f, q, name, parameters) is not None
        for table in (q, q[:1], None):
            assert G.quantize_adjoint(f, f, q if table is None else table, name, parameters, table is not None) is not None
    # the block pass: every surrogate, rounded and soft, with and without its slopes saved, per-plane and shared tables, in place
    plane = torch.rand(2, 16, 24, generator=g, dtype=dtype) * 255
    c = dct_matrices(dtype)
    for name, parameters in (("linear", ()), ("polynomial", ()), ("sigmoid", (4.0, 1.93)), ("fourier", (0.5,)),
                             ("fourier", (1.0, 1.0, 1.0)), ("noise", ())):
        for soft in (False, True):
            for slopes in (None, torch.empty(2, 2, 3, 8, 8, dtype=dtype)):
                noise = torch.rand(2, 2, 3, 8, 8, dtype=dtype) if soft and name == "noise" else None
                assert G.block_pass(plane, q[:, 0, 0], torch.empty_like(plane), c, soft, name, parameters, slopes, noise) is not None
    for slopes in (None, torch.rand(2, 2, 3, 8, 8, dtype=dtype)):
        assert G.block_pass_adjoint(plane, slopes, q[:1, 0, 0], plane.clone(), c) is not None
    assert G.block_pass(plane, q[:1, 0, 0], plane, c, False, "linear", (), None, None) is plane

# the exact decoder's slots one by one
blocks = torch.randint(-300, 301, (130, 8, 8), generator=g, dtype=torch.int32)
assert gpu.idct_islow(blocks) is not None and gpu.idct_islow(blocks, blocks.clone()) is not None
assert gpu.ycbcr_to_rgb_fixed(torch.randint(0, 256, (2, 3, 19, 23), generator=g, dtype=torch.int32)) is not None
print(json.dumps(list(launches.values())))
"""

# run without the interpreter: each distinct launch bound as JITFunction.run binds it, compiled for sm_90
COMPILE = r'''
import contextlib, importlib, io, json, multiprocessing, os, re, subprocess, sys, tempfile, time, traceback
import torch
import triton
import triton.language as tl
from triton import knobs

TARGET_ARGS = ("cuda", 90, 32)


@triton.jit
def probe_kernel(x_ptr, n, BLOCK: tl.constexpr):
    i = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    tl.store(x_ptr + i, tl.load(x_ptr + i, mask=i < n) * 2.0, mask=i < n)


def ptxas_log(text):
    regs = re.search(r"Used (\d+) registers", text)
    spills = re.search(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads", text)
    if regs is None or spills is None:
        return None
    return {"regs": int(regs.group(1)), "stack": int(spills.group(1)), "spill_stores": int(spills.group(2)), "spill_loads": int(spills.group(3))}


FLOAT_OP = re.compile(r"^\s*(?:@%p\d+\s+)?(?:add|sub|mul|div|fma|neg|abs|min|max|rcp|sqrt)(?:\.\w+)*\.(?:f16|bf16|f32|f64)\b", re.M)


def compiled(item):
    """Compile one variant; its ptxas numbers and FMA counts."""
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource
    kernel_module, name, signature, constexprs, attrs, options = item
    kernel = probe_kernel if name == "probe_kernel" else getattr(importlib.import_module(kernel_module), name)
    result = {"name": name}
    log = io.StringIO()
    start = time.perf_counter()
    try:
        with contextlib.redirect_stdout(log):  # ptxas' -v log (TRITON_DUMP_PTXAS_LOG=1)
            c = triton.compile(ASTSource(kernel, signature, {tuple(k): v for k, v in constexprs}, {tuple(k): v for k, v in attrs}),
                               target=GPUTarget(*TARGET_ARGS), options=options)
    except Exception:
        result["error"] = traceback.format_exc()[-4000:]
        return result
    result["seconds"] = time.perf_counter() - start
    numbers = ptxas_log(log.getvalue())
    if numbers is None:
        result["error"] = "no ptxas -v log:\n" + log.getvalue()[-2000:]
        return result
    result.update(numbers)
    ptx = c.asm["ptx"]
    result["ptx_fma"] = len(re.findall(r"^\s*(?:@%p\d+\s+)?fma\.", ptx, re.M))
    result["float_ops"] = len(FLOAT_OP.findall(ptx))
    with tempfile.NamedTemporaryFile(suffix=".cubin") as f:
        f.write(c.asm["cubin"])
        f.flush()
        sass = subprocess.run([knobs.nvidia.cuobjdump.path, "-sass", f.name], capture_output=True, text=True, check=True).stdout
    result["sass_lines"] = sass.count("\n")
    # ptxas materializes constants as HFMA2.MMA R, -RZ, RZ, c, c (a product of zeros plus c): a move, not a fusion
    products = re.findall(r"\b(?:FFMA|DFMA|HFMA2)(?:\.\w+)*\s+[^,]+,\s*([^,]+),\s*([^,]+),", sass)
    result["sass_fma"] = sum(1 for a, b in products if "RZ" not in (a.strip().lstrip("-|"), b.strip().lstrip("-|")))
    return result


def main():
    launches, out_path = json.load(open(sys.argv[1])), sys.argv[2]
    from triton.backends.compiler import GPUTarget
    from triton.compiler import make_backend
    from triton.runtime.jit import create_function_from_signature
    # the environment first: Triton's CUDA backend and its ptxas compile a trivial kernel for sm_90
    try:
        backend = make_backend(GPUTarget(*TARGET_ARGS))
        probe = compiled(("", "probe_kernel", {"x_ptr": "*fp32", "n": "i32", "BLOCK": "constexpr"}, [[[2], 128]], [[[0], [["tt.divisibility", 16]]]],
                          backend.parse_options({}).__dict__))
        if "error" in probe:
            raise RuntimeError(probe["error"])
    except Exception as e:
        json.dump({"unavailable": f"{type(e).__name__}: {e}"[-2000:]}, open(out_path, "w"))
        return

    def argument(v):
        if isinstance(v, dict):  # a tensor of that dtype, at a 16-byte aligned address or not
            t = torch.empty(4, dtype=getattr(torch, v["tensor"]))
            return t if v["aligned"] else t[1:]
        return v

    variants, binders = {}, {}
    for e in launches:  # JITFunction.run's binding, its keywords as it adds them
        kernel = getattr(importlib.import_module(e["module"]), e["name"])
        if e["name"] not in binders:
            binders[e["name"]] = create_function_from_signature(kernel.signature, kernel.params, backend)
        kwargs = {k: argument(v) for k, v in e["kwargs"].items()}
        kwargs["debug"] = kwargs.get("debug", kernel.debug) or knobs.runtime.debug
        kwargs["instrumentation_mode"] = knobs.compilation.instrumentation_mode
        bound, specialization, options = binders[e["name"]](*[argument(a) for a in e["args"]], **kwargs)
        options, signature, constexprs, attrs = kernel._pack_args(backend, kwargs, bound, specialization, options)
        names = [p.name for p in kernel.params]
        declared = {p.name for p in kernel.params if p.is_constexpr}
        item = (e["module"], e["name"], signature, sorted([list(k), v] for k, v in constexprs.items()),
                sorted([list(k), v] for k, v in attrs.items()), options.__dict__)
        key = json.dumps(item, sort_keys=True, default=repr)
        if key not in variants:
            variants[key] = {
                "item": item,
                "constexprs": {names[k[0]]: v for k, v in constexprs.items() if names[k[0]] in declared},
                "ones": sorted(names[k[0]] for k in constexprs if names[k[0]] not in declared),  # arguments equal to 1
                "pointers": {k: v for k, v in signature.items() if v.startswith("*")},
                "num_warps": options.num_warps, "enable_fp_fusion": options.enable_fp_fusion,
            }
    entries = list(variants.values())
    with multiprocessing.get_context("fork").Pool(max(2, os.cpu_count() or 2)) as pool:
        results = pool.map(compiled, [v["item"] for v in entries], chunksize=1)
    for v, r in zip(entries, results):
        del v["item"]
        v.update(r)
    json.dump({"launches": len(launches), "variants": entries}, open(out_path, "w"))


if __name__ == "__main__":
    main()
'''

QUANTIZER_KERNELS = {"quantize_kernel", "quantize_adjoint_kernel", "fold_kernel"}  # values to the float/soft contract: fusion allowed
# no fusion (float mode's pixels are the stages' bits), but they divide by Q correctly rounded: PTX's div.rn, whose SASS
# expansion multiplies and adds with FFMA/DFMA by design (an IEEE division, not a fused product of the kernel's)
DIVIDING_KERNELS = {"block_pass_kernel", "block_pass_adjoint_kernel"}
KERNELS = {
    "encode_kernel", "plane_kernel", "pixel_kernel", "idct_kernel", "ycc_kernel",
    "downsample_kernel", "upsample_kernel", "upsample_adjoint_kernel", "downsample_adjoint_kernel",
    "round_clamp_kernel", "block_transform_kernel", "color_kernel",
} | QUANTIZER_KERNELS | DIVIDING_KERNELS
STAGE_KERNELS = KERNELS - {"encode_kernel", "plane_kernel", "pixel_kernel", "idct_kernel", "ycc_kernel"} - QUANTIZER_KERNELS


def _table(variants: list[dict]) -> str:
    """The variants as a Markdown table, grouped by kernel."""
    lines = [
        "| kernel | constexprs | pointers | args = 1 | warps | fp fusion | regs | spills (st/ld B) | stack B | float ops (PTX) | FMA (PTX/SASS) | compile s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for v in sorted(variants, key=lambda v: (v["name"], json.dumps(v["constexprs"], sort_keys=True), json.dumps(v["pointers"]), v["ones"])):
        constexprs = " ".join(f"{k}={int(c) if isinstance(c, bool) else c}" for k, c in v["constexprs"].items())
        pointers = " ".join(sorted({p.lstrip("*") for p in v["pointers"].values()}))
        if "error" in v:
            lines.append(f"| {v['name']} | {constexprs} | {pointers} | {' '.join(v['ones'])} | {v['num_warps']} | {v['enable_fp_fusion']} | FAILED | | | | | |")
            continue
        lines.append(
            f"| {v['name']} | {constexprs} | {pointers} | {' '.join(v['ones'])} | {v['num_warps']} | {v['enable_fp_fusion']} | {v['regs']} "
            f"| {v['spill_stores']}/{v['spill_loads']} | {v['stack']} | {v['float_ops']} | {v['ptx_fma']}/{v['sass_fma']} | {v['seconds']:.2f} |"
        )
    return "\n".join(lines)


def _libdevice(variant: dict) -> bool:
    """Whether a block pass variant evaluates float64's exp, sin or cos
    (the sigmoid's and fourier's value or slope): libdevice's functions,
    whose PTX multiplies and adds with fma by design; the float32 variants
    (exp2 and the kernels' own polynomials) show the pass's own arithmetic
    unfused."""
    c = variant["constexprs"]
    return (variant["name"] == "block_pass_kernel" and c.get("KIND") in (2, 3) and (c.get("SOFT") or c.get("SLOPED"))
            and variant["pointers"].get("src") == "*fp64")


def _values(variants, name, *keys, pointer=None):
    """The set of ``keys``' constexpr values (and the ``pointer`` argument's type) over ``name``'s variants."""
    return {tuple(v["constexprs"].get(k) for k in keys) + ((v["pointers"].get(pointer),) if pointer else ()) for v in variants if v["name"] == name}


@pytest.mark.slow
def test_every_launched_kernel_variant_compiles_for_sm90_without_spills(tmp_path):
    launches = json.loads(interpreted(RECORD, timeout=1200).strip().splitlines()[-1])
    (tmp_path / "launches.json").write_text(json.dumps(launches))
    (tmp_path / "compile.py").write_text(textwrap.dedent(COMPILE))
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env.update(PYTHONPATH=str(ROOT), TRITON_CACHE_DIR=str(tmp_path / "cache"), TRITON_DUMP_PTXAS_LOG="1")  # a fresh cache: every variant compiled, its log printed
    done = subprocess.run(
        [sys.executable, str(tmp_path / "compile.py"), str(tmp_path / "launches.json"), str(tmp_path / "results.json")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    results = json.loads((tmp_path / "results.json").read_text())
    if "unavailable" in results:
        pytest.skip(f"Triton's CUDA backend cannot compile for sm_90 here: {results['unavailable']}")
    variants = results["variants"]
    table = _table(variants)
    print(f"\n{results['launches']} distinct launches, {len(variants)} compiled variants for sm_90\n{table}")
    report = os.environ.get("DIFFJPEG_GPU_COMPILE_REPORT")
    if report:
        with open(report, "w") as f:
            f.write(table + "\n")

    failed = [f"{v['name']} {v['constexprs']} {v['pointers']}:\n{v['error']}" for v in variants if "error" in v]
    assert not failed, "\n\n".join(failed)
    spilled = [(v["name"], v["constexprs"], v["spill_stores"], v["spill_loads"]) for v in variants if v["spill_stores"] or v["spill_loads"]]
    assert not spilled, spilled
    # no fused multiply-add where the launch asks for none (the tensor forms' roundings)
    fused = [(v["name"], v["constexprs"], v["ptx_fma"], v["sass_fma"]) for v in variants
             if not v["enable_fp_fusion"] and (v["ptx_fma"] and not _libdevice(v) or v["sass_fma"] and v["name"] not in DIVIDING_KERNELS)]
    assert not fused, fused
    assert all(v["sass_lines"] > 0 for v in variants)
    # the kernels whose floats must round as the tensor forms' operations are all launched so
    assert all(not v["enable_fp_fusion"] for v in variants if v["name"] in STAGE_KERNELS | {"encode_kernel", "plane_kernel"})

    # the recording drove what it claims: every kernel and the constexprs of every case
    assert {v["name"] for v in variants} >= KERNELS  # (a kernel added later is compiled and checked above as well)
    assert {k for k, _ in _values(variants, "encode_kernel", "KIND", pointer="x_ptr")} == {0, 1, 2}
    assert {p for _, p in _values(variants, "encode_kernel", "KIND", pointer="x_ptr")} == {"*u8", "*fp32", "*fp16", "*bf16", "*fp64"}
    assert _values(variants, "encode_kernel", "WITH_DCT") == {(True,), (False,)}
    assert _values(variants, "encode_kernel", "COUNT", "GRAY", "SH", "SV") >= {(3, False, 1, 1), (1, False, 1, 1), (2, False, 2, 1), (2, False, 2, 2), (1, True, 1, 1)}
    assert {(s, v) for s, v in _values(variants, "encode_kernel", "SH", "SV")} >= {(1, 1), (2, 1), (2, 2)}
    assert {p for p, in _values(variants, "plane_kernel", pointer="x_ptr")} >= {"*fp32", "*fp64", "*i32", "*fp16"}
    assert _values(variants, "pixel_kernel", "CHANNELS", "CONVERT") == {(1, False), (3, False), (3, True)}
    assert {p for _, p in _values(variants, "pixel_kernel", "FLOAT", pointer="out_ptr")} == {"*u8", "*fp32", "*fp64"}
    assert {m for m, in _values(variants, "pixel_kernel", "M1")} == {0, 1, 2, 3} and {m for m, in _values(variants, "pixel_kernel", "M0")} >= {0, 3}
    assert {w for w, in _values(variants, "pixel_kernel", "TILE_W")} == {16, 32, 64, 128}
    assert _values(variants, "pixel_kernel", "YCC") == {(True,), (False,)}
    for dtype in ("*fp32", "*fp64"):
        for name in ("downsample_kernel", "upsample_kernel"):
            flags = _values(variants, name, "FH", "FV", "BIASED", pointer="src")
            assert {(h, v, b) for h, v, b, p in flags if p == dtype} == {(h, v, b) for h, v in ((2, 1), (1, 2), (2, 2)) for b in (True, False)}
        for name in ("downsample_kernel", "upsample_kernel", "upsample_adjoint_kernel", "downsample_adjoint_kernel"):
            shapes = {(h, w) for h, w, p in _values(variants, name, "BH", "BW", pointer="src") if p == dtype}
            assert shapes >= {(1 << k, w) for w in (16, 32, 64, 128) for k in range(11) if (1 << k) * w <= 1024}, name
            assert {(h, v) for h, v, p in _values(variants, name, "FH", "FV", pointer="src") if p == dtype} == {(2, 1), (1, 2), (2, 2)}
        flags = _values(variants, "round_clamp_kernel", "HAS_SCALE", "HAS_SHIFT", "ROUNDED", "CHECK", pointer="src")
        assert {f[:4] for f in flags if f[4] == dtype} == {(a, b, c, d) for a in (True, False) for b in (True, False) for c in (True, False) for d in (True, False)}
        assert {b for b, p in _values(variants, "round_clamp_kernel", "BLOCK", pointer="src") if p == dtype} == {128, 256, 512, 1024}
        assert {o for o, p in _values(variants, "color_kernel", "HAS_OFFSET", pointer="x_ptr") if p == dtype} == {True, False}
        assert any(p == dtype for p, in _values(variants, "block_transform_kernel", pointer="x_ptr"))
        assert {f[0] for f in _values(variants, "quantize_kernel", "SLOPE", pointer="f") if f[1] == dtype} == {True, False}
        passes = {f[:4] for f in _values(variants, "block_pass_kernel", "SOFT", "KIND", "TERMS", "SLOPED", pointer="src") if f[4] == dtype}
        assert passes >= {(soft, kind, terms, sloped) for soft in (True, False) for kind, terms in ((0, 1), (1, 1), (2, 1), (2, 3), (3, 1))
                          for sloped in (True, False)} | {(True, 4, 1, False)}
        assert {f[0] for f in _values(variants, "block_pass_adjoint_kernel", "SLOPED", pointer="src") if f[1] == dtype} == {True, False}
