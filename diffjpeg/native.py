"""The exact codec's compiled path: the values of ``encode`` and ``decode``.

``diffjpeg/_native.c`` runs, strip by strip, the same integer forms that the
stage modules define and document (color, sampling, dct, quantize); the
constants and geometry come from those modules and from the codec.
:func:`diffjpeg.encode` and :func:`diffjpeg.decode` take this path by
themselves when it applies:

* ``forward="exact"``, CPU tensors, uint8/float32/float64 images,
  float32/float64 coefficients,
* libjpeg's color matrices, sampling ratios of 1 or 2 (4:4:4, 4:2:2, 4:2:0,
  4:4:0, grayscale), integer tables; decode takes every color space
  (:data:`diffjpeg.color.DECODER_STEPS`), encode RGB and grayscale,
* not while ``torch.compile`` traces.

Without a gradient the kernel's output is the result. With one, the kernel
gives the values and the codec builds the graph from the real-valued stages
(``codec.encode``/``codec.decode`` say why that gives the exact mode's
gradient); values and gradients equal the tensor stages' bit for bit.

Everything else, and any coefficient too large for exact integer arithmetic,
goes through the tensor stages (tests/test_native.py checks that both paths
agree). The kernel is built at install time when a C compiler is there;
without one, :func:`available` is ``False`` and nothing changes but speed.
Set ``DIFFJPEG_NATIVE=0``, call :func:`set_enabled` or use :func:`enabled` to
turn it off.

Images are cut into strips of MCU rows (:data:`STRIP_MCU_ROWS`), shared
among ``torch.get_num_threads()`` threads; the kernel releases the GIL.
"""
from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from functools import lru_cache

import numpy as np
import torch
from torch import Tensor

from . import color
from .colorspace import default_color_space
from .dct import islow_matrix, simd_factors
from .geometry import ComponentGeometry

try:
    from . import _native as _kernel
except ImportError:  # built without a C compiler
    _kernel = None

_enabled = os.environ.get("DIFFJPEG_NATIVE", "1") != "0"
_KINDS = {torch.uint8: 0, torch.float32: 1, torch.float64: 2}


def compiled() -> bool:
    """Whether the kernel was built at install time."""
    return _kernel is not None


def available() -> bool:
    """Whether the compiled kernel was built and is enabled."""
    return _kernel is not None and _enabled


def set_enabled(enabled: bool) -> bool:
    """Turn the compiled path on or off; returns the previous setting.

    Example:
        >>> previous = set_enabled(False); available()
        False
        >>> _ = set_enabled(previous)
    """
    global _enabled
    previous, _enabled = _enabled, bool(enabled)
    return previous


@contextmanager
def enabled(on: bool):
    """:func:`set_enabled` for the duration of a ``with`` block, then the previous setting.

    Example:
        >>> with enabled(False):
        ...     available()
        False
    """
    previous = set_enabled(on)
    try:
        yield
    finally:
        set_enabled(previous)


def _usable(*tensors: Tensor) -> bool:
    return available() and not torch.compiler.is_compiling() and all(t.device.type == "cpu" for t in tensors)


@lru_cache(maxsize=None)
def _constants(inverse: bool) -> np.ndarray:
    """The kernel's ``Constants``: 9 color FIX values, 3 offsets, the ISLOW
    matrix, its transpose, the SIMD inverse's 16 factors; int32."""
    fixed = color.fixed_matrix(inverse)
    offset = color.decoder_rounding(torch.tensor(fixed)).tolist() if inverse else color.ENCODER_ROUNDING
    matrix = islow_matrix(inverse)
    values = [v for row in fixed for v in row] + list(offset) + [v for row in matrix for v in row] + [v for row in zip(*matrix) for v in row]
    values += list(simd_factors())
    return np.array(values, dtype=np.int32)


_pool: ThreadPoolExecutor | None = None
_pool_size = 0


def _forget_pool() -> None:
    # a forked child inherits the pool object but not its threads: work
    # submitted to it would wait forever (DataLoader workers fork)
    global _pool, _pool_size
    _pool, _pool_size = None, 0


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool)


STRIP_MCU_ROWS = 8  # strips of at most this many MCU rows: a few hundred KiB of buffers


def _geometry(geometries: list[ComponentGeometry]) -> np.ndarray:
    """The kernel's geometry rows (its ``GEO_*`` columns), one per component;
    encode and decode read the same."""
    return np.array([(*g.scale, *g.downsampled, *g.blocks, *g.padded) for g in geometries], dtype=np.int32)


def _items(count: int, height: int, geometries: list[ComponentGeometry]) -> np.ndarray:
    """The kernel's work: ``(image, first MCU row, end MCU row)`` strips.

    Images are cut into strips of ``STRIP_MCU_ROWS`` MCU rows, so that a
    strip's rows stay in cache through every stage and one large image is
    shared among threads. The kernel's MCU row is 8 times the largest
    vertical upsampling ratio in image rows, as it computes it: not the
    file's MCU when every component has the same factor above 1 (a grayscale
    file declaring 2x2)."""
    mcu_rows = math.ceil(height / (8 * max(g.scale[1] for g in geometries)))
    starts = np.arange(0, mcu_rows, STRIP_MCU_ROWS)
    ends = np.minimum(starts + STRIP_MCU_ROWS, mcu_rows)
    images = np.repeat(np.arange(count), len(starts))
    return np.stack([images, np.tile(starts, count), np.tile(ends, count)], axis=1).astype(np.int32)


def _run(task, count: int) -> list:
    """``task(start, stop)`` over ``count`` work items, in chunks, in parallel."""
    global _pool, _pool_size
    workers = max(1, min(count, torch.get_num_threads()))
    if workers == 1:
        return [task(0, count)]
    pool = _pool
    if pool is None or _pool_size < workers:
        # a bigger pool; the old one's threads end once no caller holds it
        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="diffjpeg")
        _pool, _pool_size = pool, workers
    bounds = [count * k // workers for k in range(workers + 1)]
    futures = [pool.submit(task, a, b) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]
    return [f.result() for f in futures]


def encode_applies(image: Tensor, matrix, tables: Tensor) -> bool:
    """Whether :func:`encode` can take ``image`` (the caller checked the mode)."""
    if matrix is not None or image.dtype not in _KINDS or not _usable(image, tables):
        return False
    t = tables.detach()  # exact tables are whole numbers in [1, 255]; the kernel relies on it
    return bool(torch.equal(t, torch.round(t)) and t.min() >= 1 and t.max() <= 255)


def encode(image: Tensor, tables: Tensor, geometries: list[ComponentGeometry], out_dtype: torch.dtype, dct: bool = False):
    """Quantized blocks of each component, as the exact tensor stages give them.

    Args:
        image: ``(B, C, H, W)`` uint8, or float32/float64 in [0, 1]; C = 1 or 3.
        tables: ``(B, 2, 8, 8)`` integer-valued tables in [1, 255].
        geometries: each component's geometry (encoder: ratios 1 or 2).
        out_dtype: float32 or float64.
        dct: also return the DCT coefficients before quantization
            (:func:`diffjpeg.dct.fdct`'s exact values), which the quantizer's
            gradient is evaluated at.

    Returns:
        ``([(B, rows, cols, 8, 8)] per component, same or None)``, ``out_dtype``.
        Gradients are not tracked (values only).
    """
    count, channels, height, width = image.shape
    image = image.detach().contiguous()
    outputs = [torch.empty(count, *g.blocks, 8, 8, dtype=out_dtype) for g in geometries]
    coefficients = [torch.empty_like(o) for o in outputs] if dct else None
    luma_chroma = [min(c, 1) for c in range(channels)]  # each component's table
    items = _items(count, height, geometries)
    call = dict(
        image=image.numpy(), image_kind=_KINDS[image.dtype],
        blocks=tuple(o.numpy() for o in outputs), blocks_kind=_KINDS[out_dtype],
        dct=tuple(o.numpy() for o in coefficients) if dct else None,
        count=count, height=height, width=width, constants=_constants(False),
        tables=np.ascontiguousarray(tables.detach().to(torch.int32).reshape(count, 2, 64).numpy()[:, luma_chroma]),
        geometry=_geometry(geometries),
    )

    def task(start: int, stop: int) -> None:
        _kernel.encode(items=items[start:stop], **call)

    _run(task, len(items))
    return outputs, coefficients


def decode_applies(components: list[Tensor], tables: Tensor, geometries: list[ComponentGeometry], matrix, color_space: str = "YCbCr") -> bool:
    """Whether :func:`decode` can take these coefficients (the caller checked the mode)."""
    if matrix is not None or color_space not in color.DECODER_STEPS or not _usable(tables, *components):
        return False
    if components[0].dtype not in (torch.float32, torch.float64) or any(c.dtype != components[0].dtype for c in components):
        return False
    if any(max(geo.scale) > 2 for geo in geometries):
        return False
    t = tables.detach()
    return bool(torch.equal(t, torch.round(t)) and t.abs().max() <= 65535)


def decode(
    components: list[Tensor], tables: Tensor, geometries: list[ComponentGeometry], size: tuple[int, int], out_dtype=None,
    color_space: str | None = None,
) -> Tensor | None:
    """Decoded images ``(B, C, H, W)`` / 255 in the coefficients' dtype, or
    ``None`` when a coefficient is not finite or beyond 2**40 (the tensor
    path then decodes; it defines those cases). Values only: no gradient.

    Args:
        components: ``(B, rows, cols, 8, 8)`` per component, float32 or float64.
        tables: ``(B, C, 8, 8)`` each component's table, integer-valued.
        geometries: each component's geometry; ratios 1 or 2.
        size: ``(H, W)``.
        out_dtype: ``torch.uint8`` for the 8-bit samples themselves (not / 255).
        color_space: the components', as :class:`diffjpeg.Coefficients`'
            (default from their number); the result is
            :func:`diffjpeg.color.decoded_pixels`'.
    """
    height, width = size
    count, channels = tables.shape[0], len(components)
    dtype = components[0].dtype
    convert, inverted = color.DECODER_STEPS[color_space or default_color_space(channels)]
    out = torch.empty(count, channels, height, width, dtype=out_dtype or dtype)
    items = _items(count, height, geometries)
    call = dict(
        image=out.numpy(), image_kind=_KINDS[out.dtype],
        blocks=tuple(c.detach().contiguous().numpy() for c in components), blocks_kind=_KINDS[dtype],
        count=count, height=height, width=width, constants=_constants(True),
        tables=tables.detach().to(torch.int32).reshape(count, channels * 64).contiguous().numpy(),
        geometry=_geometry(geometries), convert=int(convert), invert=sum(1 << c for c in inverted),
    )

    def task(start: int, stop: int) -> bool:
        return _kernel.decode(items=items[start:stop], **call)

    return out if all(_run(task, len(items))) else None


__all__ = ["available", "compiled", "enabled", "set_enabled"]
