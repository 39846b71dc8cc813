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


def kornia_table_codec():
    """kornia's differentiable JPEG as a ``codec=`` of :func:`diffjpeg.tools.qtables.learn_qtables`, or None.

    ``f(x (B, 3, H, W) float in [0, 1], tables (2, 8, 8) float) -> (decoded, Coefficients)``: the tables go to
    ``jpeg_codec_differentiable`` at quality 50, whose scale (100) keeps them as given up to kornia's
    polynomial floor, and the gradient reaches them through kornia's own quantizer. The coefficients
    that :func:`diffjpeg.rate` prices are those of kornia's encoder (``kornia.enhance.jpeg._jpeg_encode``,
    the function ``jpeg_codec_differentiable`` calls; kornia has no public name for it), laid out as
    :class:`diffjpeg.Coefficients` (4:2:0; the image padded to multiples of 16 by edge replication, as
    kornia pads). None where kornia, or that function, is missing.
    """
    try:
        from kornia.enhance import jpeg_codec_differentiable
        from kornia.enhance.jpeg import _jpeg_encode
    except ImportError:
        return None
    from ... import Coefficients

    def codec(x, tables):
        b, _, h, w = x.shape
        quality = torch.full((b,), 50.0, dtype=x.dtype, device=x.device)
        luma, chroma = tables[0:1].to(x.dtype), tables[1:2].to(x.dtype)
        decoded = jpeg_codec_differentiable(x, quality, luma, chroma)
        padded = torch.nn.functional.pad(x, (0, -w % 16, 0, -h % 16), mode="replicate")
        H, W = padded.shape[-2:]
        y, cb, cr = _jpeg_encode(padded, quality, luma, chroma)
        c = Coefficients(y.reshape(b, H // 8, W // 8, 8, 8), cb.reshape(b, H // 16, W // 16, 8, 8),
                         cr.reshape(b, H // 16, W // 16, 8, 8), tables.detach().expand(b, 2, 8, 8), sampling="4:2:0", size=(H, W))
        return decoded, c

    return codec


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
