"""The differentiable JPEGs the benchmarks compare, by name: diffjpeg per forward pass and surrogate, kornia.

A name is ``"mode/rounding"`` (``"exact/polynomial"``, ``"soft/sigmoid"``,
...) or ``"kornia"``, optionally followed by :data:`TENSOR_STAGES` (the
compiled exact kernel off) and then :data:`COMPILED` (under torch.compile);
:func:`make_method` turns a name into ``f(x (B, 3, H, W), quality tensor)``.
Also the float conversions and photos the benchmarks share.
"""
from __future__ import annotations

import numpy as np
import torch

from ... import jpeg, native
from ...rounding import ROUNDINGS
from ..images import skimage_photo, to_array, to_tensor

TENSOR_STAGES = " (tensor stages)"
COMPILED = " + torch.compile"


def float_tensor(a: np.ndarray) -> torch.Tensor:
    """``(H, W, 3)`` uint8 array to a ``(3, H, W)`` float tensor in [0, 1]."""
    return to_tensor(a).float().div(255)


def uint8_array(x: torch.Tensor) -> np.ndarray:
    """``(3, H, W)`` float tensor in [0, 1] to an ``(H, W, 3)`` uint8 array (rounded, clamped)."""
    return to_array(x.detach().clamp(0, 1).mul(255).round().byte())


def photos(names, size: int | None = None) -> list[np.ndarray]:
    """scikit-image photos (RGB), cropped to multiples of 16 (kornia needs them), or centre ``size`` crops."""
    out = []
    for name in names:
        a = skimage_photo(name)
        if size:
            top, left = (a.shape[0] - size) // 2, (a.shape[1] - size) // 2
            a = a[top : top + size, left : left + size]
        else:
            a = a[: a.shape[0] // 16 * 16, : a.shape[1] // 16 * 16]
        out.append(np.ascontiguousarray(a))
    return out


def kornia_jpeg():
    """kornia's differentiable JPEG as ``f(x (B, 3, H, W), quality tensor (B,))``, or None."""
    try:
        from kornia.enhance import jpeg_codec_differentiable
    except ImportError:
        return None
    return lambda x, q: jpeg_codec_differentiable(x, q.reshape(-1).expand(x.shape[0]))


def ours(mode: str, rounding: str = "polynomial", subsampling: str = "4:2:0"):
    """diffjpeg's ``jpeg`` with one forward pass and surrogate, as ``f(x, quality)``."""
    return lambda x, q: jpeg(x, quality=q, subsampling=subsampling, mode=mode, rounding=rounding)


def tensor_stages(f):
    """``f`` with the compiled exact kernel turned off: the path that runs on
    GPUs, with gradients, and where no C compiler was at hand."""

    def run(x, q):
        with native.enabled(False):
            return f(x, q)

    return run


def methods(subsampling: str) -> dict:
    """Every differentiable JPEG compared: ours per forward mode and surrogate, kornia."""
    out = {f"{forward}/{rounding}": ours(forward, rounding, subsampling) for forward in ("exact", "float", "soft") for rounding in ROUNDINGS}
    k = kornia_jpeg()
    if k is not None and subsampling == "4:2:0":
        out["kornia"] = k
    return out


def make_method(name: str):
    """The method a name stands for (see the module docstring); ``None`` for kornia where it is missing."""
    if name.endswith(COMPILED):
        return torch.compile(make_method(name[: -len(COMPILED)]))
    if name.endswith(TENSOR_STAGES):
        return tensor_stages(make_method(name[: -len(TENSOR_STAGES)]))
    if name == "kornia":
        return kornia_jpeg()
    forward, rounding = name.split("/")
    return ours(forward, rounding)
