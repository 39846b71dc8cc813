"""Chroma downsampling (libjpeg's jcsample.c) and upsampling (jdsample.c).

Facts from libjpeg-turbo that the exact forms rely on:

* h2v2 downsampling: ``(a + b + c + d + bias) >> 2`` with ``bias`` 1, 2, 1, 2, ...
  along each output row; h2v1: ``(a + b + bias) >> 1`` with ``bias`` 0, 1, 0, 1.
* Decoding uses "fancy" (triangle-filter) upsampling by default, but only when
  the downsampled width is more than 2 samples; otherwise each sample is
  replicated.
* h2v1 fancy: ``(3 x[j] + x[j-1] + 1) >> 2`` and ``(3 x[j] + x[j+1] + 2) >> 2``.
* h2v2 fancy: column sums ``3 * nearer row + farther row``, then
  ``(3 s[j] + s[j-1] + 8) >> 4`` and ``(3 s[j] + s[j+1] + 7) >> 4``.
* h1v2 fancy (libjpeg-turbo >= 2.1; files from lossless transposes of 4:2:2):
  ``(3 x[i] + x[i-1] + 1) >> 2`` and ``(3 x[i] + x[i+1] + 2) >> 2`` down each
  column, at any width.
* All work on the real downsampled width and height and repeat the first and
  last rows and columns at the edges (jdmainct.c supplies the context rows).
* Any other integer ratio (h4v1, h4v2, ...) replicates samples (int_upsample);
  ratios are per component: ``max factor / component factor``.

The soft forms use the same weights without rounding; the float forms round
with libjpeg's biases (on integer samples they equal the exact forms, and
round-half-even instead, measured on three scikit-image photos at 4:2:0,
drops float mode's PSNR against Pillow from 60.3 to 45.5 dB at quality 1 and
from 46.1 to 45.4 dB at quality 90).

On the CPU, float32 and float64 planes without a gradient to record go
through compiled loops of these very operations (:mod:`diffjpeg.backends.cpu`,
``diffjpeg/backends/_sampling.c``): the float and soft forms forward, and the
transposes in every mode's backward, each in one pass, with the same values.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from ..core import dispatch
from ..core.check import check_mode, traced
from ..core.modes import Mode

FACTORS = (1, 2)  # what the encoder offers (4:4:4, 4:2:2, 4:2:0)
UPSAMPLING_FACTORS = (1, 2, 3, 4)  # JPEG sampling factors are 1..4, so are their ratios


def _check_factors(h_factor: int, v_factor: int, allowed=FACTORS) -> None:
    if h_factor not in allowed or v_factor not in allowed:
        raise ValueError(f"sampling factors must be in {allowed}, got {h_factor}x{v_factor}")


def _alternating(n: int, even: float, odd: float, like: Tensor) -> Tensor:
    values = torch.tensor([even, odd], device=like.device).to(like.dtype)
    return values.repeat((n + 1) // 2)[:n]


def _biased_average(total: Tensor, h_factor: int, v_factor: int) -> Tensor:
    """jcsample.c's rounding of window sums (float holding integers, or integer)."""
    count = h_factor * v_factor
    if h_factor == 2 and v_factor == 2:
        bias = _alternating(total.shape[-1], 1, 2, total)
    elif h_factor == 2:
        bias = _alternating(total.shape[-1], 0, 1, total)
    else:  # h1v2 goes through jcsample.c's int_downsample: add count / 2
        bias = torch.full((total.shape[-1],), count // 2, dtype=total.dtype, device=total.device)
    total = total.add_(bias)
    if not total.is_floating_point():
        return total >> (count.bit_length() - 1)
    return total.div_(count).floor_()


def downsample_biased(plane: Tensor, h_factor: int, v_factor: int) -> Tensor:
    """jcsample.c's integer average of int32 samples: ``(sum + bias) >> log2(h v)``.

    Example:
        >>> downsample_biased(torch.tensor([[1, 2, 1, 2]], dtype=torch.int32), 2, 1)
        tensor([[1, 2]], dtype=torch.int32)
    """
    _check_factors(h_factor, v_factor)
    if h_factor == v_factor == 1:
        return plane
    *lead, h, w = plane.shape
    windows = plane.reshape(*lead, h // v_factor, v_factor, w // h_factor, h_factor)
    return _biased_average(windows.sum((-3, -1), dtype=torch.int32), h_factor, v_factor)


def downsample(plane: Tensor, h_factor: int, v_factor: int, mode: Mode = "float") -> Tensor:
    """Average ``h_factor x v_factor`` windows of a sample plane.

    Args:
        plane: ``(..., H, W)`` float samples in [0, 255], ``H`` a multiple of
            ``v_factor`` and ``W`` of ``h_factor`` (pad first).
        h_factor, v_factor: 1 or 2.
        mode: ``"exact"`` and ``"float"`` (libjpeg's biased integer average,
            its rounding rule) or ``"soft"`` (the mean). Gradient: the mean's.

    Returns:
        ``(..., H / v_factor, W / h_factor)`` samples, dtype of ``plane``.

    Example:
        >>> downsample(torch.tensor([[1.0, 2.0, 1.0, 2.0]]), 2, 1, "exact")
        tensor([[1., 2.]])
    """
    _check_factors(h_factor, v_factor)
    check_mode(mode)
    if h_factor == v_factor == 1:
        return plane
    return _Downsample.apply(plane, h_factor, v_factor, mode != "soft")


def _window_sums(x: Tensor, h_factor: int, v_factor: int) -> Tensor:
    """Sums of ``h_factor x v_factor`` windows, added in avg_pool2d's order
    (the window's rows, left to right), from strided views of ``x``: its
    values, bit for bit, without the contiguous copy avg_pool2d makes of a
    plane that is a view of the stacked YCbCr planes (2.5x faster on the CPU,
    16 x 256 x 256). avg_pool2d starts from 0, so an all-zero window of
    negative zeros sums to +0 there and to -0 here: equal values, and the
    next stage (a bias, or the level shift) adds a nonzero term."""
    if h_factor == v_factor == 2:
        total = x[..., 0::2, 0::2] + x[..., 0::2, 1::2]
        total += x[..., 1::2, 0::2]
        return total.add_(x[..., 1::2, 1::2])
    if h_factor == 2:
        return x[..., 0::2] + x[..., 1::2]
    return x[..., 0::2, :] + x[..., 1::2, :]


@dispatch.keeps_backends
class _Downsample(torch.autograd.Function):
    """Window mean forward (libjpeg's biased integer average if ``biased``);
    backward spreads the gradient evenly, saving nothing (avg_pool2d's own
    backward keeps its whole input alive)."""

    generate_vmap_rule = True  # torch operations only (no kernel runs under a torch.func transform)

    @staticmethod
    def forward(plane, h_factor, v_factor, biased):
        done = dispatch.run("downsample", plane, h_factor, v_factor, biased)  # the same values, in one pass
        if done is not None:
            return done
        # float32 at least: sums up to 1020 must stay exact (bfloat16 holds
        # integers only up to 256)
        x = plane.to(torch.promote_types(plane.dtype, torch.float32))
        total = _window_sums(x, h_factor, v_factor)
        if not biased:
            return total.div_(h_factor * v_factor).to(plane.dtype)
        # exact and float round alike: libjpeg's biases are its rounding rule
        return _biased_average(total, h_factor, v_factor).to(plane.dtype)

    @staticmethod
    def setup_context(ctx, inputs, output):
        dispatch.keep(ctx)
        ctx.factors = inputs[1:3]

    @staticmethod
    def backward(ctx, grad):
        return downsample_adjoint(grad, *ctx.factors), None, None, None


def downsample_adjoint(grad: Tensor, h_factor: int, v_factor: int, *, out: Tensor | None = None) -> Tensor:
    """The transpose of :func:`downsample` (its gradient in every mode): each
    output's gradient spread evenly over its window.

    ``out``: a ``(..., v_factor h, h_factor w)`` tensor (any strides) to write
    the result into; it is returned.

    Example:
        >>> downsample_adjoint(torch.tensor([[4.0]]), 2, 2)
        tensor([[1., 1.],
                [1., 1.]])
    """
    *lead, h, w = grad.shape
    if h_factor == v_factor == 1:
        return grad if out is None else out.copy_(grad)
    done = dispatch.run("downsample_adjoint", grad, h_factor, v_factor, out)  # the same values, in one pass
    if done is not None:
        return done
    spread = grad.reshape(*lead, h, 1, w, 1).expand(*lead, h, v_factor, w, h_factor)
    # divided as it is spread (one pass; reshaping the expanded view first would copy it)
    if out is not None:
        torch.div(spread, h_factor * v_factor, out=out.view(*lead, h, v_factor, w, h_factor))
        return out
    return (spread / (h_factor * v_factor)).reshape(*lead, h * v_factor, w * h_factor)


def _triangle(x: Tensor, dim: int) -> Tensor:
    """Fancy upsampling's sums along ``dim``: ``3 x[j] + x[j-1]`` and ``3 x[j] + x[j+1]``
    interleaved (``dim`` doubles), edge samples repeated. Written into one
    preallocated tensor through strided views: no shifted copies, no stack.
    Under ``torch.compile`` (which breaks the graph at every ``out=`` view)
    from shifted copies instead, which the compiler fuses, and so under a
    ``torch.func`` transform (``out=`` has no vmap rule): the same sums."""
    dim = dim % x.dim()
    n = x.shape[dim]
    if traced():
        near = 3 * x
        before = torch.cat([x.narrow(dim, 0, 1), x.narrow(dim, 0, n - 1)], dim)
        after = torch.cat([x.narrow(dim, 1, n - 1), x.narrow(dim, n - 1, 1)], dim)
        return torch.stack([near + before, near + after], dim + 1).flatten(dim, dim + 1)
    shape = list(x.shape)
    shape[dim : dim + 1] = [n, 2]
    out = x.new_empty(shape)
    near = 3 * x
    even, odd = out.select(dim + 1, 0), out.select(dim + 1, 1)
    if n > 1:
        torch.add(near.narrow(dim, 1, n - 1), x.narrow(dim, 0, n - 1), out=even.narrow(dim, 1, n - 1))
        torch.add(near.narrow(dim, 0, n - 1), x.narrow(dim, 1, n - 1), out=odd.narrow(dim, 0, n - 1))
    torch.add(near.narrow(dim, 0, 1), x.narrow(dim, 0, 1), out=even.narrow(dim, 0, 1))
    torch.add(near.narrow(dim, n - 1, 1), x.narrow(dim, n - 1, 1), out=odd.narrow(dim, n - 1, 1))
    return out.flatten(dim, dim + 1)


def _triangle_adjoint(grad: Tensor, dim: int) -> Tensor:
    """The transpose of :func:`_triangle` (its backward)."""
    dim = dim % grad.dim()
    n = grad.shape[dim] // 2
    pairs = grad.unflatten(dim, (n, 2))
    even, odd = pairs.select(dim + 1, 0), pairs.select(dim + 1, 1)
    out = (even + odd).mul_(3)
    if n > 1:
        out.narrow(dim, 0, n - 1).add_(even.narrow(dim, 1, n - 1))  # x[j-1] feeds even output j
        out.narrow(dim, 1, n - 1).add_(odd.narrow(dim, 0, n - 1))  # x[j+1] feeds odd output j
    out.narrow(dim, 0, 1).add_(even.narrow(dim, 0, 1))
    out.narrow(dim, n - 1, 1).add_(odd.narrow(dim, n - 1, 1))
    return out


# (dims filtered, scale, rounding biases of the even and odd outputs along the last dim filtered)
_FANCY = {(2, 1): ((-1,), 4.0, (1.0, 2.0)), (1, 2): ((-2,), 4.0, (1.0, 2.0)), (2, 2): ((-2, -1), 16.0, (8.0, 7.0))}


def _fancy_biased(x: Tensor, factors: tuple[int, int], out: Tensor | None = None) -> Tensor:
    """The triangle filter with libjpeg's biases and shift (float holding
    integers, or integer; sums at most ``16 * 255 + 8``); a float result
    written into ``out`` if given."""
    dims, scale, (b_even, b_odd) = _FANCY[factors]
    for d in dims:
        x = _triangle(x, d)
    n = x.shape[dims[-1]]
    bias = torch.tensor([b_even, b_odd], dtype=x.dtype, device=x.device).repeat(n // 2)
    if dims[-1] == -2:
        bias = bias.unsqueeze(-1)
    x = x.add_(bias)
    if not x.is_floating_point():
        return x >> (int(scale).bit_length() - 1)
    x = x.mul_(1.0 / scale)
    return x.floor_() if out is None else torch.floor(x, out=out)


def _is_fancy(width: int, h_factor: int, v_factor: int) -> bool:
    """libjpeg's choice: triangle filter for h2v1 and h2v2 wider than 2, and h1v2."""
    return (h_factor, v_factor) in ((2, 1), (2, 2)) and width > 2 or (h_factor, v_factor) == (1, 2)


def upsample_fancy(plane: Tensor, h_factor: int, v_factor: int) -> Tensor:
    """jdsample.c's integer upsampling of int32 samples (fancy where libjpeg is).

    Example:
        >>> upsample_fancy(torch.tensor([[0, 4, 8]], dtype=torch.int32), 2, 1)
        tensor([[0, 1, 3, 5, 7, 8]], dtype=torch.int32)
    """
    _check_factors(h_factor, v_factor, UPSAMPLING_FACTORS)
    if h_factor == v_factor == 1:
        return plane
    if not _is_fancy(plane.shape[-1], h_factor, v_factor):
        return plane.repeat_interleave(v_factor, dim=-2).repeat_interleave(h_factor, dim=-1)
    return _fancy_biased(plane, (h_factor, v_factor))


def _fancy_filter(plane: Tensor, factors: tuple[int, int], biased: bool, out: Tensor | None = None) -> Tensor:
    """The triangle filter, rounded with libjpeg's biases if ``biased``; into ``out`` if given."""
    done = dispatch.run("upsample", plane, *factors, biased, out)  # the same values, in one pass
    if done is not None:
        return done
    x = plane
    if biased and plane.dtype not in (torch.float32, torch.float64):
        x = plane.to(torch.float32)  # sums up to 16 * 255 + 8 must stay exact
    into = out if out is not None and out.dtype == x.dtype else None  # the last step's out= keeps its dtype
    if biased:
        y = _fancy_biased(x, factors, into)
    else:
        dims, scale, _ = _FANCY[factors]
        for d in dims:
            x = _triangle(x, d)
        y = x.mul_(1.0 / scale) if into is None else torch.mul(x, 1.0 / scale, out=into)
    if out is None:
        return y.to(plane.dtype)
    return y if y is out else out.copy_(y)


@dispatch.keeps_backends
class _FancyUpsample(torch.autograd.Function):
    """The triangle filter forward, rounded with libjpeg's biases if ``biased``;
    the real filter's transpose backward (nothing saved)."""

    generate_vmap_rule = True  # torch operations only (no kernel runs under a torch.func transform)

    @staticmethod
    def forward(plane, factors, biased):
        return _fancy_filter(plane, factors, biased)

    @staticmethod
    def setup_context(ctx, inputs, output):
        dispatch.keep(ctx)
        ctx.factors = inputs[1]

    @staticmethod
    def backward(ctx, grad):
        return upsample_adjoint(grad, *ctx.factors), None, None


def upsample_adjoint(grad: Tensor, h_factor: int, v_factor: int) -> Tensor:
    """The transpose of :func:`upsample`'s triangle filter (its gradient in
    every mode, where it filters): ``(..., v_factor h, h_factor w)`` to ``(..., h, w)``.

    Example:
        >>> upsample_adjoint(torch.ones(1, 6), 2, 1)  # each sample feeds two outputs, weights summing to 2
        tensor([[2., 2., 2.]])
    """
    done = dispatch.run("upsample_adjoint", grad, h_factor, v_factor)  # the same values, in one pass
    if done is not None:
        return done
    dims, scale, _ = _FANCY[(h_factor, v_factor)]
    for d in reversed(dims):
        grad = _triangle_adjoint(grad, d)
    return grad.mul_(1.0 / scale)


def is_filtered(width: int, h_factor: int, v_factor: int) -> bool:
    """Whether :func:`upsample` of a plane ``width`` samples wide filters
    (libjpeg's fancy upsampling) rather than replicates samples."""
    return _is_fancy(width, h_factor, v_factor)


def upsample(plane: Tensor, h_factor: int, v_factor: int, mode: Mode = "float", *, out: Tensor | None = None) -> Tensor:
    """Upsample a decoded chroma plane as libjpeg's default ("fancy") upsampler does.

    Args:
        plane: ``(..., h, w)`` float samples in [0, 255] at their real downsampled
            size (cropped from the padded blocks, not padded).
        h_factor, v_factor: upsampling ratios, 1 to 4; h2v2 and h2v1 use the
            triangle filter when ``w > 2``, h1v2 always; others replicate samples.
        mode: ``"exact"`` and ``"float"`` (libjpeg's integer filter with its
            rounding biases) or ``"soft"`` (the real filter). Gradient: the real
            filter's.
        out: a ``(..., v_factor h, h_factor w)`` tensor (any strides, the
            dtype of ``plane``) to write the result into, without recording a
            gradient (``ValueError`` if ``plane`` requires one); it is returned.
            The decoder writes each plane into its stacked YCbCr planes so.

    Returns:
        ``(..., v_factor h, h_factor w)`` samples, dtype of ``plane``.

    Example:
        >>> upsample(torch.tensor([[0.0, 4.0, 8.0]]), 2, 1, "exact")
        tensor([[0., 1., 3., 5., 7., 8.]])
    """
    _check_factors(h_factor, v_factor, UPSAMPLING_FACTORS)
    check_mode(mode)
    if out is not None:
        _check_out(plane, out, h_factor, v_factor)
    if h_factor == v_factor == 1:
        return plane if out is None else out.copy_(plane)
    if not _is_fancy(plane.shape[-1], h_factor, v_factor):
        plane = plane.repeat_interleave(v_factor, dim=-2).repeat_interleave(h_factor, dim=-1)
        return plane if out is None else out.copy_(plane)
    # exact and float round alike: libjpeg's biases are its rounding rule
    if out is not None:
        return _fancy_filter(plane, (h_factor, v_factor), mode != "soft", out)
    return _FancyUpsample.apply(plane, (h_factor, v_factor), mode != "soft")


def _check_out(plane: Tensor, out: Tensor, h_factor: int, v_factor: int) -> None:
    shape = plane.shape[:-2] + (plane.shape[-2] * v_factor, plane.shape[-1] * h_factor)
    if not isinstance(out, Tensor):
        raise TypeError(f"out must be a {tuple(shape)} {plane.dtype} tensor, got {type(out).__name__}")
    if plane.requires_grad and torch.is_grad_enabled():
        raise ValueError("out: upsample writes into out only without a gradient to record; plane requires grad")
    if out.shape != shape or out.dtype != plane.dtype or out.device != plane.device:
        raise ValueError(f"out must be a {tuple(shape)} {plane.dtype} tensor on {plane.device}, got {tuple(out.shape)} {out.dtype} on {out.device}")


class Downsample(nn.Module):
    """Module form of :func:`downsample`.

    Example:
        >>> Downsample(2, 2, "exact")(torch.ones(1, 4, 4)).shape
        torch.Size([1, 2, 2])
    """

    def __init__(self, h_factor: int = 2, v_factor: int = 2, mode: Mode = "float"):
        super().__init__()
        _check_factors(h_factor, v_factor)
        check_mode(mode)
        self.h_factor, self.v_factor, self.mode = h_factor, v_factor, mode

    def forward(self, plane: Tensor) -> Tensor:
        return downsample(plane, self.h_factor, self.v_factor, self.mode)


class Upsample(nn.Module):
    """Module form of :func:`upsample`.

    Example:
        >>> Upsample(2, 2, "exact")(torch.ones(1, 3, 3)).shape
        torch.Size([1, 6, 6])
    """

    def __init__(self, h_factor: int = 2, v_factor: int = 2, mode: Mode = "float"):
        super().__init__()
        _check_factors(h_factor, v_factor, UPSAMPLING_FACTORS)
        check_mode(mode)
        self.h_factor, self.v_factor, self.mode = h_factor, v_factor, mode

    def forward(self, plane: Tensor) -> Tensor:
        return upsample(plane, self.h_factor, self.v_factor, self.mode)
