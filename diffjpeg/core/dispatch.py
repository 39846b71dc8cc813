"""Kernel slots: the one contact between a stage and a faster form of it.

A stage module defines its operation in tensor form, which is the reference
and the documentation, and asks here, per call, whether a backend's kernel
applies: libjpeg-turbo's stages do the same with ``jsimd_can_*()``
(jcdctmgr.c picks ``jsimd_fdct_islow`` or the portable C behind one
function pointer). A backend fills its slots when it is imported
(:mod:`diffjpeg.backends.cpu` and :mod:`diffjpeg.backends.gpu`, which the
package imports), so no stage imports a backend and the layers import one
way only.

A kernel returns its result, or ``None`` where it does not apply (not built,
turned off, a tensor on another device, ``torch.compile`` tracing); the next
kernel of the slot is asked, and where none applies the stage runs its
tensor form. Every kernel gives its tensor form's values bit for bit
(``tests/backends``), so which one ran changes the speed, never a value;
the one exception is the quantizer's surrogates (``"quantize"``,
``"quantize_adjoint"``), whose transcendental functions and table-gradient
sums the compiled loop computes its own way, within the float/soft
contract (:func:`diffjpeg.core.precision.rounding_tolerance`).

``backend=`` of :func:`diffjpeg.jpeg`, :func:`~diffjpeg.encode`,
:func:`~diffjpeg.decode` and their modules narrows the kernels a call may
take (:data:`Backend`): the plan of the call enters :func:`using` around the
stages.
"""
from __future__ import annotations

import contextlib
from collections.abc import Callable
from contextvars import ContextVar
from typing import Literal, get_args

import torch

Backend = Literal["auto", "native", "triton", "torch"]
"""``"auto"``: every kernel that applies (the compiled C loops on the CPU,
Triton on CUDA); ``"native"``: the compiled C loops only; ``"triton"``: the
Triton kernels only (CUDA tensors, or CPU tensors under
``TRITON_INTERPRET=1``); ``"torch"``: no kernel, the tensor stages alone."""
BACKENDS: tuple[str, ...] = get_args(Backend)
KERNEL_BACKENDS = ("native", "triton")  # what a kernel may be registered as

SLOTS = (
    "color_apply",  # stages.color.color_product
    "block_transform",  # stages.dct.block_transform
    "round_clamp",  # stages.rounding.round_clamp
    "downsample",  # stages.sampling
    "upsample",
    "downsample_adjoint",
    "upsample_adjoint",
    "preprocess",  # codec.planes: the encoder's samples, color conversion and downsampling in one pass (jcprepct.c)
    "merged_upsample",  # codec.planes: the decoder's chroma upsampling and color conversion in one pass (jdmerge.c)
    "merged_upsample_adjoint",  # and its transpose, into each component's whole-block plane
    "quantize",  # stages.quantize.quantize_with_surrogate, forward
    "quantize_adjoint",  # and its backward
    "quantize_slope",  # stages.quantize.quantizer_slope: the surrogate's derivative alone
    "block_pass",  # stages.dctmgr: a block's DCT, quantizer and inverse DCT together, forward
    "block_pass_adjoint",  # and its backward
    "idct_islow",  # stages.dct.idct_islow's SIMD form
    "ycbcr_to_rgb_fixed",  # stages.color.ycbcr_to_rgb_fixed with libjpeg's matrix
)
_kernels: dict[str, tuple[tuple[str, Callable], ...]] = {}
_takes: dict[tuple[str, str], Callable[..., bool]] = {}  # (slot, backend): whether its kernel takes these tensors
_allowed: ContextVar[frozenset | None] = ContextVar("diffjpeg_backends", default=None)  # None: every backend


def register(slot: str, kernel: Callable, backend: str, takes: Callable[..., bool] | None = None) -> None:
    """Add ``kernel`` of ``backend`` (``"native"`` or ``"triton"``) to
    ``slot`` (one of :data:`SLOTS`), after those there (each kernel declines
    the tensors it does not take). ``takes``: whether it would take
    tensors, asked by :func:`takes` before a stage chooses its form."""
    if slot not in SLOTS:
        raise ValueError(f"slot must be one of {SLOTS}, got {slot!r}")
    if backend not in KERNEL_BACKENDS:
        raise ValueError(f"backend must be one of {KERNEL_BACKENDS}, got {backend!r}")
    if (backend, kernel) not in _kernels.get(slot, ()):
        _kernels[slot] = _kernels.get(slot, ()) + ((backend, kernel),)
    if takes is not None:
        _takes[slot, backend] = takes


def takes(slot: str, *tensors) -> bool:
    """Whether a kernel of ``slot`` that the call allows would take
    ``tensors`` (libjpeg-turbo's ``jsimd_can_*``): for a stage whose tensor
    form differs off the CPU (a GEMM instead of the fixed order), so that it
    takes the kernel's form where one computes it."""
    if torch.compiler.is_compiling():
        return False
    allowed = _allowed.get()
    return any((allowed is None or backend in allowed) and (slot, backend) in _takes and _takes[slot, backend](*tensors)
               for backend, _ in _kernels.get(slot, ()))


def run(slot: str, *args, **kwargs):
    """The first result of ``slot``'s kernels that the call's backend allows
    and that apply to the arguments, or ``None`` where there is none."""
    if torch.compiler.is_compiling():  # no kernel traces: the tensor forms run
        return None
    allowed = _allowed.get()
    for backend, kernel in _kernels.get(slot, ()):
        if allowed is None or backend in allowed:
            done = kernel(*args, **kwargs)
            if done is not None:
                return done
    return None


def allows(backend: str) -> bool:
    """Whether the call in progress may take ``backend``'s kernels."""
    allowed = _allowed.get()
    return allowed is None or backend in allowed


@contextlib.contextmanager
def using(backend: Backend):
    """The kernels ``backend`` allows (:data:`Backend`), for a ``with`` block.

    Example:
        >>> with using("torch"):
        ...     allows("native")
        False
    """
    token = _allowed.set(None if backend == "auto" else frozenset(() if backend == "torch" else (backend,)))
    try:
        yield
    finally:
        _allowed.reset(token)


def keep(ctx) -> None:
    """In a ``torch.autograd.Function``'s ``setup_context`` (which autograd
    calls right after its forward, within the same call, also under
    ``torch.func``'s transforms): note the kernels its call allows on
    ``ctx``, for :func:`keeps_backends`'s backward."""
    if not torch.compiler.is_compiling():  # traced, no kernel runs: nothing to keep
        ctx.backends = _allowed.get()


def keeps_backends(function: type) -> type:
    """A ``torch.autograd.Function`` whose backward takes the kernels its
    forward's call allowed (``backend=``, noted by :func:`keep`), not those
    of whatever call is in progress when autograd runs it. A class
    decorator; it wraps the backward only (dynamo traces a wrapped forward
    of a Function wrongly)."""
    backward = function.backward

    def kept_backward(ctx, *grads):
        if torch.compiler.is_compiling():
            return backward(ctx, *grads)
        token = _allowed.set(getattr(ctx, "backends", None))
        try:
            return backward(ctx, *grads)
        finally:
            _allowed.reset(token)

    function.backward = staticmethod(kept_backward)
    return function
