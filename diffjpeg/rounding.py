"""Surrogates for JPEG's non-differentiable steps: rounding, floor and clipping.

JPEG loses information in one place, the quantizer ``round(coefficient / Q)``.
That rounding gets the surrogate the user chooses (``rounding=``):

========== ============================================== ===========================
name       soft forward ``r(x)``                           derivative ``r'(x)``
========== ============================================== ===========================
linear     ``x`` (straight-through)                        ``1``
polynomial ``round(x) + (x - round(x))**3``                ``3 (x - round(x))**2``
fourier    ``x - sum_k (-1)**(k+1) sin(2 pi k x) / (pi k)`` ``1 - 2 sum_k (-1)**(k+1) cos(2 pi k x)``
sigmoid    ``floor(x) + 1/2 + tanh(a s) / (2 tanh(a/2))``   ``a (1 - tanh(a s)**2) / (2 tanh(a/2))``
========== ============================================== ===========================

with ``s = x - floor(x) - 1/2`` and ``a = 1 / temperature`` (Agustsson & Theis' soft
rounding).  The Fourier form is the truncated series of the sawtooth ``x - round(x)``.

Every other rounding, floor and clip in the pipeline (8-bit samples, fixed-point
shifts, the quality-to-table floor, the clamps to [0, 255] and [1, 255]) is
straight-through: its true value forward, derivative 1 backward, in every mode.
They move values by less than one step, and a cubic or periodic surrogate there
would zero the gradient exactly where JPEG's values sit (8-bit samples are
integers; at quality 50 every table entry is ``k + 1/2`` before the floor).  A
straight-through clip also keeps the gradient with respect to quality nonzero at
quality 1 and 100, where the tables saturate.
"""
from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

ROUNDINGS = ("linear", "polynomial", "fourier", "sigmoid")
DEFAULT_FOURIER_ORDER = 10
DEFAULT_TEMPERATURE = 0.25


def check_rounding(rounding: str, fourier_order: int, temperature: float) -> None:
    """Raise ``ValueError``/``TypeError`` for an unknown surrogate or bad parameters."""
    if not isinstance(rounding, str) or rounding not in ROUNDINGS:
        raise ValueError(f"rounding must be one of {ROUNDINGS}, got {rounding!r}")
    if isinstance(fourier_order, bool) or not isinstance(fourier_order, int):
        raise TypeError(f"fourier_order must be an int, got {type(fourier_order).__name__}")
    if fourier_order < 1:
        raise ValueError(f"fourier_order must be >= 1, got {fourier_order}")
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)):
        raise TypeError(f"temperature must be a float, got {type(temperature).__name__}")
    if not (math.isfinite(temperature) and temperature > 0):
        raise ValueError(f"temperature must be a finite number > 0, got {temperature}")


def _fourier_sums(x: Tensor, order: int, derivative: bool) -> Tensor:
    """The fourier surrogate (``derivative=False``) or its derivative.

    With ``p = 2 pi x + pi``, ``(-1)**(k+1) sin(2 pi k x) = -sin(k p)`` and the
    same for cosines, so the surrogate is ``x + sum_k sin(k p) / (pi k)`` and
    its derivative ``1 + 2 sum_k cos(k p)``. ``sin(k p)``, ``cos(k p)`` come
    from rotating by ``p`` k times (error growing like k * eps): two
    transcendental passes instead of 2 * order, and no (..., order) tensor.
    """
    theta = x.detach() * (2 * math.pi)
    c1, s1 = -torch.cos(theta), -torch.sin(theta)  # cos p, sin p
    c, s = c1, s1
    total = c1.clone() if derivative else s1 / math.pi
    for k in range(2, order + 1):
        c, s = c * c1 - s * s1, s * c1 + c * s1
        if derivative:
            total.add_(c)
        else:
            total.add_(s, alpha=1.0 / (math.pi * k))
    return total.mul_(2.0).add_(1.0) if derivative else total.add_(x.detach())


class _FourierRound(torch.autograd.Function):
    """The fourier surrogate with its closed-form derivative as the backward
    (autograd through the series would keep every term alive)."""

    @staticmethod
    def forward(ctx, x, order):
        ctx.save_for_backward(x)
        ctx.order = order
        return _fourier_sums(x, order, derivative=False)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * _fourier_sums(x, ctx.order, derivative=True), None


def soft_round(
    x: Tensor,
    rounding: str = "polynomial",
    fourier_order: int = DEFAULT_FOURIER_ORDER,
    temperature: float = DEFAULT_TEMPERATURE,
) -> Tensor:
    """The surrogate ``r(x)`` itself, differentiable by autograd.

    Args:
        x: any float tensor.
        rounding: one of ``"linear"``, ``"polynomial"``, ``"fourier"``, ``"sigmoid"``.
        fourier_order: number of sine terms of the ``"fourier"`` surrogate.
        temperature: softness of the ``"sigmoid"`` surrogate (smaller is harder).

    Returns:
        A tensor of the shape and dtype of ``x``.

    Example:
        >>> soft_round(torch.tensor([0.2, 1.5]), "polynomial")
        tensor([0.0080, 1.8750])
    """
    if rounding == "linear":
        return x
    if rounding == "polynomial":
        r = torch.round(x).detach()
        return r + (x - r) ** 3
    if rounding == "fourier":
        return _FourierRound.apply(x, fourier_order)
    if rounding == "sigmoid":
        a = 1.0 / temperature
        f = torch.floor(x).detach()
        s = x - f - 0.5
        return f + 0.5 + torch.tanh(a * s) / (2.0 * math.tanh(a / 2.0))
    raise ValueError(f"rounding must be one of {ROUNDINGS}, got {rounding!r}")


def soft_round_derivative(
    x: Tensor,
    rounding: str = "polynomial",
    fourier_order: int = DEFAULT_FOURIER_ORDER,
    temperature: float = DEFAULT_TEMPERATURE,
) -> Tensor:
    """``r'(x)``, the derivative of :func:`soft_round`, in closed form."""
    if rounding == "linear":
        return torch.ones_like(x)
    if rounding == "polynomial":
        return 3.0 * (x - torch.round(x)) ** 2
    if rounding == "fourier":
        return _fourier_sums(x, fourier_order, derivative=True)
    if rounding == "sigmoid":
        a = 1.0 / temperature
        s = x - torch.floor(x) - 0.5
        return a * (1.0 - torch.tanh(a * s) ** 2) / (2.0 * math.tanh(a / 2.0))
    raise ValueError(f"rounding must be one of {ROUNDINGS}, got {rounding!r}")


class _RoundWithSurrogateGradient(torch.autograd.Function):
    """A given rounded value forward; the surrogate's derivative at ``x`` backward."""

    @staticmethod
    def forward(ctx, x, value, rounding, fourier_order, temperature):
        ctx.save_for_backward(x)
        ctx.params = (rounding, fourier_order, temperature)
        return value

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * soft_round_derivative(x, *ctx.params), None, None, None, None


def round_with_surrogate(
    x: Tensor,
    rounding: str = "polynomial",
    value: Tensor | None = None,
    fourier_order: int = DEFAULT_FOURIER_ORDER,
    temperature: float = DEFAULT_TEMPERATURE,
) -> Tensor:
    """``round(x)`` forward (or ``value`` if given), ``r'(x)`` backward.

    ``value`` lets the exact codec put libjpeg's integer result forward while the
    gradient is the surrogate's at the real-valued point ``x``.
    """
    if value is None:
        value = torch.round(x.detach())
    if rounding == "linear" or not x.requires_grad:
        return straight_through(x, value)
    return _RoundWithSurrogateGradient.apply(x, value.detach(), rounding, fourier_order, temperature)


def needs_grad(*tensors) -> bool:
    """Whether autograd will want a gradient through any of ``tensors``: the
    exact forms skip their real-valued twin (needed only for the backward)
    when it will not."""
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)


class _StraightThrough(torch.autograd.Function):
    """``value`` forward, the incoming gradient unchanged to ``x`` backward.

    A Function rather than ``value + (x - x.detach())``: one pass instead of
    three, nothing saved, and ``value`` comes out bit for bit (the expression
    loses ``value``'s low bits when ``|x|`` is large: float32 255 came out as
    255.0005 next to an x of 1e5 from a hostile file).
    """

    @staticmethod
    def forward(ctx, x, value):
        return value

    @staticmethod
    def backward(ctx, grad):
        return grad, None


class _RoundClamp(torch.autograd.Function):
    """``clamp(round(x), lo, hi)`` (either step optional) forward, identity backward."""

    @staticmethod
    def forward(ctx, x, do_round, lo, hi):
        y = torch.round(x) if do_round else x
        if lo is not None:
            y = y.clamp_(lo, hi) if do_round else y.clamp(lo, hi)
        return y

    @staticmethod
    def backward(ctx, grad):
        return grad, None, None, None


def straight_through(x: Tensor, value: Tensor) -> Tensor:
    """``value`` forward, identity backward (gradient of ``x``)."""
    value = value.detach().to(x.dtype)
    if not x.requires_grad:
        return value
    return _StraightThrough.apply(x, value)


def exact_value(value: Tensor, like: Tensor, real: Callable[[], Tensor], *inputs) -> Tensor:
    """An exact stage's ``value`` forward, in ``like``'s dtype; backward, the
    gradient of ``real()``, the real-valued stage at the same input. ``real``
    is called only when autograd will want a gradient through ``like`` or
    ``inputs``: without a backward pass it would be wasted work."""
    if not needs_grad(like, *inputs):
        return value.to(like.dtype)
    return straight_through(real(), value)


def round_ste(x: Tensor) -> Tensor:
    """Round half to even forward, identity backward."""
    return _RoundClamp.apply(x, True, None, None) if x.requires_grad else torch.round(x)


def floor_ste(x: Tensor) -> Tensor:
    """Floor forward, identity backward."""
    return straight_through(x, torch.floor(x.detach()))


def clamp_ste(x: Tensor, lo: float, hi: float, rounded: bool = False) -> Tensor:
    """Clamp forward (rounded half to even first if ``rounded``: 8-bit
    samples), identity backward."""
    if x.requires_grad:
        return _RoundClamp.apply(x, rounded, lo, hi)
    return torch.round(x).clamp_(lo, hi) if rounded else x.clamp(lo, hi)
