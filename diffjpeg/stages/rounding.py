"""Surrogates for JPEG's non-differentiable steps: rounding, floor and clipping.

JPEG loses information in one place, the quantizer ``round(coefficient / Q)``.
That rounding gets the surrogate the user chooses (``rounding=``, a name or a
:class:`Rounding`: :class:`Linear`, :class:`Polynomial`, :class:`Fourier`,
:class:`Sigmoid`, :class:`Noise`):

==========  ====================================================  =============================================
name        soft forward ``r(x)``                                 derivative ``r'(x)``
==========  ====================================================  =============================================
linear      ``x`` (straight-through)                              ``1``
polynomial  ``round(x) + (x - round(x))**3``                      ``3 (x - round(x))**2``
fourier     ``x - sum_k s_k (-1)**(k+1) sin(2 pi k x) / (pi k)``  ``1 - 2 sum_k s_k (-1)**(k+1) cos(2 pi k x)``
sigmoid     ``floor(x) + 1/2 + tanh(a s) / (2 tanh(a/2))``        ``a (1 - tanh(a s)**2) / (2 tanh(a/2))``
noise       ``x + u``, ``u ~ U(-1/2, 1/2)`` drawn per call        ``1``
==========  ====================================================  =============================================

with ``s = x - floor(x) - 1/2`` and ``a = 1 / temperature`` (Agustsson & Theis' soft
rounding); ``Fourier(order=FOURIER_ORDER, damping="fejer")`` and
``Sigmoid(temperature=0.25)`` by default.

**Defaults per forward pass.** ``rounding=None``, the default of every
``rounding=``, is the mode's surrogate, :func:`default_rounding` (the table
:data:`DEFAULT_ROUNDINGS`, the one place that says it):

* exact and float: ``Sigmoid(temperature=0.25)`` (``"sigmoid"``,
  :data:`DEFAULT_ROUNDING`; ``"polynomial"`` before 0.3). Their forward is the
  true rounding, the surrogate only their gradient: with the exact forward it
  was the only one within one standard deviation of the best on each
  watermark, attack and recovery task of ``benchmarks/surrogates.py``; on
  learned tables it trails the best (the float forward) by about one point of
  BD-rate (docs/guide/benchmarks.md, "Which surrogate for which task").
* soft: ``Sigmoid(temperature=0.25)`` too, though its forward pass *is* the
  surrogate, and so it is far from the codec: mean PSNR against Pillow over
  the benchmark suite's photos and qualities 1 to 95 (4:2:0;
  ``benchmarks/results/soft_fidelity.md``) 37.0 dB, where Reich et al.'s
  soft forward is at 43.5 and kornia at 42.1. Sharper surrogates come
  closer (sigmoid at temperature 0.15: 39.2 dB, 0.1: 40.5, 0.05: 42.1,
  0.03: 42.8; the polynomial 42.8), but each of them trains
  worse through the soft forward: on ``benchmarks/surrogates.py``, in the
  same run as soft/sigmoid, every one falls more than one standard deviation
  below it on the attacks (q50: 96.9 ± 2.3% against 90.8 at 0.15, 65.3 at
  0.03, 91.1 for the polynomial) and on the q15 watermark, the polynomial
  also on recovery and learned tables. No surrogate measured reaches the
  peers' soft fidelity and trains as well, so soft keeps the one that trains
  best; for a soft forward near the codec pass a sharper one
  (``rounding=Sigmoid(temperature=0.05)``), or use ``mode="float"``, the
  real-valued codec with the true rounding forward.

**Fourier.** The truncated sine series of the sawtooth ``x - round(x)``, its
``k``-th term weighted by a sigma factor ``s_k``. With ``p = 2 pi x + pi`` the
derivative is ``1 + 2 sum_k s_k cos(k p)``, a trigonometric kernel centred on the
half-integers, of mean 1 over every period:

* ``damping="none"`` (``s_k = 1``, the series before 0.3): the Dirichlet kernel,
  ``2K + 1`` at half-integers, ``1`` at integers for even ``K`` (``-1`` for
  odd), with negative lobes (Gibbs ringing): for ``K = 10`` it swings from
  about -4.6 to 21, and training through it can stall.
* ``damping="fejer"`` (``s_k = 1 - k / (K + 1)``, the default): the Fejér
  kernel ``(sin((K+1) p/2) / sin(p/2))**2 / (K + 1)``: never negative (``r``
  is monotone), at most ``K + 1``, at half-integers. ``"fourier"`` is
  ``Fourier(order=1, damping="fejer")``: ``r(x) = x - sin(2 pi x) / (2 pi)``,
  ``r'(x) = 1 - cos(2 pi x)`` in [0, 2]; of orders 1, 3 and 10 it did best on
  every task measured (``benchmarks/surrogates.py``), and the undamped order
  10 (0.2's ``"fourier"``) stalled training on all three seeds at quality 15.
* ``damping="lanczos"`` (``s_k = sinc(k / (K + 1))``): between the two, small
  negative lobes, peak ``1 + 2 sum_k s_k``.

**Noise** is Ballé et al.'s training estimator of learned compression: in the
soft forward (``mode="soft"``) the quantizer adds uniform noise instead of
rounding, and the gradient is 1. ``mode="exact"`` and ``mode="float"`` keep
their true rounding forward, so there it is the straight-through gradient,
the same as ``linear``. The noise comes from torch's default generator of the
tensor's device (``torch.manual_seed`` makes it reproducible; PyTorch locks it,
so threads may share it) or from ``Noise(generator=g)``.

``mode="soft"`` with ``rounding="linear"`` quantizes nothing in its forward
pass (its forward is ``F / Q`` itself): it warns once per call site
(:func:`warn_if_no_quantization`).

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
import numbers
import os
import sys
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import ClassVar, Literal, get_args

import torch
from torch import Tensor

from ..core import dispatch
from ..core.check import traced
from ..core.modes import Mode

RoundingName = Literal["linear", "polynomial", "fourier", "sigmoid", "noise"]  # the surrogates by name
ROUNDINGS: tuple[str, ...] = get_args(RoundingName)
DEFAULT_ROUNDING: RoundingName = "sigmoid"  # every mode's default (DEFAULT_ROUNDINGS): within one standard deviation of the best on every task of benchmarks/results/surrogates.md; "polynomial" before 0.3
FOURIER_ORDER = 1  # "fourier"'s order: the best of orders 1, 3, 10 on every task of benchmarks/results/surrogates.md
FOURIER_DAMPINGS = ("fejer", "lanczos", "none")  # sigma factors; "none": the series before 0.3
FOURIER_DAMPING = "fejer"
DEFAULT_TEMPERATURE = 0.25


class Rounding:
    """A surrogate for ``round``: its soft value :meth:`__call__` and its
    derivative :meth:`derivative`, both elementwise.

    One object carries a surrogate and its parameters through every
    signature (``rounding=`` of :func:`diffjpeg.jpeg`, :func:`diffjpeg.encode`,
    :class:`diffjpeg.DiffJPEG`, :class:`diffjpeg.RandomJPEG`,
    :func:`diffjpeg.stages.quantize.quantize`); a name from :data:`ROUNDINGS` stands
    for the surrogate with default parameters. Subclasses are frozen
    dataclasses: hashable, comparable, safe to share between threads.

    Example:
        >>> from diffjpeg.stages.rounding import Fourier, as_rounding
        >>> as_rounding("fourier") == Fourier(order=FOURIER_ORDER, damping="fejer")
        True
        >>> Fourier(order=3, damping="none")(torch.tensor([0.3]))
        tensor([-0.0339])
    """

    name: ClassVar[str]

    def __call__(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def derivative(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def parameters(self) -> tuple[float, ...]:
        """What a compiled quantizer needs besides :attr:`name`
        (:func:`diffjpeg.stages.quantize.quantize_with_surrogate`)."""
        return ()


@dataclass(frozen=True)
class Linear(Rounding):
    """``r(x) = x``: the straight-through estimator."""

    name: ClassVar[str] = "linear"

    def __call__(self, x: Tensor) -> Tensor:
        return x

    def derivative(self, x: Tensor) -> Tensor:
        return torch.ones_like(x)


@dataclass(frozen=True)
class Polynomial(Rounding):
    """``r(x) = round(x) + (x - round(x))**3`` (Shin & Song, 2017)."""

    name: ClassVar[str] = "polynomial"

    def __call__(self, x: Tensor) -> Tensor:
        r = torch.round(x).detach()
        return r + (x - r) ** 3

    def derivative(self, x: Tensor) -> Tensor:
        if _records(x):
            return 3.0 * (x - torch.round(x)) ** 2
        d = torch.round(x)  # the same steps in place on one temporary
        return torch.sub(x, d, out=d).pow_(2).mul_(3.0)


@dataclass(frozen=True)
class Fourier(Rounding):
    """The sawtooth ``x - round(x)`` as a sine series of ``order`` terms,
    damped by sigma factors, subtracted from ``x``.

    Args:
        order: the number of terms ``K``, an int >= 1.
        damping: the sigma factors ``s_k``: ``"fejer"`` (``1 - k / (K + 1)``;
            the derivative is the Fejér kernel, in [0, K + 1]),
            ``"lanczos"`` (``sinc(k / (K + 1))``) or ``"none"`` (1: the
            undamped series, whose derivative, the Dirichlet kernel, rings
            between negative values and ``2K + 1``). See the module docstring.

    Example:
        >>> Fourier(order=3, damping="none")(torch.tensor([0.3]))
        tensor([-0.0339])
        >>> Fourier(order=4).derivative(torch.tensor([0.0, 0.5]))  # Fejér: 1/(K+1) at integers, K+1 at half-integers
        tensor([0.2000, 5.0000])
    """

    name: ClassVar[str] = "fourier"
    order: int = FOURIER_ORDER
    damping: str = FOURIER_DAMPING

    def __post_init__(self):
        if isinstance(self.order, bool) or not isinstance(self.order, numbers.Integral):
            raise TypeError(f"order of the fourier rounding must be an int, got {type(self.order).__name__}")
        if self.order < 1:
            raise ValueError(f"order of the fourier rounding must be >= 1, got {self.order}")
        object.__setattr__(self, "order", int(self.order))
        if not isinstance(self.damping, str) or self.damping not in FOURIER_DAMPINGS:
            raise ValueError(f"damping of the fourier rounding must be one of {FOURIER_DAMPINGS}, got {self.damping!r}")

    def sigma(self) -> list[float]:
        """The sigma factors ``s_1 .. s_K``."""
        n = self.order + 1
        if self.damping == "fejer":
            return [1.0 - k / n for k in range(1, n)]
        if self.damping == "lanczos":
            return [math.sin(math.pi * k / n) / (math.pi * k / n) for k in range(1, n)]
        return [1.0] * self.order

    def __call__(self, x: Tensor) -> Tensor:
        return _FourierRound.apply(x, self.sigma())

    def parameters(self) -> tuple[float, ...]:
        return tuple(self.sigma())

    def derivative(self, x: Tensor) -> Tensor:
        return _fourier_sums(x, self.sigma(), derivative=True)


@dataclass(frozen=True)
class Sigmoid(Rounding):
    """Agustsson & Theis' soft rounding; ``temperature`` > 0, smaller is harder."""

    name: ClassVar[str] = "sigmoid"
    temperature: float = DEFAULT_TEMPERATURE

    def __post_init__(self):
        t = self.temperature
        if isinstance(t, bool) or not isinstance(t, (int, float)):
            raise TypeError(f"temperature of the sigmoid rounding must be a float, got {type(t).__name__}")
        if not (math.isfinite(t) and t > 0):
            raise ValueError(f"temperature of the sigmoid rounding must be a finite number > 0, got {t}")
        object.__setattr__(self, "temperature", float(t))

    def parameters(self) -> tuple[float, ...]:
        """``a = 1 / temperature`` and ``2 tanh(a / 2)``, the scale that makes
        ``r(k) = k`` at every integer ``k``."""
        a = 1.0 / self.temperature
        return (a, 2.0 * math.tanh(a / 2.0))

    def __call__(self, x: Tensor) -> Tensor:
        a, scale = self.parameters()
        f = torch.floor(x).detach()
        return f + 0.5 + torch.tanh(a * (x - f - 0.5)) / scale

    def derivative(self, x: Tensor) -> Tensor:
        a, scale = self.parameters()
        if _records(x):
            s = x - torch.floor(x) - 0.5
            return a * (1.0 - torch.tanh(a * s) ** 2) / scale
        # the same steps in place on one temporary (1 - t as -t + 1: the same rounding)
        d = torch.floor(x)
        d = torch.sub(x, d, out=d).sub_(0.5).mul_(a).tanh_().pow_(2).neg_().add_(1.0)
        return d.mul_(a).div_(scale)


@dataclass(frozen=True)
class Noise(Rounding):
    """Ballé et al.'s estimator: ``x + u``, ``u ~ U(-1/2, 1/2)``, derivative 1.

    The value is random, drawn per call; it is used where the forward pass
    takes the surrogate's value, the soft forward (``mode="soft"``), where the
    quantized coefficients become ``F / Q + u`` (and so do the rate
    estimate's inputs, :func:`diffjpeg.rate`). The exact and float forwards
    keep their true rounding, with the gradient 1 (as ``linear``).

    Args:
        generator: a ``torch.Generator`` on the tensors' device; ``None``
            (default): torch's default generator of that device, which
            ``torch.manual_seed`` seeds. Not part of equality or the hash.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> y = Noise(generator=g)(torch.zeros(1000))
        >>> bool(y.abs().max() <= 0.5), round(float(y.var()) * 12, 1)  # U(-1/2, 1/2): variance 1/12
        (True, 1.0)
    """

    name: ClassVar[str] = "noise"
    generator: torch.Generator | None = field(default=None, compare=False, repr=False)

    def __post_init__(self):
        if self.generator is not None and not isinstance(self.generator, torch.Generator):
            raise TypeError(f"generator of the noise rounding must be a torch.Generator or None, got {type(self.generator).__name__}")

    def __call__(self, x: Tensor) -> Tensor:
        return x + (self.draw(x) - 0.5)

    def draw(self, x: Tensor) -> Tensor:
        """Uniform draws in [0, 1) shaped as ``x``, from the generator (``u + 1/2``)."""
        g = self.generator
        if g is not None and g.device != x.device:
            raise ValueError(f"generator of the noise rounding is on {g.device}, the tensor on {x.device}")
        return torch.rand(x.shape, generator=g, device=x.device, dtype=x.dtype if x.is_floating_point() else torch.float32)

    def derivative(self, x: Tensor) -> Tensor:
        return torch.ones_like(x)


def _records(x: Tensor) -> bool:
    """Whether operations on ``x`` are recorded: by autograd (a double
    backward, where no step may overwrite a tensor a later one saves), by
    ``torch.compile`` (which fuses the steps itself, and refuses ``out=``)
    or by a ``torch.func`` transform (``out=`` has no vmap rule)."""
    return traced() or (torch.is_grad_enabled() and x.requires_grad)


_BY_NAME = {cls.name: cls for cls in (Linear, Polynomial, Fourier, Sigmoid, Noise)}
assert tuple(_BY_NAME) == ROUNDINGS

#: Each forward pass's surrogate where ``rounding=None`` (the default of every ``rounding=``), the one
#: place that says it. Soft mode's forward *is* its surrogate, so its entry is chosen apart; every
#: sharper one measured trains worse (module docstring, "Defaults per forward pass").
DEFAULT_ROUNDINGS: Mapping[str, Rounding] = MappingProxyType({
    "exact": _BY_NAME[DEFAULT_ROUNDING](),
    "float": _BY_NAME[DEFAULT_ROUNDING](),
    "soft": _BY_NAME[DEFAULT_ROUNDING](),
})


def default_rounding(mode: Mode) -> Rounding:
    """The surrogate that ``rounding=None`` stands for in ``mode`` (:data:`DEFAULT_ROUNDINGS`).

    Example:
        >>> default_rounding("exact"), default_rounding("soft")
        (Sigmoid(temperature=0.25), Sigmoid(temperature=0.25))
    """
    if not isinstance(mode, str) or mode not in DEFAULT_ROUNDINGS:
        raise ValueError(f"mode must be one of {tuple(DEFAULT_ROUNDINGS)}, got {mode!r}")
    return DEFAULT_ROUNDINGS[mode]


def as_rounding(rounding: RoundingName | Rounding | None, *, mode: Mode | None = None) -> Rounding:
    """The :class:`Rounding` that ``rounding`` names, or ``rounding`` itself;
    ``None``: :func:`default_rounding` of ``mode`` (which must then be given).
    """
    if rounding is None and mode is not None:
        spec = default_rounding(mode)
    elif isinstance(rounding, Rounding):
        spec = rounding
    elif isinstance(rounding, str) and rounding in _BY_NAME:
        spec = _BY_NAME[rounding]()
    else:
        raise ValueError(f"rounding must be one of {ROUNDINGS} or a diffjpeg.stages.rounding.Rounding, got {rounding!r}")
    return spec


def _fourier_sums(x: Tensor, sigma: list[float], derivative: bool) -> Tensor:
    """The fourier surrogate (``derivative=False``) or its derivative, with
    sigma factors ``sigma`` (one per term).

    With ``p = 2 pi x + pi``, ``(-1)**(k+1) sin(2 pi k x) = -sin(k p)`` and the
    same for cosines, so the surrogate is ``x + sum_k s_k sin(k p) / (pi k)`` and
    its derivative ``1 + 2 sum_k s_k cos(k p)``. ``sin(k p)``, ``cos(k p)`` come
    from rotating by ``p`` k times (error growing like k * eps): two
    transcendental passes instead of 2 * order, and no (..., order) tensor.
    """
    theta = x.detach() * (2 * math.pi)
    c1, s1 = -torch.cos(theta), -torch.sin(theta)  # cos p, sin p
    c, s = c1, s1
    total = c1 * sigma[0] if derivative else s1 * (sigma[0] / math.pi)
    for k in range(2, len(sigma) + 1):
        c, s = c * c1 - s * s1, s * c1 + c * s1
        if derivative:
            total.add_(c, alpha=sigma[k - 1])
        else:
            total.add_(s, alpha=sigma[k - 1] / (math.pi * k))
    return total.mul_(2.0).add_(1.0) if derivative else total.add_(x.detach())


class _FourierRound(torch.autograd.Function):
    """The fourier surrogate with its closed-form derivative as the backward
    (autograd through the series would keep every term alive)."""

    generate_vmap_rule = True

    @staticmethod
    def forward(x, sigma):
        return _fourier_sums(x, sigma, derivative=False)

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, ctx.sigma = inputs
        ctx.save_for_backward(x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * _fourier_sums(x, ctx.sigma, derivative=True), None


def warn_if_no_quantization(mode: Mode, rounding: Rounding) -> None:
    """Warn (``UserWarning``, once per call site by Python's default filter)
    when ``mode`` and ``rounding`` quantize nothing in the forward pass: the
    soft forward with the straight-through surrogate passes ``F / Q``
    unrounded, so what it trains (a watermark, an attack) need not survive
    real JPEG. Silent under ``torch.compile`` (a warning would break the graph).

    Example:
        >>> import warnings
        >>> with warnings.catch_warnings(record=True) as caught:
        ...     warnings.simplefilter("always")
        ...     warn_if_no_quantization("soft", Linear())
        >>> "quantizes nothing" in str(caught[0].message)
        True
    """
    if mode == "soft" and isinstance(rounding, Linear) and not torch.compiler.is_compiling():
        warnings.warn(
            'mode="soft" with rounding="linear" quantizes nothing in its forward pass (it passes F / Q unrounded); '
            'use mode="exact" for the real rounding with the straight-through gradient, or a soft surrogate '
            '("sigmoid", "polynomial", "fourier", "noise")',
            UserWarning,
            stacklevel=_outside_package(),
        )


_LIBRARY_DIRS = tuple(os.path.dirname(os.path.abspath(m.__file__)) + os.sep for m in (sys.modules[__package__.partition(".")[0]], torch))


def _outside_package() -> int:
    """The ``stacklevel`` of the first caller outside diffjpeg and torch (a
    module's ``__call__``), so that a warning names the user's line, and so
    warns once per line of theirs."""
    frame, level = sys._getframe(1), 1
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(_LIBRARY_DIRS):
        frame, level = frame.f_back, level + 1
    return level


def soft_round(x: Tensor, rounding: RoundingName | Rounding | None = None) -> Tensor:
    """The surrogate ``r(x)`` itself, differentiable by autograd.

    Args:
        x: any float tensor.
        rounding: a name from :data:`ROUNDINGS` or a :class:`Rounding`
            (``Fourier(order=5)``, ``Sigmoid(temperature=0.1)``); ``None``
            (default): soft mode's default, ``default_rounding("soft")``.

    Returns:
        A tensor of the shape and dtype of ``x``.

    Example:
        >>> soft_round(torch.tensor([0.2, 1.5]), "polynomial")
        tensor([0.0080, 1.8750])
    """
    return as_rounding(rounding, mode="soft")(x)


def soft_round_derivative(x: Tensor, rounding: RoundingName | Rounding | None = None) -> Tensor:
    """``r'(x)``, the derivative of :func:`soft_round`, in closed form (``None``: soft mode's default, as there)."""
    return as_rounding(rounding, mode="soft").derivative(x)


class _RoundWithSurrogateGradient(torch.autograd.Function):
    """A given rounded value forward; the surrogate's derivative at ``x`` backward."""

    generate_vmap_rule = True

    @staticmethod
    def forward(x, value, rounding):
        return value

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, _, ctx.rounding = inputs
        ctx.save_for_backward(x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * ctx.rounding.derivative(x), None, None


def round_with_surrogate(x: Tensor, rounding: Rounding, value: Tensor | None = None) -> Tensor:
    """``round(x)`` forward (or ``value`` if given), ``r'(x)`` backward.

    ``value`` lets the exact codec put libjpeg's integer result forward while the
    gradient is the surrogate's at the real-valued point ``x``.
    """
    if value is None:
        value = torch.round(x.detach())
    if isinstance(rounding, (Linear, Noise)) or not x.requires_grad:
        return straight_through(x, value)
    return _RoundWithSurrogateGradient.apply(x, value.detach(), rounding)


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

    generate_vmap_rule = True

    @staticmethod
    def forward(x, value):
        return value

    @staticmethod
    def setup_context(ctx, inputs, output):
        pass

    @staticmethod
    def backward(ctx, grad):
        return grad, None


class _RoundClamp(torch.autograd.Function):
    """``clamp(round(x), lo, hi)`` (either step optional) forward, identity
    backward; with ``inplace``, written into ``x`` (a temporary of the caller's)."""

    generate_vmap_rule = True

    @staticmethod
    def forward(x, do_round, lo, hi, inplace=False):
        if inplace:
            y = x.round_() if do_round else x
            return y.clamp_(lo, hi) if lo is not None else y
        y = torch.round(x) if do_round else x
        if lo is not None:
            y = y.clamp_(lo, hi) if do_round else y.clamp(lo, hi)
        return y

    @staticmethod
    def setup_context(ctx, inputs, output):
        if len(inputs) > 4 and inputs[4]:  # inplace
            ctx.mark_dirty(inputs[0])

    @staticmethod
    def backward(ctx, grad):
        return grad, None, None, None, None


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


def clamp_ste(
    x: Tensor, lo: float, hi: float, rounded: bool = False, inplace: bool = False, *, scale: float | None = None, shift: float | None = None
) -> Tensor:
    """Clamp forward (rounded half to even first if ``rounded``: 8-bit
    samples), identity backward. ``inplace``: ``x`` is the caller's own
    temporary, which nothing else reads (nor saves for a backward); the
    result is written into it, the same values without a new tensor.
    ``scale``, ``shift``: what is clamped is ``x * scale + shift`` (in that
    order; the gradient of ``x`` is then ``scale`` times the result's).

    Without a gradient to record, on the CPU, the steps run as one pass
    (:func:`diffjpeg.backends.cpu.round_clamp`), with the tensor operations' values."""
    if x.requires_grad and torch.is_grad_enabled():  # (the compiler fuses the steps itself: no in-place Function for it to trace)
        x, inplace = _affine(x, scale, shift, inplace)
        return _RoundClamp.apply(x, rounded, lo, hi, inplace and not torch.compiler.is_compiling())
    done = dispatch.run("round_clamp", x, lo, hi, rounded, scale, shift, out=x if inplace else None)
    if done is not None:
        return done
    x, inplace = _affine(x, scale, shift, inplace)
    if inplace:
        return x.round_().clamp_(lo, hi) if rounded else x.clamp_(lo, hi)
    return torch.round(x).clamp_(lo, hi) if rounded else x.clamp(lo, hi)


def _affine(x: Tensor, scale: float | None, shift: float | None, inplace: bool) -> tuple[Tensor, bool]:
    """``x * scale + shift`` (either optional), and whether the result is a temporary of our own."""
    if scale is not None:
        x = x.mul_(scale) if inplace else x * scale
        inplace = True
    if shift is not None:
        x = x.add_(shift) if inplace else x + shift
        inplace = True
    return x, inplace
