"""Kernel slots: the one contact between a stage and a faster form of it.

A stage module defines its operation in tensor form, which is the reference
and the documentation, and asks here, per call, whether a backend's kernel
applies: libjpeg-turbo's stages do the same with ``jsimd_can_*()``
(jcdctmgr.c picks ``jsimd_fdct_islow`` or the portable C behind one
function pointer). A backend fills its slots when it is imported
(:mod:`diffjpeg.backends.cpu`, which the package imports), so no stage
imports a backend and the layers import one way only.

A kernel returns its result, or ``None`` where it does not apply (not built,
turned off, a tensor on another device, ``torch.compile`` tracing); the next
kernel of the slot is asked, and where none applies the stage runs its
tensor form. Every kernel gives its tensor form's values bit for bit
(``tests/backends``), so which one ran changes the speed, never a value.
"""
from __future__ import annotations

from collections.abc import Callable

SLOTS = (
    "color_apply",  # stages.color.color_product
    "block_transform",  # stages.dct.block_transform
    "round_clamp",  # stages.rounding.round_clamp
    "downsample",  # stages.sampling
    "upsample",
    "downsample_adjoint",
    "upsample_adjoint",
    "idct_islow",  # stages.dct.idct_islow's SIMD form
)
_kernels: dict[str, tuple[Callable, ...]] = {}


def register(slot: str, kernel: Callable) -> None:
    """Add ``kernel`` to ``slot`` (one of :data:`SLOTS`), after those there
    (each backend's kernel declines the tensors it does not take)."""
    if slot not in SLOTS:
        raise ValueError(f"slot must be one of {SLOTS}, got {slot!r}")
    if kernel not in _kernels.get(slot, ()):
        _kernels[slot] = _kernels.get(slot, ()) + (kernel,)


def run(slot: str, *args, **kwargs):
    """The first result of ``slot``'s kernels that apply to the arguments, or
    ``None`` where there is none."""
    for kernel in _kernels.get(slot, ()):
        done = kernel(*args, **kwargs)
        if done is not None:
            return done
    return None
