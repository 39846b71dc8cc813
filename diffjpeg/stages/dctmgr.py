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
``F / Q`` and ``/ Q``, ``fdct``'s adjoint), per plane of a component.

Facts relied on:

* The compiled pass (``diffjpeg/backends/_quantize.c``, the ``"block_pass"``
  slots) performs the separate stages' operations in their order (the DCT's
  fixed order, :mod:`diffjpeg.stages.dct`; the quantizer's loop,
  :mod:`diffjpeg.stages.quantize`; ``q * Q``; the clamp of
  :func:`diffjpeg.stages.dct.idct`), so its values are the compiled stages'
  bit for bit: float mode's forward is the same bits, soft mode's and every
  gradient within :func:`~diffjpeg.core.precision.rounding_tolerance` of
  the tensor forms, as the quantizer's loop is.
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
from .rounding import Noise, Rounding, warn_if_no_quantization


def takes(tables: Tensor, rounding: Rounding) -> bool:
    """Whether a kernel of the call's backend runs the block pass for planes
    of the dtype and device of ``tables`` and for the surrogate ``rounding``
    (else the pipeline runs the stages one by one)."""
    return kernel_form(rounding) is not None and dispatch.takes("block_pass", tables, tables)


def block_pass(
    plane: Tensor, table: Tensor, mode: str, rounding: Rounding, out: Tensor | None = None, saved: Tensor | None = None
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
        saved: ``(P, BY, BX, 8, 8)`` contiguous, to receive the DCT
            coefficients ``F`` (what :func:`block_pass_adjoint` needs), or ``None``.

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
            blocks = split_blocks(plane)
            noise = rounding.draw(blocks) if mode == "soft" and isinstance(rounding, Noise) else None
            if dispatch.run("block_pass", plane, table, out, c, mode == "soft", *form, saved, noise) is not None:
                return out
        coefficients = fdct(split_blocks(plane), mode)
        if saved is not None:
            saved.copy_(coefficients)
        per_block = table.reshape(table.shape[0], 1, 1, 8, 8)
        quantized = quantize_with_surrogate(coefficients, per_block, mode, rounding)
        return merge_blocks(idct(dequantize(quantized, per_block), mode), out=out)


def block_pass_adjoint(grad: Tensor, saved: Tensor, table: Tensor, rounding: Rounding, out: Tensor | None = None) -> Tensor:
    """The transpose of :func:`block_pass`'s derivative (its clamps and
    roundings straight-through, the quantizer's the surrogate's
    ``r'(F / Q)``): the gradient of its plane from ``grad``, its output's.

    Args:
        grad: ``(P, 8 BY, 8 BX)``, rows contiguous.
        saved: the coefficients :func:`block_pass` saved.
        table, rounding: as given to :func:`block_pass`.
        out: where the gradient goes (``grad``'s shape; ``grad`` itself
            allowed); a new tensor if ``None``.

    Example:
        >>> from diffjpeg.stages.rounding import as_rounding
        >>> g = block_pass_adjoint(torch.ones(1, 8, 8), torch.zeros(1, 1, 1, 8, 8), torch.ones(1, 8, 8), as_rounding("linear"))
        >>> torch.allclose(g, torch.ones(1, 8, 8), atol=1e-5)
        True
    """
    out = torch.empty_like(grad, memory_format=torch.contiguous_format) if out is None else out
    with torch.no_grad():
        form = kernel_form(rounding)
        if form is not None and dispatch.takes("block_pass_adjoint", grad, table):
            c = dct_matrices(grad.dtype, grad.device)
            if dispatch.run("block_pass_adjoint", grad, saved, table, out, c, *form) is not None:
                return out
        per_block = table.reshape(table.shape[0], 1, 1, 8, 8)
        g = idct_adjoint(split_blocks(grad)) * per_block
        g = g * rounding.derivative(saved / per_block) / per_block
        return merge_blocks(fdct_adjoint(g), out=out)
