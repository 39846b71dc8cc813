"""Quantization (libjpeg's jcdctmgr.c) and dequantization (the IDCT's multiplier table).

Facts from libjpeg-turbo that the exact form relies on:

* The ISLOW forward DCT output is 8 times F(u, v), so libjpeg divides by
  ``8 * Q``.
* It divides by multiplying with a reciprocal (``compute_reciprocal``): for
  divisor ``d`` with ``b = floor(log2 d)`` and ``r = 16 + b`` (16 = bits of the
  SIMD build's ``DCTELEM``), ``q = 2**r // d``, ``c = d // 2``; if ``d`` is a power
  of two, ``q //= 2`` and ``r -= 1``; else if ``2**r % d <= d // 2``, ``c += 1``;
  else ``q += 1``.  Then ``|x| -> ((|x| + c) * q) >> r`` with the sign restored.
  For every 8-bit ISLOW output (``|x| < 2**14``) this is ``x / d`` rounded
  half away from zero (tests/stages/test_quantize.py checks every divisor
  and value); the reciprocal form is kept because it is libjpeg's.
* Decoding multiplies each quantized value by its table entry.

Float and soft mode's quantizer, ``round(F / Q)`` or the surrogate's
``r(F / Q)``, and every mode's gradient through it have kernels: a
compiled loop on the CPU, a Triton kernel on CUDA (the ``"quantize"``
slots, :func:`quantize_with_surrogate`).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from ..core import dispatch
from ..core.check import check_mode
from ..core.modes import Mode
from .dct import fits_int16, wrap_int16
from .rounding import (
    Fourier,
    Linear,
    Noise,
    Polynomial,
    Rounding,
    RoundingName,
    Sigmoid,
    as_rounding,
    needs_grad,
    round_with_surrogate,
    warn_if_no_quantization,
)

_DCTELEM_BITS = 16
_TABLE_LIMIT = 2047  # exact mode's tables saturate here (8 Q stays below 2**14)


def reciprocal(divisors: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """``compute_reciprocal``'s ``(q, c, r)`` per divisor, as int32.

    Args:
        divisors: integer tensor, each in [2, 2**14) (8 times a table entry of
            at most 2047; the encoder's are at most 8 * 255).

    All in int32 and without integer division (inductor's CPU kernels raised
    ``ZeroDivisionError`` on it under ``torch.compile``): ``b`` comes from a
    float32 ``log2``, corrected to the exact power of two by two integer
    comparisons, and ``2**r // d`` (below 2**17) from a float32 quotient,
    correctly rounded and so at most one off, corrected by its integer
    remainder.
    """
    d = divisors.to(torch.int32)
    b = torch.floor(torch.log2(d.to(torch.float32))).to(torch.int32)  # then exact, whatever log2's last bit
    b = b - ((torch.ones_like(d) << b) > d).to(torch.int32) + ((torch.ones_like(d) << (b + 1)) <= d).to(torch.int32)
    r = b + _DCTELEM_BITS
    two_r = torch.ones_like(d) << r
    q = torch.floor(two_r.to(torch.float32) / d.to(torch.float32)).to(torch.int32)
    rem = two_r - q * d
    q = q + (rem >= d).to(torch.int32) - (rem < 0).to(torch.int32)
    rem = two_r - q * d
    c = d >> 1
    power_of_two = rem == 0
    q = torch.where(power_of_two, q >> 1, torch.where(rem <= c, q, q + 1))
    r = torch.where(power_of_two, r - 1, r)
    c = torch.where(~power_of_two & (rem <= c), c + 1, c)
    return q, c, r


_VALUE_LIMIT = (1 << 14) - 1  # above any ISLOW output of 8-bit samples (at most 8192 and a rounding)


def reciprocal_divide(values: Tensor, divisors: Tensor) -> Tensor:
    """libjpeg-turbo's ``quantize``: divide integers by integer divisors through reciprocals.

    Args:
        values: integer tensor of ISLOW DCT outputs; magnitudes above 2**14 - 1,
            which 8-bit samples never give, saturate there.
        divisors: integer tensor broadcastable to ``values``, in [2, 2**14).

    Returns:
        int32 quotients, of the broadcast shape.

    ``((|x| + c) q) >> r`` stays within int32: ``|x| < 2**14``, ``c <= d / 2 +
    1 <= 2**13`` and ``q < 2**16``, so the product is below ``1.5 * 2**30``.

    Example:
        >>> reciprocal_divide(torch.tensor([20, -20, 12]), torch.tensor(8))  # halves away from zero
        tensor([ 3, -3,  2], dtype=torch.int32)
    """
    q, c, r = reciprocal(divisors)
    x = values.to(torch.int32).clamp(-_VALUE_LIMIT, _VALUE_LIMIT)
    magnitude = ((x.abs() + c) * q) >> r
    return torch.where(x < 0, -magnitude, magnitude)


def quantize(coefficients: Tensor, table: Tensor, mode: Mode = "float", rounding: RoundingName | Rounding | None = None) -> Tensor:
    """Quantize DCT coefficients: ``round(F / Q)``.

    Args:
        coefficients: ``(..., 8, 8)`` DCT coefficients F(u, v) (multiples of
            1/8 in exact mode, as :func:`diffjpeg.stages.dct.fdct` gives).
        table: ``(..., 8, 8)`` quantization table broadcastable to
            ``coefficients``, entries in [1, 255] (exact mode rounds them to
            integers and saturates them at 2047).
        mode: ``"exact"`` (libjpeg's reciprocal division), ``"float"``
            (``round``) or ``"soft"`` (the surrogate itself; with ``"linear"``
            that rounds nothing, and warns).
        rounding: the surrogate whose derivative is the backward pass in every
            mode: a name or a :class:`diffjpeg.stages.rounding.Rounding`; ``None``
            (default): the mode's, :func:`diffjpeg.stages.rounding.default_rounding`.

    Returns:
        ``(..., 8, 8)`` quantized coefficients (integer-valued except in soft
        mode), dtype of ``coefficients``. Differentiable in both inputs.

    Example:
        >>> quantize(torch.full((8, 8), 20.0), torch.full((8, 8), 8.0), "exact")[0, 0].item()
        3.0
    """
    check_mode(mode)
    rounding = as_rounding(rounding, mode=mode)
    if mode == "soft":
        warn_if_no_quantization(mode, rounding)
    value = None
    if mode == "exact":
        # 8 F and 8 Q: multiples of 1/8 and integers, exact in float32
        dct_out = torch.round(coefficients.detach().to(torch.float32) * 8.0)
        divisors = torch.round(table.detach().to(torch.float32)).clamp_(1, _TABLE_LIMIT) * 8.0
        value = reciprocal_divide(dct_out, divisors).to(coefficients.dtype)
        if not needs_grad(coefficients, table):
            return value
    return quantize_with_surrogate(coefficients, table, mode, rounding, value)


_COMPILED_SURROGATES = (Linear, Polynomial, Fourier, Sigmoid, Noise)  # exactly these: a subclass may compute otherwise
_MAX_TERMS = 64  # the compiled loop's largest fourier order (_quantize.c)


def quantize_with_surrogate(coefficients: Tensor, table: Tensor, mode: Mode, rounding: Rounding, value: Tensor | None = None) -> Tensor:
    """:func:`quantize` past its checks, ``rounding`` resolved: ``F / Q``
    rounded (float), given as ``value`` (exact: libjpeg's quotients) or
    the surrogate's value (soft) forward; ``r'(F / Q)`` backward.

    Where a kernel of the ``"quantize"`` slot takes the tensors (the
    compiled loop on the CPU, :func:`diffjpeg.backends.cpu.quantize`; the
    Triton kernel on CUDA, :func:`diffjpeg.backends.gpu_stages.quantize`), the
    forward is one pass and the backward another, with the table's gradient
    summed in a fixed order; the surrogates' values and derivatives there
    come from its own transcendental functions, within
    :func:`~diffjpeg.core.precision.rounding_tolerance` of the tensor form
    (float mode's rounded values are the same bits). Elsewhere the tensor
    operations below run.
    """
    form = kernel_form(rounding)
    if form is not None and dispatch.takes("quantize", coefficients, table):
        if not needs_grad(coefficients, table):
            done = value if value is not None else _kernel_forward(coefficients, table, mode, rounding, form)
            if done is not None:
                return done
        else:
            return _Quantizer.apply(coefficients, table, value, mode, rounding, form)
    if mode == "soft":
        return rounding(coefficients / table)
    return round_with_surrogate(coefficients / table, rounding, value)


def kernel_form(rounding: Rounding) -> tuple[str, tuple[float, ...]] | None:
    """The surrogate as the compiled quantizer takes it, or ``None``."""
    if type(rounding) not in _COMPILED_SURROGATES or isinstance(rounding, Fourier) and rounding.order > _MAX_TERMS:
        return None
    return rounding.name, rounding.parameters()


def _kernel_forward(coefficients: Tensor, table: Tensor, mode: Mode, rounding: Rounding, form) -> Tensor | None:
    soft = mode == "soft"
    noise = rounding.draw(coefficients) if soft and isinstance(rounding, Noise) else None
    return dispatch.run("quantize", coefficients, table, soft, *form, noise)


def quantizer_slope(coefficients: Tensor, table: Tensor, rounding: Rounding) -> Tensor:
    """``r'(F / Q)``, the surrogate's derivative at each coefficient: what
    the quantizer's backward multiplies the gradient by, before ``/ Q``.
    The ``"quantize_slope"`` slot's kernel where one takes the tensors
    (the same values as the quantizer's backward uses there), else the
    tensor form. No graph.

    Example:
        >>> from diffjpeg.stages.rounding import as_rounding
        >>> quantizer_slope(torch.full((1, 1, 1, 8, 8), 20.0), torch.full((1, 1, 1, 8, 8), 8.0), as_rounding("linear"))[0, 0, 0, 0, 0].item()
        1.0
    """
    with torch.no_grad():
        form = kernel_form(rounding)
        if form is not None:
            done = dispatch.run("quantize_slope", coefficients, table, *form)
            if done is not None:
                return done
        return rounding.derivative(coefficients / table)


@dispatch.keeps_backends
class _Quantizer(torch.autograd.Function):
    """:func:`quantize_with_surrogate` through the ``"quantize"`` slot's
    kernels, forward and backward; the tensor form where none applies then
    (a backward that records a graph, for a second derivative)."""

    @staticmethod
    def forward(coefficients, table, value, mode, rounding, form):
        if value is not None:
            return value.to(coefficients.dtype)
        done = _kernel_forward(coefficients, table, mode, rounding, form)
        if done is not None:
            return done
        u = coefficients / table
        return rounding(u) if mode == "soft" else torch.round(u)

    @staticmethod
    def setup_context(ctx, inputs, output):
        dispatch.keep(ctx)
        coefficients, table, _, _, ctx.rounding, ctx.form = inputs
        ctx.save_for_backward(coefficients, table)

    @staticmethod
    def backward(ctx, grad):
        coefficients, table = ctx.saved_tensors
        want_coefficients, want_table = ctx.needs_input_grad[:2]
        done = None
        if not torch.is_grad_enabled():  # (a graph of the backward needs the tensor form)
            done = dispatch.run("quantize_adjoint", grad, coefficients, table, *ctx.form, want_table)
        if done is None:
            u = coefficients / table
            g = grad * ctx.rounding.derivative(u)
            done = (g / table, (-g * (u / table)).sum_to_size(table.shape) if want_table else None)
        return done[0] if want_coefficients else None, done[1] if want_table else None, None, None, None, None


def dequantize(quantized: Tensor, table: Tensor) -> Tensor:
    """Multiply quantized coefficients by their table entries (``q * Q``).

    Example:
        >>> dequantize(torch.ones(8, 8), torch.full((8, 8), 3.0))[0, 0].item()
        3.0
    """
    return quantized * table


def dequantize_integers(quantized: Tensor, table: Tensor) -> Tensor:
    """``q * Q`` for integer-valued float ``q`` and ``Q``, as the int32 tensor
    :func:`diffjpeg.stages.dct.idct_islow` takes: beyond int16, the low 16 bits, as
    libjpeg-turbo's SIMD dequantization (``pmullw``) keeps them. Only
    hostile or hand-made coefficients get there; ``q`` and ``Q`` past 2**40,
    which no file holds, are clamped there first.

    Example:
        >>> dequantize_integers(torch.tensor([3.0, -2.0, 1000.0]), torch.tensor([5.0, 7.0, 40.0]))
        tensor([    15,    -14, -25536], dtype=torch.int32)
    """
    product = quantized * table
    if fits_int16(product):  # then the float product is exact
        return product.to(torch.int32)
    q = wrap_int16(quantized.clamp(-(2.0**40), 2.0**40).to(torch.int64))
    t = wrap_int16(table.clamp(-(2.0**40), 2.0**40).to(torch.int64))
    return wrap_int16(q * t).to(torch.int32)  # modulo 2**16, the product of the residues is that of the values


class Quantize(nn.Module):
    """Module form of :func:`quantize`.

    Example:
        >>> Quantize("float", "linear")(torch.full((8, 8), 20.0), torch.full((8, 8), 8.0))[0, 0].item()
        2.0
    """

    def __init__(self, mode: Mode = "float", rounding: RoundingName | Rounding | None = None):
        super().__init__()
        check_mode(mode)
        self.mode, self.rounding = mode, as_rounding(rounding, mode=mode)

    def forward(self, coefficients: Tensor, table: Tensor) -> Tensor:
        return quantize(coefficients, table, self.mode, self.rounding)


class Dequantize(nn.Module):
    """Module form of :func:`dequantize`.

    Example:
        >>> Dequantize()(torch.ones(8, 8), torch.full((8, 8), 3.0)).sum().item()
        192.0
    """

    def forward(self, quantized: Tensor, table: Tensor) -> Tensor:
        return dequantize(quantized, table)
