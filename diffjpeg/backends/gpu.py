"""The GPU backend: Triton kernels for CUDA tensors, the same values as the
stages' tensor forms bit for bit (issue 29). Each kernel module imports
Triton, so this module imports them on first use only:

* :mod:`~diffjpeg.backends.gpu_encoder` and :mod:`~diffjpeg.backends.gpu_decoder`:
  exact mode's codec, libjpeg-turbo's integer encoder (jccolor, jcsample,
  jfdctint, jcdctmgr) in one kernel per group of components and its decoder
  (dequantization and jidctint's SIMD ISLOW into the planes; jdsample's fancy
  upsampling, jdcolor and the output dtype) in two. :func:`encode` and
  :func:`decode` here are what :mod:`diffjpeg.codec.plan` chooses, as it
  chooses :mod:`diffjpeg.backends.exact` on the CPU; while ``torch.compile``
  traces and under ``torch.func`` transforms, where they decline, it
  chooses the same kernels as custom operators (:mod:`diffjpeg.backends.gpu_ops`).
* :mod:`~diffjpeg.backends.gpu_stages` (kernels in ``gpu_stage_kernels``):
  the real-valued stages' slots of :mod:`diffjpeg.core.dispatch` (float and
  soft modes, and every mode's backward).
* :mod:`~diffjpeg.backends.gpu_kernels`: the ``idct_islow`` and
  ``ycbcr_to_rgb_fixed`` slots (the exact decoder's stages one by one, where
  the fused decoder declines: a learned matrix, say), and the helpers the
  other kernel modules share.

Facts relied on (Triton's language reference): integer ``>>`` on signed
types is an arithmetic shift; int32 ``+``, ``-``, ``*`` and ``&`` wrap as
two's complement; ``tl.load``/``tl.store`` with a mask touch nothing outside
it; ``tl.debug_barrier`` makes a program's stores visible to its own loads;
``enable_fp_fusion=False`` at launch keeps each float product and sum one
IEEE operation (no FMA), as the tensor forms compute them. With
``TRITON_INTERPRET=1`` set before the first kernel is built, the kernels
run on CPU tensors through Triton's interpreter: that is how the tests check
them without a GPU.

Without Triton :func:`applies` is ``False`` and the tensor stages run.
"""
from __future__ import annotations

import functools
import importlib
import os

import torch
from torch import Tensor

from ..core import dispatch
from ..core.check import traced
from ..stages.dct import CONST_BITS, PASS1_BITS

BLOCKS_PER_PROGRAM = 64
PIXELS_PER_PROGRAM = 1024
assert (CONST_BITS - PASS1_BITS, CONST_BITS + PASS1_BITS + 3) == (11, 18)  # the kernel's pass shifts


def available() -> bool:
    """Whether Triton imports here (it is then imported, and the kernels'
    custom operators registered: :mod:`diffjpeg.backends.gpu_operators`)."""
    return _kernels() is not None and _kernels("gpu_operators") is not None


# torch.compile calls it while tracing and takes the answer as a constant
# (dynamo cannot trace the import; the answer cannot change): the mark that
# torch.compiler.assume_constant_result sets (torch 2.13,
# torch/_dynamo/decorators.py), set here because calling that imports
# torch._dynamo, two seconds of every import of diffjpeg
available._dynamo_marked_constant = True


def device_type() -> str:
    """The device the kernels take: ``"cuda"``, or ``"cpu"`` under ``TRITON_INTERPRET=1``."""
    return "cpu" if os.environ.get("TRITON_INTERPRET") == "1" else "cuda"


def applies(*tensors: Tensor) -> bool:
    """Whether the kernels take these tensors: every one on the kernels'
    device, not traced by ``torch.compile`` nor under a ``torch.func``
    transform (its tensors have no data pointer,
    :func:`diffjpeg.core.check.traced`), and Triton importable."""
    device = device_type()
    if traced() or not all(t.device.type == device for t in tensors):
        return False
    return _kernels() is not None


@functools.lru_cache(maxsize=None)
def _kernels(name: str = "gpu_kernels"):
    """The kernel module ``name`` of this package, imported on first use;
    ``None`` without Triton."""
    try:  # CUDA builds of torch ship Triton; the CPU build does not
        return importlib.import_module(f"{__package__}.{name}")
    except ImportError:
        return None


CODEC_DTYPES = (torch.uint8, torch.float16, torch.bfloat16, torch.float32, torch.float64)
DECODER_COLOR_SPACES = {"YCbCr": 3, "RGB": 3, "grayscale": 1}  # the fused decoder's, and their channels; CMYK and YCCK take the stages
ENCODER_SCALES = ((1, 1), (2, 1), (1, 2), (2, 2))  # jcsample.c's ratios (h, v) the fused encoder takes


def encoder_takes(x: Tensor, tables: Tensor, geometries, work: torch.dtype) -> bool:
    """Whether the fused encoder computes these arguments (shapes and dtypes
    only, nothing read): ``(B, C, H, W)`` images of :data:`CODEC_DTYPES`, C =
    1 or 3, ratios of :data:`ENCODER_SCALES`, ``(B or 1, 2, 8, 8)`` tables on
    the image's device, float32 or float64 out. The one home of these facts:
    :func:`encode` and :func:`diffjpeg.backends.gpu_ops.encode` ask it."""
    if x.dim() != 4 or x.dtype not in CODEC_DTYPES or work not in (torch.float32, torch.float64):
        return False
    count, channels = x.shape[:2]
    if channels not in (1, 3) or len(geometries) != channels or any(tuple(g.scale) not in ENCODER_SCALES for g in geometries):
        return False
    return tables.dim() == 4 and tables.shape[1:] == (2, 8, 8) and tables.shape[0] in (1, count) and tables.device == x.device


def decoder_takes(components, tables: Tensor, geometries, size: tuple[int, int], out_dtype: torch.dtype, color_space: str) -> bool:
    """Whether the fused decoder computes these arguments (shapes and dtypes
    only): a color space of :data:`DECODER_COLOR_SPACES` with its channels,
    uint8 or float out, real blocks ``(B, rows, cols, 8, 8)`` that cover
    their geometry, ``(B, C, 8, 8)`` tables, upsampling ratios 1 to 4, all on
    one device. :func:`decode` and :func:`diffjpeg.backends.gpu_ops.decode` ask it."""
    channels = len(components)
    if DECODER_COLOR_SPACES.get(color_space) != channels or len(geometries) != channels:
        return False
    if not (out_dtype == torch.uint8 or out_dtype.is_floating_point) or any(c.device != tables.device for c in components):
        return False
    count = tables.shape[0]
    height, width = size
    if tables.shape != (count, channels, 8, 8) or tables.dtype == torch.bool:
        return False
    for blocks, geo in zip(components, geometries):
        h, v = geo.scale
        if blocks.dim() != 5 or blocks.shape[0] != count or blocks.shape[3:] != (8, 8) or blocks.dtype == torch.bool or blocks.is_complex():
            return False
        rows, cols = blocks.shape[1:3]
        if rows * 8 < geo.downsampled[0] or cols * 8 < geo.downsampled[1] or not (1 <= h <= 4 and 1 <= v <= 4):
            return False
        if geo.downsampled[0] * v < height or geo.downsampled[1] * h < width:
            return False
    return True


def codec_takes(image: Tensor, matrix: Tensor | None) -> bool:
    """Whether the exact codec's kernels compute ``image`` ``(..., C, H, W)``
    (C = 1 or 3, :data:`CODEC_DTYPES`) with libjpeg's color matrix
    (``matrix is None``); shapes and dtypes only, the device is
    :func:`applies`' (or :func:`diffjpeg.backends.gpu_ops.applies`')."""
    return matrix is None and image.dtype in CODEC_DTYPES and image.dim() >= 3 and image.shape[-3] in (1, 3)


def encode(x: Tensor, tables: Tensor, geometries, work: torch.dtype, with_dct: bool):
    """Exact mode's quantized blocks (and DCT, ``with_dct``) of ``(B, C, H,
    W)`` images in the fused encoder kernel, the values of the codec's
    integer stages; ``None`` where it declines. The caller checks the
    values first (NaN, the range): the kernel reads them as they are."""
    if not (applies(x, tables) and encoder_takes(x, tables, geometries, work)):
        return None
    return _kernels("gpu_encoder").encode(x, tables, geometries, work, with_dct)


def decode(components, tables: Tensor, geometries, size: tuple[int, int], out_dtype: torch.dtype, color_space: str):
    """Exact mode's pixels ``(B, C, H, W)`` in ``out_dtype`` from quantized
    blocks and each component's table ``(B, C, 8, 8)``, in the fused decoder
    kernels; ``None`` where they decline."""
    if not (applies(tables, *components) and decoder_takes(components, tables, geometries, size, out_dtype, color_space)):
        return None
    return _kernels("gpu_decoder").decode(list(components), tables, geometries, size, out_dtype, color_space)


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
