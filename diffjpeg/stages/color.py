"""Color conversion: RGB to YCbCr (libjpeg's jccolor.c) and back (jdcolor.c),
and the decoder's other color spaces (RGB, CMYK, YCCK; :mod:`diffjpeg.core.colorspace`).

JFIF's YCbCr is BT.601 full range with Cb and Cr offset by 128.  Facts from
libjpeg-turbo that the exact forms rely on:

* Fixed point with 16 fraction bits, ``FIX(x) = round(x * 2**16)``; negative
  constants are written ``-FIX(|x|)``, i.e. rounded half away from zero.
* Encoder (jccolor.c): ``Y = (sum FIX(m) * c + 2**15) >> 16``; Cb and Cr add
  ``128 * 2**16 + 2**15 - 1`` before the shift, which keeps them in [0, 255]
  without a range limit.  The constants are 0.29900, 0.58700, 0.11400,
  0.16874, 0.33126, 0.5, 0.41869, 0.08131.
* Decoder (jdcolor.c) has its own constants, not the inverse of the encoder's:
  ``R = Y + (FIX(1.402) x_cr + 2**15) >> 16``,
  ``G = Y + (-FIX(0.34414) x_cb - FIX(0.71414) x_cr + 2**15) >> 16``,
  ``B = Y + (FIX(1.772) x_cb + 2**15) >> 16`` with ``x = C - 128``, then clamped
  to [0, 255].  Writing ``Y`` as ``FIX(1) * Y`` inside the shift changes nothing.

* YCCK to CMYK (jdcolor.c ``ycck_cmyk_convert``): the YCbCr to RGB above on
  Y, Cb, Cr through the same tables, each result ``x`` stored as
  ``range_limit[255 - x]``, i.e. ``255 - clamp(x)``; K is copied. There is no
  SIMD version of it. RGB (``rgb_rgb_convert``) and CMYK (``null_convert``)
  are copied as they are.
* Pillow (raw mode ``"CMYK;I"``) gives ``255 - s`` of every sample ``s``
  libjpeg outputs for a 4-component file: :func:`decoded_pixels` returns
  Pillow's pixels, so a YCCK file gives ``(R, G, B, 255 - K)``.

A custom matrix goes through the same fixed-point formulas in exact mode (with a
clamp to [0, 255], which the JFIF matrices never need).

The real-valued forms (float and soft modes, every mode's gradients) compute
``M x + offset`` per pixel, on the CPU in one fixed order of IEEE operations
(:func:`color_product`; compiled in ``diffjpeg/backends/_color.c``, the same values):
a pixel's result does not depend on the batch, the strip, the thread count
or the CPU. On other devices it is one batched GEMM (``baddbmm``), equal to
float rounding (the contract of :mod:`diffjpeg.core.precision`).
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ..core import dispatch
from ..core.check import check_mode, traced
from ..core.colorspace import COLOR_SPACES, ColorSpace
from ..core.modes import Mode
from ..core.precision import full_precision
from .rounding import clamp_ste, exact_value, needs_grad

# Rows Y, Cb, Cr; columns R, G, B (jccolor.c's constants).
JFIF_RGB_TO_YCBCR = (
    (0.29900, 0.58700, 0.11400),
    (-0.16874, -0.33126, 0.50000),
    (0.50000, -0.41869, -0.08131),
)
# Rows R, G, B; columns Y, Cb - 128, Cr - 128 (jdcolor.c's constants).
JFIF_YCBCR_TO_RGB = (
    (1.0, 0.0, 1.40200),
    (1.0, -0.34414, -0.71414),
    (1.0, 1.77200, 0.0),
)

_SCALEBITS = 16
_ONE_HALF = 1 << (_SCALEBITS - 1)
_CBCR_OFFSET = 128 << _SCALEBITS
# the encoder's rounding constants for Y, Cb, Cr (jccolor.c)
ENCODER_ROUNDING = (_ONE_HALF, _CBCR_OFFSET + _ONE_HALF - 1, _CBCR_OFFSET + _ONE_HALF - 1)



def rgb_to_ycbcr_matrix(dtype=torch.float32, device=None) -> Tensor:
    """libjpeg's RGB to YCbCr matrix, ``(3, 3)``, rows Y, Cb, Cr."""
    return torch.tensor(JFIF_RGB_TO_YCBCR, dtype=dtype, device=device)


def ycbcr_to_rgb_matrix(dtype=torch.float32, device=None) -> Tensor:
    """libjpeg's YCbCr to RGB matrix, ``(3, 3)``, columns Y, Cb - 128, Cr - 128."""
    return torch.tensor(JFIF_YCBCR_TO_RGB, dtype=dtype, device=device)


def fix(value: float) -> int:
    """libjpeg's ``FIX(x)``, rounded half away from zero for negative constants."""
    return int(math.copysign(math.floor(abs(value) * (1 << _SCALEBITS) + 0.5), value))


def fixed_matrix(inverse: bool) -> tuple[tuple[int, ...], ...]:
    """libjpeg's own fixed-point matrix, ``FIX`` of each entry (decoder's if ``inverse``)."""
    return tuple(tuple(fix(v) for v in row) for row in (JFIF_YCBCR_TO_RGB if inverse else JFIF_RGB_TO_YCBCR))


def decoder_rounding(fixed: Tensor) -> Tensor:
    """Per output channel, ``2**15 - FIX(m) @ (0, 128, 128)``: the decoder's
    rounding constant with the chroma offset folded in, for an integer
    ``(..., 3, 3)`` fixed-point matrix."""
    return _ONE_HALF - 128 * (fixed[..., 1] + fixed[..., 2])


_MATRIX_LIMIT = 2.0**15  # custom matrices saturate here: FIX stays below 2**31


def _fix_tensor(matrix: Tensor) -> Tensor:
    """``FIX`` of a custom ``(3, 3)`` or ``(B, 3, 3)`` matrix, as int64.

    Computed in float32 (float64 for a float64 matrix), where ``|m| 2**16``
    is exact (a power-of-two scaling) and so is adding 1/2 while
    ``|m| < 128``, every color matrix there is; entries beyond 2**15 saturate.
    """
    m = matrix.detach()
    m = m.to(torch.float64 if m.dtype == torch.float64 else torch.float32).clamp(-_MATRIX_LIMIT, _MATRIX_LIMIT)
    return torch.floor(m.abs() * (1 << _SCALEBITS) + 0.5).copysign(m).to(torch.int64)


def _apply_fixed(fixed: Tensor, samples: Tensor, rounding: Tensor) -> Tensor:
    """``(fixed @ samples + rounding) >> 16``, clamped to [0, 255], over the
    channel axis of integer ``samples`` (B, 3, H, W); elementwise
    multiply-adds in the dtype of ``fixed`` (see the bounds at the callers)."""
    b = samples.shape[0]
    fixed = fixed.expand(b, 3, 3) if fixed.dim() == 2 else fixed
    x = samples.reshape(b, 3, -1).to(fixed.dtype)
    # the first product out of place, into a new tensor (batched under torch.func.vmap, as x is)
    acc = torch.addcmul(rounding.reshape(-1, 3, 1), fixed[:, :, 0:1], x[:, 0:1])  # (b, 3, P)
    for c in (1, 2):
        acc.addcmul_(fixed[:, :, c : c + 1], x[:, c : c + 1])
    out = (acc >> _SCALEBITS).clamp_(0, 255)
    return out.to(torch.int32).view(samples.shape)


def _integer_samples(image: Tensor) -> Tensor:
    """8-bit samples held in a float (or integer) tensor, as int32."""
    if image.is_floating_point():
        image = torch.round(image.detach()).clamp_(0, 255)
    return image.to(torch.int32)


def rgb_to_ycbcr_fixed(samples: Tensor, matrix: Tensor | None = None) -> Tensor:
    """jccolor.c's integer conversion: int32 ``(B, 3, H, W)`` RGB in [0, 255]
    to int32 YCbCr.

    With libjpeg's matrix the sums stay within int32 with room to spare:
    Y's is at most ``65536 * 255 + 2**15 < 2**24``, Cb's and Cr's lie in
    ``[65535, 2**24 - 1]`` (their positive and negative constants each sum to
    ``2**15``). A custom ``matrix`` (float, ``(3, 3)`` or ``(B, 3, 3)``) goes
    through ``FIX`` and int64 sums, then the clamp to [0, 255].

    Example:
        >>> rgb_to_ycbcr_fixed(torch.tensor([255, 0, 0], dtype=torch.int32).reshape(1, 3, 1, 1)).flatten()
        tensor([ 76,  85, 255], dtype=torch.int32)
    """
    device = samples.device
    rounding = torch.tensor(ENCODER_ROUNDING, dtype=torch.int32, device=device)
    if matrix is None:
        fixed = torch.tensor(fixed_matrix(inverse=False), dtype=torch.int32, device=device)
    else:
        fixed, rounding = _fix_tensor(matrix), rounding.to(torch.int64)
    return _apply_fixed(fixed, samples, rounding)


def ycbcr_to_rgb_fixed(samples: Tensor, matrix: Tensor | None = None) -> Tensor:
    """jdcolor.c's integer conversion: int32 ``(B, 3, H, W)`` YCbCr to int32
    RGB, clamped to [0, 255].

    With libjpeg's matrix every sum is below ``2**16 * 255 + 116130 * 128 +
    2**15 < 2**25`` in magnitude: int32. A custom ``matrix`` (on ``(Y, Cb -
    128, Cr - 128)``) takes int64 sums.

    Example:
        >>> ycbcr_to_rgb_fixed(torch.tensor([128, 128, 255], dtype=torch.int32).reshape(1, 3, 1, 1)).flatten()
        tensor([255,  37, 128], dtype=torch.int32)
    """
    if matrix is None:
        done = dispatch.run("ycbcr_to_rgb_fixed", samples) if samples.dtype == torch.int32 else None
        if done is not None:  # one kernel on a GPU (diffjpeg.backends.gpu)
            return done
        fixed = torch.tensor(fixed_matrix(inverse=True), dtype=torch.int32, device=samples.device)
    else:
        fixed = _fix_tensor(matrix)
    return _apply_fixed(fixed, samples, decoder_rounding(fixed))


def color_product(matrix: Tensor, x: Tensor, offset: Tensor | None = None) -> Tensor:
    """``matrix @ x (+ offset)`` over the channels of ``x`` ``(B, 3, P)``
    (``matrix`` ``(B, 3, 3)``, ``offset`` ``(B, 3)``), each output in one
    fixed order of IEEE operations of ``x``'s dtype:

    ``y[c] = ((M[c, 0] x[0] + M[c, 1] x[1]) + M[c, 2] x[2]) + offset[c]``

    So a pixel's result does not depend on the batch, the strip, the thread
    split or the CPU (a batched GEMM picks its kernel from all of them);
    ``diffjpeg/backends/_color.c`` computes the same values in one pass. This is its
    tensor form, the reference; a new tensor.

    Example:
        >>> m = rgb_to_ycbcr_matrix().expand(1, 3, 3)
        >>> color_product(m, torch.full((1, 3, 1), 255.0), torch.tensor([[0.0, 128.0, 128.0]])).flatten().tolist()
        [255.0, 128.0, 128.0]
    """
    rows = []
    for c in range(3):
        row = matrix[:, c, 0:1] * x[:, 0]
        for k in (1, 2):
            row.add_(matrix[:, c, k : k + 1] * x[:, k])
        if offset is not None:
            row.add_(offset[:, c : c + 1])
        rows.append(row)
    return torch.stack(rows, 1)


def _fixed_product(matrix: Tensor, x: Tensor, offset: Tensor | None) -> Tensor:
    """:func:`color_product` through the compiled loop where it applies, no graph."""
    done = dispatch.run("color_apply", x.detach(), matrix.detach(), None if offset is None else offset.detach())
    return color_product(matrix.detach(), x.detach(), None if offset is None else offset.detach()) if done is None else done


@dispatch.keeps_backends
class _ColorProduct(torch.autograd.Function):
    """:func:`_fixed_product` forward; backward, ``M^T g`` the same way for
    ``x`` (itself differentiable for a second order), and the sums over
    pixels for the matrix (``g x^T``) and the offset."""

    generate_vmap_rule = True  # torch operations only (no kernel runs under a torch.func transform)

    @staticmethod
    def forward(matrix: Tensor, x: Tensor, offset: Tensor | None) -> Tensor:
        return _fixed_product(matrix, x, offset)

    @staticmethod
    def setup_context(ctx, inputs, output):
        dispatch.keep(ctx)
        matrix, x, _ = inputs
        ctx.save_for_backward(matrix, x if ctx.needs_input_grad[0] else None)

    @staticmethod
    def backward(ctx, grad: Tensor):
        matrix, x = ctx.saved_tensors
        # a backward called under autocast would run the matrix's bmm in half
        # precision; autograd's own nodes keep their forward's dtypes
        with full_precision(grad.device):
            grad_x = _product(matrix.transpose(1, 2), grad, None) if ctx.needs_input_grad[1] else None
            grad_matrix = grad.bmm(x.transpose(1, 2)) if ctx.needs_input_grad[0] else None
            grad_offset = grad.sum(-1) if ctx.needs_input_grad[2] else None
        return grad_matrix, grad_x, grad_offset


def _product(matrix: Tensor, x: Tensor, offset: Tensor | None) -> Tensor:
    """``matrix @ x (+ offset)`` on ``(B, 3, P)``: in the fixed order on the
    CPU (also under ``torch.compile``, whose C++ keeps each operation) and
    where a kernel computes it (the GPU's), else one batched product
    (``baddbmm``)."""
    if x.device.type != "cpu" and not dispatch.takes("color_apply", x):
        return torch.bmm(matrix, x) if offset is None else torch.baddbmm(offset.unsqueeze(-1), matrix, x)
    if needs_grad(matrix, x, offset):
        return _ColorProduct.apply(matrix, x, offset)
    return _fixed_product(matrix, x, offset)


def _apply(matrix: Tensor, x: Tensor, offset: Tensor, flat: bool = False) -> Tensor:
    """``matrix @ x + offset`` over the channel axis of ``x`` (B, 3, H, W).

    ``matrix`` is (3, 3) or (B, 3, 3), ``offset`` (3,) or (B, 3), on the
    (B, 3, H*W) view (:func:`_product`). ``flat``: the (B, 3, H*W) product
    itself, not a view of it (an in-place step on a view would cost
    autograd a copy of the whole gradient).
    """
    out = _product(*_batched(matrix, x, offset))
    return out if flat else out.view(x.shape)


def _batched(matrix: Tensor, x: Tensor, offset: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """``matrix`` ``(B, 3, 3)``, ``x`` ``(B, 3, P)`` and ``offset`` ``(B, 3)``
    in ``x``'s dtype, as :func:`_product` and the ``color_apply`` slot take them."""
    b = x.shape[0]
    return matrix.to(x.dtype).expand(b, 3, 3), x.reshape(b, 3, -1), offset.to(x.dtype).expand(b, 3)


def _apply_clamped(matrix: Tensor, x: Tensor, offset: Tensor, mode: Mode, divisor: float | None = None, inplace: bool = False) -> Tensor:
    """:func:`_apply`, clamped to [0, 255] (rounded first in float mode),
    straight-through; the clamp in place on the product; then divided by
    ``divisor`` where given. Without a graph to record, a kernel of the
    ``color_apply`` slot may take the clamp and the division into the
    product's own pass (the CPU's loop does: the same values), and with
    ``inplace`` (``x`` the caller's own temporary) write into ``x``."""
    rounded = mode == "float"
    if not needs_grad(matrix, x, offset) and not traced():  # (traced: no kernel runs, and no tensor has storage)
        m, flat, o = _batched(matrix.detach(), x.detach(), offset.detach())
        done = dispatch.run("color_apply", flat, m, o, (rounded, 0.0, 255.0, divisor), flat if inplace and flat.data_ptr() == x.data_ptr() else None)
        if done is not None:
            return done.view(x.shape)
    out = clamp_ste(_apply(matrix, x, offset, flat=True), 0.0, 255.0, rounded=rounded, inplace=True).view(x.shape)
    if divisor is None:
        return out
    return out / divisor if out.requires_grad else out.div_(divisor)


def _apply_transpose(matrix: Tensor, grad: Tensor, inplace: bool = False) -> Tensor:
    """The transpose of :func:`_apply` in ``x``: ``matrix^T @ grad`` over the
    channel axis, as autograd's backward of :func:`_apply` computes it, so
    bit for bit the same gradient (``tests/codec/test_stage_graph.py``);
    with ``inplace`` (``grad`` the caller's own temporary, no graph to
    record) written into ``grad`` where a kernel can."""
    b = grad.shape[0]
    m = matrix.to(grad.dtype).expand(b, 3, 3).transpose(1, 2)
    flat = grad.reshape(b, 3, -1)
    if inplace and not needs_grad(matrix, grad) and not traced() and flat.data_ptr() == grad.data_ptr():
        done = dispatch.run("color_apply", flat, m.detach(), None, None, flat)
        if done is not None:
            return grad
    return _product(m, flat, None).reshape(grad.shape)


def rgb_to_ycbcr(image: Tensor, matrix: Tensor | None = None, mode: Mode = "float", *, inplace: bool = False) -> Tensor:
    """Convert RGB samples to JFIF YCbCr samples.

    Args:
        image: ``(B, 3, H, W)`` float tensor of 8-bit sample values in [0, 255]
            (integers in exact mode).
        matrix: ``(3, 3)`` or ``(B, 3, 3)`` RGB to YCbCr matrix; libjpeg's if ``None``.
            May require grad.
        mode: ``"exact"`` (libjpeg's fixed point forward), ``"float"`` (real
            arithmetic, samples rounded to integers) or ``"soft"`` (no rounding).
            Gradients are those of the real-valued conversion in every mode.
        inplace: ``image`` is the caller's own temporary, which nothing else
            reads: the result may be written into it (float and soft mode,
            no gradient to record, where a kernel can).

    Returns:
        ``(B, 3, H, W)`` YCbCr samples in [0, 255], dtype of ``image``.

    Example:
        >>> rgb_to_ycbcr(torch.full((1, 3, 1, 1), 255.0), mode="exact").flatten()
        tensor([255., 128., 128.])
    """
    check_mode(mode)
    custom = matrix
    if matrix is None:
        matrix = rgb_to_ycbcr_matrix(image.dtype, image.device)
    offset = chroma_offset(image.dtype, image.device)
    if mode != "exact":
        return _apply_clamped(matrix, image, offset, mode, inplace=inplace)
    value = rgb_to_ycbcr_fixed(_integer_samples(image), custom)
    return exact_value(value, image, lambda: _apply(matrix, image, offset), matrix)


def rgb_to_ycbcr_adjoint(grad: Tensor, matrix: Tensor | None = None, *, inplace: bool = False) -> Tensor:
    """The transpose of :func:`rgb_to_ycbcr` (its gradient with respect to the
    image in every mode): ``matrix^T @ grad`` over the channel axis, ``(B, 3, H, W)``.

    The operations of autograd's backward of the batched product in the
    real-valued form, so the result is the same bit for bit. ``inplace``:
    ``grad`` is the caller's own temporary; the result may be written into it.

    Example:
        >>> rgb_to_ycbcr_adjoint(torch.tensor([1.0, 0.0, 0.0]).reshape(1, 3, 1, 1)).flatten()
        tensor([0.2990, 0.5870, 0.1140])
    """
    return _apply_transpose(rgb_to_ycbcr_matrix(grad.dtype, grad.device) if matrix is None else matrix, grad, inplace)


def ycbcr_to_rgb(image: Tensor, matrix: Tensor | None = None, mode: Mode = "float", *, divisor: float | None = None, inplace: bool = False) -> Tensor:
    """Convert JFIF YCbCr samples to RGB samples.

    Args:
        image: ``(B, 3, H, W)`` float tensor of YCbCr samples in [0, 255].
        matrix: ``(3, 3)`` or ``(B, 3, 3)`` YCbCr to RGB matrix acting on
            ``(Y, Cb - 128, Cr - 128)``; libjpeg's decoder constants if ``None``.
        mode: as in :func:`rgb_to_ycbcr`; the result is clamped to [0, 255]
            (straight-through gradient).
        divisor: float and soft mode: the result divided by it (255: the
            decoder's [0, 1] pixels), in the conversion's own pass where a
            kernel takes it.
        inplace: as in :func:`rgb_to_ycbcr`.

    Returns:
        ``(B, 3, H, W)`` RGB samples in [0, 255] (over ``divisor``), dtype of ``image``.

    Example:
        >>> ycbcr_to_rgb(torch.tensor([[[[128.0]], [[128.0]], [[255.0]]]]), mode="exact").flatten()
        tensor([255.,  37., 128.])
    """
    check_mode(mode)
    custom = matrix
    if matrix is None:
        matrix = ycbcr_to_rgb_matrix(image.dtype, image.device)
    shift = ycbcr_to_rgb_shift(matrix, image.dtype)
    if mode != "exact":
        return _apply_clamped(matrix, image, shift, mode, divisor, inplace)
    if divisor is not None:
        raise ValueError("divisor: float and soft mode only (exact mode's samples are integers)")
    value = ycbcr_to_rgb_fixed(_integer_samples(image), custom)
    return exact_value(value, image, lambda: _apply(matrix, image, shift), matrix)


def chroma_offset(dtype: torch.dtype, device=None) -> Tensor:
    """``(0, 128, 128)``: what JFIF's YCbCr adds to the chroma (the encoder's offset, the decoder's ``- 128``)."""
    return torch.tensor([0.0, 128.0, 128.0], dtype=dtype, device=device)


def ycbcr_to_rgb_shift(matrix: Tensor, dtype: torch.dtype) -> Tensor:
    """The offset of :func:`ycbcr_to_rgb`'s ``matrix @ (Y, Cb - 128, Cr -
    128)`` as one product and a sum: ``-(matrix @ (0, 128, 128))``, in ``dtype``."""
    return -(matrix.to(dtype) @ chroma_offset(dtype, matrix.device))


def ycbcr_to_rgb_adjoint(grad: Tensor, matrix: Tensor | None = None, *, inplace: bool = False) -> Tensor:
    """The transpose of :func:`ycbcr_to_rgb` (its gradient with respect to
    the YCbCr samples in every mode, its clamp straight-through), ``(B, 3, H, W)``;
    autograd's operations for the real-valued form, bit for bit. ``inplace``:
    as in :func:`rgb_to_ycbcr_adjoint`.

    Example:
        >>> ycbcr_to_rgb_adjoint(torch.tensor([0.0, 0.0, 1.0]).reshape(1, 3, 1, 1)).flatten()
        tensor([1.0000, 1.7720, 0.0000])
    """
    return _apply_transpose(ycbcr_to_rgb_matrix(grad.dtype, grad.device) if matrix is None else matrix, grad, inplace)


def ycck_to_cmyk_fixed(samples: Tensor, matrix: Tensor | None = None) -> Tensor:
    """jdcolor.c's ``ycck_cmyk_convert``: int32 ``(B, 4, H, W)`` YCCK to the
    int32 CMYK libjpeg outputs, ``255 - RGB`` of Y, Cb, Cr (as
    :func:`ycbcr_to_rgb_fixed`, ``matrix`` as there) and K unchanged.

    Example:
        >>> ycck_to_cmyk_fixed(torch.tensor([128, 128, 255, 7], dtype=torch.int32).reshape(1, 4, 1, 1)).flatten()
        tensor([  0, 218, 127,   7], dtype=torch.int32)
    """
    rgb = ycbcr_to_rgb_fixed(samples[:, :3].contiguous(), matrix)
    return torch.cat((255 - rgb, samples[:, 3:].to(torch.int32)), dim=1)


def ycck_to_cmyk(image: Tensor, matrix: Tensor | None = None, mode: Mode = "float") -> Tensor:
    """Convert YCCK samples to CMYK as libjpeg does (Adobe's inverted form,
    before Pillow's inversion): ``255 - RGB`` of the first three, K as it is.

    Args:
        image: ``(B, 4, H, W)`` float tensor of Y, Cb, Cr, K samples in [0, 255].
        matrix: as in :func:`ycbcr_to_rgb`, applied to Y, Cb, Cr.
        mode: as in :func:`ycbcr_to_rgb`; gradients are those of the
            real-valued conversion in every mode.

    Returns:
        ``(B, 4, H, W)`` samples in [0, 255], dtype of ``image``.

    Example:
        >>> ycck_to_cmyk(torch.tensor([128.0, 128.0, 255.0, 7.0]).reshape(1, 4, 1, 1), mode="exact").flatten()
        tensor([  0., 218., 127.,   7.])
    """
    check_mode(mode)
    rgb = ycbcr_to_rgb(image[:, :3], matrix, mode)
    return torch.cat((255.0 - rgb, image[:, 3:]), dim=1)


TAKES_MATRIX = ("YCbCr", "YCCK")  # the color spaces a decoder converts with a YCbCr to RGB matrix
# decoded_pixels in two steps, as the compiled kernel runs it: (YCbCr to RGB on
# the first three channels, the channels then made 255 - x). YCCK: libjpeg's
# 255 - RGB and Pillow's 255 - x of every channel cancel on the first three.
DECODER_STEPS = {"grayscale": (False, ()), "YCbCr": (True, ()), "RGB": (False, ()), "CMYK": (False, (0, 1, 2, 3)), "YCCK": (True, (3,))}


def decoded_pixels(planes: Tensor, color_space: ColorSpace, matrix: Tensor | None = None, mode: Mode = "float") -> Tensor:
    """The pixels Pillow gives for a file's decoded components: RGB for
    YCbCr (:func:`ycbcr_to_rgb`) and RGB files, mode ``"CMYK"`` for CMYK and
    YCCK files (``255 -`` what libjpeg outputs, see the module docstring),
    grayscale as it is.

    Args:
        planes: ``(B, C, H, W)`` float tensor of the components' samples in
            [0, 255], upsampled to full size.
        color_space: one of :data:`diffjpeg.core.colorspace.COLOR_SPACES`, with C
            components.
        matrix: a YCbCr to RGB matrix for YCbCr and YCCK (see
            :func:`ycbcr_to_rgb`); ``ValueError`` for the others.
        mode: as in :func:`ycbcr_to_rgb`.

    Example:
        >>> decoded_pixels(torch.tensor([0.0, 10.0, 200.0, 255.0]).reshape(1, 4, 1, 1), "CMYK").flatten()
        tensor([255., 245.,  55.,   0.])
    """
    check_mode(mode)
    _check_planes(planes, color_space, matrix)
    if color_space == "YCbCr":
        return ycbcr_to_rgb(planes, matrix, mode)
    if color_space == "YCCK":
        return 255.0 - ycck_to_cmyk(planes, matrix, mode)
    if color_space == "CMYK":
        return 255.0 - planes
    return planes


def decoded_pixels_fixed(planes: Tensor, color_space: ColorSpace, matrix: Tensor | None = None) -> Tensor:
    """:func:`decoded_pixels` in exact integer form: int32 ``(B, C, H, W)``
    samples in [0, 255] in, int32 pixels out."""
    _check_planes(planes, color_space, matrix)
    if color_space == "YCbCr":
        return ycbcr_to_rgb_fixed(planes, matrix)
    if color_space == "YCCK":
        return 255 - ycck_to_cmyk_fixed(planes, matrix)
    if color_space == "CMYK":
        return 255 - planes
    return planes


def check_decoder_matrix(color_space: ColorSpace, matrix) -> None:
    """``ValueError`` if a YCbCr to RGB ``matrix`` is given for RGB or CMYK
    components, which are not converted (grayscale ignores it, as always)."""
    if matrix is not None and color_space not in TAKES_MATRIX + ("grayscale",):
        raise ValueError(f"ycbcr_to_rgb applies to YCbCr and YCCK images, these are {color_space}: pass None")


def _check_planes(planes: Tensor, color_space: str, matrix: Tensor | None) -> None:
    if color_space not in COLOR_SPACES or planes.shape[1] != COLOR_SPACES[color_space]:
        raise ValueError(f"{color_space!r} samples need {COLOR_SPACES.get(color_space, '1, 3 or 4')} channels, got shape {tuple(planes.shape)}")
    check_decoder_matrix(color_space, matrix)


def _hold_matrix(module: nn.Module, matrix: Tensor | None) -> None:
    """A module's matrix: a parameter if given one, else a buffer (moved by
    ``.to()``, saved in ``state_dict``)."""
    if matrix is not None and not isinstance(matrix, Tensor):
        raise TypeError(f"matrix must be a torch.Tensor of shape (3, 3) or (B, 3, 3), got {type(matrix).__name__}")
    if isinstance(matrix, nn.Parameter):
        module.matrix = matrix
    else:
        module.register_buffer("matrix", matrix)


class RGBToYCbCr(nn.Module):
    """Module form of :func:`rgb_to_ycbcr`.

    Example:
        >>> RGBToYCbCr(mode="exact")(torch.zeros(1, 3, 2, 2)).shape
        torch.Size([1, 3, 2, 2])
    """

    def __init__(self, mode: Mode = "float", matrix: Tensor | None = None):
        super().__init__()
        check_mode(mode)
        self.mode = mode
        _hold_matrix(self, matrix)

    def forward(self, image: Tensor) -> Tensor:
        return rgb_to_ycbcr(image, self.matrix, self.mode)


class YCbCrToRGB(nn.Module):
    """Module form of :func:`ycbcr_to_rgb`.

    Example:
        >>> YCbCrToRGB(mode="exact")(torch.full((1, 3, 2, 2), 128.0)).flatten()[0].item()
        128.0
    """

    def __init__(self, mode: Mode = "float", matrix: Tensor | None = None):
        super().__init__()
        check_mode(mode)
        self.mode = mode
        _hold_matrix(self, matrix)

    def forward(self, image: Tensor) -> Tensor:
        return ycbcr_to_rgb(image, self.matrix, self.mode)
