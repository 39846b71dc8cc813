"""The compiled paths: the exact codec's values of ``encode`` and
``decode``, and one-pass loops of the real-valued stages.

``diffjpeg/_native.c`` runs, strip by strip, the same integer forms that the
stage modules define and document (color, sampling, dct, quantize); the
constants and geometry come from those modules and from the codec.
:func:`diffjpeg.encode` and :func:`diffjpeg.decode` take this path by
themselves when it applies:

* ``mode="exact"``, CPU tensors, uint8/float32/float64 images,
  float32/float64 coefficients,
* libjpeg's color matrices, sampling ratios of 1 or 2 (4:4:4, 4:2:2, 4:2:0,
  4:4:0, grayscale), integer tables (decode rounds its tables as exact mode
  does, and takes any within 65535); decode takes every color space
  (:data:`diffjpeg.color.DECODER_STEPS`), encode RGB and grayscale,
* not while ``torch.compile`` traces.

A plain exact decode (no gradient wanted, nothing to smooth, CPU tensors)
goes straight to the kernel from :func:`decode_coefficients`, with no tensor
operation before it: the kernel itself finds what it cannot take (a value
not finite, too large), and decode's general path then checks and reports
it. On CPUs with AVX2 the inverse DCT and the color conversion run as
16-bit multiply-adds (intrinsics; the same integer sums, so the same
values); ``DIFFJPEG_NO_INTRINSICS=1`` at import keeps them portable.

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

Two smaller compiled loops serve float and soft mode's forward and every
mode's backward: ``diffjpeg/_sampling.c`` (:func:`downsample`,
:func:`upsample` and their transposes :func:`upsample_adjoint`,
:func:`downsample_adjoint`) and ``diffjpeg/_rounding.c``
(:func:`round_clamp`, the clamp to 8-bit samples after a scale or level
shift). Each performs its stage's tensor operations element by element, in
their order, in one pass (built without FMA contraction), so the values are
the tensor operations' bit for bit (``tests/test_native_stages.py``); the
stage modules call them on CPU float32 and float64 tensors without a
gradient to record, and run their tensor operations elsewhere. The same
switch turns them off. They gain most on one thread: with more, torch's
own threads, idle between operations, spin for a while on the cores that
the loops' threads then share.

The kernel's encoder and the scaling loop also check the image's range as
they read it (``within``): the codec's range check then costs no pass of
its own (and no torch operation whose threads would spin beside the
kernel's), and only an image outside the range is read again, for the message.
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
from .geometry import geometries as component_geometries

try:
    from . import _native as _kernel
except ImportError:  # built without a C compiler
    _kernel = None
try:
    from . import _sampling as _sampling_kernel
except ImportError:
    _sampling_kernel = None
try:
    from . import _rounding as _rounding_kernel
except ImportError:
    _rounding_kernel = None
try:
    from . import _dct as _dct_kernel
except ImportError:
    _dct_kernel = None
try:
    from . import _color as _color_kernel
except ImportError:
    _color_kernel = None

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


def _check_inverse_symmetry(m) -> None:
    """The symmetries of the inverse ISLOW matrix the kernel's passes use
    (``islow_pass`` in _native.c): rows ``7 - i`` mirror rows ``i``, with the
    odd columns negated, and within the even columns rows ``3 - i`` mirror
    rows ``i``, columns 2 and 6 negated. A DCT matrix has them; checked once,
    so that a change to dct.py cannot silently break the kernel."""
    for i in range(4):
        for j in range(8):
            if m[7 - i][j] != (m[i][j] if j % 2 == 0 else -m[i][j]):
                raise RuntimeError("the inverse ISLOW matrix lacks the symmetry the compiled kernel relies on")
    for i in range(2):
        for j in (0, 2, 4, 6):
            if m[3 - i][j] != (m[i][j] if j in (0, 4) else -m[i][j]):
                raise RuntimeError("the inverse ISLOW matrix lacks the symmetry the compiled kernel relies on")


@lru_cache(maxsize=None)
def _constants(inverse: bool) -> np.ndarray:
    """The kernel's ``Constants``: 9 color FIX values, 3 offsets, the ISLOW
    matrix, its transpose, the SIMD inverse's 16 factors; int32. Read-only:
    one array serves every call."""
    fixed = color.fixed_matrix(inverse)
    offset = color.decoder_rounding(torch.tensor(fixed)).tolist() if inverse else color.ENCODER_ROUNDING
    matrix = islow_matrix(inverse)
    if inverse:
        _check_inverse_symmetry(matrix)
    values = [v for row in fixed for v in row] + list(offset) + [v for row in matrix for v in row] + [v for row in zip(*matrix) for v in row]
    values += list(simd_factors())
    return _frozen(np.array(values, dtype=np.int32))


def _frozen(a: np.ndarray) -> np.ndarray:
    a.flags.writeable = False
    return a


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
PREPARED_BYTES = 4 << 20  # outputs from this size on get huge pages, faulted in before the threads start (_native.c)


def prefault(t: Tensor) -> None:
    """Ask for huge pages for a large, fresh CPU tensor about to be written,
    and fault them in now: one call instead of a page fault per 4 KiB
    (a 144 MiB output: about 20 ms instead of 40-110 on this project's
    machine). Not free everywhere: where the system compacts memory to find
    2 MiB pages on request (transparent huge pages' defrag "madvise"), 4 of
    32 calls took 300-350 ms instead (the output and input gradient of 16
    forward+backward passes of a 12 MP image, this machine); the mean time of
    those passes stayed within the noise of 4 KiB pages'. Advice only:
    nothing changes where the kernel is missing, the tensor is small, not
    contiguous or not on the CPU, or the system refuses.

    Example:
        >>> prefault(torch.empty(1 << 20))
    """
    if _kernel is not None and t.device.type == "cpu" and t.is_contiguous() and t.nbytes >= PREPARED_BYTES:
        _kernel.prepare(t.detach().numpy())


def _geometry(geometries: list[ComponentGeometry]) -> np.ndarray:
    """The kernel's geometry rows (its ``GEO_*`` columns), one per component;
    encode and decode read the same."""
    return _geometry_rows(tuple(geometries))


@lru_cache(maxsize=256)
def _geometry_rows(geometries: tuple[ComponentGeometry, ...]) -> np.ndarray:
    return _frozen(np.array([(*g.scale, *g.downsampled, *g.blocks, *g.padded) for g in geometries], dtype=np.int32))


def _items(count: int, height: int, geometries: list[ComponentGeometry]) -> np.ndarray:
    return _strips(count, height, tuple(geometries))


@lru_cache(maxsize=256)
def _strips(count: int, height: int, geometries: tuple[ComponentGeometry, ...]) -> np.ndarray:
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
    return _frozen(np.stack([images, np.tile(starts, count), np.tile(ends, count)], axis=1).astype(np.int32))


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


def encode(
    image: Tensor, tables: Tensor, geometries: list[ComponentGeometry], out_dtype: torch.dtype, dct: bool = False,
    within: tuple[float, float] | None = None,
):
    """Quantized blocks of each component, as the exact tensor stages give them.

    Args:
        image: ``(B, C, H, W)`` uint8, or float32/float64 in [0, 1]; C = 1 or 3.
        tables: ``(B, 2, 8, 8)`` integer-valued tables in [1, 255].
        geometries: each component's geometry (encoder: ratios 1 or 2).
        out_dtype: float32 or float64.
        dct: also return the DCT coefficients before quantization
            (:func:`diffjpeg.dct.fdct`'s exact values), which the quantizer's
            gradient is evaluated at.
        within: ``(lo, hi)``: a float image's values are checked against
            ``[lo, hi]`` as the kernel reads them (the codec's range check,
            :func:`diffjpeg.check.check_image_values`, without a pass of its own).

    Returns:
        ``([(B, rows, cols, 8, 8)] per component, same or None)``, ``out_dtype``.
        Gradients are not tracked (values only). ``None`` if a value is NaN
        or outside ``within``: the caller reports the image.
    """
    count, channels, height, width = image.shape
    samples, plane_stride = _planes(image.detach())
    outputs = [torch.empty(count, *g.blocks, 8, 8, dtype=out_dtype) for g in geometries]
    coefficients = [torch.empty_like(o) for o in outputs] if dct else None
    luma_chroma = [min(c, 1) for c in range(channels)]  # each component's table
    items = _items(count, height, geometries)
    call = dict(
        image=samples, image_kind=_KINDS[image.dtype], plane_stride=plane_stride,
        blocks=tuple(o.numpy() for o in outputs), blocks_kind=_KINDS[out_dtype],
        dct=tuple(o.numpy() for o in coefficients) if dct else None,
        count=count, height=height, width=width, constants=_constants(False),
        tables=np.ascontiguousarray(tables.detach().to(torch.int32).reshape(count, 2, 64).numpy()[:, luma_chroma]),
        geometry=_geometry(geometries), within=None if within is None else (float(within[0]), float(within[1])),
    )

    def task(start: int, stop: int) -> bool:
        return _kernel.encode(items=items[start:stop], **call)

    return (outputs, coefficients) if all(_run(task, len(items))) else None


def _planes(image: Tensor) -> tuple[np.ndarray, int]:
    """``image`` ``(B, C, h, W)`` as the kernel reads it: a flat array from
    its first sample, and the distance between its planes. Rows of a taller
    contiguous image (a strip, :mod:`diffjpeg.strips`) are read in place;
    any other layout is copied first.

    Example:
        >>> x = torch.zeros(2, 3, 40, 8)
        >>> _planes(x[:, :, 8:24])[1], _planes(x[:, :, 8:24].contiguous())[1]
        (320, 128)
    """
    count, channels, height, width = image.shape
    plane = height * width
    if count * channels > 1 and image.stride(-1) == 1 and image.stride(-2) == width:
        stride = image.stride(1) if channels > 1 else image.stride(0)
        if stride >= plane and (count == 1 or image.stride(0) == channels * stride):
            span = (count * channels - 1) * stride + plane
            return image.as_strided((span,), (1,)).numpy(), stride
    return image.contiguous().numpy(), plane


def decode_applies(components: list[Tensor], tables: Tensor, geometries: list[ComponentGeometry], matrix, color_space: str = "YCbCr") -> bool:
    """Whether :func:`decode` can take these coefficients (the caller checked the mode)."""
    if matrix is not None or color_space not in color.DECODER_STEPS or not _usable(tables, *components):
        return False
    if components[0].dtype not in (torch.float32, torch.float64) or any(c.dtype != components[0].dtype for c in components):
        return False
    return all(max(geo.scale) <= 2 for geo in geometries)  # the tables: the kernel rounds and checks them


def decode(
    components: list[Tensor], tables: Tensor, geometries: list[ComponentGeometry], size: tuple[int, int], out_dtype=None,
    color_space: str | None = None, window=None,
) -> Tensor | None:
    """Decoded images ``(B, C, H, W)`` / 255 in the coefficients' dtype, or
    ``None`` when a coefficient is not finite or beyond 2**40, or a table
    not finite or beyond 65535 once rounded (the tensor path then decodes;
    it defines those cases). Values only: no gradient.

    Args:
        components: ``(B, rows, cols, 8, 8)`` per component, float32 or float64.
        tables: ``(B, C, 8, 8)`` each component's table (rounded half to even, as exact mode does).
        geometries: each component's geometry; ratios 1 or 2.
        size: ``(H, W)``.
        out_dtype: ``torch.uint8`` for the 8-bit samples themselves (not / 255).
        color_space: the components', as :class:`diffjpeg.Coefficients`'
            (default from their number); the result is
            :func:`diffjpeg.color.decoded_pixels`'.
        window: a :class:`diffjpeg.strips.Window` of a strip of a larger
            image: only the MCU rows of its interior are decoded, straight
            into its ``out``; the result is then a stand-in of the strip's shape.
    """
    count, channels = tables.shape[0], len(components)
    blocks = tuple(c.detach().contiguous().numpy() for c in components)
    table_values = tables.detach().to("cpu", torch.float64).reshape(count, channels * 64).contiguous().numpy()
    dtype = out_dtype or components[0].dtype
    geometries = tuple(geometries)
    items, rows = _strips(count, size[0], geometries), _geometry_rows(geometries)
    steps = _color_steps(color_space or default_color_space(channels))
    if window is None:
        out = torch.empty(count, channels, *size, dtype=dtype)
        return out if _decode_into(out, blocks, components[0].dtype, table_values, items, rows, steps) else None
    # The strip as rows of the image's output: the kernel writes the interior
    # MCU rows in place; it decodes the halo's edge chroma rows that fancy
    # upsampling reads itself (as for any strip it runs), and nothing else of the halo.
    target = window.out.view(count, channels, window.stop - window.start, size[1])
    mcu = 8 * max(g.scale[1] for g in geometries)
    if target.dtype != dtype:
        raise ValueError(f"window out is {target.dtype}, the decode gives {dtype}")
    if window.start % mcu or (window.stop % mcu and window.stop != size[0]):
        raise ValueError(f"window rows [{window.start}, {window.stop}) are not whole MCU rows of {mcu}")
    strip = target.as_strided((count, channels, *size), target.stride(), target.storage_offset() - window.start * target.stride(2))
    first, end = window.start // mcu, -(-window.stop // mcu)
    items = np.stack([items[:, 0], np.maximum(items[:, 1], first), np.minimum(items[:, 2], end)], axis=1)
    items = np.ascontiguousarray(items[items[:, 1] < items[:, 2]], dtype=np.int32)
    done = _decode_into(strip, blocks, components[0].dtype, table_values, items, rows, steps, prepare=False)
    return window.stand_in(strip, strip.shape) if done else None


def _color_steps(color_space: str) -> tuple[int, int]:
    """The kernel's ``convert`` and ``invert`` for a color space (color.DECODER_STEPS)."""
    convert, inverted = color.DECODER_STEPS[color_space]
    return int(convert), sum(1 << c for c in inverted)


def _decode_into(out: Tensor, blocks: tuple, dtype: torch.dtype, tables: np.ndarray, items: np.ndarray, rows: np.ndarray,
                 steps: tuple[int, int], prepare: bool = True) -> bool:
    """The kernel's decode of ``blocks`` (numpy, ``(B, rows, cols, 8, 8)``
    each) into ``out`` ``(B, C, H, W)`` (contiguous, or rows of a taller
    contiguous image, written in place) over the threads, the strips
    ``items`` of geometry ``rows``, the color ``steps``; whether it took them."""
    count, _, height, width = out.shape
    image, plane_stride = _planes(out)
    if image.ctypes.data != out.data_ptr():  # a copy: the kernel's writes would be lost
        raise ValueError("out must be contiguous, or rows of a taller contiguous image")
    if prepare and image.nbytes >= PREPARED_BYTES:
        _kernel.prepare(image)
    call = dict(
        image=image, image_kind=_KINDS[out.dtype], plane_stride=plane_stride, blocks=blocks, blocks_kind=_KINDS[dtype],
        count=count, height=height, width=width, constants=_constants(True), tables=tables, geometry=rows,
        convert=steps[0], invert=steps[1],
    )
    if len(items) == 1 or torch.get_num_threads() == 1:
        return _kernel.decode(items=items, **call)

    def task(start: int, stop: int) -> bool:
        return _kernel.decode(items=items[start:stop], **call)

    return all(_run(task, len(items)))


@lru_cache(maxsize=256)
def _decode_plan(count: int, size: tuple[int, int], sampling: tuple) -> tuple | None:
    """Each component's block shape, the strips and the geometry rows of a
    decode, or ``None`` where the kernel does not upsample (ratios over 2)."""
    geometries = tuple(component_geometries(size, sampling))
    if any(max(g.scale) > 2 for g in geometries):
        return None
    return tuple(g.blocks + (8, 8) for g in geometries), _strips(count, size[0], geometries), _geometry_rows(geometries)


def decode_coefficients(coefficients, as_uint8: bool = False) -> Tensor | None:
    """Exact decode of whole :class:`diffjpeg.Coefficients` in one kernel
    call, the images ``(*batch, C, H, W)`` / 255 in the coefficients' dtype
    (or the 8-bit samples with ``as_uint8``); ``None`` wherever
    :func:`diffjpeg.decode`'s general path must run instead: no kernel, a
    gradient wanted, tensors off the CPU or of other dtypes, shapes that do
    not match the geometry (the general path says what is wrong),
    coefficients left for block smoothing, and whatever the kernel declines
    (not finite, too large: the general path checks and decodes those).
    Cheap where it applies: files read from disk are decoded here."""
    c = coefficients
    if not available() or c.progression is not None or torch.compiler.is_compiling() or c.color_space not in color.DECODER_STEPS:
        return None
    components, tables = c.components, c.qtables
    dtype = components[0].dtype
    if dtype not in (torch.float32, torch.float64) or not tables.is_cpu or tables.dim() < 3 or tables.shape[-2:] != (8, 8):
        return None
    grad = torch.is_grad_enabled()
    if grad and tables.requires_grad:
        return None
    batch = tables.shape[:-3]
    count = math.prod(batch)
    try:
        plan = _decode_plan(count, c.size, c.sampling)
    except TypeError:  # not hashable: sizes changed by hand after construction
        return None
    if plan is None or len(plan[0]) != len(components):
        return None
    blocks = []
    for t, shape in zip(components, plan[0]):
        if t.dtype != dtype or not t.is_cpu or t.shape[len(batch):] != shape or t.shape[:len(batch)] != batch:
            return None
        if t.requires_grad:
            if grad:
                return None
            t = t.detach()
        blocks.append((t if t.is_contiguous() else t.contiguous()).numpy())
    index = c.qtable_index
    given = tables.detach().numpy().reshape(count, tables.shape[-3], 64)
    if len(set(index)) < given.shape[1] and not np.isfinite(given).all():
        return None  # a table no component uses: the general path reports its NaN
    table_values = np.ascontiguousarray(given[:, index], dtype=np.float64)
    height, width = c.size
    out = torch.empty(batch + (len(components), height, width), dtype=torch.uint8 if as_uint8 else dtype)
    view = out.view(count, len(components), height, width)
    return out if _decode_into(view, tuple(blocks), dtype, table_values, plan[1], plan[2], _color_steps(c.color_space)) else None


# ------------------------------------------------------------ the real-valued stages' loops (_sampling.c, _rounding.c)
def _planes_of(t: Tensor) -> Tensor | None:
    """``t`` ``(..., h, w)`` as ``(N, h, w)`` without a copy, rows contiguous; ``None`` if it cannot be."""
    if t.dim() < 2 or t.stride(-1) != 1:
        return None
    try:
        return t.view(-1, *t.shape[-2:])
    except RuntimeError:  # lead dimensions not viewable as one
        return None


def _rows_of(t: Tensor) -> Tensor | None:
    """``t`` as ``(N, h w)`` rows without a copy (its planes, each contiguous); ``None`` if it cannot be."""
    planes = _planes_of(t.unsqueeze(0) if t.dim() == 1 else t)
    if planes is None or planes.shape[-2] > 1 and planes.stride(-2) != planes.shape[-1]:
        return None
    return planes.flatten(1)


def _loop_views(kernel, src: Tensor, shape: tuple, out: Tensor | None, view) -> tuple[Tensor, Tensor, Tensor] | None:
    """Where a real-valued stage's loop applies (built and on, the CPU,
    float32 or float64, no gradient to record), ``src`` and the output as
    ``view`` gives them to the loop, and the output: ``out`` (of ``shape``
    and ``src``'s dtype) or a new tensor, made only once the loop is sure
    to run; ``None`` otherwise."""
    if kernel is None or not _usable(src) or src.dtype not in (torch.float32, torch.float64) or src.requires_grad and torch.is_grad_enabled():
        return None
    source = view(src.detach())
    if source is None:
        return None
    if out is None:
        out = src.new_empty(shape)
    elif out.dtype != src.dtype or out.device != src.device or out.shape != shape or out.requires_grad:
        return None  # (written through numpy: never a tensor autograd tracks)
    target = view(out.detach())
    return None if target is None else (source, target, out)


def _written(t: Tensor) -> None:
    """Bump the version counter of a caller's tensor the loops wrote into
    (through numpy, which autograd does not see): an in-place tensor
    operation would, so a backward that saved it still notices."""
    increment = getattr(torch.autograd.graph, "increment_version", None)  # torch >= 2.1
    if increment is not None:
        increment(t)


def _sampling_call(name: str, src: Tensor, shape: tuple, out: Tensor | None, h_factor: int, v_factor: int, *flags) -> Tensor | None:
    """The kernel's ``name`` from ``src`` into ``out`` (a new ``shape`` tensor
    if ``None``), or ``None`` where it does not apply. The threads share the
    planes, or, where there are fewer planes than threads (a strip of a large
    image), the rows of each."""
    views = _loop_views(_sampling_kernel, src, shape, out, _planes_of)
    if views is None:
        return None
    source, target, result = views
    if source.numel():
        a, b = source.numpy(), target.numpy()
        function = getattr(_sampling_kernel, name)
        planes, rows = a.shape[0], min(a.shape[1], b.shape[1])  # the rows of the smaller plane
        if planes >= torch.get_num_threads() or rows < 64:
            _run(lambda start, stop: function(a, b, h_factor, v_factor, *flags, start, stop, 0, rows), planes)
        else:
            _run(lambda first, last: function(a, b, h_factor, v_factor, *flags, 0, planes, first, last), rows)
        if out is not None:
            _written(out)
    return result


def downsample(plane: Tensor, h_factor: int, v_factor: int, biased: bool) -> Tensor | None:
    """The window means of :func:`diffjpeg.sampling.downsample` (``h_factor x
    v_factor`` of 2x1, 1x2 or 2x2; libjpeg's biased integer average if
    ``biased``) of ``plane`` ``(..., H, W)``, with the tensor operations'
    values, a new ``(..., H / v_factor, W / h_factor)`` tensor; ``None``
    where the kernel does not apply (as :func:`upsample` says)."""
    shape = plane.shape[:-2] + (plane.shape[-2] // v_factor, plane.shape[-1] // h_factor)
    return _sampling_call("downsample", plane, shape, None, h_factor, v_factor, bool(biased))


def upsample(plane: Tensor, h_factor: int, v_factor: int, biased: bool, out: Tensor | None = None) -> Tensor | None:
    """The triangle filter of :func:`diffjpeg.sampling.upsample` (``h_factor x
    v_factor`` of 2x1, 1x2 or 2x2; libjpeg's rounding if ``biased``) of
    ``plane`` ``(..., h, w)``, with the tensor operations' values, in ``out``
    ``(..., v_factor h, h_factor w)`` (any strides, rows contiguous) or a new
    tensor; ``None`` (nothing written) where the kernel does not apply: not
    built or turned off, not on the CPU, not float32 or float64, rows not
    contiguous, or a gradient to record.

    Example:
        >>> out = upsample(torch.tensor([[0.0, 4.0, 8.0]]), 2, 1, True)
        >>> out is None and not available() or out.tolist() == [[0.0, 1.0, 3.0, 5.0, 7.0, 8.0]]
        True
    """
    shape = plane.shape[:-2] + (plane.shape[-2] * v_factor, plane.shape[-1] * h_factor)
    return _sampling_call("upsample", plane, shape, out, h_factor, v_factor, bool(biased))


def upsample_adjoint(grad: Tensor, h_factor: int, v_factor: int) -> Tensor | None:
    """:func:`diffjpeg.sampling.upsample_adjoint` of ``grad`` ``(..., v_factor h,
    h_factor w)``, with its values, a new ``(..., h, w)`` tensor; ``None``
    where the kernel does not apply (as :func:`upsample` says)."""
    shape = grad.shape[:-2] + (grad.shape[-2] // v_factor, grad.shape[-1] // h_factor)
    return _sampling_call("upsample_adjoint", grad, shape, None, h_factor, v_factor)


def downsample_adjoint(grad: Tensor, h_factor: int, v_factor: int, out: Tensor | None = None) -> Tensor | None:
    """:func:`diffjpeg.sampling.downsample_adjoint` of ``grad`` ``(..., h, w)``,
    with its values, in ``out`` ``(..., v_factor h, h_factor w)`` or a new
    tensor; ``None`` where the kernel does not apply (as :func:`upsample` says)."""
    shape = grad.shape[:-2] + (grad.shape[-2] * v_factor, grad.shape[-1] * h_factor)
    return _sampling_call("downsample_adjoint", grad, shape, out, h_factor, v_factor)


def round_clamp(
    x: Tensor, lo: float, hi: float, rounded: bool, scale: float | None = None, shift: float | None = None, out: Tensor | None = None,
    within: tuple[float, float] | None = None,
) -> Tensor | None:
    """``clamp(round(x * scale + shift), lo, hi)`` (each step only where
    given) as :func:`diffjpeg.rounding.clamp_ste`'s tensor operations give
    it, in one pass, into ``out`` (``x`` itself for in place, or a new
    tensor); ``None`` (nothing written) where the kernel does not apply: not
    built or turned off, not on the CPU, not float32 or float64, a plane
    (the last two dimensions) not contiguous, or a gradient to record.

    ``within``: ``(low, high)``, ends exact in ``x``'s dtype: the pass also
    checks that every value of ``x`` lies in ``[low, high]`` (the codec's
    range check of its input, without a pass of its own), and returns
    ``None`` if one does not or is NaN, having written a new tensor that is
    dropped (not with ``out``: the caller's tensor would be half written).

    Example:
        >>> out = round_clamp(torch.tensor([-0.2, 0.5, 0.9]), 0.0, 255.0, True, scale=255.0)
        >>> out is None and not available() or out.tolist() == [0.0, 128.0, 230.0]
        True
    """
    if within is not None and out is not None:
        raise ValueError("round_clamp: within checks a new tensor's input; out must be None with it")
    views = None if x.dim() == 0 else _loop_views(_rounding_kernel, x, x.shape, out, _rows_of)
    if views is None:
        return None
    source, target, result = views
    if x.numel():
        a, b = source.numpy(), target.numpy()
        scale = None if scale is None else float(scale)
        shift = None if shift is None else float(shift)
        check = None if within is None else (float(within[0]), float(within[1]))
        call = _rounding_kernel.round_clamp
        if a.size < 1 << 16:  # not worth a thread
            inside = [call(a, b, scale, shift, bool(rounded), lo, hi, 0, a.shape[1], check)]
        else:
            inside = _run(lambda start, stop: call(a, b, scale, shift, bool(rounded), lo, hi, start, stop, check), a.shape[1])
        if out is not None:
            _written(out)
        if check is not None and not all(inside):
            return None
    return result


def block_transform(blocks: Tensor, matrix: Tensor) -> Tensor | None:
    """``A X A^T`` for every 8x8 block ``X`` of ``blocks`` (``(N, 8, 8)``, each
    block contiguous), ``A`` the 8x8 ``matrix``, summed in
    :func:`diffjpeg.dct.block_transform`'s fixed order (``diffjpeg/_dct.c``),
    a new ``(N, 8, 8)`` tensor; ``None`` where the loop does not apply: not
    built or turned off, not on the CPU, not float32 or float64, a block not
    contiguous, or a gradient to record.

    Example:
        >>> x = torch.zeros(1, 8, 8); x[0, 0, 0] = 8.0
        >>> out = block_transform(x, torch.eye(8))
        >>> out is None and not available() or out.equal(x)
        True
    """
    views = _loop_views(_dct_kernel, blocks, blocks.shape, None, _blocks_of)
    if views is None or matrix.dtype != blocks.dtype or matrix.device != blocks.device:
        return None
    source, target, result = views
    a, b, m = source.numpy(), target.numpy(), matrix.detach().contiguous().numpy()
    if a.shape[0] < 1 << 11:  # not worth a thread
        _dct_kernel.block_transform(a, b, m, 0, a.shape[0])
    else:
        _run(lambda start, stop: _dct_kernel.block_transform(a, b, m, start, stop), a.shape[0])
    return result


def _blocks_of(t: Tensor) -> Tensor | None:
    """``(N, 8, 8)`` blocks as ``(N, 64)`` rows without a copy; ``None`` if a block is not contiguous."""
    if t.dim() != 3 or t.shape[1:] != (8, 8) or t.stride(-1) != 1 or t.stride(-2) != 8:
        return None
    return t.view(-1, 64)


def color_apply(x: Tensor, matrix: Tensor, offset: Tensor | None) -> Tensor | None:
    """``matrix @ x (+ offset)`` over the channels of ``x`` (``(B, 3, P)``,
    pixels contiguous; ``matrix`` ``(B, 3, 3)``, ``offset`` ``(B, 3)`` or
    ``None``, of ``x``'s dtype, any strides), summed in
    :func:`diffjpeg.color.color_product`'s fixed order (``diffjpeg/_color.c``),
    a new ``(B, 3, P)`` tensor; ``None`` where the loop does not apply (as
    :func:`block_transform` says).

    Example:
        >>> x = torch.rand(1, 3, 5)
        >>> out = color_apply(x, torch.eye(3).expand(1, 3, 3), None)
        >>> out is None and not available() or out.equal(x)
        True
    """
    views = _loop_views(_color_kernel, x, x.shape, None, _channels_of)
    if views is None or any(t is not None and (t.dtype != x.dtype or t.device != x.device) for t in (matrix, offset)):
        return None
    source, target, result = views
    a, b = source.numpy(), target.numpy()
    m = matrix.detach().numpy()
    o = None if offset is None else offset.detach().numpy()
    if a.size < 1 << 16:  # not worth a thread
        _color_kernel.apply(a, b, m, o, 0, a.shape[2])
    else:
        _run(lambda start, stop: _color_kernel.apply(a, b, m, o, start, stop), a.shape[2])
    return result


def _channels_of(t: Tensor) -> Tensor | None:
    """``(B, 3, P)`` as the loop takes it (pixels contiguous); ``None`` otherwise."""
    return t if t.dim() == 3 and t.shape[1] == 3 and t.stride(-1) == 1 else None


__all__ = ["available", "compiled", "enabled", "set_enabled"]
