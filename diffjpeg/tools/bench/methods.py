"""The differentiable JPEGs the benchmarks compare, by name: diffjpeg per forward pass and surrogate, and the peers.

A name is ``"mode/rounding"`` (``"exact/polynomial"``, ``"soft/sigmoid"``,
...) or a peer of :data:`PEERS` (``"kornia"``, ``"reich (ste)"``), optionally
followed by :data:`TENSOR_STAGES` (the compiled exact kernel off) and then
:data:`COMPILED` (under torch.compile); :func:`make_method` turns a name into
``f(x (B, 3, H, W) float in [0, 1], quality tensor)``. Peers are optional:
their factories return None where the package is missing.
Also the float conversions and photos the benchmarks share.
"""
from __future__ import annotations

import numpy as np
import torch

from ... import jpeg
from ...backends import cpu
from ...stages.rounding import ROUNDINGS
from ..images import skimage_photo, to_array, to_tensor

TENSOR_STAGES = " (tensor stages)"
REICH_STE = "reich (ste)"
REICH_QUALITIES = (1, 99)  # diff_jpeg's jpeg_quality_to_scale asserts 1 <= quality <= 99
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


def reich_jpeg(ste: bool = True):
    """Reich et al.'s differentiable JPEG as ``f(x (B, 3, H, W) float in [0, 1], quality tensor)``, or None.

    C. Reich, B. Debnath, D. Patel, S. Chakradhar, "Differentiable JPEG: The
    Devil is in the Details", WACV 2024: their package ``diff_jpeg`` (not on
    PyPI; :data:`PEERS` says how to install it), ``diff_jpeg_coding``. ``ste``:
    their straight-through variant (JPEG's rounding, floor and clipping in the
    forward pass, the derivative of their cubic surrogate in the backward).
    Their layer takes RGB in [0, 255] and a quality of shape ``(B,)``, so the
    adapter multiplies ``x`` by 255, divides the output by 255 and expands the
    quality over the batch; it codes 4:2:0 only, ``H`` and ``W`` multiples of
    16, and takes qualities in :data:`REICH_QUALITIES` (1..99; a quality
    outside is a ValueError here rather than their bare ``assert``). None where
    ``diff_jpeg`` (or kornia, which it imports) is missing.

    >>> f = reich_jpeg()
    >>> f is None or f(torch.rand(2, 3, 16, 32), torch.tensor(90.0)).shape == (2, 3, 16, 32)
    True
    """
    try:
        from diff_jpeg import diff_jpeg_coding
    except ImportError:
        return None
    low, high = REICH_QUALITIES

    def f(x, q):
        quality = torch.as_tensor(q, device=x.device).to(x.dtype).reshape(-1).expand(x.shape[0])
        if bool((quality.detach() < low).any() or (quality.detach() > high).any()):
            raise ValueError(f"quality: Reich et al.'s diff_jpeg takes qualities from {low} to {high}, got {quality.detach().tolist()}")
        return diff_jpeg_coding(image_rgb=x * 255, jpeg_quality=quality, ste=ste) / 255

    return f


#: The peers, by name: the factory of each (None where it is not installed) and how a user installs it.
PEERS = {
    "kornia": (kornia_jpeg, 'pip install "diffjpeg[bench]" (or kornia)'),
    REICH_STE: (reich_jpeg, "pip install --no-deps git+https://github.com/necla-ml/Diff-JPEG (their package diff_jpeg: not on PyPI; needs torch and kornia)"),
}


def quality_range(name: str) -> tuple[int, int]:
    """The qualities a method takes: Reich et al.'s layer 1..99, every other 0..100."""
    return REICH_QUALITIES if name == REICH_STE else (0, 100)


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
        encoded = _jpeg_encode(padded, quality, luma, chroma)
        if len(encoded) == 3:  # kornia up to 0.9.1: (Y, Cb, Cr)
            y, cb, cr = encoded
        else:  # from 0.9.2: (Y, Cb then Cr along the block axis)
            y, cb, cr = encoded[0], *encoded[1].chunk(2, dim=1)
        c = Coefficients(y.reshape(b, H // 8, W // 8, 8, 8), cb.reshape(b, H // 16, W // 16, 8, 8),
                         cr.reshape(b, H // 16, W // 16, 8, 8), tables.detach().expand(b, 2, 8, 8), sampling="4:2:0", size=(H, W))
        return decoded, c

    return codec


def ours(mode: str, rounding: str | None = "polynomial", subsampling: str = "4:2:0", backend: str = "auto"):
    """diffjpeg's ``jpeg`` with one forward pass, surrogate (``None``: the
    mode's default) and ``backend=``, as ``f(x, quality)``."""
    return lambda x, q: jpeg(x, quality=q, subsampling=subsampling, mode=mode, rounding=rounding, backend=backend)


def tensor_stages(f):
    """``f`` with the compiled exact kernel turned off: the path that runs on
    GPUs, with gradients, and where no C compiler was at hand."""

    def run(x, q):
        with cpu.enabled(False):
            return f(x, q)

    return run


def methods(subsampling: str) -> dict:
    """Every differentiable JPEG compared: ours per forward mode and surrogate, and each peer installed (4:2:0 only)."""
    out = {f"{forward}/{rounding}": ours(forward, rounding, subsampling) for forward in ("exact", "float", "soft") for rounding in ROUNDINGS}
    for name, (factory, _) in PEERS.items():
        f = factory()
        if f is not None and subsampling == "4:2:0":
            out[name] = f
    return out


def make_method(name: str):
    """The method a name stands for (see the module docstring); ``None`` for a peer that is not installed."""
    if name.endswith(COMPILED):
        return torch.compile(make_method(name[: -len(COMPILED)]))
    if name.endswith(TENSOR_STAGES):
        return tensor_stages(make_method(name[: -len(TENSOR_STAGES)]))
    if name in PEERS:
        return PEERS[name][0]()
    forward, rounding = name.split("/")
    return ours(forward, rounding)
