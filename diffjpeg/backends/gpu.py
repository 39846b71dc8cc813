"""The GPU backend: Triton kernels for CUDA tensors, the same values as the
stages' tensor forms bit for bit (issue 29's first piece; the kernels are in
:mod:`diffjpeg.backends.gpu_kernels`).

Today, two pieces of the exact decoder: the inverse DCT, libjpeg-turbo's
SIMD ISLOW (``jidctint-avx2.asm``) with its 16-bit sums and saturations, as
:func:`diffjpeg.stages.dct.idct_islow` defines it, in one kernel instead of
some sixty elementwise operations; and jdcolor.c's integer YCbCr to RGB
conversion (:func:`diffjpeg.stages.color.ycbcr_to_rgb_fixed`). They fill the
``idct_islow`` and ``ycbcr_to_rgb_fixed`` slots of
:mod:`diffjpeg.core.dispatch` for CUDA tensors.

Facts relied on (Triton's language reference): integer ``>>`` on signed
types is an arithmetic shift; int32 ``+``, ``-``, ``*`` and ``&`` wrap as
two's complement; ``tl.load``/``tl.store`` with a mask touch nothing outside
it; ``tl.debug_barrier`` makes a program's stores visible to its own loads.
With ``TRITON_INTERPRET=1`` set before the first kernel is built, the
kernels run on CPU tensors through Triton's interpreter: that is how the
tests check them without a GPU.

Triton is optional and imported only when a tensor the kernels could take
first shows up (importing it costs as much as a second): without it
:func:`applies` is ``False`` and the tensor stages run.
"""
from __future__ import annotations

import functools
import os

import torch
from torch import Tensor

from ..core import dispatch
from ..stages.dct import CONST_BITS, PASS1_BITS

BLOCKS_PER_PROGRAM = 64
PIXELS_PER_PROGRAM = 1024
assert (CONST_BITS - PASS1_BITS, CONST_BITS + PASS1_BITS + 3) == (11, 18)  # the kernel's pass shifts


def available() -> bool:
    """Whether Triton imports here (it is then imported)."""
    return _kernels() is not None


def device_type() -> str:
    """The device the kernels take: ``"cuda"``, or ``"cpu"`` under ``TRITON_INTERPRET=1``."""
    return "cpu" if os.environ.get("TRITON_INTERPRET") == "1" else "cuda"


def applies(*tensors: Tensor) -> bool:
    """Whether the kernels take these tensors: every one on the kernels'
    device, not traced by ``torch.compile``, and Triton importable."""
    device = device_type()
    if torch.compiler.is_compiling() or not all(t.device.type == device for t in tensors):
        return False
    return _kernels() is not None


@functools.lru_cache(maxsize=None)
def _kernels():
    """The kernels module, imported on first use; ``None`` without Triton."""
    try:  # CUDA builds of torch ship Triton; the CPU build does not
        from . import gpu_kernels
    except ImportError:
        return None
    return gpu_kernels


def idct_islow(x: Tensor, quantized: Tensor | None = None) -> Tensor | None:
    """:func:`diffjpeg.stages.dct.idct_islow` of int32 ``x`` in one kernel
    (values beyond int16 taken modulo 2**16 there, as the SIMD
    dequantization leaves them): ``(..., 8, 8)`` int32 samples in [0, 255];
    ``None`` where the kernel does not apply."""
    if x.dtype != torch.int32 or not applies(x, *(() if quantized is None else (quantized,))):
        return None
    kernels = _kernels()
    source = x if quantized is None else quantized
    shortcut = (source[..., 1:, :] == 0).flatten(-2).all(-1).to(torch.uint8).reshape(-1).contiguous()
    blocks = x.reshape(-1, 64).contiguous()
    n = blocks.shape[0]
    columns, out = torch.empty_like(blocks), torch.empty_like(blocks)
    if n:
        grid = (kernels.triton.cdiv(n, BLOCKS_PER_PROGRAM),)
        kernels.idct_kernel[grid](blocks, shortcut, columns, out, n, BLOCKS=BLOCKS_PER_PROGRAM)
    return out.reshape(x.shape)


def ycbcr_to_rgb_fixed(samples: Tensor) -> Tensor | None:
    """:func:`diffjpeg.stages.color.ycbcr_to_rgb_fixed` with libjpeg's matrix
    in one kernel: int32 ``(B, 3, H, W)`` samples in, RGB out; ``None`` where
    the kernel does not apply."""
    if samples.dtype != torch.int32 or samples.dim() != 4 or samples.shape[1] != 3 or not applies(samples):
        return None
    kernels = _kernels()
    x = samples.contiguous()
    out = torch.empty_like(x)
    b, _, h, w = x.shape
    total = b * h * w
    if total:
        grid = (kernels.triton.cdiv(total, PIXELS_PER_PROGRAM),)
        kernels.ycc_kernel[grid](x, out, h * w, total, BLOCK=PIXELS_PER_PROGRAM)
    return out


dispatch.register("idct_islow", idct_islow, "triton")
dispatch.register("ycbcr_to_rgb_fixed", ycbcr_to_rgb_fixed, "triton")
