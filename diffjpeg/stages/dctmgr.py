"""The block pass: float and soft mode's DCT, quantizer and inverse DCT of
each 8x8 block together, and its gradient (libjpeg's DCT managers).

libjpeg-turbo's DCT managers pair the transform with the quantizer per
block: jcdctmgr.c runs the forward DCT and quantizes its output, jddctmgr.c
the inverse DCT with dequantization in its multiplier table. Between the
encoder's quantizer and the decoder's dequantizer :func:`diffjpeg.jpeg`
touches nothing, so in float and soft mode a block goes from samples to
samples in one step::

    X (samples) -> F = fdct(X) -> v = quantize(F, Q) -> idct(v Q) (samples)

:func:`block_pass` does this, and :func:`block_pass_adjoint` its
transpose (``idct``'s adjoint, ``x Q``, the surrogate's derivative at
``F / Q`` and ``/ Q``, ``fdct``'s adjoint), per plane of a component. The
forward saves the derivative ``r'(F / Q)`` itself, not ``F``: it has
``F / Q`` at hand (the backward would divide again), the sigmoid's
exponential serves its value and its derivative at once, and linear and
noise (``r' = 1``) save nothing.

Facts relied on:

* The compiled pass (``diffjpeg/backends/_quantize.c``) and the Triton
  kernels (``diffjpeg/backends/gpu_stage_kernels.py``), the ``"block_pass"``
  slots' kernels, perform the separate stages' operations in their order
  (the DCT's fixed order, :mod:`diffjpeg.stages.dct`; the quantizer's loop,
  :mod:`diffjpeg.stages.quantize`; ``q * Q``; the clamp of
  :func:`diffjpeg.stages.dct.idct`), so float mode's forward is the
  stages' bits, soft mode's and every gradient within
  :func:`~diffjpeg.core.precision.rounding_tolerance` of the tensor forms,
  as the quantizer's kernels are.
* A block's work depends on nothing but the block and its table: any split
  among threads gives the same bits.

The tensor form below is the reference, and the path where no kernel runs.
"""
from __future__ import annotations

import torch
from torch import Tensor

from ..core import dispatch
from ..core.check import check_choice
from .blocks import merge_blocks, split_blocks
from .dct import dct_matrices, fdct, fdct_adjoint, idct, idct_adjoint
from .quantize import dequantize, kernel_form, quantize_with_surrogate
from .rounding import Linear, Noise, Rounding, warn_if_no_quantization


def takes(tables: Tensor, rounding: Rounding) -> bool:
    """Whether a kernel of the call's backend runs the block pass for planes
    of the dtype and device of ``tables`` and for the surrogate ``rounding``
    (else the pipeline runs the stages one by one)."""
    return kernel_form(rounding) is not None and dispatch.takes("block_pass", tables, tables)


def sloped(rounding: Rounding) -> bool:
    """Whether the backward needs ``rounding``'s derivative saved: not for
    linear and noise, whose derivative is 1."""
    return not isinstance(rounding, (Linear, Noise))


def block_pass(
    plane: Tensor, table: Tensor, mode: str, rounding: Rounding, out: Tensor | None = None, slopes: Tensor | None = None
) -> Tensor:
    """A component's samples quantized and back, block by block:
    ``idct(dequantize(quantize(fdct(X), Q), Q), mode)``. No graph: the
    pipeline's gradient is :func:`block_pass_adjoint`.

    Args:
        plane: ``(P, 8 BY, 8 BX)`` samples in [0, 255] (a component's
            sampled plane, edges replicated to whole blocks), float32 or
            float64, rows contiguous.
        table: ``(P or 1, 8, 8)`` its quantization table, entries > 0.
        mode: ``"float"`` (rounded coefficients and samples) or ``"soft"``
            (the surrogate's values, samples not rounded).
        rounding: the quantizer's surrogate (soft mode's forward); the noise
            surrogate draws from its generator as :func:`~diffjpeg.stages.quantize.quantize` does.
        out: where the result goes (the plane's shape, ``plane`` itself
            allowed); a new tensor if ``None``.
        slopes: ``(P, BY, BX, 8, 8)`` contiguous, to receive the
            surrogate's derivative ``r'(F / Q)`` (what
            :func:`block_pass_adjoint` needs where :func:`sloped`), or ``None``.

    Returns:
        ``out``: samples in [0, 255].

    Example:
        >>> from diffjpeg.stages.rounding import as_rounding
        >>> x = torch.full((1, 8, 8), 200.0)
        >>> block_pass(x, torch.full((1, 8, 8), 16.0), "float", as_rounding("linear"))[0, 0, 0].item()
        200.0
    """
    check_choice("mode", mode, ("float", "soft"))
    if mode == "soft":
        warn_if_no_quantization(mode, rounding)
    out = torch.empty_like(plane, memory_format=torch.contiguous_format) if out is None else out
    with torch.no_grad():
        form = kernel_form(rounding)
        if form is not None and dispatch.takes("block_pass", plane, table):
            c = dct_matrices(plane.dtype, plane.device)
            noise = rounding.draw(split_blocks(plane)) if mode == "soft" and isinstance(rounding, Noise) else None
            if dispatch.run("block_pass", plane, table, out, c, mode == "soft", *form, slopes, noise) is not None:
                return out
        coefficients = fdct(split_blocks(plane), mode)
        per_block = table.reshape(table.shape[0], 1, 1, 8, 8)
        if slopes is not None:
            slopes.copy_(rounding.derivative(coefficients / per_block))
        quantized = quantize_with_surrogate(coefficients, per_block, mode, rounding)
        return merge_blocks(idct(dequantize(quantized, per_block), mode), out=out)


def block_pass_kernel(plane: Tensor, table: Tensor, mode: str, form: tuple[str, tuple[float, ...]], out: Tensor, slopes: Tensor | None = None) -> Tensor:
    """:func:`block_pass` by a kernel alone, the surrogate given by its
    kernel form (``(name, parameters)``, :func:`~diffjpeg.stages.quantize.kernel_form`;
    not the noise surrogate, whose draws need its generator): for a caller
    that holds no :class:`~diffjpeg.stages.rounding.Rounding` (a custom
    operator's arguments). ``RuntimeError`` where no kernel takes the
    tensors (the caller asked :func:`takes` first)."""
    if form[0] == "noise" and mode == "soft":
        raise ValueError("block_pass_kernel: the noise surrogate's soft forward needs its generator; use block_pass")
    done = dispatch.run("block_pass", plane, table, out, dct_matrices(plane.dtype, plane.device), mode == "soft", form[0], tuple(form[1]), slopes, None)
    if done is None:
        raise RuntimeError("block_pass_kernel: no kernel took the tensors")
    return out


def block_pass_adjoint(grad: Tensor, slopes: Tensor | None, table: Tensor, out: Tensor | None = None) -> Tensor:
    """The transpose of :func:`block_pass`'s derivative (its clamps and
    roundings straight-through, the quantizer's the surrogate's
    ``r'(F / Q)``): the gradient of its plane from ``grad``, its output's.

    Args:
        grad: ``(P, 8 BY, 8 BX)``, rows contiguous.
        slopes: the derivatives :func:`block_pass` saved; ``None`` for a
            surrogate whose derivative is 1 (not :func:`sloped`).
        table: as given to :func:`block_pass`.
        out: where the gradient goes (``grad``'s shape; ``grad`` itself
            allowed); a new tensor if ``None``.

    Example:
        >>> g = block_pass_adjoint(torch.ones(1, 8, 8), None, torch.full((1, 8, 8), 4.0))
        >>> torch.allclose(g, torch.ones(1, 8, 8), atol=1e-5)
        True
    """
    out = torch.empty_like(grad, memory_format=torch.contiguous_format) if out is None else out
    with torch.no_grad():
        if dispatch.takes("block_pass_adjoint", grad, table):
            c = dct_matrices(grad.dtype, grad.device)
            if dispatch.run("block_pass_adjoint", grad, slopes, table, out, c) is not None:
                return out
        per_block = table.reshape(table.shape[0], 1, 1, 8, 8)
        g = idct_adjoint(split_blocks(grad)) * per_block
        if slopes is not None:
            g = g * slopes
        return merge_blocks(fdct_adjoint(g / per_block), out=out)
