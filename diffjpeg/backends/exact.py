"""The exact codec compiled: ``encode`` and ``decode``'s values in one pass
per strip (``diffjpeg/backends/_native.c``).

The kernel runs, strip by strip, the same integer forms that the stage
modules define and document (color, sampling, dct, quantize); the constants
come from those modules (:func:`_constants`), the geometry from
:mod:`diffjpeg.core.geometry`. The codec (:mod:`diffjpeg.codec.pipeline`)
takes this path by itself when it applies:

* ``mode="exact"``, CPU tensors, uint8/float32/float64 images,
  float32/float64 coefficients,
* libjpeg's color matrices, sampling ratios of 1 or 2 (4:4:4, 4:2:2, 4:2:0,
  4:4:0, grayscale), integer tables (decode rounds its tables as exact mode
  does, and takes any within 65535); decode takes every color space
  (:data:`diffjpeg.stages.color.DECODER_STEPS`), encode RGB and grayscale,
* not while ``torch.compile`` traces or a ``torch.func`` transform is
  active (:func:`diffjpeg.backends.cpu.usable`), nor with the compiled
  loops turned off (:func:`diffjpeg.backends.cpu.set_enabled`).

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
goes through the tensor stages (``tests/backends/test_exact.py`` checks that
both paths agree). The kernel is built at install time when a C compiler is
there; without one, :func:`available` is ``False`` and nothing changes but
speed.

Images are cut into strips of MCU rows (:data:`STRIP_MCU_ROWS`), shared
among ``torch.get_num_threads()`` threads; the kernel releases the GIL.
The kernel's encoder also checks the image's range as it reads it
(``within``): the codec's range check then costs no pass of its own, and
only an image outside the range is read again, for the message.
"""
from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch
from torch import Tensor

from ..core.colorspace import default_color_space
from ..core.geometry import ComponentGeometry
from ..core.geometry import geometries as component_geometries
from ..stages import color
from ..stages.dct import islow_matrix, simd_factors
from . import cpu
from .cpu import run_parallel as _run

try:
    from . import _native as _kernel
except ImportError:  # built without a C compiler
    _kernel = None

_KINDS = {torch.uint8: 0, torch.float32: 1, torch.float64: 2}


def compiled() -> bool:
    """Whether the kernel was built at install time."""
    return _kernel is not None


def available() -> bool:
    """Whether the kernel was built and the compiled loops are turned on
    (:func:`diffjpeg.backends.cpu.set_enabled`).

    Example:
        >>> with cpu.enabled(False):
        ...     available()
        False
    """
    return _kernel is not None and cpu.available()


def _usable(*tensors: Tensor) -> bool:
    return _kernel is not None and cpu.usable(*tensors)


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


def layout(count: int, height: int, geometries: tuple[ComponentGeometry, ...]) -> tuple[np.ndarray, np.ndarray]:
    """What the kernel needs of a batch's shape, encode and decode alike:
    its strips (:func:`_strips`) and each component's geometry row (its
    ``GEO_*`` columns); read-only, cached.

    Example:
        >>> from diffjpeg.core.geometry import geometries
        >>> items, rows = layout(2, 16, tuple(geometries((16, 16), ((2, 2), (1, 1), (1, 1)))))
        >>> items.tolist(), rows.shape
        ([[0, 0, 1], [1, 0, 1]], (3, 8))
    """
    return _layout(count, height, geometries)


def _layout(count: int, height: int, geometries: tuple[ComponentGeometry, ...]) -> tuple[np.ndarray, np.ndarray]:
    return _strips(count, height, geometries), _geometry_rows(geometries)


@lru_cache(maxsize=256)
def _geometry_rows(geometries: tuple[ComponentGeometry, ...]) -> np.ndarray:
    return _frozen(np.array([(*g.scale, *g.downsampled, *g.blocks, *g.padded) for g in geometries], dtype=np.int32))


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


def encode_applies(image: Tensor, kind: torch.dtype, matrix, tables: Tensor, tables_checked: bool = False) -> bool:
    """Whether :func:`encode` can take ``image``, read as ``kind`` (uint8, or
    the float dtype the codec casts it to; the caller checked the mode);
    ``tables_checked``: the tables are known whole numbers in [1, 255]."""
    if matrix is not None or kind not in _KINDS or not _usable(image, tables):
        return False
    if tables_checked:
        return True
    t = tables.detach()  # exact tables are whole numbers in [1, 255]; the kernel relies on it
    return bool(torch.equal(t, torch.round(t)) and t.min() >= 1 and t.max() <= 255)


def encode(
    image: Tensor, tables: Tensor, geometries: list[ComponentGeometry], out_dtype: torch.dtype, dct: bool = False,
    within: tuple[float, float] | None = None, table_values: np.ndarray | None = None, layout: tuple | None = None,
):
    """Quantized blocks of each component, as the exact tensor stages give them.

    Args:
        image: ``(B, C, H, W)`` uint8, or float32/float64 in [0, 1]; C = 1 or 3.
        tables: ``(B, 2, 8, 8)`` integer-valued tables in [1, 255].
        geometries: each component's geometry (encoder: ratios 1 or 2).
        out_dtype: float32 or float64.
        dct: also return the DCT coefficients before quantization
            (:func:`diffjpeg.stages.dct.fdct`'s exact values), which the quantizer's
            gradient is evaluated at.
        within: ``(lo, hi)``: a float image's values are checked against
            ``[lo, hi]`` as the kernel reads them (the codec's range check,
            :func:`diffjpeg.core.check.check_image_values`, without a pass of its own).
        table_values: :func:`encoder_tables` of ``tables``, made beforehand
            (a plan's, cached per quality); made here if ``None``.
        layout: :func:`layout` of the batch, made beforehand; here if ``None``.

    Returns:
        ``([(B, rows, cols, 8, 8)] per component, same or None)``, ``out_dtype``.
        Gradients are not tracked (values only). ``None`` if a value is NaN
        or outside ``within``: the caller reports the image.
    """
    count, channels, height, width = image.shape
    outputs = [torch.empty(count, *g.blocks, 8, 8, dtype=out_dtype) for g in geometries]
    coefficients = [torch.empty_like(o) for o in outputs] if dct else None
    if table_values is None:
        table_values = encoder_tables(tables, channels)
    items, rows = layout or _layout(count, height, tuple(geometries))
    blocks = tuple(o.numpy() for o in outputs)
    dct_blocks = tuple(o.numpy() for o in coefficients) if dct else None
    done = _encode_into(image, blocks, out_dtype, dct_blocks, table_values, items, rows, within)
    return (outputs, coefficients) if done else None


def _encode_into(image: Tensor, blocks: tuple, dtype: torch.dtype, dct: tuple | None, tables: np.ndarray, items: np.ndarray,
                 rows: np.ndarray, within: tuple[float, float] | None) -> bool:
    """The kernel's encode of ``image`` ``(B, C, H, W)`` (read where it lies,
    :func:`_planes`) into ``blocks`` (numpy arrays of ``dtype``, ``(B, rows,
    cols, 8, 8)`` each; ``dct``: the same for the DCT, or ``None``) over the
    threads, the strips ``items`` of geometry ``rows``; whether every value
    lay ``within``."""
    count, _, height, width = image.shape
    samples, plane_stride, sample_stride = _planes(image.detach())
    call = dict(
        image=samples, image_kind=_KINDS[image.dtype], plane_stride=plane_stride, sample_stride=sample_stride,
        blocks=blocks, blocks_kind=_KINDS[dtype], dct=dct, count=count, height=height, width=width,
        constants=_constants(False), tables=tables, geometry=rows,
        within=None if within is None else (float(within[0]), float(within[1])),
    )

    def task(start: int, stop: int) -> bool:
        return _kernel.encode(items=items[start:stop], **call)

    return all(_run(task, len(items)))


def encoder_tables(tables: Tensor, channels: int) -> np.ndarray:
    """``(B, 2, 8, 8)`` luma and chroma tables as :func:`encode`'s kernel
    reads them: each component's, int32 ``(B, C, 64)``."""
    count = tables.shape[0]
    each = [min(c, 1) for c in range(channels)]
    return np.ascontiguousarray(tables.detach().to(torch.int32).reshape(count, 2, 64).numpy()[:, each])


def decoder_tables(tables: Tensor) -> np.ndarray:
    """Each component's ``(B, C, 8, 8)`` table as :func:`decode`'s kernel
    reads them: float64 ``(B, C * 64)`` (it rounds and checks them)."""
    count, channels = tables.shape[:2]
    return tables.detach().to("cpu", torch.float64).reshape(count, channels * 64).contiguous().numpy()


def _planes(image: Tensor) -> tuple[np.ndarray, int, int]:
    """``image`` ``(B, C, h, W)`` as the kernel reads and writes it in place:
    a flat array from its first sample, the distance between its planes and
    between a plane's neighbouring samples. Planes of contiguous rows (a
    contiguous image, or a strip of rows of a taller one,
    :mod:`diffjpeg.codec.strips`) and channels-last images (a PIL image's
    layout, what ``v2.ToImage`` gives) are taken as they lie; any other
    layout is copied first.

    Example:
        >>> x = torch.zeros(2, 3, 40, 8)
        >>> _planes(x[:, :, 8:24])[1:], _planes(x[:, :, 8:24].contiguous())[1:]
        ((320, 1), (128, 1))
        >>> _planes(torch.zeros(2, 40, 8, 3).permute(0, 3, 1, 2))[1:]
        (1, 3)
    """
    count, channels, height, width = image.shape
    plane = height * width
    if count * channels > 1 and image.stride(-1) == 1 and image.stride(-2) == width:
        stride = image.stride(1) if channels > 1 else image.stride(0)
        if stride >= plane and (count == 1 or image.stride(0) == channels * stride):
            span = (count * channels - 1) * stride + plane
            return image.as_strided((span,), (1,)).numpy(), stride, 1
    if _channels_last_layout(image):
        return image.as_strided((count * plane * channels,), (1,)).numpy(), 1, channels
    return image.contiguous().numpy(), plane, 1


def _channels_last_layout(image: Tensor) -> bool:
    """Whether ``image`` ``(B, C, H, W)`` holds its channels interleaved, each
    pixel's C samples side by side (a PIL image's layout), densely."""
    count, channels, height, width = image.shape
    return channels > 1 and image.stride()[1:] == (1, width * channels, channels) and (count == 1 or image.stride(0) == height * width * channels)


def decode_applies(components: list[Tensor], tables: Tensor, geometries: list[ComponentGeometry], matrix, color_space: str = "YCbCr") -> bool:
    """Whether :func:`decode` can take these coefficients (the caller checked the mode)."""
    if matrix is not None or color_space not in color.DECODER_STEPS or not _usable(tables, *components):
        return False
    if components[0].dtype not in (torch.float32, torch.float64) or any(c.dtype != components[0].dtype for c in components):
        return False
    return all(max(geo.scale) <= 2 for geo in geometries)  # the tables: the kernel rounds and checks them


def decode(
    components: list[Tensor], tables: Tensor, geometries: list[ComponentGeometry], size: tuple[int, int], out_dtype=None,
    color_space: str | None = None, window=None, table_values: np.ndarray | None = None, layout: tuple | None = None,
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
            :func:`diffjpeg.stages.color.decoded_pixels`'.
        window: a :class:`diffjpeg.codec.strips.Window` of a strip of a larger
            image: only the MCU rows of its interior are decoded, straight
            into its ``out``; the result is then a stand-in of the strip's shape.
        table_values: :func:`decoder_tables` of ``tables``, made beforehand;
            made here if ``None``.
        layout: :func:`layout` of the batch, made beforehand; here if ``None``.
    """
    count, channels = tables.shape[0], len(components)
    blocks = tuple(c.detach().contiguous().numpy() for c in components)
    if table_values is None:
        table_values = decoder_tables(tables)
    dtype = out_dtype or components[0].dtype
    geometries = tuple(geometries)
    items, rows = layout or _layout(count, size[0], geometries)
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


def round_trip(
    image: Tensor, geometries: tuple[ComponentGeometry, ...], out_dtype: torch.dtype, table_values: tuple, layout: tuple,
    within: tuple[float, float] | None = None,
) -> Tensor | None:
    """:func:`encode` then :func:`decode` of ``image`` ``(B, C, H, W)``: what
    saving it as a JPEG with libjpeg-turbo and loading it again gives, the
    quantized blocks kept in the kernel's own float32 buffers between the
    two passes (no tensor, nothing to check: they are the encoder's).

    ``table_values``: the :func:`encoder_tables` and :func:`decoder_tables`
    of the image's tables; ``layout``: :func:`layout` of the batch;
    ``out_dtype``: uint8 for the 8-bit samples, else the float dtype of
    ``level / 255``; ``within`` as :func:`encode`'s. ``None`` where
    :func:`encode` would give ``None`` (the caller reports the image).

    Example:
        >>> from diffjpeg.core.geometry import geometries
        >>> g = tuple(geometries((8, 8), ((1, 1),)))
        >>> tables = torch.ones(1, 2, 8, 8)
        >>> x = torch.full((1, 1, 8, 8), 77, dtype=torch.uint8)
        >>> out = round_trip(x, g, torch.uint8, (encoder_tables(tables, 1), decoder_tables(tables[:, :1])), layout(1, 8, g))
        >>> out is None and not available() or out.unique().tolist()
        [77]
    """
    if _kernel is None:
        return None
    count, channels, height, width = image.shape
    items, rows = layout
    encoder, decoder = table_values
    blocks = tuple(np.empty((count, *g.blocks, 8, 8), np.float32) for g in geometries)
    if not _encode_into(image, blocks, torch.float32, None, encoder, items, rows, within):
        return None
    out = _channels_last(image, out_dtype) if _channels_last_layout(image) else torch.empty(count, channels, height, width, dtype=out_dtype)
    steps = _color_steps("YCbCr" if channels == 3 else "grayscale")
    return out if _decode_into(out, blocks, torch.float32, decoder, items, rows, steps) else None


def _channels_last(like: Tensor, dtype: torch.dtype) -> Tensor:
    """An empty tensor of ``like``'s shape, channels last (as a channels-last image comes in, it goes out)."""
    count, channels, height, width = like.shape
    return torch.empty(count, height, width, channels, dtype=dtype).permute(0, 3, 1, 2)


def _decode_into(out: Tensor, blocks: tuple, dtype: torch.dtype, tables: np.ndarray, items: np.ndarray, rows: np.ndarray,
                 steps: tuple[int, int], prepare: bool = True) -> bool:
    """The kernel's decode of ``blocks`` (numpy, ``(B, rows, cols, 8, 8)``
    each) into ``out`` ``(B, C, H, W)`` (contiguous, or rows of a taller
    contiguous image, written in place) over the threads, the strips
    ``items`` of geometry ``rows``, the color ``steps``; whether it took them."""
    count, _, height, width = out.shape
    image, plane_stride, sample_stride = _planes(out)
    if image.ctypes.data != out.data_ptr():  # a copy: the kernel's writes would be lost
        raise ValueError("out must be contiguous, or rows of a taller contiguous image")
    if prepare and image.nbytes >= PREPARED_BYTES:
        _kernel.prepare(image)
    call = dict(
        image=image, image_kind=_KINDS[out.dtype], plane_stride=plane_stride, sample_stride=sample_stride, blocks=blocks,
        blocks_kind=_KINDS[dtype],
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
    if not available() or c.progression is not None or not cpu.usable() or c.color_space not in color.DECODER_STEPS:
        return None  # (cpu.usable: not traced, no torch.func transform)
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

