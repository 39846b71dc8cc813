"""The JPEG pipeline, composed from its stages.

encode: 8-bit samples -> RGB to YCbCr (color) -> edge padding (blocks) ->
chroma downsampling (sampling) -> 8x8 blocks -> level shift and DCT (dct) ->
quantization (quantize) -> :class:`Coefficients`.

decode: dequantization -> IDCT -> crop -> chroma upsampling -> YCbCr to RGB.

Modes (``mode=``): the forward pass, and the gradient each one gives:

* ``"exact"``: libjpeg-turbo's integer encoder and decoder (ISLOW DCT, fancy
  upsampling), bit for bit what saving and loading the JPEG gives. Backward:
  per stage, the derivative of the real-valued stage at the exact stage input;
  the quantizer uses the chosen rounding surrogate, the 8-bit steps and clamps
  are straight-through.
* ``"float"``: real-valued JPEG: real DCT, true rounding of coefficients and of
  8-bit samples. Backward: as exact.
* ``"soft"``: real-valued JPEG with the rounding surrogate in the forward pass
  too and no 8-bit rounding; smooth, and its backward is its true gradient.

The exact values come from the compiled codec on the CPU
(:mod:`diffjpeg.backends.exact`) and from the fused Triton kernels on CUDA
(:func:`diffjpeg.backends.gpu.encode`, :func:`~diffjpeg.backends.gpu.decode`)
where they apply, with the same results as the tensor stages below.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterable
from typing import Literal, get_args

import torch
from torch import Tensor, nn

from ..backends import exact, gpu, gpu_ops
from ..core import dispatch
from ..core.check import (
    FLOAT_IMAGE_RANGE,
    check_choice,
    check_image_values,
    check_subsampling,
    checking_values,
    traced,
    transformed,
)
from ..core.coefficients import Coefficients
from ..core.colorspace import default_color_space
from ..core.dispatch import BACKENDS, Backend
from ..core.geometry import PillowSubsampling, Subsampling, subsampling_factors
from ..core.modes import MODES, Mode
from ..core.precision import full_precision, levels_to_unit, working_dtype
from ..stages import color, dctmgr, smoothing
from ..stages.blocks import merge_blocks, replicate_edges, replicate_edges_adjoint, split_blocks
from ..stages.dct import fdct, fdct_adjoint, fdct_islow, idct, idct_adjoint, idct_islow, idct_to_plane
from ..stages.quality import DEFAULT_QUALITY, standard_tables
from ..stages.quantize import dequantize, dequantize_integers, quantize, quantize_with_surrogate, quantizer_slope, reciprocal_divide
from ..stages.rounding import Rounding, RoundingName, as_rounding, clamp_ste, needs_grad, round_ste, straight_through
from ..stages.sampling import downsample_adjoint, downsample_biased, is_filtered, upsample, upsample_fancy
from . import planes, strips
from .plan import DecodePlan, EncodePlan, decode_plan, encode_plan, qtables_tensor, quality_tensor


# ---------------------------------------------------------------- pipeline
def encode(
    image: Tensor,
    quality: float | Tensor | None = None,
    *,
    qtables: Tensor | None = None,
    subsampling: Subsampling | PillowSubsampling = "4:2:0",
    mode: Mode = "exact",
    rounding: RoundingName | Rounding | None = None,
    rgb_to_ycbcr: Tensor | None = None,
    backend: Backend = "auto",
) -> Coefficients:
    """Encode images to quantized DCT coefficients, as a JPEG encoder does.

    Args:
        image: a tensor ``(..., C, H, W)``, C = 3 (RGB) or 1 (grayscale), uint8
            or float in [0, 1] (any float dtype). Float values a little outside
            are clipped, straight-through; values outside [-1, 2] are another
            scale (e.g. [0, 255]) and raise ``ValueError`` (see
            :mod:`diffjpeg.core.check` for why). Not a PIL image or numpy array
            (``TypeError`` saying how to convert). Any batch shape, any H, W >= 1.
            Rounded to 8 bits first except in soft mode.
        quality: a number (Python or numpy, not bool) or a tensor (one value,
            or one per image) in [0, 100], fractional allowed, may require grad;
            libjpeg's scaling. Exact mode rounds it to the nearest integer
            forward. Default 75 when neither ``quality`` nor ``qtables`` is given.
        qtables: tables ``(2, 8, 8)`` or ``(B, 2, 8, 8)`` (luma, chroma;
            natural order; ``(1, 2, 8, 8)`` is shared by the batch), may
            require grad. Without ``quality`` they are used as given (entries
            > 0; rounded and clamped to [1, 255] as a baseline JPEG stores
            them); with it they are base tables scaled like libjpeg's, where a
            scaled entry <= 0 becomes 1 (so base entries <= 0 are allowed).
        subsampling: ``"4:4:4"``, ``"4:2:2"`` or ``"4:2:0"``, or Pillow's
            number for it: 0, 1, 2 (ignored for grayscale).
        mode: the forward pass, ``"exact"``, ``"float"`` or ``"soft"`` (module
            docstring). Keyword-only, as is every parameter after ``quality``.
        rounding: the quantizer's surrogate: ``"sigmoid"``, ``"linear"``,
            ``"polynomial"``, ``"fourier"``, ``"noise"``, or a :class:`diffjpeg.stages.rounding.Rounding`
            with its parameters (``Fourier(order=5)``, ``Sigmoid(temperature=0.1)``);
            ``None`` (default): the mode's default, :func:`diffjpeg.stages.rounding.default_rounding`:
            ``Sigmoid(temperature=0.25)`` in every mode (for soft, whose forward
            pass it is, see :mod:`diffjpeg.stages.rounding` on what a sharper one costs).
        rgb_to_ycbcr: ``(3, 3)`` or ``(B, 3, 3)`` color matrix (rows Y, Cb, Cr);
            libjpeg's if ``None``. May require grad.
        backend: the kernels the call may take, :data:`diffjpeg.core.dispatch.Backend`:
            ``"auto"`` (default), ``"native"`` (the compiled C loops),
            ``"triton"`` (the GPU kernels), ``"torch"`` (none). The same
            values whichever runs.

    Returns:
        :class:`Coefficients` with the image's batch shape, float64 for a
        float64 image, else float32 (bfloat16 cannot hold coefficients).
        Computed in that dtype with autocast off, whatever the caller's.

    Example:
        >>> c = encode(torch.rand(3, 17, 33), quality=90, subsampling="4:2:2")
        >>> c.y.shape, c.cb.shape
        (torch.Size([3, 5, 8, 8]), torch.Size([3, 3, 8, 8]))
    """
    return _checked_encode(image, quality, qtables, subsampling, mode, rounding, rgb_to_ycbcr, backend=backend)


def _checked_encode(image, quality, qtables, subsampling, mode, rounding, rgb_to_ycbcr, window=None, backend="auto"):
    """:func:`encode`: its plan (every argument checked and resolved), then
    :func:`_encode` under full precision; ``window``: a strip's
    (:class:`diffjpeg.codec.strips.Window`), whose input gradient rows the
    backward writes itself."""
    plan = encode_plan(image, quality, qtables, subsampling, mode, rounding, rgb_to_ycbcr, backend)
    with full_precision(image.device), _kernels_of(plan.backend):
        return _encode(image, plan, window)


def _kernels_of(backend: str):
    """The kernels a call's ``backend`` allows, around its stages (a no-op
    for ``"auto"``, and while ``torch.compile`` traces: no slot's kernel runs
    then, :func:`diffjpeg.core.dispatch.run`, and dynamo cannot trace the
    ``ContextVar`` that :func:`~diffjpeg.core.dispatch.using` sets)."""
    if backend == "auto" or torch.compiler.is_compiling():
        return contextlib.nullcontext()
    return dispatch.using(backend)


def _encode(image, plan: EncodePlan, window=None):
    """:func:`encode` as ``plan`` decided it, under full precision
    (``window`` as in :func:`_checked_encode`). The image's values are
    checked by the first compiled pass that reads them (the exact kernel,
    float's and soft's scaling loop), one pass over the image instead of
    two, or first (:func:`check_image_values`) where none runs."""
    batch, count, work, mode, rounding = plan.batch, plan.count, plan.work, plan.mode, plan.rounding
    tables, matrix, geometries = plan.tables, plan.matrix, list(plan.geometries)
    raw = image.reshape(count, plan.channels, *plan.size)
    cast = raw.is_floating_point() and raw.dtype != work  # 8-bit levels first, in float32: round(x * 255) is then the level
    x = raw.to(work) if cast and not plan.triton else raw  # the fused GPU encoder reads half precision as it is
    # the image's values are checked by the first pass that reads them (the
    # kernel, or the float stages' scaling loop) where one can, else here first
    unchecked = image if x.is_floating_point() and checking_values() else None
    if mode == "exact":
        grad = plan.grad
        values = None
        if plan.kernel:
            within = None if unchecked is None else FLOAT_IMAGE_RANGE
            values = exact.encode(x, tables, geometries, work, dct=grad, within=within, table_values=plan.kernel_tables and plan.kernel_tables[0], layout=plan.kernel_layout)
        elif plan.triton:
            check_image_values(image)  # the GPU kernel reads the values as they are: checked first, one read-back
            values = _fused(plan).encode(raw, tables, geometries, work, with_dct=grad)
        if cast and x is raw:  # the stages' input, and the graph's
            x = raw.to(work)
        if values is None:  # reports what the kernel met outside the range, or checks for the tensor stages
            if not plan.triton:
                check_image_values(image)
            values = _encode_integers(x, tables, geometries, matrix, work)
        if not grad:
            blocks = [b.reshape(batch + b.shape[1:]) for b in values[0]]
            return _coefficients(blocks, tables, batch, plan.factors, plan.size)
        # Values from the integer forms, the gradient the real stages': after
        # the 8-bit samples (exact in both) every stage up to the quantizer is
        # linear, so its derivative at the exact input is its derivative
        # anywhere, and the quantizer is evaluated at the exact DCT.
        if not _EncoderGraph.applies(matrix):
            # a learned matrix's gradient needs the real stages' values: their
            # graph, built by the soft forms (the real stages without the
            # roundings; same backward), with the exact values forward
            dct = [straight_through(c, v) for c, v in zip(_dct_stages(x, geometries, matrix, mode, work), values[1])]
        elif needs_grad(x):
            dct = _EncoderGraph.apply(x, geometries, matrix, window, *values[1])
        else:
            dct = values[1]
    elif needs_grad(x) and _EncoderGraph.applies(matrix):
        with torch.no_grad():  # the values; the backward is the adjoints'
            dct = _dct_stages(x, geometries, matrix, mode, work, unchecked)
        dct = _EncoderGraph.apply(x, geometries, matrix, window, *dct)
    else:
        dct = _dct_stages(x, geometries, matrix, mode, work, unchecked)
    blocks = []
    for ci, coefficients in enumerate(dct):
        table = tables[:, min(ci, 1)].reshape(count, 1, 1, 8, 8)
        if mode == "exact":  # as quantize(..., "exact") does with the exact DCT
            quantized = quantize_with_surrogate(coefficients, table, mode, rounding, values[0][ci])
        else:
            quantized = quantize(coefficients, table, mode, rounding)
        blocks.append(quantized.reshape(batch + quantized.shape[1:]))
    return _coefficients(blocks, tables, batch, plan.factors, plan.size)


def _dct_stages(x: Tensor, geometries, matrix: Tensor | None, mode: str, work: torch.dtype, unchecked: Tensor | None = None) -> list[Tensor]:
    """The real stages from ``x`` (``(B, C, H, W)``, uint8 or float in [0, 1])
    to each component's DCT blocks: float's or soft's; for exact, the 8-bit
    samples, then the soft forms (the graph at the exact samples).
    ``unchecked``: as :func:`~diffjpeg.codec.planes.sampled_planes`."""
    stages = "soft" if mode == "exact" else mode
    return [fdct(split_blocks(plane), stages) for plane in planes.sampled_planes(x, geometries, matrix, mode, work, unchecked)]


@dispatch.keeps_backends
class _EncoderGraph(torch.autograd.Function):
    """The DCT coefficients ``dct``, computed without a graph (exact mode's
    integer forms, or float's and soft's stages under no_grad), forward;
    backward, the gradient of the real-valued stages from ``x`` (``(B, C, H, W)``
    in [0, 1]) to the DCT, the same in every mode.

    Every stage from the 8-bit samples to the DCT is linear, its clamps
    straight-through, so its derivative is the same everywhere and its
    backward is its transpose: the stages' adjoints, in reverse order. Each
    adjoint performs the operations of autograd's backward of the real-valued
    stage, so the gradient is the one the real stages' graph gives, bit for
    bit (``tests/codec/test_stage_graph.py``). Exact mode no longer runs the real
    stages forward for a graph (values nobody read), and every mode skips
    autograd's bookkeeping, its zero-filled buffer per component, and the
    sums of those buffers.

    With a strip's ``window`` (:class:`diffjpeg.codec.strips.Window`) the last
    adjoint writes the interior rows of the gradient into the image's
    gradient itself, and ``x`` gets none.
    """

    @staticmethod
    def applies(matrix: Tensor | None) -> bool:
        return not needs_grad(matrix)  # a learned matrix's gradient needs the real stages' values

    generate_vmap_rule = True  # the adjoints are torch operations (no kernel runs under a torch.func transform)

    @staticmethod
    def forward(x: Tensor, geometries, matrix: Tensor | None, window, *dct: Tensor):
        return dct

    @staticmethod
    def setup_context(ctx, inputs, output):
        dispatch.keep(ctx)
        ctx.set_materialize_grads(False)
        x, geometries, matrix, window = inputs[:4]
        ctx.save_for_backward(matrix)  # a tensor: saved, not an attribute (torch.func transforms require it)
        ctx.geometries, ctx.shape, ctx.device, ctx.window = geometries, x.shape, x.device, window

    @staticmethod
    def backward(ctx, *grads):
        # a backward called under autocast would run the adjoints' products
        # in half precision; autograd's own nodes keep their forward's dtypes
        with full_precision(ctx.device):
            return _EncoderGraph._backward(ctx, grads)

    @staticmethod
    def _backward(ctx, grads):
        _, channels, height, width = ctx.shape
        color_planes = None
        for ci, (grad, geo) in enumerate(zip(grads, ctx.geometries)):
            if grad is None:
                continue
            if color_planes is None:  # zeros only where a component has no gradient
                color_planes = grad.new_empty(ctx.shape) if all(g is not None for g in grads) else grad.new_zeros(ctx.shape)
            _plane_adjoint(grad, geo, (height, width), color_planes[:, ci])
        none = (None,) * (3 + len(grads))
        if color_planes is None:
            return (None,) + none
        return (planes.image_grad(color_planes, ctx.saved_tensors[0], ctx.window),) + none


def _plane_adjoint(grad: Tensor, geo, size: tuple[int, int], out: Tensor) -> None:
    """The transpose of one component's path from the image plane to its
    DCT (edges replicated to the padded size, downsampled, edges replicated
    to whole blocks, cut into blocks, transformed), from ``grad``, the DCT's
    gradient, written into ``out`` (``(B, H, W)``, a view of the image
    gradient). Where an edge adjoint is the identity (the usual sizes), the
    DCT's adjoint writes its blocks straight into the plane they belong to
    (:func:`~diffjpeg.codec.planes.sampling_adjoint`): no pass that merges blocks into a plane,
    the same values."""
    # not when compiled: with these writes into views of the image gradient,
    # AOT autograd (torch 2.13, aot_eager) traced a backward whose gradient
    # was wrong (tests/training/test_augment.py's compiled exact case); copies trace right.
    # Nor under a torch.func transform (out= has no vmap rule, and grad's
    # backward records a graph) or for a gradient that records one (out= refuses it)
    if not traced() and not needs_grad(grad):
        planes.sampling_adjoint(lambda plane: fdct_adjoint(grad, out=_blocks_of_plane(plane)), geo, size, out)
        return
    h_scale, v_scale = geo.scale
    plane = replicate_edges_adjoint(merge_blocks(fdct_adjoint(grad)), geo.padded[0] // v_scale, geo.padded[1] // h_scale)
    out.copy_(replicate_edges_adjoint(downsample_adjoint(plane, h_scale, v_scale), *size))


def _blocks_of_plane(plane: Tensor) -> Tensor:
    """The ``(..., H/8, W/8, 8, 8)`` blocks of ``plane`` as a view, which
    writes go through (:func:`split_blocks` may copy; this raises instead)."""
    *lead, h, w = plane.shape
    return plane.view(*lead, h // 8, 8, w // 8, 8).transpose(-3, -2)


def _encode_integers(x: Tensor, tables: Tensor, geometries, matrix: Tensor | None, work: torch.dtype):
    """Exact mode's values from the stages' integer forms (what the compiled
    kernel computes on the CPU): per component the quantized blocks and the
    DCT before quantization (:func:`fdct`'s scale), in ``work``; no graph."""
    count = x.shape[0]
    if x.dtype == torch.uint8:
        samples = x.to(torch.int32)
    else:
        samples = torch.round(x.detach() * 255.0).clamp_(0, 255).to(torch.int32)
    planes = color.rgb_to_ycbcr_fixed(samples, matrix) if x.shape[1] == 3 else samples
    divisors = tables.detach().to(torch.int32) * 8  # exact tables: integers in [1, 255]
    quantized, dct = [], []
    for ci, geo in enumerate(geometries):
        plane = replicate_edges(planes[:, ci], *geo.padded)
        plane = downsample_biased(plane, geo.scale[0], geo.scale[1])
        plane = replicate_edges(plane, geo.blocks[0] * 8, geo.blocks[1] * 8)
        coefficients = fdct_islow(split_blocks(plane) - 128)
        quantized.append(reciprocal_divide(coefficients, divisors[:, min(ci, 1)].reshape(count, 1, 1, 8, 8)).to(work))
        dct.append(coefficients.to(work).mul_(0.125))
    return quantized, dct


def _coefficients(blocks: list[Tensor], tables: Tensor, batch, factors, size) -> Coefficients:
    if len(blocks) == 1:
        blocks = blocks + [None, None]
    return Coefficients(
        y=blocks[0],
        cb=blocks[1],
        cr=blocks[2],
        qtables=tables.reshape(batch + (2, 8, 8)),
        sampling=factors,
        size=size,
    )


def decode(
    coefficients: Coefficients,
    *,
    mode: Mode = "exact",
    ycbcr_to_rgb: Tensor | None = None,
    dtype: torch.dtype | None = None,
    backend: Backend = "auto",
) -> Tensor:
    """Decode quantized DCT coefficients to images, as a JPEG decoder does.

    Args:
        coefficients: :class:`Coefficients` from :func:`encode`, :func:`diffjpeg.read`
            or built by hand; any sampling factors libjpeg decodes; finite
            (NaN or Inf: ``ValueError``), every tensor on one device.
        mode: ``"exact"`` (libjpeg-turbo's default decoder; coefficients and
            tables are rounded to integers first, as a file holds them),
            ``"float"`` or ``"soft"``.
        ycbcr_to_rgb: ``(3, 3)`` or ``(B, 3, 3)`` matrix on ``(Y, Cb-128, Cr-128)``;
            libjpeg's decoder constants if ``None``. May require grad.
            For YCbCr and YCCK coefficients (ignored for grayscale;
            ``ValueError`` for RGB and CMYK, which are not converted).
        dtype: ``None`` (default) for float images in [0, 1], or
            ``torch.uint8`` for the 8-bit samples 0..255 without a gradient
            (exact mode writes them directly: a quarter of float32's memory;
            float and soft round theirs).
        backend: as :func:`encode`'s.

    Returns:
        ``(*batch, C, H, W)`` images: with ``dtype=None`` in [0, 1], float64
        for float64 coefficients, else float32 (autocast off inside). Pillow's pixels for
        the color space (:func:`diffjpeg.stages.color.decoded_pixels`): C = 1 for
        grayscale; RGB for YCbCr and RGB; C = 4 for CMYK and YCCK, Pillow's
        mode ``"CMYK"`` (ink amounts: 0 none, 1 full), which is ``1 -`` the
        stored (Adobe, inverted) samples for CMYK, and for YCCK ``(R, G, B,
        1 - K)`` of its YCbCr to RGB conversion.

    Example:
        >>> x = torch.rand(2, 3, 16, 16)
        >>> decode(encode(x, quality=75)).shape
        torch.Size([2, 3, 16, 16])
    """
    if dtype is not None and dtype != torch.uint8:
        raise ValueError(f"dtype must be None (float images in [0, 1]) or torch.uint8 (8-bit samples), got {dtype!r}")
    if dtype is None:
        return _decode(coefficients, mode, ycbcr_to_rgb, as_uint8=False, backend=backend)
    with torch.no_grad():
        out = _decode(coefficients, mode, ycbcr_to_rgb, as_uint8=True, backend=backend)
    # exact mode gives the 8-bit samples themselves; float and soft give [0, 1], rounded here
    return out if out.dtype == torch.uint8 else torch.round(out * 255.0).clamp_(0, 255).to(torch.uint8)


def _decode(
    coefficients: Coefficients, mode: str, ycbcr_to_rgb: Tensor | None, as_uint8: bool, finite: bool = False, window=None, backend: str = "auto"
) -> Tensor:
    """:func:`decode`; with ``as_uint8`` the 8-bit samples themselves (no
    gradient); ``finite``: the coefficients are known finite (not scanned);
    ``window``: a strip's (:class:`diffjpeg.codec.strips.Window`), whose interior
    rows are written into its ``out`` (the result then stands in for the pixels)."""
    if mode == "exact" and ycbcr_to_rgb is None and window is None and backend in ("auto", "native") and isinstance(coefficients, Coefficients):
        samples = exact.decode_coefficients(coefficients, as_uint8)  # the kernel alone, where it applies; it checks the values
        if samples is not None:
            return samples
    plan = decode_plan(coefficients, mode, ycbcr_to_rgb, finite, backend)
    with full_precision(coefficients.y.device), _kernels_of(plan.backend):
        return _decode_stages(plan, as_uint8, window)


def _decode_stages(plan: DecodePlan, as_uint8: bool, window=None) -> Tensor:
    """:func:`decode` as ``plan`` decided it, under full precision."""
    batch, count, work, mode, size = plan.batch, plan.count, plan.work, plan.mode, plan.size
    tables, matrix, geometries, color_space = plan.tables, plan.matrix, list(plan.geometries), plan.color_space
    # libjpeg estimates what an incomplete progressive file left out (block smoothing)
    components = smoothing.smooth(list(plan.components), tables, plan.progression, geometries, size, mode)
    exact_ycc = None
    if mode == "exact":
        grad = not as_uint8 and needs_grad(*components, tables, matrix)
        samples = None
        if plan.kernel:
            samples = exact.decode(components, tables, geometries, size, torch.uint8 if as_uint8 else work, color_space, window)
        elif plan.triton and window is None:
            samples = _fused(plan).decode(components, tables, geometries, size, torch.uint8 if as_uint8 else work, color_space)
        if samples is None:
            samples, exact_ycc = _decode_integers(components, tables, geometries, size, matrix, color_space)
            if as_uint8:
                samples = samples.to(torch.uint8)
            else:  # k / 255 correctly rounded, as the kernel's
                samples = levels_to_unit(samples, work)
                if window is not None:
                    window.write(samples)
        if as_uint8 or not grad:
            return samples.reshape(batch + samples.shape[1:])
        # values from the integer forms, the gradient the real stages': from
        # the dequantized coefficients on, every stage is linear (its clamps
        # straight-through), so its derivative does not depend on where it is
        # taken
        adjoints = _DecoderGraph.applies(color_space, matrix, geometries)
        if adjoints and not needs_grad(tables):
            # the dequantization's transpose (a product with the tables) in
            # the backward: no pass over the coefficients for a graph alone
            out = _DecoderGraph.apply(samples, geometries, color_space, matrix, tables, *components)
            return out.reshape(batch + out.shape[1:])
        dequantized = [dequantize(round_ste(b), tables[:, ci].reshape(count, 1, 1, 8, 8)) for ci, b in enumerate(components)]
        if adjoints:
            out = _DecoderGraph.apply(samples, geometries, color_space, matrix, None, *dequantized)
        else:  # the real stages' graph (soft forms); a learned matrix's gradient at the exact YCbCr samples
            out = straight_through(_pixel_stages(dequantized, geometries, size, color_space, matrix, "soft", exact_ycc), samples)
        return out.reshape(batch + out.shape[1:])
    dequantized = [dequantize(b, tables[:, ci].reshape(count, 1, 1, 8, 8)) for ci, b in enumerate(components)]
    if not as_uint8 and needs_grad(*dequantized) and _DecoderGraph.applies(color_space, matrix, geometries):
        with torch.no_grad():  # the values; the backward is the adjoints'
            out = _pixel_stages(dequantized, geometries, size, color_space, matrix, mode, window=window)
        out = _DecoderGraph.apply(out, geometries, color_space, matrix, None, *dequantized)
    else:
        out = _pixel_stages(dequantized, geometries, size, color_space, matrix, mode, window=window)
    return out.reshape(batch + out.shape[1:])


def _pixel_stages(
    dequantized: list[Tensor], geometries, size, color_space: str, matrix: Tensor | None, stages: str, exact_ycc: Tensor | None = None, window=None
) -> Tensor:
    """The real stages (float or soft) from the dequantized coefficients to
    the pixels ``(B, C, H, W)`` in [0, 1]; with ``exact_ycc``, a learned
    matrix's gradient is taken at those (exact) YCbCr samples; with a strip's
    ``window``, its interior rows also go into the window's ``out``."""
    # without a graph to record (float and soft under _DecoderGraph): the
    # passes that write into planes, :func:`~diffjpeg.codec.planes.pixels` (not when compiled:
    # writes into views; nor under a torch.func transform: out= has no vmap rule)
    if not needs_grad(*dequantized, matrix) and not traced():
        def inverse(ci: int, plane: Tensor) -> None:
            idct_to_plane(dequantized[ci], stages, plane)

        return planes.pixels(inverse, dequantized[0], geometries, size, color_space, matrix, stages, window)
    height, width = size
    components = []
    for coefficients, geo in zip(dequantized, geometries):
        plane = merge_blocks(idct(coefficients, stages))[..., : geo.downsampled[0], : geo.downsampled[1]]
        plane = upsample(plane, geo.scale[0], geo.scale[1], stages)
        components.append(plane[..., :height, :width])
    ycc = torch.stack(components, dim=1)
    if len(components) > 1:
        if exact_ycc is not None and needs_grad(matrix):
            # with a custom matrix the integer forms ran (the kernel takes libjpeg's only)
            ycc = straight_through(ycc, exact_ycc)
        ycc = color.decoded_pixels(ycc, color_space, matrix, stages)
    out = ycc / 255.0
    return out if window is None else window.write(out)


@dispatch.keeps_backends
class _DecoderGraph(torch.autograd.Function):
    """Decoded pixels ``samples`` (``(B, C, H, W)`` in [0, 1], computed
    without a graph: exact mode's integer forms, or float's and soft's stages
    under no_grad) forward; backward, the gradient of the
    real-valued stages from the dequantized coefficients to the pixels,
    without running them forward: the stages' adjoints in reverse order, as
    :class:`_EncoderGraph` does for the encoder (bit for bit autograd's
    gradient through those stages). Grayscale and YCbCr, with libjpeg's
    matrix or a constant one, and upsampling that filters or is 1:1; the
    rest go through the real stages' graph.

    With ``tables`` (``(B, T, 8, 8)``, each component's, not requiring grad)
    the inputs are the quantized coefficients and the backward ends with the
    dequantization's transpose, ``grad * table``, as autograd's backward of
    ``q * table`` computes it; without, they are the dequantized ones."""

    @staticmethod
    def applies(color_space: str, matrix: Tensor | None, geometries) -> bool:
        if color_space not in ("grayscale", "YCbCr") or needs_grad(matrix):
            return False
        return all(g.scale == (1, 1) or is_filtered(g.downsampled[1], *g.scale) for g in geometries)

    generate_vmap_rule = True  # the adjoints are torch operations (no kernel runs under a torch.func transform)

    @staticmethod
    def forward(samples: Tensor, geometries, color_space: str, matrix: Tensor | None, tables: Tensor | None, *coefficients: Tensor):
        return samples

    @staticmethod
    def setup_context(ctx, inputs, output):
        dispatch.keep(ctx)
        ctx.set_materialize_grads(False)
        _, ctx.geometries, ctx.color_space, matrix, tables = inputs[:5]
        ctx.save_for_backward(matrix, tables)  # tensors: saved, not attributes (torch.func transforms require it)

    @staticmethod
    def backward(ctx, grad):
        if grad is None:
            return (None,) * (5 + len(ctx.geometries))
        matrix, tables = ctx.saved_tensors
        with full_precision(grad.device):  # as in _EncoderGraph.backward
            grads = _DecoderGraph._coefficient_grads(ctx, grad, matrix)
            if tables is not None:
                count = tables.shape[0]
                # in place on idct_adjoint's fresh products: the values of grad * table
                grads = tuple(g.mul_(tables[:, ci].reshape(count, 1, 1, 8, 8)) for ci, g in enumerate(grads))
            return (None,) * 5 + grads

    @staticmethod
    def _coefficient_grads(ctx, grad, matrix: Tensor | None) -> tuple[Tensor, ...]:
        ycc = planes.ycc_grad(grad, ctx.color_space, matrix)
        return tuple(idct_adjoint(split_blocks(planes.sampled_grad(ycc[:, ci], geo))) for ci, geo in enumerate(ctx.geometries))


def _decode_integers(components: list[Tensor], tables: Tensor, geometries, size, matrix: Tensor | None, color_space: str):
    """Exact mode's 8-bit samples ``(B, C, H, W)`` from the stages' integer
    forms (what the compiled kernel computes on the CPU), and the planes
    before color conversion (``None`` for grayscale); int32, no graph.
    Coefficients and tables are rounded to integers, as a file holds them."""
    count = tables.shape[0]
    height, width = size
    planes = []
    for ci, (blocks, geo) in enumerate(zip(components, geometries)):
        table = torch.round(tables[:, ci].detach()).reshape(count, 1, 1, 8, 8)
        q = torch.round(blocks.detach())
        samples = idct_islow(dequantize_integers(q, table), quantized=q)
        plane = merge_blocks(samples)[..., : geo.downsampled[0], : geo.downsampled[1]]
        plane = upsample_fancy(plane, geo.scale[0], geo.scale[1])
        planes.append(plane[..., :height, :width])
    ycc = torch.stack(planes, dim=1)
    if len(planes) == 1:
        return ycc, None
    return color.decoded_pixels_fixed(ycc, color_space, matrix), ycc


def jpeg(
    image: Tensor,
    quality: float | Tensor | None = None,
    *,
    qtables: Tensor | None = None,
    subsampling: Subsampling | PillowSubsampling = "4:2:0",
    mode: Mode = "exact",
    rounding: RoundingName | Rounding | None = None,
    rgb_to_ycbcr: Tensor | None = None,
    ycbcr_to_rgb: Tensor | None = None,
    backend: Backend = "auto",
) -> Tensor:
    """Compress and decompress: ``decode(encode(image))``, differentiably.

    Arguments as in :func:`encode` and :func:`decode`. With ``mode="exact"``
    the result equals saving the image as a JPEG with libjpeg-turbo (Pillow,
    OpenCV) and loading it again, pixel for pixel.

    Returns:
        Same shape, dtype and device as ``image``; uint8 in, uint8 out.
        float16 and bfloat16 images are computed in float32 and the result
        rounded once to their dtype; ``round(out.float() * 255)`` gives the
        exact levels in every dtype (see :mod:`diffjpeg.core.precision`).

    Example:
        >>> x = torch.rand(4, 3, 32, 32, requires_grad=True)
        >>> y = jpeg(x, quality=50)
        >>> y.sum().backward(); x.grad.shape
        torch.Size([4, 3, 32, 32])
    """
    options = dict(qtables=qtables, subsampling=subsampling, mode=mode, rounding=rounding, rgb_to_ycbcr=rgb_to_ycbcr, backend=backend)
    out = _in_strips(image, quality, options, ycbcr_to_rgb)
    if out is not None:
        return out.to(image.dtype)
    plan = encode_plan(image, quality, **options)
    as_uint8 = image.dtype == torch.uint8  # uint8 out carries no gradient: build none
    with full_precision(image.device), torch.no_grad() if as_uint8 else contextlib.nullcontext(), _kernels_of(plan.backend):
        if (plan.kernel or plan.triton) and not plan.grad and ycbcr_to_rgb is None:
            out = (_compiled_jpeg if plan.kernel else _fused_jpeg)(image, plan, as_uint8)
            if out is not None:
                return out
        out = _round_trip(image, plan, ycbcr_to_rgb)
        if out is None:
            coefficients = _encode(image, plan)
            # encode's coefficients are finite (finite image, tables >= 1) unless a
            # custom matrix overflows: decode need not scan them again
            out = _decode(coefficients, mode, ycbcr_to_rgb, as_uint8=as_uint8, finite=rgb_to_ycbcr is None, backend=backend)
        if as_uint8 and out.dtype != torch.uint8:  # float and soft give [0, 1]: rounded as decode(dtype=torch.uint8) rounds them
            out = torch.round(out * 255.0).clamp_(0, 255).to(torch.uint8)
    return out.to(image.dtype)  # float32's values, rounded once to a half-precision image's dtype


def _round_trip_applies(plan: EncodePlan, ycbcr_to_rgb, image: Tensor) -> bool:
    """Whether :func:`jpeg` runs as :func:`_round_trip`: libjpeg's color
    matrices and tables without a gradient, where the decoder's adjoints
    apply (:class:`_DecoderGraph`), and in float and soft mode where a
    kernel of the call's backend runs the block pass
    (:func:`diffjpeg.stages.dctmgr.takes`; asked within :func:`_kernels_of`
    the plan's backend), in exact mode where the compiled exact codec or
    the GPU's fused one (called directly) takes the image and a gradient is
    wanted (without one, :func:`_compiled_jpeg` or :func:`_fused_jpeg`)."""
    if plan.matrix is not None or ycbcr_to_rgb is not None or needs_grad(plan.tables):
        return False
    if plan.mode == "exact" and not ((plan.kernel or _fused_direct(plan)) and plan.grad) and not transformed():
        return False
    if not _DecoderGraph.applies(default_color_space(plan.channels), None, plan.geometries):
        return False
    if transformed() and not torch.compiler.is_compiling():  # torch.func: through the operators, where they apply
        from . import operators

        return operators.applies(plan, image)
    return dctmgr.takes(plan.tables, plan.rounding)


def _round_trip(image: Tensor, plan: EncodePlan, ycbcr_to_rgb, window=None) -> Tensor | None:
    """:func:`jpeg` in float or soft mode as :func:`_round_trip_applies`
    chose it: the encoder's stages to each component's sampled plane, the
    block pass (:mod:`diffjpeg.stages.dctmgr`: DCT, quantizer and inverse
    DCT together), the decoder's stages, all without a graph
    (:func:`~diffjpeg.codec.planes.round_trip_values`); in exact mode the
    compiled exact codec (or the GPU's fused one), with the DCT it computes on the way
    (:func:`~diffjpeg.codec.planes.exact_round_trip_values`). The gradient
    is :class:`_RoundTripGraph`'s. The values of :func:`encode` then
    :func:`decode` (float and exact mode's the same bits; soft mode's within
    the quantizer loop's rounding, as there); ``None`` where it does not
    apply, or where the exact encoder declines the image's values and they
    pass the range check: the stages run then.
    ``window``: a strip's, as in :func:`_pixel_stages` and
    :class:`_EncoderGraph`. Under a ``torch.func`` transform, the same
    through custom operators (:mod:`diffjpeg.codec.operators`)."""
    if not _round_trip_applies(plan, ycbcr_to_rgb, image):
        return None
    count, work, mode, rounding = plan.count, plan.work, plan.mode, plan.rounding
    raw = image.reshape(count, plan.channels, *plan.size)
    x = raw.to(work) if raw.is_floating_point() and raw.dtype != work else raw
    if transformed():  # the wrappers hold no data for the loops: the operators unwrap them
        from . import operators  # (registered on first use: an import of diffjpeg does not pay for them)

        check_image_values(image)
        out = operators.apply(x, plan)
        return out.reshape(plan.batch + out.shape[1:])
    unchecked = image if x.is_floating_point() and checking_values() else None
    grad = needs_grad(x)
    sloped = grad and dctmgr.sloped(rounding)
    with torch.no_grad():
        if mode == "exact":
            def slope(coefficients: Tensor, table: Tensor) -> Tensor:
                return quantizer_slope(coefficients, table, rounding)

            fused = _fused_direct(plan)
            if fused:  # the GPU's kernels read the values as they are: checked first
                check_image_values(image)
            within = None if unchecked is None or fused else FLOAT_IMAGE_RANGE
            done = planes.exact_round_trip_values(x, plan.tables, plan.geometries, slope, sloped, within, plan.kernel_tables, plan.kernel_layout,
                                                  window, fused)
            if done is None:  # the encoder met a value outside the range: named here, or the stages run
                check_image_values(image)
                return None
            out, slopes = done
        else:
            def block_pass(plane: Tensor, table: Tensor, target: Tensor, slopes: Tensor | None) -> None:
                dctmgr.block_pass(plane, table, mode, rounding, out=target, slopes=slopes)

            out, slopes = planes.round_trip_values(x, plan.tables, plan.geometries, mode, block_pass, sloped, unchecked, window)
    if grad:
        out = _RoundTripGraph.apply(x, out, plan, window, *slopes)
    return out.reshape(plan.batch + out.shape[1:])


@dispatch.keeps_backends
class _RoundTripGraph(torch.autograd.Function):
    """:func:`_round_trip`'s pixels (computed without a graph) forward;
    backward, the stages' gradient from the pixels to ``x`` (``(B, C, H, W)``
    in the working dtype) without a graph either (:func:`~diffjpeg.codec.planes.round_trip_adjoint`).
    A differentiable gradient (``create_graph=True``) comes from the stages'
    own graph instead, run again from ``x``."""

    @staticmethod
    def forward(x: Tensor, pixels: Tensor, plan: EncodePlan, window, *slopes: Tensor | None):
        return pixels

    @staticmethod
    def setup_context(ctx, inputs, output):
        dispatch.keep(ctx)
        ctx.set_materialize_grads(False)
        x, _, ctx.plan, ctx.window, *slopes = inputs
        ctx.save_for_backward(x, *slopes)

    @staticmethod
    def backward(ctx, grad):
        plan = ctx.plan
        nones = (None,) * (3 + len(plan.geometries))
        if grad is None:
            return (None,) + nones
        x, *slopes = ctx.saved_tensors
        with full_precision(grad.device):  # as in _EncoderGraph.backward
            if torch.is_grad_enabled():  # create_graph: through the stages' own graph, from x itself (a second derivative reaches it)
                out = _decode(_encode(x, plan), plan.mode, None, as_uint8=False, finite=True)
                (x_grad,) = torch.autograd.grad(out.reshape(grad.shape), x, grad, create_graph=True)
                return (x_grad,) + nones
            return (planes.round_trip_adjoint(grad, slopes, plan.tables, plan.geometries, ctx.window),) + nones


def _compiled_jpeg(image: Tensor, plan: EncodePlan, as_uint8: bool) -> Tensor | None:
    """:func:`jpeg` by the compiled exact codec alone, as ``plan`` chose it
    (no gradient, libjpeg's matrices): its encoder's blocks straight into its
    decoder, with nothing to check between them (finite, the geometry's
    shapes, the plan's tables); ``None`` if the encoder declines the image's
    values (NaN, outside the range: the general path reports them)."""
    x = image.reshape(plan.count, plan.channels, *plan.size)
    if x.is_floating_point() and x.dtype != plan.work:
        x = x.to(plan.work)
    table_values = plan.kernel_tables
    if table_values is None:  # tables other than a whole-number quality's: made for this call
        table_values = (exact.encoder_tables(plan.tables, plan.channels), exact.decoder_tables(plan.tables[:, [min(c, 1) for c in range(plan.channels)]]))
    within = FLOAT_IMAGE_RANGE if x.is_floating_point() else None
    out = exact.round_trip(x, plan.geometries, torch.uint8 if as_uint8 else plan.work, table_values, plan.kernel_layout, within)
    return None if out is None else out.reshape(image.shape).to(image.dtype)


def _fused_jpeg(image: Tensor, plan: EncodePlan, as_uint8: bool) -> Tensor | None:
    """:func:`jpeg` by the GPU's fused exact kernels alone, as ``plan`` chose
    them (no gradient, libjpeg's matrices): the encoder's quantized blocks
    straight into the decoder; ``None`` where a kernel declines."""
    check_image_values(image)  # the kernels read the values as they are
    x = image.reshape(plan.count, plan.channels, *plan.size)
    codec = _fused(plan)
    encoded = codec.encode(x, plan.tables, plan.geometries, plan.work, with_dct=False)
    if encoded is None:
        return None
    tables = plan.tables[:, [min(c, 1) for c in range(plan.channels)]]  # each component's
    color_space = "YCbCr" if plan.channels == 3 else "grayscale"
    out = codec.decode(encoded[0], tables, plan.geometries, plan.size, torch.uint8 if as_uint8 else plan.work, color_space)
    return None if out is None else out.reshape(image.shape).to(image.dtype)


def _fused_direct(plan: EncodePlan) -> bool:
    """Whether ``plan`` calls the fused GPU codec's kernels directly (eagerly, not through their custom operators)."""
    return plan.triton and not plan.triton_ops


def _fused(plan: EncodePlan | DecodePlan):
    """The fused GPU codec's entry points a plan with ``triton`` chose: the
    kernels called directly (eagerly), or their custom operators (traced by
    ``torch.compile``, under ``torch.func`` transforms)."""
    return gpu_ops if plan.triton_ops else gpu


def _in_strips(image, quality, options: dict, ycbcr_to_rgb) -> Tensor | None:
    """:func:`jpeg` of a large float image in strips of MCU rows (see
    :mod:`diffjpeg.codec.strips` for why, and where it is not taken), or ``None``."""
    if not isinstance(image, Tensor) or not image.is_floating_point() or image.device.type != "cpu" or image.dim() < 3:
        return None
    if torch.compiler.is_compiling() or image.shape[-3] not in (1, 3):
        return None
    others = (quality, options["qtables"], options["rgb_to_ycbcr"], ycbcr_to_rgb)
    if any(isinstance(t, Tensor) and t.requires_grad for t in others):
        return None  # their gradients sum over the whole image: in strips another order of additions
    if options["mode"] == "exact" and not needs_grad(image):
        return None  # the compiled kernel already works in strips
    if options["mode"] == "soft" and as_rounding(options["rounding"], mode=options["mode"]).name == "noise":
        return None  # its noise is drawn per call: strips would draw another sample than the whole image
    factors = subsampling_factors(check_subsampling(options["subsampling"]), image.shape[-3])
    tallest = max(v for _, v in factors)
    mcu = 8 * tallest
    halo = mcu if tallest > 1 else 0  # fancy upsampling reads the chroma rows of the MCU rows around

    def run(rows: Tensor, window: strips.Window | None = None) -> Tensor:
        # checked strip by strip, as encode() checks: the rows are then in cache for the encoder
        plan = encode_plan(rows, quality, **options)
        with full_precision(rows.device), _kernels_of(plan.backend):
            out = _round_trip(rows, plan, ycbcr_to_rgb, window)
            if out is not None:
                return out
            coefficients = _encode(rows, plan, window)
        # finite unless a custom matrix overflows, as in jpeg()
        return _decode(coefficients, options["mode"], ycbcr_to_rgb, as_uint8=False, finite=options["rgb_to_ycbcr"] is None, window=window,
                       backend=options["backend"])

    # the decoded images have the image's channels (grayscale or RGB) in the working dtype
    return strips.in_strips(run, image, mcu, halo, into=(image.shape[-3], working_dtype(image.dtype)))


# ---------------------------------------------------------------- modules
Learnable = Literal["quality", "qtables", "color"]  # what learnable= may name
LEARNABLE: tuple[str, ...] = get_args(Learnable)


class DiffJPEG(nn.Module):
    """Differentiable JPEG as a layer: fixed, learnable, or given per call.

    Args:
        quality: quality in [0, 100] (a number, or a tensor: one value or one
            per image); ``None`` with ``qtables`` uses the tables as given.
        qtables: base tables ``(2, 8, 8)``, or ``(B, 2, 8, 8)`` one per image;
            Annex K if ``None``. With ``quality`` they are scaled as libjpeg's
            (entries <= 0 allowed: a scaled entry <= 0 becomes 1).
        subsampling, mode, rounding: see :func:`encode` (keyword-only).
        learnable: ``False``, ``True`` (all of quality, qtables and color), or
            an iterable of those names. Learnable values are kept in range in the
            forward pass by straight-through clamps (quality to [0, 100], tables
            to [1, 255]); the color matrices start at libjpeg's.

    ``forward(image, quality=None, qtables=None)``: ``image`` as in
    :func:`jpeg`. A ``quality`` or ``qtables`` given to the call replaces the
    module's for that call, as ``quality`` does in kornia's
    ``JPEGCodecDifferentiable``; shapes and ranges as in :func:`encode` (a
    leading batch of 1 is shared). A value the module learns cannot be
    replaced per call (``ValueError``): its parameter would silently get no
    gradient. Per-call tables with the module's quality are scaled by it;
    construct with ``quality=None`` to use per-call tables as given.

    Example:
        >>> layer = DiffJPEG(quality=75, learnable=True)
        >>> y = layer(torch.rand(2, 3, 24, 24))
        >>> y.mean().backward(); layer.quality.grad is not None
        True
        >>> codec = DiffJPEG(learnable=["qtables"])             # kornia's JPEGCodecDifferentiable
        >>> y = codec(torch.rand(2, 3, 24, 24), quality=torch.tensor([90.0, 10.0]))
    """


    def __init__(
        self,
        quality: float | None = DEFAULT_QUALITY,
        *,
        qtables: Tensor | None = None,
        subsampling: Subsampling | PillowSubsampling = "4:2:0",
        mode: Mode = "exact",
        rounding: RoundingName | Rounding | None = None,
        learnable: bool | Learnable | Iterable[Learnable] = False,
        backend: Backend = "auto",
    ):
        super().__init__()
        check_choice("mode", mode, MODES)
        check_choice("backend", backend, BACKENDS)
        subsampling = check_subsampling(subsampling)
        rounding = as_rounding(rounding, mode=mode)
        if learnable is True:
            names = set(LEARNABLE)
        elif learnable is False or learnable is None:
            names = set()
        elif isinstance(learnable, str):
            raise TypeError(f"learnable must be a bool or an iterable of {LEARNABLE}, got the string {learnable!r}")
        else:
            names = set(learnable)
            unknown = names - set(LEARNABLE)
            if unknown:
                raise ValueError(f"learnable names must be among {LEARNABLE}, got {sorted(unknown)}")
        if quality is None and qtables is None:
            raise ValueError("give quality, qtables or both")
        if quality is not None:
            device = quality.device if isinstance(quality, Tensor) else torch.device("cpu")
            quality = quality_tensor(quality, None, torch.float32, device)
        self.subsampling, self.mode, self.rounding, self.backend = subsampling, mode, rounding, backend

        group = {"quality": "quality", "qtables": "qtables", "rgb_to_ycbcr": "color", "ycbcr_to_rgb": "color"}

        def hold(name: str, value: Tensor | None):
            if value is not None and group[name] in names:
                setattr(self, name, nn.Parameter(value.detach().clone().float()))
            else:
                self.register_buffer(name, None if value is None else value.detach().clone().float())

        hold("quality", quality)
        if qtables is not None:
            qtables_tensor(qtables, None, torch.float32, qtables.device, scaled=quality is not None)
        elif "qtables" in names:
            qtables = standard_tables()
        hold("qtables", qtables)
        use_color = "color" in names
        hold("rgb_to_ycbcr", color.rgb_to_ycbcr_matrix() if use_color else None)
        hold("ycbcr_to_rgb", color.ycbcr_to_rgb_matrix() if use_color else None)

    def forward(self, image: Tensor, quality: float | Tensor | None = None, qtables: Tensor | None = None) -> Tensor:
        quality, qtables = _per_call(self, quality, qtables)
        if quality is None and isinstance(self.quality, Tensor):
            quality = clamp_ste(self.quality, 0.0, 100.0)
        if qtables is None and isinstance(self.qtables, nn.Parameter):  # learned: kept a valid table
            qtables = clamp_ste(self.qtables, 1.0, 255.0)
        elif qtables is None:
            qtables = self.qtables
        return jpeg(
            image,
            quality,
            qtables=qtables,
            subsampling=self.subsampling,
            mode=self.mode,
            rounding=self.rounding,
            rgb_to_ycbcr=self.rgb_to_ycbcr,
            ycbcr_to_rgb=self.ycbcr_to_rgb,
            backend=self.backend,
        )

    def extra_repr(self) -> str:
        return f"subsampling={self.subsampling!r}, mode={self.mode!r}, rounding={self.rounding!r}"


def _per_call(module: nn.Module, quality, qtables):
    """A module's per-call ``quality`` and ``qtables``; refused where the module learns that value."""
    for name, value in (("quality", quality), ("qtables", qtables)):
        if value is not None and isinstance(getattr(module, name), nn.Parameter):
            raise ValueError(
                f"{name} is learned by this {type(module).__name__} (an nn.Parameter); a {name} given per call would "
                f"leave it without gradient: give {name} per call only to a module that does not learn it"
            )
    return quality, qtables


def _hold(module: nn.Module, name: str, value) -> None:
    """A module's argument: parameters and tensors registered (moved by
    ``.to()``, saved in ``state_dict``), anything else a plain attribute."""
    if isinstance(value, nn.Parameter):
        setattr(module, name, value)
    elif isinstance(value, Tensor) or value is None:
        module.register_buffer(name, value)
    else:
        setattr(module, name, value)


class JPEGEncoder(nn.Module):
    """Module form of :func:`encode`; arguments as there. Tensor arguments
    are buffers (or parameters, if given as such).

    ``forward(image, quality=None, qtables=None)``: a per-call ``quality`` or
    ``qtables`` replaces the module's for that call (as in :class:`DiffJPEG`;
    refused where the module holds it as an ``nn.Parameter``).

    Example:
        >>> JPEGEncoder(quality=50)(torch.rand(1, 3, 8, 8)).y.shape
        torch.Size([1, 1, 1, 8, 8])
    """


    def __init__(
        self,
        quality: float | Tensor | None = None,
        *,
        qtables: Tensor | None = None,
        subsampling: Subsampling | PillowSubsampling = "4:2:0",
        mode: Mode = "exact",
        rounding: RoundingName | Rounding | None = None,
        rgb_to_ycbcr: Tensor | None = None,
        backend: Backend = "auto",
    ):
        super().__init__()
        check_choice("mode", mode, MODES)
        check_choice("backend", backend, BACKENDS)
        subsampling = check_subsampling(subsampling)
        rounding = as_rounding(rounding, mode=mode)
        if quality is not None:
            quality_tensor(quality, None, torch.float32, quality.device if isinstance(quality, Tensor) else torch.device("cpu"))
            if not isinstance(quality, Tensor):
                quality = float(quality)  # a numpy scalar would not survive state_dict
        if qtables is not None:
            qtables_tensor(qtables, None, torch.float32, qtables.device, scaled=quality is not None)
        for name, value in (("quality", quality), ("qtables", qtables), ("rgb_to_ycbcr", rgb_to_ycbcr)):
            _hold(self, name, value)
        self.subsampling, self.mode, self.rounding, self.backend = subsampling, mode, rounding, backend

    def forward(self, image: Tensor, quality: float | Tensor | None = None, qtables: Tensor | None = None) -> Coefficients:
        quality, qtables = _per_call(self, quality, qtables)
        return encode(
            image, self.quality if quality is None else quality, qtables=self.qtables if qtables is None else qtables,
            subsampling=self.subsampling, mode=self.mode, rounding=self.rounding, rgb_to_ycbcr=self.rgb_to_ycbcr, backend=self.backend,
        )

    def extra_repr(self) -> str:
        return f"subsampling={self.subsampling!r}, mode={self.mode!r}, rounding={self.rounding!r}"


class JPEGDecoder(nn.Module):
    """Module form of :func:`decode`.

    Example:
        >>> JPEGDecoder()(encode(torch.rand(1, 3, 8, 8))).shape
        torch.Size([1, 3, 8, 8])
    """


    def __init__(self, *, mode: Mode = "exact", ycbcr_to_rgb: Tensor | None = None, backend: Backend = "auto"):
        super().__init__()
        check_choice("mode", mode, MODES)
        check_choice("backend", backend, BACKENDS)
        self.mode, self.backend = mode, backend
        _hold(self, "ycbcr_to_rgb", ycbcr_to_rgb)

    def forward(self, coefficients: Coefficients) -> Tensor:
        return decode(coefficients, mode=self.mode, ycbcr_to_rgb=self.ycbcr_to_rgb, backend=self.backend)

    def extra_repr(self) -> str:
        return f"mode={self.mode!r}"
