"""Kernel slots: the one contact between a stage and a faster form of it.

A stage module defines its operation in tensor form, which is the reference
and the documentation, and asks here, per call, whether a backend's kernel
applies: libjpeg-turbo's stages do the same with ``jsimd_can_*()``
(jcdctmgr.c picks ``jsimd_fdct_islow`` or the portable C behind one
function pointer). A backend fills its slots when it is imported
(:mod:`diffjpeg.backends.cpu`, which the package imports), so no stage
imports a backend and the layers import one way only.

A kernel returns its result, or ``None`` where it does not apply (not built,
turned off, a GPU tensor, ``torch.compile`` tracing); the stage then runs its
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
)
_kernels: dict[str, Callable] = {}


def register(slot: str, kernel: Callable) -> None:
    """Fill ``slot`` (one of :data:`SLOTS`) with ``kernel``, replacing any before."""
    if slot not in SLOTS:
        raise ValueError(f"slot must be one of {SLOTS}, got {slot!r}")
    _kernels[slot] = kernel


def run(slot: str, *args, **kwargs):
    """The kernel in ``slot`` applied to the arguments, or ``None`` where there
    is none or it does not apply."""
    kernel = _kernels.get(slot)
    return None if kernel is None else kernel(*args, **kwargs)
