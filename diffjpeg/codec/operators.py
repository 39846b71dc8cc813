"""jpeg()'s round trip (every mode) as PyTorch custom operators, for
``torch.func``: ``grad``, ``vmap``, ``jacrev`` and ``vjp`` run the compiled
loops (the block pass and its neighbours) as eager calls do, where the
transforms' wrapper tensors, which hold no data, kept them out.

* ``diffjpeg::round_trip(Tensor x, Tensor tables, int[] sampling, str mode,
  str surrogate, float[] parameters, bool sloped) -> Tensor[]``: ``x``
  ``(B, C, H, W)`` (C = 1 or 3, uint8 or float in [0, 1]), ``tables``
  ``(B, 2, 8, 8)`` in the working dtype, ``sampling`` each component's
  ``(h, v)`` flattened; the surrogate by its kernel form
  (:func:`diffjpeg.stages.quantize.kernel_form`). Returns the pixels, then
  with ``sloped`` each component's quantizer derivatives
  (:func:`diffjpeg.codec.planes.round_trip_values`; in exact mode
  :func:`~diffjpeg.codec.planes.exact_round_trip_values`, the compiled exact codec).
* ``diffjpeg::round_trip_adjoint(Tensor grad, Tensor[] slopes, Tensor
  tables, int[] sampling) -> Tensor``: the gradient of ``x``
  (:func:`diffjpeg.codec.planes.round_trip_adjoint`).
* :class:`_RoundTrip`, the ``torch.autograd.Function`` whose forward and
  backward call them, and :func:`apply`, what the pipeline calls.

Facts relied on (PyTorch 2.13, ``torch.library`` and ``torch.func``'s
notes on extending, checked in ``tests/codec/test_func.py``):

* An operator's implementation runs below every functorch level: its
  tensors are plain (with storage), no transform is active within it
  (``torch._C._are_functorch_transforms_active()`` is false there), and
  what it creates is plain; the compiled loops take them as eagerly.
* ``register_vmap``'s rule gets ``(info, in_dims, *args)`` and returns
  ``(output, out_dims)``; the operator called within runs below the vmap
  level. The images are independent, so a vmapped dimension folds into
  the batch.
* ``register_autograd``'s generated ``Function`` lacks ``setup_context``,
  which ``torch.func`` requires (pytorch/pytorch#168393 and #179652, open):
  the derivative is therefore :class:`_RoundTrip`, a ``Function`` with
  ``setup_context`` and ``generate_vmap_rule``, whose forward and backward
  call the operators (each with its vmap rule). Its backward is not itself
  differentiable: a second order under ``torch.func`` takes the tensor
  stages (:func:`applies`), eager ``create_graph`` the stages' graph
  (:mod:`diffjpeg.codec.pipeline`).
* An operator's outputs must not alias its inputs or each other: every
  output here is a fresh tensor.

Registered on first use (:func:`diffjpeg.codec.pipeline._round_trip`
imports this module under a transform), so that importing diffjpeg does
not pay for it. Not for soft mode's noise surrogate, whose draws need its
generator (not an operator argument): under a transform it takes the
tensor stages (float and exact mode only take its derivative, 1).
"""
from __future__ import annotations

import torch
from torch import Tensor

from ..backends import cpu, exact
from ..core import dispatch
from ..stages import dctmgr
from ..stages.quantize import kernel_form
from ..stages.rounding import Noise
from . import planes
from .plan import EncodePlan, encoder_geometries


def applies(plan: EncodePlan, image: Tensor) -> bool:
    """Whether the operators run ``plan``'s round trip (the pipeline has
    checked the rest): the loops built and on for its tables (in exact mode
    the compiled exact codec), allowed by the call's backend, a surrogate
    with a kernel form and, in float and soft mode, other than noise
    (whose draws need its generator), and at most one reverse-mode level
    (``grad``, ``vjp``, ``jacrev``) among the transforms, and none outside
    them (``image`` beneath its wrappers does not require grad):
    :class:`_RoundTrip`'s backward has no derivative, so a second order
    (``grad(grad(...))``, or autograd through ``grad``'s result) takes the
    tensor stages."""
    if kernel_form(plan.rounding) is None or not dispatch.allows("native") or not cpu.block_pass_built(plan.tables):
        return False
    if plan.mode == "exact" and not exact.compiled() or plan.mode != "exact" and isinstance(plan.rounding, Noise):
        return False
    from torch._C._functorch import (  # (only under a transform)
        TransformType,
        get_interpreter_stack,
        get_unwrapped,
        is_functorch_wrapped_tensor,
    )

    if sum(level.key() == TransformType.Grad for level in get_interpreter_stack() or ()) > 1:
        return False
    while is_functorch_wrapped_tensor(image):
        image = get_unwrapped(image)
    return not image.requires_grad


def apply(x: Tensor, plan: EncodePlan) -> Tensor:
    """The pixels ``(B, C, H, W)`` of ``plan``'s round trip of ``x`` (its
    ``(B, C, H, W)`` image, uint8 or in the working dtype), with its
    gradient, through :class:`_RoundTrip`."""
    name, parameters = kernel_form(plan.rounding)
    sampling = [f for pair in plan.factors for f in pair]
    sloped = dctmgr.sloped(plan.rounding) and x.is_floating_point()
    return _RoundTrip.apply(x, plan.tables, sampling, plan.mode, name, list(parameters), sloped)[0]


def _geometries(size, sampling: list[int]):
    return encoder_geometries((int(size[0]), int(size[1])), tuple(zip(sampling[0::2], sampling[1::2])))


@torch.library.custom_op("diffjpeg::round_trip", mutates_args=())
def round_trip(x: Tensor, tables: Tensor, sampling: list[int], mode: str, surrogate: str, parameters: list[float], sloped: bool) -> list[Tensor]:
    """:func:`diffjpeg.codec.planes.round_trip_values` (exact mode:
    :func:`~diffjpeg.codec.planes.exact_round_trip_values`) by the compiled loops."""
    form = (surrogate, tuple(parameters))
    geos = _geometries(x.shape[-2:], sampling)
    with torch.no_grad():
        if mode == "exact":
            def slope(coefficients: Tensor, table: Tensor) -> Tensor:
                done = dispatch.run("quantize_slope", coefficients, table, *form)
                if done is None:
                    raise RuntimeError("diffjpeg::round_trip: the quantizer's loop declined its arguments")
                return done

            done = planes.exact_round_trip_values(x, tables, geos, slope, sloped)
            if done is None:  # NaN or Inf: the encoder declines them; not checked under vmap (check.py)
                raise ValueError("image contains NaN or Inf")
            out, slopes = done
        else:
            def block_pass(plane: Tensor, table: Tensor, target: Tensor, slopes: Tensor | None) -> None:
                dctmgr.block_pass_kernel(plane, table, mode, form, target, slopes)

            out, slopes = planes.round_trip_values(x, tables, geos, mode, block_pass, sloped)
    return [out] + ([s for s in slopes] if sloped else [])


@round_trip.register_fake
def _round_trip_fake(x, tables, sampling, mode, surrogate, parameters, sloped):
    geos = _geometries(x.shape[-2:], sampling)
    out = tables.new_empty(x.shape)
    return [out] + ([tables.new_empty((x.shape[0], *g.blocks, 8, 8)) for g in geos] if sloped else [])


def _fold(t: Tensor, dim: int | None, n: int, count: int) -> Tensor:
    """``t`` ``(count, ...)`` with the vmapped dimension ``dim`` (or none:
    the same for every one of the ``n``) as ``(n * count, ...)``."""
    t = t.unsqueeze(0) if dim is None else t.movedim(dim, 0)
    return t.expand(n, count, *t.shape[2:]).reshape(n * count, *t.shape[2:])


def _count(t: Tensor, dim: int | None) -> int:
    """The batch size of ``t``'s own ``(count, ...)`` beside its vmapped dimension ``dim``."""
    return t.shape[0 if dim is None else (1 if dim == 0 else 0)]


@round_trip.register_vmap
def _round_trip_vmap(info, in_dims, x, tables, sampling, mode, surrogate, parameters, sloped):
    n, count = info.batch_size, _count(x, in_dims[0])
    out = round_trip(_fold(x, in_dims[0], n, count), _fold(tables, in_dims[1], n, count), sampling, mode, surrogate, parameters, sloped)
    return [o.reshape(n, count, *o.shape[1:]) for o in out], [0] * len(out)


@torch.library.custom_op("diffjpeg::round_trip_adjoint", mutates_args=())
def round_trip_adjoint(grad: Tensor, slopes: list[Tensor], tables: Tensor, sampling: list[int]) -> Tensor:
    """:func:`diffjpeg.codec.planes.round_trip_adjoint` by the compiled loops."""
    geos = _geometries(grad.shape[-2:], sampling)
    with torch.no_grad():
        return planes.round_trip_adjoint(grad.contiguous(), list(slopes) or [None] * len(geos), tables, geos)


@round_trip_adjoint.register_fake
def _round_trip_adjoint_fake(grad, slopes, tables, sampling):
    return torch.empty_like(grad, memory_format=torch.contiguous_format)


@round_trip_adjoint.register_vmap
def _round_trip_adjoint_vmap(info, in_dims, grad, slopes, tables, sampling):
    grad_dim, slope_dims, tables_dim = in_dims[0], in_dims[1], in_dims[2]
    n, count = info.batch_size, _count(grad, grad_dim)
    folded = [_fold(s, d, n, count).contiguous() for s, d in zip(slopes, slope_dims)]  # (the loop reads them contiguous; a fold of an unbatched one is a broadcast view)
    out = round_trip_adjoint(_fold(grad, grad_dim, n, count), folded, _fold(tables, tables_dim, n, count), sampling)
    return out.reshape(n, count, *out.shape[1:]), 0


class _RoundTrip(torch.autograd.Function):
    """:func:`round_trip` forward (the pixels, then the slopes, which carry
    no gradient); backward, :func:`round_trip_adjoint` (see the module's
    facts). Only ``x`` gets a gradient: the pipeline takes this path with
    tables and color matrices that need none."""

    generate_vmap_rule = True  # torch.func runs forward and backward under vmap: the operators' own rules batch them

    @staticmethod
    def forward(x, tables, sampling, mode, surrogate, parameters, sloped):
        return tuple(round_trip(x, tables, sampling, mode, surrogate, parameters, sloped))

    @staticmethod
    def setup_context(ctx, inputs, output):
        _, tables, ctx.sampling, *_ = inputs
        ctx.mark_non_differentiable(*output[1:])
        ctx.save_for_backward(tables, *output[1:])

    @staticmethod
    def backward(ctx, grad, *_):
        tables, *slopes = ctx.saved_tensors
        none = (None,) * 6
        if grad is None:
            return (None,) + none
        # detached: torch.func runs a backward as one to be differentiated (the gradient of y**2
        # carries y's graph), and the operator has no derivative of its own; one reverse level
        # (applies()) never asks for it
        return (round_trip_adjoint(grad.detach(), slopes, tables, ctx.sampling),) + none
