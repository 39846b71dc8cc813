"""The stages between the image and each component's sampled plane (edges
replicated to whole blocks: what the DCT reads, and what the inverse DCT
writes), forward and transposed, without a graph: what
:func:`diffjpeg.encode`, :func:`diffjpeg.decode` and :func:`diffjpeg.jpeg`'s
round trip share (:mod:`diffjpeg.codec.pipeline`), and the round trip
itself around the block pass (:mod:`diffjpeg.stages.dctmgr`), which
:mod:`diffjpeg.codec.operators` also runs.

Encoder side: the 8-bit samples, RGB to YCbCr, edges replicated, downsampled
(:func:`sampled_planes`); its transpose (:func:`sampling_adjoint`,
:func:`image_grad`). Decoder side: upsampled, cropped, YCbCr to RGB, / 255
(:func:`pixels`); its transpose (:func:`ycc_grad`, :func:`sampled_grad`).
Each transpose performs the operations of autograd's backward of the
real-valued stage, so gradients are the stages' graph's bit for bit
(``tests/codec/test_stage_graph.py``).
"""
from __future__ import annotations

import torch
from torch import Tensor

from ..backends import cpu, exact, gpu
from ..core import dispatch
from ..core.check import FLOAT_IMAGE_RANGE, check_image_values
from ..core.colorspace import default_color_space
from ..core.precision import cached_constant
from ..stages import color, dctmgr
from ..stages.blocks import replicate_edges, replicate_edges_adjoint
from ..stages.rounding import clamp_ste
from ..stages.sampling import downsample, downsample_adjoint, is_filtered, upsample, upsample_adjoint


def sampled_planes(x: Tensor, geometries, matrix: Tensor | None, mode: str, work: torch.dtype, unchecked: Tensor | None = None) -> list[Tensor]:
    """The real stages from ``x`` to each component's sampled plane, edges
    replicated to whole blocks (``(B, 8 BY, 8 BX)``, what the DCT reads), as
    :func:`diffjpeg.codec.pipeline._dct_stages` has them. ``unchecked``: the caller's image (``x``
    before reshaping and casting), whose values the first stage's compiled
    pass checks as it reads ``x``, or :func:`check_image_values` before it."""
    stages = "soft" if mode == "exact" else mode
    done = _preprocessed(x, geometries, matrix, stages, unchecked)
    if done is not None:
        return done
    if x.dtype == torch.uint8:
        samples = x.to(work)
    else:  # the same as round(clamp(x, 0, 1) * 255): scaling by 255 maps the bounds exactly
        rounded = mode != "soft"
        samples = None
        if unchecked is not None:  # clamp_ste's own loop where it applies (no graph to record), checking as it reads
            samples = cpu.round_clamp(x, 0.0, 255.0, rounded, scale=255.0, within=FLOAT_IMAGE_RANGE)
            if samples is None:
                check_image_values(unchecked)
        if samples is None:
            samples = clamp_ste(x, 0.0, 255.0, rounded=rounded, scale=255.0)
    planes = color.rgb_to_ycbcr(samples, matrix, stages, inplace=True) if x.shape[1] == 3 else samples  # samples: our own
    sampled = []
    # unbind, not planes[:, ci]: one backward stack instead of three zero-filled full-size gradients summed
    for geo, plane in zip(geometries, planes.unbind(1)):
        plane = replicate_edges(plane, *geo.padded)
        plane = downsample(plane, geo.scale[0], geo.scale[1], stages)
        sampled.append(replicate_edges(plane, geo.blocks[0] * 8, geo.blocks[1] * 8))
    return sampled


def _merged_factors(geometries, upsampled: bool = False) -> tuple[int, int] | None:
    """The chroma factors where the merged passes take these components:
    three, full-size luma, both chroma planes sampled alike by 1 or 2 each
    way, and with ``upsampled`` (the decoder's passes) filtered by libjpeg's
    fancy upsampler, not replicated (each pass checks the rest); ``None`` otherwise."""
    if len(geometries) != 3:
        return None
    luma, cb, cr = geometries
    h_scale, v_scale = cb.scale
    if luma.scale != (1, 1) or cr.scale != cb.scale or cr.padded != cb.padded or cr.blocks != cb.blocks:
        return None
    if not (1 <= h_scale <= 2 and 1 <= v_scale <= 2):
        return None
    if upsampled and cb.scale != (1, 1) and not is_filtered(cb.downsampled[1], h_scale, v_scale):
        return None
    return h_scale, v_scale


def _preprocessed(x: Tensor, geometries, matrix: Tensor | None, stages: str, unchecked: Tensor | None) -> list[Tensor] | None:
    """:func:`sampled_planes` of a float RGB image with libjpeg's matrix by
    the ``"preprocess"`` slot's kernel (samples, color conversion and
    downsampling in one pass, the same values), its range check from the
    same read where ``unchecked`` asks for one; ``None`` where it does not apply."""
    factors = _merged_factors(geometries)
    if factors is None or matrix is not None or not x.is_floating_point() or x.shape[1] != 3 or not dispatch.takes("preprocess", x):
        return None
    count, luma, chroma = x.shape[0], geometries[0], geometries[1]
    planes = [x.new_empty((count, geo.blocks[0] * 8, geo.blocks[1] * 8)) for geo in (luma, chroma, chroma)]
    rgb = color.rgb_to_ycbcr_matrix(x.dtype, x.device)
    within = None if unchecked is None else FLOAT_IMAGE_RANGE
    inside = dispatch.run("preprocess", x, *planes, rgb, color.chroma_offset(x.dtype, x.device), *factors, chroma.padded, stages == "float", within)
    if inside is None:
        return None
    if not inside:  # named here; else (a value the kernel's check alone refuses) the stages run
        check_image_values(unchecked)
        return None
    return planes


def pixels(inverse, like: Tensor, geometries, size, color_space: str, matrix: Tensor | None, stages: str, window=None) -> Tensor:
    """:func:`diffjpeg.codec.pipeline._pixel_stages` without a graph, from each component's samples
    (whole blocks, ``(B, 8 BY, 8 BX)``), which ``inverse(ci, plane)`` writes
    into ``plane``: the inverse DCT's, or the block pass's
    (:mod:`diffjpeg.stages.dctmgr`). Each pass writes into the stacked
    planes where it can and the conversion divides in place: the values of
    the stages one by one, with fewer image-size temporaries. ``like``: a
    tensor of the dtype and device; ``window``: a strip's (:class:`diffjpeg.codec.strips.Window`), whose interior rows go into its ``out``."""
    merged = _merged_pixels(inverse, like, geometries, size, color_space, matrix, stages, window)
    if merged is not None:
        return merged
    height, width = size
    ycc = like.new_empty((like.shape[0], len(geometries), height, width))
    planes = []
    for ci, geo in enumerate(geometries):
        h_scale, v_scale = geo.scale
        whole = (geo.blocks[0] * 8, geo.blocks[1] * 8)
        if geo.scale == (1, 1) and whole == (height, width):
            inverse(ci, ycc[:, ci])  # the blocks straight into the stack
            planes.append(None)
            continue
        plane = like.new_empty(like.shape[:1] + whole)
        inverse(ci, plane)
        plane = plane[..., : geo.downsampled[0], : geo.downsampled[1]]
        if (plane.shape[-2] * v_scale, plane.shape[-1] * h_scale) == (height, width):
            upsample(plane, h_scale, v_scale, stages, out=ycc[:, ci])  # the last step writes into the stack
            planes.append(None)
            continue
        plane = upsample(plane, h_scale, v_scale, stages)
        planes.append(plane[..., :height, :width])
    for ci, plane in enumerate(planes):
        if plane is not None:
            ycc[:, ci] = plane
    if window is not None:  # only the interior rows, converted straight into the image's output
        rows = window.rows(ycc)
        if len(planes) > 1:
            rows = color.decoded_pixels(rows, color_space, matrix, stages)
        torch.div(rows, 255.0, out=window.out.view(rows.shape))
        return window.stand_in(ycc, ycc.shape)
    if color_space == "YCbCr":  # the conversion's own pass clamps and divides by 255: the same values
        return color.ycbcr_to_rgb(ycc, matrix, stages, divisor=255.0, inplace=True)
    if len(planes) > 1:
        ycc = color.decoded_pixels(ycc, color_space, matrix, stages)
    return ycc.div_(255.0) if not ycc.requires_grad else ycc / 255.0  # ycc: this function's own temporary


def _merged_pixels(inverse, like: Tensor, geometries, size, color_space: str, matrix: Tensor | None, stages: str, window) -> Tensor | None:
    """:func:`pixels` where the ``"merged_upsample"`` slot's kernel takes it
    (libjpeg's YCbCr with its matrix, full-size luma, both chroma planes
    sampled alike by 1 or 2 each way and filtered, no strip): each
    component's samples into a plane of its own, then the chroma upsampled
    and the color converted, rounded, clamped and divided by 255 in one
    pass into the pixels (the same values); ``None`` where it does not apply."""
    factors = _merged_factors(geometries, upsampled=True)
    if factors is None or color_space != "YCbCr" or matrix is not None or window is not None or not dispatch.takes("merged_upsample", like):
        return None
    h_scale, v_scale = factors
    decoded = []
    for ci, geo in enumerate(geometries):
        plane = like.new_empty(like.shape[:1] + (geo.blocks[0] * 8, geo.blocks[1] * 8))
        inverse(ci, plane)
        decoded.append(plane[..., : geo.downsampled[0], : geo.downsampled[1]])
    rgb = color.ycbcr_to_rgb_matrix(like.dtype, like.device)
    out = like.new_empty((like.shape[0], 3, *size))
    done = dispatch.run("merged_upsample", *decoded, out, rgb, color.ycbcr_to_rgb_shift(rgb, like.dtype), h_scale, v_scale, stages == "float")
    if done is None:  # (takes said it would): the stages one by one, from the decoded planes
        ycc = torch.stack([upsample(p, h_scale, v_scale, stages)[..., : size[0], : size[1]] if ci else p for ci, p in enumerate(decoded)], 1)
        return color.ycbcr_to_rgb(ycc, None, stages, divisor=255.0, inplace=True)
    return out


def round_trip_values(x: Tensor, tables: Tensor, geometries, mode: str, block_pass, sloped: bool, unchecked: Tensor | None = None, window=None):
    """:func:`diffjpeg.jpeg`'s round trip: the pixels ``(B, C, H, W)`` in [0, 1] from ``x``
    (``(B, C, H, W)``, uint8 or float in [0, 1], C = 1 or 3) and the tables
    ``(B, 2, 8, 8)``, no graph; and each component's slopes, the quantizer's
    derivatives the backward needs (``None`` each without ``sloped``).
    ``block_pass(plane, table, target, slopes)`` runs a component's block
    pass; ``unchecked``: as :func:`sampled_planes`; ``window`` as :func:`pixels`."""
    count, size = x.shape[0], x.shape[-2:]
    planes = sampled_planes(x, geometries, None, mode, tables.dtype, unchecked)
    slopes = [plane.new_empty((count, *geo.blocks, 8, 8)) if sloped else None for plane, geo in zip(planes, geometries)]

    def inverse(ci: int, target: Tensor) -> None:
        block_pass(planes[ci], tables[:, min(ci, 1)], target, slopes[ci])

    out = pixels(inverse, planes[0], geometries, tuple(size), default_color_space(x.shape[1]), None, mode, window)
    return out, slopes


def exact_round_trip_values(x: Tensor, tables: Tensor, geometries, slope, sloped: bool, within=None, table_values=None, layout=None, window=None,
                            fused: bool = False):
    """Exact mode's round trip by the compiled codec (:mod:`diffjpeg.backends.exact`;
    with ``fused``, the GPU's fused kernels, :func:`diffjpeg.backends.gpu.encode`
    and :func:`~diffjpeg.backends.gpu.decode`, which read the values as they
    are: the caller checks them first, and ``within``, ``table_values``,
    ``layout`` and ``window`` are for the compiled codec only):
    the pixels ``(B, C, H, W)`` (levels / 255 in the tables' dtype; the
    file's, bit for bit) from ``x`` (``(B, C, H, W)``, float in [0, 1]) and
    the tables ``(B, 2, 8, 8)``, and each component's slopes, the
    quantizer's derivatives ``slope(F, Q)`` at the exact DCT ``F`` (what
    exact mode's gradient takes them at; ``None`` each without ``sloped``),
    as :func:`round_trip_values` gives them. ``within``: the range the
    encoder checks ``x`` against as it reads it; ``table_values``: the
    kernel's (encoder, decoder) tables, or ``None``; ``layout``: the
    encoder's batch layout, or ``None``. ``None`` where the kernel declines
    (a value outside ``within``: the caller's check names it)."""
    count, channels = x.shape[:2]
    size = (int(x.shape[-2]), int(x.shape[-1]))
    if fused:
        encoded = gpu.encode(x, tables, geometries, tables.dtype, sloped)
    else:
        encoded = exact.encode(x, tables, geometries, tables.dtype, dct=sloped, within=within, table_values=table_values and table_values[0], layout=layout)
    if encoded is None:
        return None
    quantized, dct = encoded
    component_tables = tables[:, [min(c, 1) for c in range(channels)]]
    color_space = default_color_space(channels)
    if fused:
        out = gpu.decode(list(quantized), component_tables, list(geometries), size, tables.dtype, color_space)
    else:
        out = exact.decode(list(quantized), component_tables, list(geometries), size, tables.dtype, color_space, window,
                           table_values=table_values and table_values[1])
    if out is None:
        return None
    if not sloped:
        return out, [None] * len(geometries)
    return out, [slope(f, tables[:, min(ci, 1)].reshape(count, 1, 1, 8, 8)) for ci, f in enumerate(dct)]


def ycc_grad(grad: Tensor, color_space: str, matrix: Tensor | None) -> Tensor:
    """The gradient of the decoder's color planes (``(B, C, H, W)``, a new
    tensor, the caller's to overwrite) from its pixels' ``grad``: the
    transpose of the YCbCr to RGB conversion (``matrix``, libjpeg's if
    ``None``) and of the division by 255."""
    if color_space != "YCbCr":
        return grad / 255.0
    # / 255 folded into the matrix, as _EncoderGraph folds x 255 (contiguous:
    # the gradient of a sum comes expanded, which the compiled loop does not
    # read; a copy made here is ours to overwrite, autograd's own gradient is not)
    own = grad.contiguous()
    return color.ycbcr_to_rgb_adjoint(own, scaled_matrix(matrix, color.ycbcr_to_rgb_matrix, grad, 1 / 255), inplace=own is not grad)


def sampled_grad(plane: Tensor, geo) -> Tensor:
    """The gradient of a component's decoded samples (``(B, 8 BY, 8 BX)``,
    whole blocks) from its color plane's (``(B, H, W)``): the transpose of
    the upsampling and of the crops."""
    h_scale, v_scale = geo.scale
    if geo.scale != (1, 1):
        plane = upsample_adjoint(uncrop(plane, geo.downsampled[0] * v_scale, geo.downsampled[1] * h_scale), h_scale, v_scale)
    return uncrop(plane, geo.blocks[0] * 8, geo.blocks[1] * 8)


def uncrop(grad: Tensor, height: int, width: int) -> Tensor:
    """The transpose of cropping ``(..., height, width)`` to the top-left of ``grad``'s size: zeros around."""
    if grad.shape[-2:] == (height, width):
        return grad
    out = grad.new_zeros(grad.shape[:-2] + (height, width))
    out[..., : grad.shape[-2], : grad.shape[-1]] = grad
    return out


def sampling_adjoint(transpose, geo, size: tuple[int, int], out: Tensor, plane: Tensor | None = None) -> None:
    """The transpose of one component's sampling (edges replicated to the
    padded size, downsampled, edges replicated to whole blocks), without a
    graph, into ``out`` (``(B, H, W)``, rows contiguous), from the gradient
    of its sampled plane (``(B, 8 BY, 8 BX)``), which ``transpose(p)`` writes
    into the plane ``p`` it is given: ``out`` itself where nothing else is
    to be done, else ``plane`` where given (free to overwrite), else a new one."""
    h_scale, v_scale = geo.scale
    padded = (geo.padded[0] // v_scale, geo.padded[1] // h_scale)
    whole = (geo.blocks[0] * 8, geo.blocks[1] * 8)
    no_edges = whole == padded and (padded[0] * v_scale, padded[1] * h_scale) == size  # both edge adjoints the identity
    if no_edges and geo.scale == (1, 1):
        transpose(out)
        return
    if plane is None:
        plane = out.new_empty(out.shape[:1] + whole)
    transpose(plane)
    if no_edges:
        downsample_adjoint(plane, h_scale, v_scale, out=out)
        return
    plane = replicate_edges_adjoint(plane, *padded)
    out.copy_(replicate_edges_adjoint(downsample_adjoint(plane, h_scale, v_scale), *size))


def image_grad(planes: Tensor, matrix: Tensor | None, window) -> Tensor | None:
    """The image's gradient from its color planes' (``(B, C, H, W)``, this
    backward's own temporary, overwritten): the transpose of the scaling by
    255 and of the RGB to YCbCr conversion (``matrix``, libjpeg's if
    ``None``). With a strip's ``window`` that takes it, only the interior
    rows, written straight into the image's gradient; ``None`` then."""
    target = None if window is None else window.take_grad()
    if target is not None:  # only the interior rows, straight into the image's gradient
        planes = window.rows(planes)
    if planes.shape[1] == 3:  # x 255 folded into the matrix: one pass over the gradient fewer
        planes = color.rgb_to_ycbcr_adjoint(planes, scaled_matrix(matrix, color.rgb_to_ycbcr_matrix, planes, 255.0), inplace=True)
        if target is None:
            return planes
        target.view(planes.shape).copy_(planes)  # for a half-precision image rounded once, as x.to(work)'s backward rounds it
        return None
    if target is None:
        return planes.mul_(255.0)
    torch.mul(planes, 255.0, out=target.view(planes.shape))
    return None


def round_trip_adjoint(grad: Tensor, slopes, tables: Tensor, geometries, window=None) -> Tensor | None:
    """The gradient of :func:`round_trip_values`'s ``x`` from ``grad``, its
    pixels' (``(B, C, H, W)``), without a graph: the decoder's adjoints to
    each component's decoded samples (:func:`ycc_grad`, :func:`sampled_grad`),
    the block pass's adjoint (:func:`diffjpeg.stages.dctmgr.block_pass_adjoint`,
    with the ``slopes``), the encoder's adjoints to the image
    (:func:`sampling_adjoint`, :func:`image_grad`). Each component's planes
    go through one buffer, the color planes' gradient, in place. With a
    strip's ``window``, as :func:`image_grad`."""
    size = tuple(grad.shape[-2:])
    merged = _merged_grads(grad, geometries)
    ycc = ycc_grad(grad, default_color_space(grad.shape[1]), None) if merged is None else merged[0]
    for ci, geo in enumerate(geometries):
        sampled = sampled_grad(ycc[:, ci], geo) if merged is None else merged[1][ci]  # a view of ycc, or a new plane
        table = tables[:, min(ci, 1)]

        def transpose(target: Tensor, sampled=sampled, table=table, slope=slopes[ci]) -> None:
            dctmgr.block_pass_adjoint(sampled, slope, table, out=target)

        # into ycc's plane: the upsampler's adjoint read it already
        sampling_adjoint(transpose, geo, size, ycc[:, ci], plane=None if shares_memory(sampled, ycc) else sampled)
    return image_grad(ycc, None, window)


def _merged_grads(grad: Tensor, geometries) -> tuple[Tensor, list[Tensor]] | None:
    """:func:`ycc_grad` and :func:`sampled_grad` of each component by the
    ``"merged_upsample_adjoint"`` slot's kernel in one pass (the same
    values): the color planes' buffer the rest of the backward writes into
    (``(B, C, H, W)``, luma's plane a view of it where its blocks cover the
    image alone) and each component's sampled gradient; ``None`` where it
    does not apply (as :func:`_merged_pixels`)."""
    factors = _merged_factors(geometries, upsampled=True)
    if factors is None or not dispatch.takes("merged_upsample_adjoint", grad):
        return None
    cb = geometries[1]
    count, size = grad.shape[0], tuple(grad.shape[-2:])
    ycc = grad.new_empty((count, 3, *size))
    whole = [(geo.blocks[0] * 8, geo.blocks[1] * 8) for geo in geometries]
    sampled = [ycc[:, 0] if whole[0] == size else grad.new_empty((count, *whole[0]))]
    sampled += [grad.new_empty((count, *whole[ci])) for ci in (1, 2)]
    transposed = default_scaled(color.ycbcr_to_rgb_matrix, grad.dtype, grad.device, 1 / 255).transpose(0, 1)
    if dispatch.run("merged_upsample_adjoint", grad, *sampled, transposed, *factors, cb.downsampled) is None:
        return None
    return ycc, sampled


def scaled_matrix(matrix: Tensor | None, default, like: Tensor, factor: float) -> Tensor:
    """``factor`` times ``matrix`` (``default(dtype, device)`` if ``None``):
    a color adjoint's matrix with the scaling to or from [0, 1] folded in
    (float rounding apart, the same gradient, and one pass over it fewer)."""
    if matrix is None:
        return default_scaled(default, like.dtype, like.device, factor)
    return matrix.to(like.dtype) * factor


@cached_constant
def default_scaled(default, dtype: torch.dtype, device: torch.device, factor: float) -> Tensor:
    return default(dtype, device) * factor


def shares_memory(a: Tensor, b: Tensor) -> bool:
    return a.untyped_storage().data_ptr() == b.untyped_storage().data_ptr()
