"""The real-valued stages' slots on the GPU: Triton kernels (in
:mod:`diffjpeg.backends.gpu_stage_kernels`) with the signatures and the
values of :mod:`diffjpeg.backends.cpu`'s compiled loops of the same names,
bit for bit the stage modules' tensor forms (``tests/backends/test_gpu_stages.py``):
float and soft mode's sampling, rounding, DCT and color forward, and every
mode's backward through them; and the quantizer's two slots and the block
pass's (a block's DCT, quantizer and inverse DCT in one kernel), whose
values are the CPU loops' kind: float mode's rounding the same bits, the
surrogates within the float/soft contract of the tensor form.

Each function returns ``None`` (nothing written) where its kernel does not
apply: a tensor not on the kernels' device (:func:`diffjpeg.backends.gpu.applies`:
CUDA, or the CPU under ``TRITON_INTERPRET=1``), not float32 or float64 (the
tensor forms compute float16 and bfloat16 in float32 and round back: not
taken), a gradient to record, an ``out`` that cannot be written through a
view, or sizes the tensor form does not take (it then raises its own
error). Inputs are read at their strides; an ``out`` is written at its own.

Every launch passes ``enable_fp_fusion=False``: a fused multiply-add would
round once where the tensor operations round twice.
"""
from __future__ import annotations

import functools
import math

import numpy as np
import torch
from torch import Tensor

from ..core import dispatch
from . import gpu
from .cpu import mark_written, quantizer_rows

FLOATS = (torch.float32, torch.float64)
FACTOR_PAIRS = ((2, 1), (1, 2), (2, 2))  # what the compiled loops and these kernels take (h_factor, v_factor)
BLOCKS_PER_PROGRAM = 64  # 8x8 blocks
PIXELS_PER_PROGRAM = 1024
TILE = 1024  # elements per program of the sampling and rounding kernels
FLOAT32_MAX = float(np.finfo(np.float32).max)


def _kernels():
    """The kernels module, imported with Triton on first use (by :func:`diffjpeg.backends.gpu.applies`' caller first)."""
    return gpu._kernels("gpu_stage_kernels")


def _takes(*tensors: Tensor) -> bool:
    """Float32 or float64 of one dtype, nothing autograd records, on the kernels' device."""
    dtype = tensors[0].dtype
    if dtype not in FLOATS or any(t.dtype != dtype for t in tensors):
        return False
    if torch.is_grad_enabled() and any(t.requires_grad for t in tensors):
        return False
    return gpu.applies(*tensors)


def _planes(t: Tensor, writable: bool = False) -> Tensor | None:
    """``t`` ``(..., h, w)`` as ``(N, h, w)``: a view, or (not ``writable``) a copy where none is possible."""
    try:
        return t.view(-1, *t.shape[-2:])
    except RuntimeError:  # lead dimensions not viewable as one
        return None if writable else t.reshape(-1, *t.shape[-2:])


def _power_of_two(n: int, low: int, high: int) -> int:
    return max(low, min(high, 1 << max(0, n - 1).bit_length()))


def _sampling_call(name: str, src: Tensor, shape: tuple, out: Tensor | None, factors: tuple[int, int], biased: bool | None) -> Tensor | None:
    """``name``'s kernel from ``src`` into ``out`` (``shape``; a new tensor if
    ``None``), one program per tile of at most ``TILE`` outputs of a plane;
    ``None`` where it does not apply."""
    if factors not in FACTOR_PAIRS or src.dim() < 2 or not _takes(src):
        return None
    if out is not None and (out.dtype != src.dtype or out.device != src.device or out.shape != shape or out.requires_grad):
        return None
    result = src.new_empty(shape) if out is None else out
    if result.numel() == 0 or src.numel() == 0:
        return result
    source, target = _planes(src), _planes(result, writable=True)
    if target is None:
        return None
    small = target if name in ("downsample", "upsample_adjoint") else source  # the kernels take the smaller plane's sides
    rows, columns = target.shape[1:]
    bw = _power_of_two(columns, 16, 128)
    bh = _power_of_two(rows, 1, TILE // bw)
    tiles_w = -(-columns // bw)
    tiles = tiles_w * -(-rows // bh)
    flags = {} if biased is None else {"BIASED": bool(biased)}
    getattr(_kernels(), name + "_kernel")[(source.shape[0] * tiles,)](
        source, target, small.shape[1], small.shape[2], *source.stride(), *target.stride(), tiles_w, tiles,
        FH=factors[0], FV=factors[1], **flags, BH=bh, BW=bw, enable_fp_fusion=False,
    )
    if out is not None:
        mark_written(out)
    return result


def _fits(plane: Tensor, h_factor: int, v_factor: int) -> bool:
    """Whether the larger plane's sides are multiples of the factors (the tensor forms' windows)."""
    return plane.dim() >= 2 and plane.shape[-2] % v_factor == 0 and plane.shape[-1] % h_factor == 0


def downsample(plane: Tensor, h_factor: int, v_factor: int, biased: bool) -> Tensor | None:
    """The window means of :func:`diffjpeg.stages.sampling.downsample`
    (libjpeg's biased average if ``biased``) of ``plane`` ``(..., H, W)``,
    a new ``(..., H / v_factor, W / h_factor)`` tensor; ``None`` where the
    kernel does not apply (also ``H``, ``W`` not multiples of the factors)."""
    if not _fits(plane, h_factor, v_factor):
        return None
    shape = plane.shape[:-2] + (plane.shape[-2] // v_factor, plane.shape[-1] // h_factor)
    return _sampling_call("downsample", plane, shape, None, (h_factor, v_factor), biased)


def upsample(plane: Tensor, h_factor: int, v_factor: int, biased: bool, out: Tensor | None = None) -> Tensor | None:
    """The triangle filter of :func:`diffjpeg.stages.sampling.upsample`
    (libjpeg's rounding if ``biased``) of ``plane`` ``(..., h, w)``, in
    ``out`` ``(..., v_factor h, h_factor w)`` (any strides it can be viewed
    at as planes) or a new tensor; ``None`` where the kernel does not apply."""
    if plane.dim() < 2:
        return None
    shape = plane.shape[:-2] + (plane.shape[-2] * v_factor, plane.shape[-1] * h_factor)
    return _sampling_call("upsample", plane, shape, out, (h_factor, v_factor), biased)


def upsample_adjoint(grad: Tensor, h_factor: int, v_factor: int) -> Tensor | None:
    """:func:`diffjpeg.stages.sampling.upsample_adjoint` of ``grad``
    ``(..., v_factor h, h_factor w)``, a new ``(..., h, w)`` tensor; ``None``
    where the kernel does not apply."""
    if not _fits(grad, h_factor, v_factor):
        return None
    shape = grad.shape[:-2] + (grad.shape[-2] // v_factor, grad.shape[-1] // h_factor)
    return _sampling_call("upsample_adjoint", grad, shape, None, (h_factor, v_factor), None)


def downsample_adjoint(grad: Tensor, h_factor: int, v_factor: int, out: Tensor | None = None) -> Tensor | None:
    """:func:`diffjpeg.stages.sampling.downsample_adjoint` of ``grad``
    ``(..., h, w)``, in ``out`` ``(..., v_factor h, h_factor w)`` or a new
    tensor; ``None`` where the kernel does not apply."""
    if grad.dim() < 2:
        return None
    shape = grad.shape[:-2] + (grad.shape[-2] * v_factor, grad.shape[-1] * h_factor)
    return _sampling_call("downsample_adjoint", grad, shape, out, (h_factor, v_factor), None)


def _scalars_fit(dtype: torch.dtype, *values) -> bool:
    """Whether the kernel, which takes scalars as float32, has each value
    (or ``None``) as the tensor form does: exactly for float64; for float32
    (torch rounds them to float32 itself) any value float32 holds without
    overflow (torch refuses the others: its own error, from the tensor form)."""
    for v in values:
        if v is None:
            continue
        v = float(v)
        if not math.isfinite(v):
            continue  # inf, NaN: float32 holds them
        if abs(v) > FLOAT32_MAX or dtype == torch.float64 and float(np.float32(v)) != v:
            return False
    return True


def _lines(x: Tensor, out: Tensor) -> tuple[Tensor, Tensor] | None:
    """``x`` and ``out`` as ``(N, h, n)`` views, each line of ``n``
    contiguous values, at the same places: the whole tensor as one line
    where both are dense in one memory order (contiguous, channels_last),
    each plane as one where both planes' rows are contiguous, else each
    row; ``None`` where lead dimensions cannot be viewed as one."""
    for layout in (torch.contiguous_format, torch.channels_last):
        if (layout is torch.contiguous_format or x.dim() == 4) and x.is_contiguous(memory_format=layout) and out.stride() == x.stride():
            return x.as_strided((1, 1, x.numel()), (0, 0, 1)), out.as_strided((1, 1, out.numel()), (0, 0, 1))
    planes = [_planes(t.unsqueeze(0) if t.dim() == 1 else t, writable=True) for t in (x, out)]
    if any(p is None or p.shape[-1] > 1 and p.stride(-1) != 1 for p in planes):
        return None
    if all(p.shape[-2] == 1 or p.stride(-2) == p.shape[-1] for p in planes):
        return planes[0].flatten(1).unsqueeze(1), planes[1].flatten(1).unsqueeze(1)
    return planes[0], planes[1]


def round_clamp(
    x: Tensor, lo: float, hi: float, rounded: bool, scale: float | None = None, shift: float | None = None, out: Tensor | None = None,
    within: tuple[float, float] | None = None,
) -> Tensor | None:
    """``clamp(round(x * scale + shift), lo, hi)`` (each step only where
    given) as :func:`diffjpeg.stages.rounding.clamp_ste`'s tensor operations
    give it, in one kernel, into ``out`` (``x`` itself for in place, or a new
    tensor); ``None`` (nothing written) where the kernel does not apply
    (also a 0-d ``x``, a last dimension not contiguous, or, for float64, a
    scalar that float32 does not hold, as the kernel takes them).

    ``within``: ``(low, high)``: also checks that every value of ``x`` lies
    in ``[low, high]``, and returns ``None`` (the new tensor dropped) if one
    does not or is NaN; this waits for the kernel."""
    if within is not None and out is not None:
        raise ValueError("round_clamp: within checks a new tensor's input; out must be None with it")
    if x.dim() == 0 or not _takes(x):
        return None
    if not _scalars_fit(x.dtype, lo, hi, scale, shift, *(within or ())):
        return None
    if out is not None and (out.dtype != x.dtype or out.device != x.device or out.shape != x.shape or out.requires_grad):
        return None
    result = torch.empty_like(x) if out is None else out
    lines = _lines(x.detach(), result.detach())
    if lines is None:
        return None
    source, target = lines
    if x.numel():
        planes, h, n = source.shape
        block = _power_of_two(n, 128, TILE)  # short lines (rows of a strided plane) need no 1024 lanes
        tiles = -(-n // block)
        grid = planes * h * tiles
        flags = target if within is None else torch.empty(grid, dtype=torch.int32, device=x.device)  # (unread without within)
        low, high = (0.0, 0.0) if within is None else within
        _kernels().round_clamp_kernel[(grid,)](
            source, target, flags, n, h, source.stride(0), source.stride(1), target.stride(0), target.stride(1), tiles,
            1.0 if scale is None else float(scale), 0.0 if shift is None else float(shift), float(lo), float(hi), float(low), float(high),
            HAS_SCALE=scale is not None, HAS_SHIFT=shift is not None, ROUNDED=bool(rounded), CHECK=within is not None, BLOCK=block,
            enable_fp_fusion=False,
        )
        if out is not None:
            mark_written(out)
        if within is not None and bool(flags.any()):
            return None
    return result


def block_transform(blocks: Tensor, matrix: Tensor, shift: float | None = None, out: Tensor | None = None) -> Tensor | None:
    """``A (X - shift) A^T`` for every 8x8 block ``X`` of ``blocks``
    (``(..., 8, 8)``; the kernel reads ``(N, 8, 8)`` at any strides, other
    shapes are reshaped to it), ``A`` the 8x8 ``matrix`` of its dtype,
    summed in :func:`diffjpeg.stages.dct.block_transform`'s fixed order, into
    ``out`` or a new contiguous tensor; ``None`` where the kernel does not
    apply. The shift is the tensor subtraction, before the kernel."""
    if blocks.dim() < 3 or blocks.shape[-2:] != (8, 8) or matrix.shape != (8, 8) or not _takes(blocks, matrix):
        return None
    flat = blocks.reshape(-1, 8, 8)
    if shift is not None:
        flat = flat - shift
    result = torch.empty(flat.shape, dtype=blocks.dtype, device=blocks.device)
    n = flat.shape[0]
    if n:
        grid = (-(-n // BLOCKS_PER_PROGRAM),)
        _kernels().block_transform_kernel[grid](
            flat, matrix, result, n, *flat.stride(), *matrix.stride(), BLOCKS=BLOCKS_PER_PROGRAM, enable_fp_fusion=False,
        )
    result = result.view(blocks.shape)
    return result if out is None else out.copy_(result)


def color_apply(x: Tensor, matrix: Tensor, offset: Tensor | None, post: tuple | None = None, out: Tensor | None = None) -> Tensor | None:
    """``matrix @ x (+ offset)`` over the channels of ``x`` (``(B, 3, P)``;
    ``matrix`` ``(B, 3, 3)``, ``offset`` ``(B, 3)`` or ``None``, of ``x``'s
    dtype, all at any strides), summed in
    :func:`diffjpeg.stages.color.color_product`'s fixed order, a new
    contiguous ``(B, 3, P)`` tensor; ``None`` where the kernel does not apply
    (``post``, the CPU loop's fused last steps, and ``out``, its in-place
    form, are not taken: the stage then runs its steps one by one, each
    through its own kernel)."""
    if post is not None or out is not None or x.dim() != 3 or x.shape[1] != 3 or matrix.shape != (x.shape[0], 3, 3):
        return None
    if offset is not None and offset.shape != (x.shape[0], 3):
        return None
    if not _takes(x, matrix, *(() if offset is None else (offset,))):
        return None
    out = torch.empty(x.shape, dtype=x.dtype, device=x.device)
    b, _, pixels = x.shape
    if b and pixels:
        tiles = -(-pixels // PIXELS_PER_PROGRAM)
        o = x if offset is None else offset  # (unread without an offset)
        _kernels().color_kernel[(b * tiles,)](
            x, matrix, o, out, pixels, tiles, *x.stride(), *matrix.stride(), *(o.stride()[:2] if offset is not None else (0, 0)),
            HAS_OFFSET=offset is not None, BLOCK=PIXELS_PER_PROGRAM, enable_fp_fusion=False,
        )
    return out


# ---------------------------------------------------------------- the quantizer (cpu.quantize's counterpart)
QUANTIZER_BLOCKS = 16  # 8x8 blocks a program: a table's partial sums per 16 blocks, then folded in order
_SURROGATE_KINDS = {"linear": 0, "polynomial": 1, "fourier": 2, "sigmoid": 3, "noise": 4}  # gpu_stage_kernels' numbers


def _quantizer_rows(coefficients: Tensor, table: Tensor, surrogate: str) -> tuple[Tensor, Tensor] | None:
    """:func:`diffjpeg.backends.cpu.quantizer_rows` where these kernels take
    the tensors (their device) and know the surrogate; ``None`` otherwise."""
    if surrogate not in _SURROGATE_KINDS or not _takes_floats(coefficients) or not gpu.applies(table):
        return None
    return quantizer_rows(coefficients, table)


def quantizer_takes(coefficients: Tensor, table: Tensor) -> bool:
    """Whether :func:`quantize` and :func:`quantize_adjoint` take these tensors (with a surrogate they know)."""
    return _quantizer_rows(coefficients, table, "linear") is not None


def _surrogate_arguments(rows: Tensor, surrogate: str, parameters: tuple) -> dict:
    """The kernels' surrogate arguments: its number, its number of terms, and
    :func:`_surrogate_tensors` on the rows' dtype and device."""
    sigma, constants = _surrogate_tensors(surrogate, tuple(parameters), rows.dtype, rows.device)
    return {"sigma": sigma, "constants": constants, "KIND": _SURROGATE_KINDS[surrogate],
            "TERMS": len(parameters) if surrogate == "fourier" else 1}


@functools.lru_cache(maxsize=32)  # bounded: a temperature annealed per step makes a new key each time
def _surrogate_tensors(surrogate: str, parameters: tuple, dtype: torch.dtype, device: torch.device) -> tuple[Tensor, Tensor]:
    """As tensors (a Python float would enter a kernel as float32), built
    once per surrogate, dtype and device (no copy to the device per call;
    only the kernels read them):
    fourier's sigma factors, or the sigmoid's ``a``, ``1 / scale`` and
    ``4 a / scale``, in ``dtype``, as _quantize.c derives them; and float64
    2 pi, 2 / pi, pi / 2."""
    terms = list(parameters) if surrogate == "fourier" else [0.0]
    if surrogate == "sigmoid":
        a, scale = parameters
        weights = [a, 1.0 / scale, 4.0 * a / scale]
    else:  # s_k, then s_k / (pi k), as _quantize.c's (T)(...)
        weights = terms + [s / (math.pi * k) for k, s in enumerate(terms, 1)]
    sigma = torch.tensor(weights, dtype=torch.float64).to(device=device, dtype=dtype)
    constants = torch.tensor([2 * math.pi, 2 / math.pi, math.pi / 2], dtype=torch.float64, device=device)
    return sigma, constants


def _quantize_launch(coefficients: Tensor, table: Tensor, surrogate: str, parameters: tuple, soft: bool, slope: bool,
                     noise: Tensor | None = None) -> Tensor | None:
    """``quantize_kernel`` into a new tensor: ``round(F / Q)``, or ``soft``
    the surrogate's value, or ``slope`` its derivative; ``None`` where it
    does not take the tensors."""
    views = _quantizer_rows(coefficients, table, surrogate)
    if views is None or torch.is_grad_enabled() and (coefficients.requires_grad or table.requires_grad):
        return None
    rows, tables = views
    out = torch.empty(coefficients.shape, dtype=coefficients.dtype, device=coefficients.device)
    target = out.view(rows.shape)
    drawn = target if noise is None else noise.detach().to(rows.dtype).contiguous().view(rows.shape)
    n, m = rows.shape
    chunks = -(-m // (QUANTIZER_BLOCKS * 64))
    args = _surrogate_arguments(rows, surrogate, parameters)
    _kernels().quantize_kernel[(n * chunks,)](
        rows, tables, target, drawn, args["sigma"], args["constants"], m, rows.stride(0), tables.stride(0), target.stride(0),
        drawn.stride(0), chunks, SOFT=bool(soft), KIND=args["KIND"], TERMS=args["TERMS"], SLOPE=bool(slope), BLOCKS=QUANTIZER_BLOCKS,
    )  # fusion allowed: values to the contract, not bit for bit (exp, sin, cos, and div_rn itself, use FMAs within)
    return out


def quantize(coefficients: Tensor, table: Tensor, soft: bool, surrogate: str, parameters: tuple, noise: Tensor | None = None) -> Tensor | None:
    """:func:`diffjpeg.backends.cpu.quantize` on the GPU: ``round(F / Q)``
    (``F / Q`` correctly rounded, so float mode rounds the tensor form's
    quotients), or ``soft``, the surrogate's value; the surrogates' exp,
    sine and cosine within the float/soft contract of the tensor form."""
    return _quantize_launch(coefficients, table, surrogate, parameters, soft, False, noise)


def quantize_slope(coefficients: Tensor, table: Tensor, surrogate: str, parameters: tuple) -> Tensor | None:
    """:func:`diffjpeg.backends.cpu.quantize_slope` on the GPU: the
    surrogate's derivative ``r'(F / Q)`` of each coefficient, a new tensor,
    as :func:`quantize_adjoint` computes it."""
    return _quantize_launch(coefficients, table, surrogate, parameters, False, True)


def quantize_adjoint(grad: Tensor, coefficients: Tensor, table: Tensor, surrogate: str, parameters: tuple, table_grad: bool) -> tuple[Tensor, Tensor | None] | None:
    """:func:`diffjpeg.backends.cpu.quantize_adjoint` on the GPU: ``grad r'
    / Q`` and the table's gradient, summed per program of
    :data:`QUANTIZER_BLOCKS` blocks and then folded in order, in float64 (no
    atomics: the same bits at every launch)."""
    views = _quantizer_rows(coefficients, table, surrogate)
    if views is None or grad.shape != coefficients.shape or grad.dtype != coefficients.dtype or not gpu.applies(grad):
        return None
    rows, tables = views
    g = grad.detach().contiguous().view(rows.shape)
    out = torch.empty(coefficients.shape, dtype=coefficients.dtype, device=coefficients.device)
    target = out.view(rows.shape)
    n, m = rows.shape
    chunks = -(-m // (QUANTIZER_BLOCKS * 64))
    partials = torch.empty((n * chunks if table_grad else 1, 64), dtype=torch.float64, device=rows.device)
    args = _surrogate_arguments(rows, surrogate, parameters)
    _kernels().quantize_adjoint_kernel[(n * chunks,)](
        g, rows, tables, target, partials, args["sigma"], args["constants"], m, g.stride(0), rows.stride(0), tables.stride(0),
        target.stride(0), chunks, KIND=args["KIND"], TERMS=args["TERMS"], SUMS=bool(table_grad), BLOCKS=QUANTIZER_BLOCKS,
    )  # (fusion allowed, as in quantize)
    table_gradient = None
    if table_grad:
        shared = table.shape[0] == 1 and n > 1  # one table for all: every image's partial sums, in order
        folded = torch.empty((1 if shared else n, 64), dtype=table.dtype, device=table.device)
        _kernels().fold_kernel[(folded.shape[0],)](partials, folded, n * chunks if shared else chunks, folded.stride(0))
        table_gradient = folded.view(table.shape)
    return out, table_gradient


# ---------------------------------------------------------------- the block pass (cpu.block_pass's counterpart)
PASS_BLOCKS = {torch.float32: 32, torch.float64: 16}  # 8x8 blocks a program (float64's fourier spilled at 32 on sm_90)


def block_pass_takes(plane: Tensor, table: Tensor) -> bool:
    """Whether :func:`block_pass` and :func:`block_pass_adjoint` take planes
    and tables like these (dtype and device; the calls check the shapes)."""
    return _takes_floats(plane) and table.dtype == plane.dtype and gpu.applies(table)


def _pass_launch(plane: Tensor, table: Tensor, out: Tensor, matrices: tuple[Tensor, Tensor], *per_coefficient: Tensor | None) -> tuple | None:
    """What both kernels are launched with: the grid, the number of blocks,
    ``BX``, ``BY BX``, ``plane``'s and ``out``'s strides, the tables as rows
    of 64 and their stride (0: one for all), ``C`` and ``C^T``; ``None``
    where they do not take the tensors: a ``(P, 8 BY, 8 BX)`` plane with
    rows contiguous, its ``(P or 1, 8, 8)`` table, an ``out`` like it, and
    ``per_coefficient`` tensors (slopes, noise: ``None`` or one value per
    coefficient, contiguous) of the plane's dtype and device."""
    if not (block_pass_takes(plane, table) and plane.dim() == 3 and plane.shape[1] % 8 == 0 and plane.shape[2] % 8 == 0 and plane.stride(2) == 1):
        return None
    if table.dim() != 3 or table.shape[1:] != (8, 8) or table.shape[0] not in (1, plane.shape[0]):
        return None
    if out.shape != plane.shape or out.dtype != plane.dtype or out.stride(2) != 1 or out.device != plane.device or out.requires_grad:
        return None
    for t in per_coefficient:
        if t is not None and not (t.dtype == plane.dtype and t.device == plane.device and t.is_contiguous() and t.numel() == plane.numel()):
            return None
    p, h, w = plane.shape
    n = p * (h // 8) * (w // 8)
    rows = table.detach().reshape(-1, 64).contiguous()
    c, ct = (m.to(plane.dtype).contiguous() for m in matrices)
    grid = (-(-n // PASS_BLOCKS[plane.dtype]),)
    return grid, n, w // 8, (h // 8) * (w // 8), plane.stride(0), plane.stride(1), out.stride(0), out.stride(1), rows, (rows.stride(0) if rows.shape[0] > 1 else 0), c, ct


def block_pass(
    plane: Tensor, table: Tensor, out: Tensor, matrices: tuple[Tensor, Tensor], soft: bool, surrogate: str, parameters: tuple,
    slopes: Tensor | None = None, noise: Tensor | None = None,
) -> Tensor | None:
    """:func:`diffjpeg.backends.cpu.block_pass` on the GPU: each 8x8 block of
    ``plane`` from samples to samples in one kernel (DCT, quantizer, inverse
    DCT and clamp, :mod:`diffjpeg.stages.dctmgr`), into ``out`` (``plane``
    itself allowed), the surrogate's derivative into ``slopes`` where
    given; float mode's pixels are the stages' bits, soft mode's and the
    slopes within the quantizer kernel's contract."""
    launch = None if surrogate not in _SURROGATE_KINDS else _pass_launch(plane, table, out, matrices, slopes, noise)
    if launch is None or (soft and surrogate == "noise") != (noise is not None):
        return None
    grid, n, bx, per_plane, s_p, s_r, d_p, d_r, rows, s_q, c, ct = launch
    if n:
        args = _surrogate_arguments(rows, surrogate, parameters)
        _kernels().block_pass_kernel[grid](
            plane.detach(), out, rows, out if slopes is None else slopes, out if noise is None else noise.detach(), c, ct,
            args["sigma"], args["constants"], n, bx, per_plane, s_p, s_r, d_p, d_r, s_q, SOFT=bool(soft), KIND=args["KIND"],
            TERMS=args["TERMS"], SLOPED=slopes is not None, BLOCKS=PASS_BLOCKS[plane.dtype], enable_fp_fusion=False,
        )
    return out


def block_pass_adjoint(grad: Tensor, slopes: Tensor | None, table: Tensor, out: Tensor, matrices: tuple[Tensor, Tensor]) -> Tensor | None:
    """:func:`diffjpeg.backends.cpu.block_pass_adjoint` on the GPU: the
    gradient of :func:`block_pass`'s plane from its output's, with the
    ``slopes`` it saved (``None``: ``r' = 1``), into ``out`` (``grad``
    itself allowed), in one kernel."""
    launch = _pass_launch(grad, table, out, matrices, slopes)
    if launch is None:
        return None
    grid, n, bx, per_plane, s_p, s_r, d_p, d_r, rows, s_q, c, ct = launch
    if n:
        _kernels().block_pass_adjoint_kernel[grid](
            grad.detach(), out, rows, out if slopes is None else slopes, c, ct, n, bx, per_plane, s_p, s_r, d_p, d_r, s_q,
            SLOPED=slopes is not None, BLOCKS=PASS_BLOCKS[grad.dtype], enable_fp_fusion=False,
        )
    return out


def _takes_floats(x: Tensor) -> bool:
    """Whether the DCT's and the color product's kernels take ``x``'s device and dtype (the stages then take the fixed order)."""
    return x.dtype in FLOATS and gpu.applies(x)


for _slot in ("color_apply", "block_transform", "round_clamp", "downsample", "upsample", "downsample_adjoint", "upsample_adjoint"):
    # each slot's kernel is this module's function of that name
    dispatch.register(_slot, globals()[_slot], "triton", _takes_floats if _slot in ("color_apply", "block_transform") else None)
dispatch.register("quantize", quantize, "triton", quantizer_takes)
dispatch.register("quantize_adjoint", quantize_adjoint, "triton", quantizer_takes)
dispatch.register("quantize_slope", quantize_slope, "triton", quantizer_takes)
dispatch.register("block_pass", block_pass, "triton", block_pass_takes)
dispatch.register("block_pass_adjoint", block_pass_adjoint, "triton", block_pass_takes)
