"""Input checks, in one place (as kornia's ``core/check.py``).

Bad input gets a ``ValueError`` or ``TypeError`` that names the argument and
what is allowed, never a NaN, a crash or a silently wrong result. Checks that
read values back to Python (NaN, ranges) run eagerly and are skipped while
``torch.compile`` traces; shape, type and device checks always run.
"""
from __future__ import annotations

from typing import Literal, get_args

import torch
from torch import Tensor

Mode = Literal["exact", "float", "soft"]  # the forward passes, of the codec and of every stage
MODES: tuple[str, ...] = get_args(Mode)


def check_choice(name: str, value, allowed) -> None:
    """``ValueError`` unless ``value`` is one of the strings ``allowed``.

    Example:
        >>> check_choice("mode", "exact", MODES)
    """
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(f"{name} must be one of {tuple(allowed)}, got {value!r}")


def check_mode(mode: Mode) -> None:
    """A stage's ``mode``: one of :data:`MODES`."""
    check_choice("mode", mode, MODES)


def checking_values() -> bool:
    """Whether value checks run: eagerly yes, while ``torch.compile`` traces no."""
    return not torch.compiler.is_compiling()


def all_finite(t: Tensor) -> bool:
    """No NaN or Inf in ``t`` (min and max propagate NaN: one pass instead of isfinite's four)."""
    if t.numel() == 0:
        return True
    lo, hi = torch.aminmax(t)
    return bool(torch.isfinite(lo) & torch.isfinite(hi))


def check_finite(name: str, t: Tensor) -> None:
    """``ValueError`` naming ``name`` if float tensor ``t`` holds NaN or Inf."""
    if checking_values() and t.is_floating_point() and not all_finite(t.detach()):
        raise ValueError(f"{name} contains NaN or Inf")


def check_image(image) -> tuple[torch.Size, int, int, int]:
    """An image ``(..., C, H, W)``, C = 1 or 3, float or uint8, finite, not
    empty; returns ``(batch shape, C, H, W)``."""
    if not isinstance(image, Tensor):
        raise TypeError(f"image must be a torch.Tensor of shape (..., C, H, W), got {type(image).__name__}")
    if image.dim() < 3:
        raise ValueError(f"image must have shape (..., C, H, W) with C = 1 or 3, got shape {tuple(image.shape)}")
    *batch, channels, height, width = image.shape
    if channels not in (1, 3):
        raise ValueError(f"image must have 1 (grayscale) or 3 (RGB) channels, got {channels} in shape {tuple(image.shape)}")
    if image.numel() == 0:
        raise ValueError(f"image is empty: shape {tuple(image.shape)}")
    if image.dtype != torch.uint8 and not image.is_floating_point():
        raise TypeError(f"image must be float in [0, 1] or uint8, got dtype {image.dtype}")
    check_finite("image", image)
    return torch.Size(batch), channels, height, width


def check_device(name: str, value, device: torch.device) -> None:
    """``ValueError`` if tensor ``value`` lies on another device than the image's."""
    if isinstance(value, Tensor) and value.device != device:
        # torch.device("cuda") and "cuda:0" name the same device
        same = value.device.type == device.type and (value.device.index is None or device.index is None)
        if not same:
            raise ValueError(
                f"{name} is on {value.device} but the image (or coefficients) on {device}: move it with .to({str(device)!r})"
            )
