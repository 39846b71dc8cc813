"""The compiled loops on the CPU: one switch, one thread pool, and the
real-valued stages' loops, each filling its stage's slot
(:mod:`diffjpeg.core.dispatch`).

Four small compiled loops serve float and soft mode's forward and every
mode's backward: ``diffjpeg/backends/_sampling.c`` (:func:`downsample`,
:func:`upsample` and their transposes :func:`upsample_adjoint`,
:func:`downsample_adjoint`), ``diffjpeg/backends/_rounding.c``
(:func:`round_clamp`, the clamp to 8-bit samples after a scale or level
shift), ``_dct.c`` (:func:`block_transform`) and ``_color.c``
(:func:`color_apply`). Each performs its stage's tensor operations element
by element, in their order, in one pass (built without FMA contraction), so
the values are the tensor operations' bit for bit (``tests/backends``); the
stage modules take them on CPU float32 and float64 tensors without a
gradient to record, and run their tensor operations elsewhere. They gain
most on one thread: with more, torch's own threads, idle between
operations, spin for a while on the cores that the loops' threads then
share. The scaling loop also checks the image's range as it reads it
(``within``).

A fifth, ``diffjpeg/backends/_quantize.c`` (:func:`quantize`,
:func:`quantize_adjoint`), is float and soft mode's quantizer and every
mode's gradient through it, each surrogate in one pass each way. Its
tanh, sine and cosine are its own and it sums a table's gradient in double,
in one fixed order (chunks of :data:`QUANTIZE_CHUNK` elements, in order):
the values are the tensor operations' to rounding, not bit for bit
(float mode's rounded values excepted), and the same for every thread count.

The same file holds :func:`block_pass` and :func:`block_pass_adjoint`
(``"block_pass"`` slots, :mod:`diffjpeg.stages.dctmgr`): a block's DCT,
quantizer, dequantization and inverse DCT in one pass for
:func:`diffjpeg.jpeg`, with the separate loops' operations in their
order (``_dct.h`` is the one home of a block's transform), and
:func:`quantize_slope`, the surrogate's derivative alone.

One switch turns every compiled loop off, this module's and the exact
codec's (:mod:`diffjpeg.backends.exact`): ``DIFFJPEG_NATIVE=0`` at import,
:func:`set_enabled`, or :func:`enabled` for a ``with`` block. Nothing but
speed changes, and the quantizer's values within rounding (above).
"""
from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import torch
from torch import Tensor

from ..core import dispatch
from ..core.check import traced

try:
    from . import _sampling as _sampling_kernel
except ImportError:  # built without a C compiler
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
try:
    from . import _quantize as _quantize_kernel
except ImportError:
    _quantize_kernel = None

_enabled = os.environ.get("DIFFJPEG_NATIVE", "1") != "0"


def available() -> bool:
    """Whether the compiled loops are turned on (each also needs its own build)."""
    return _enabled


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

def usable(*tensors: Tensor) -> bool:
    """Whether a compiled loop may run on ``tensors``: turned on, not traced
    by ``torch.compile`` nor under a ``torch.func`` transform (whose tensors
    have no data pointer: :func:`diffjpeg.core.check.traced`), every
    tensor on the CPU."""
    return _enabled and not traced() and all(t.device.type == "cpu" for t in tensors)



_pool: ThreadPoolExecutor | None = None
_pool_size = 0


def _forget_pool() -> None:
    # a forked child inherits the pool object but not its threads: work
    # submitted to it would wait forever (DataLoader workers fork)
    global _pool, _pool_size
    _pool, _pool_size = None, 0


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool)



def run_parallel(task, count: int) -> list:
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
    if kernel is None or not usable(src) or src.dtype not in (torch.float32, torch.float64) or src.requires_grad and torch.is_grad_enabled():
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


def mark_written(t: Tensor) -> None:
    """Bump the version counter of a caller's tensor the loops wrote into
    (through numpy, which autograd does not see): an in-place tensor
    operation would, so a backward that saved it still notices."""
    increment = getattr(torch.autograd.graph, "increment_version", None)  # torch >= 2.1
    if increment is not None:
        increment(t)


def _planes_or_rows(task, planes: int, rows: int, fewest_rows: int) -> list:
    """``task(start, stop, first, last)`` for planes ``[start, stop)`` and
    their rows ``[first, last)``, shared among the threads: by planes, or,
    where there are fewer planes than threads (a strip of a large image) and
    at least ``fewest_rows`` rows, by the rows of each. Its results, in order."""
    if planes >= torch.get_num_threads() or rows < fewest_rows:
        return run_parallel(lambda start, stop: task(start, stop, 0, rows), planes)
    return run_parallel(lambda first, last: task(0, planes, first, last), rows)


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
        _planes_or_rows(lambda start, stop, first, last: function(a, b, h_factor, v_factor, *flags, start, stop, first, last), planes, rows, 64)
        if out is not None:
            mark_written(out)
    return result


def downsample(plane: Tensor, h_factor: int, v_factor: int, biased: bool) -> Tensor | None:
    """The window means of :func:`diffjpeg.stages.sampling.downsample` (``h_factor x
    v_factor`` of 2x1, 1x2 or 2x2; libjpeg's biased integer average if
    ``biased``) of ``plane`` ``(..., H, W)``, with the tensor operations'
    values, a new ``(..., H / v_factor, W / h_factor)`` tensor; ``None``
    where the kernel does not apply (as :func:`upsample` says)."""
    shape = plane.shape[:-2] + (plane.shape[-2] // v_factor, plane.shape[-1] // h_factor)
    return _sampling_call("downsample", plane, shape, None, h_factor, v_factor, bool(biased))


def upsample(plane: Tensor, h_factor: int, v_factor: int, biased: bool, out: Tensor | None = None) -> Tensor | None:
    """The triangle filter of :func:`diffjpeg.stages.sampling.upsample` (``h_factor x
    v_factor`` of 2x1, 1x2 or 2x2; libjpeg's rounding if ``biased``) of
    ``plane`` ``(..., h, w)``, with the tensor operations' values, in ``out``
    ``(..., v_factor h, h_factor w)`` (any strides, rows contiguous) or a new
    tensor; ``None`` (nothing written) where the kernel does not apply: not
    built or turned off, not on the CPU, not float32 or float64, rows not
    contiguous, or a gradient to record.

    Example:
        >>> out = upsample(torch.tensor([[0.0, 4.0, 8.0]]), 2, 1, True)
        >>> out is None and _sampling_kernel is None or out.tolist() == [[0.0, 1.0, 3.0, 5.0, 7.0, 8.0]]
        True
    """
    shape = plane.shape[:-2] + (plane.shape[-2] * v_factor, plane.shape[-1] * h_factor)
    return _sampling_call("upsample", plane, shape, out, h_factor, v_factor, bool(biased))


def upsample_adjoint(grad: Tensor, h_factor: int, v_factor: int) -> Tensor | None:
    """:func:`diffjpeg.stages.sampling.upsample_adjoint` of ``grad`` ``(..., v_factor h,
    h_factor w)``, with its values, a new ``(..., h, w)`` tensor; ``None``
    where the kernel does not apply (as :func:`upsample` says)."""
    shape = grad.shape[:-2] + (grad.shape[-2] // v_factor, grad.shape[-1] // h_factor)
    return _sampling_call("upsample_adjoint", grad, shape, None, h_factor, v_factor)


def downsample_adjoint(grad: Tensor, h_factor: int, v_factor: int, out: Tensor | None = None) -> Tensor | None:
    """:func:`diffjpeg.stages.sampling.downsample_adjoint` of ``grad`` ``(..., h, w)``,
    with its values, in ``out`` ``(..., v_factor h, h_factor w)`` or a new
    tensor; ``None`` where the kernel does not apply (as :func:`upsample` says)."""
    shape = grad.shape[:-2] + (grad.shape[-2] * v_factor, grad.shape[-1] * h_factor)
    return _sampling_call("downsample_adjoint", grad, shape, out, h_factor, v_factor)


def _merged_usable(planes: tuple[Tensor, ...], constants: tuple[Tensor, ...]) -> bool:
    """Whether the merged loops (_sampling.c) may run on these planes (rows
    contiguous) and constants: built and on, the CPU, one float dtype,
    nothing autograd records."""
    tensors = planes + constants
    if not merged_takes(planes[0]) or not usable(*tensors) or any(t.dtype != planes[0].dtype for t in tensors):
        return False
    return not (torch.is_grad_enabled() and any(t.requires_grad for t in tensors)) and all(t.stride(-1) == 1 for t in planes)


def merged_upsample(
    luma: Tensor, cb: Tensor, cr: Tensor, out: Tensor, matrix: Tensor, shift: Tensor, h_factor: int, v_factor: int, rounded: bool
) -> Tensor | None:
    """The real-valued decoder's last steps in one pass (libjpeg's merged
    upsampler, jdmerge.c, does the same for its integer forms): ``cb`` and
    ``cr`` (``(N, h, w)``, their real downsampled size) upsampled by the
    factors as :func:`upsample` (libjpeg's rounding if ``rounded``), with
    ``luma`` (``(N, >= H, >= W)``) converted by ``matrix`` (9 values) and
    ``shift`` (3: :func:`diffjpeg.stages.color.ycbcr_to_rgb`'s), rounded if
    ``rounded``, clamped to [0, 255] and divided by 255, into ``out`` (``(N,
    3, H, W)``, apart from the inputs): the values of :func:`upsample` and
    then :func:`color_apply` with its post steps, bit for bit, without the
    full-size chroma planes between them. ``None`` where the loop does not
    take the tensors (as :func:`upsample` says)."""
    if not _merged_usable((luma, cb, cr, out), (matrix, shift)):
        return None
    n, height = out.shape[0], out.shape[2]
    y, u, v, o = (t.detach().numpy() for t in (luma, cb, cr, out))
    m, c = (t.detach().contiguous().numpy() for t in (matrix, shift))

    def task(start: int, stop: int, first: int, last: int) -> None:
        _sampling_kernel.merged(y, u, v, o, m, c, h_factor, v_factor, bool(rounded), start, stop, first, last)

    _planes_or_rows(task, n, height, 64)
    mark_written(out)
    return out


def preprocess(
    x: Tensor, luma: Tensor, cb: Tensor, cr: Tensor, matrix: Tensor, offset: Tensor, h_factor: int, v_factor: int,
    padded: tuple[int, int], rounded: bool, within: tuple[float, float] | None,
) -> bool | None:
    """The encoder's first steps in one pass (libjpeg's preprocessing
    controller, jcprepct.c, drives its color conversion and downsampling
    row by row the same way): ``x`` (``(N, 3, H, W)`` in [0, 1]) scaled by
    255, rounded if ``rounded``, clamped; converted by ``matrix`` (9 values)
    and ``offset`` (3), rounded if ``rounded``, clamped; luma into ``luma``
    (``(N, >= H, >= W)``), the chroma edges repeated to ``padded`` (a
    multiple of the factors), downsampled (libjpeg's biased average if
    ``rounded``) into ``cb`` and ``cr`` (``(N, >= padded / factors)``), the
    edges of all three repeated to their size: the values of
    :func:`round_clamp`, :func:`color_apply` with its clamp,
    ``replicate_edges`` and :func:`downsample`, bit for bit. Returns whether
    every value of ``x`` lay in ``within`` (``True`` without it); ``None``
    where the loop does not take the tensors."""
    if not _merged_usable((x, luma, cb, cr), (matrix, offset)):
        return None
    low, high = (-math.inf, math.inf) if within is None else within
    n, rows = x.shape[0], padded[0] // v_factor
    a, y, u, v = (t.detach().numpy() for t in (x, luma, cb, cr))
    m, o = (t.detach().contiguous().numpy() for t in (matrix, offset))

    def task(start: int, stop: int, first: int, last: int) -> bool:
        return _sampling_kernel.encoder(a, y, u, v, m, o, h_factor, v_factor, padded[0], padded[1], bool(rounded), low, high, start, stop, first, last)

    inside = _planes_or_rows(task, n, rows, 32)  # (downsampled rows: 64 of the image's at 2 each)
    return within is None or all(inside)  # (without bounds a NaN still reads as outside)


def merged_upsample_adjoint(
    grad: Tensor, luma: Tensor, cb: Tensor, cr: Tensor, transposed: Tensor, h_factor: int, v_factor: int, downsampled: tuple[int, int]
) -> bool | None:
    """The transpose of :func:`merged_upsample` without its clamp (straight
    through) in one pass, from ``grad`` (``(N, 3, H, W)``, the pixels'):
    the color conversion's (``transposed``: the matrix's transpose, / 255
    folded in, 9 values), then, for the chroma, the upsampler's
    (:func:`upsample_adjoint` of the image's crop, ``downsampled`` its
    size), each component into its whole-block plane (``luma`` ``(N, >= H,
    >= W)``, ``cb`` and ``cr`` ``(N, >= downsampled)``), zeros beyond the
    image: the values of the color pass, :func:`upsample_adjoint` and the
    crops' transposes, bit for bit. ``True``, or ``None`` where the loop does not take them."""
    if not _merged_usable((grad, luma, cb, cr), (transposed,)) or not merged_adjoint_takes(grad):
        return None
    g, y, u, v = (t.detach().numpy() for t in (grad, luma, cb, cr))
    m = transposed.detach().contiguous().numpy()
    run_parallel(lambda start, stop: _sampling_kernel.merged_adjoint(g, m, y, u, v, h_factor, v_factor, *downsampled, start, stop), grad.shape[0])
    for t in (luma, cb, cr):
        mark_written(t)
    return True


def merged_takes(like: Tensor) -> bool:
    """Whether the merged loops (:func:`preprocess`, :func:`merged_upsample`)
    take planes of ``like``'s dtype and device (the calls check the shapes)."""
    return _sampling_kernel is not None and usable(like) and like.dtype in (torch.float32, torch.float64)


def merged_adjoint_takes(grad: Tensor) -> bool:
    """Whether :func:`merged_upsample_adjoint` takes the gradient ``grad``
    ``(N, 3, H, W)``: as :func:`merged_takes`, with an image for each thread
    at least (its threads share images, not rows: a strip of one large
    image keeps the separate passes, whose threads share its rows)."""
    return merged_takes(grad) and grad.shape[0] >= torch.get_num_threads()


def round_clamp(
    x: Tensor, lo: float, hi: float, rounded: bool, scale: float | None = None, shift: float | None = None, out: Tensor | None = None,
    within: tuple[float, float] | None = None,
) -> Tensor | None:
    """``clamp(round(x * scale + shift), lo, hi)`` (each step only where
    given) as :func:`diffjpeg.stages.rounding.clamp_ste`'s tensor operations give
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
        >>> out is None and _rounding_kernel is None or out.tolist() == [0.0, 128.0, 230.0]
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
            inside = run_parallel(lambda start, stop: call(a, b, scale, shift, bool(rounded), lo, hi, start, stop, check), a.shape[1])
        if out is not None:
            mark_written(out)
        if check is not None and not all(inside):
            return None
    return result


def block_transform(blocks: Tensor, matrix: Tensor, shift: float | None = None, out: Tensor | None = None) -> Tensor | None:
    """``A (X - shift) A^T`` for every 8x8 block ``X`` of ``blocks``
    (``(..., 8, 8)``, each row of a block contiguous, at any strides: the
    blocks of a plane as :func:`diffjpeg.stages.blocks.split_blocks` views
    them), ``A`` the 8x8 ``matrix``, summed in
    :func:`diffjpeg.stages.dct.block_transform`'s fixed order
    (``diffjpeg/backends/_dct.c``), into ``out`` (the blocks of a plane, say)
    or a new contiguous tensor; ``None`` where the loop does not apply: not
    built or turned off, not on the CPU, not float32 or float64, rows not
    contiguous, or a gradient to record.

    Example:
        >>> x = torch.zeros(1, 8, 8); x[0, 0, 0] = 8.0
        >>> out = block_transform(x, torch.eye(8))
        >>> out is None and _dct_kernel is None or out.equal(x)
        True
    """
    if out is not None and (out.shape != blocks.shape or out.dtype != blocks.dtype or out.device != blocks.device or out.requires_grad):
        return None
    views = _loop_views(_dct_kernel, blocks, blocks.shape, out, _blocks_of)
    if views is None or matrix.dtype != blocks.dtype or matrix.device != blocks.device:
        return None
    source, target, result = views
    a, b, m = source.numpy(), target.numpy(), matrix.detach().contiguous().numpy()
    s = None if shift is None else float(shift)
    count = a.shape[0] * a.shape[1] * a.shape[2]
    if count < 1 << 11:  # not worth a thread
        _dct_kernel.block_transform(a, b, m, 0, count, s)
    else:
        run_parallel(lambda start, stop: _dct_kernel.block_transform(a, b, m, start, stop, s), count)
    if out is not None:
        mark_written(out)
    return result


def _blocks_of(t: Tensor) -> Tensor | None:
    """``(..., 8, 8)`` blocks as the ``(P, BY, BX, 8, 8)`` view the loop takes
    (rows of a block contiguous); ``None`` if there is none."""
    if t.dim() < 3 or t.shape[-2:] != (8, 8) or t.stride(-1) != 1:
        return None
    while t.dim() < 5:
        t = t.unsqueeze(0)
    if t.dim() > 5:
        try:
            t = t.view(-1, *t.shape[-4:])
        except RuntimeError:  # lead dimensions not viewable as one
            return None
    return t


def color_apply(x: Tensor, matrix: Tensor, offset: Tensor | None, post: tuple | None = None, out: Tensor | None = None) -> Tensor | None:
    """``matrix @ x (+ offset)`` over the channels of ``x`` (``(B, 3, P)``,
    pixels contiguous; ``matrix`` ``(B, 3, 3)``, ``offset`` ``(B, 3)`` or
    ``None``, of ``x``'s dtype, any strides), summed in
    :func:`diffjpeg.stages.color.color_product`'s fixed order (``diffjpeg/backends/_color.c``),
    a new ``(B, 3, P)`` tensor; ``None`` where the loop does not apply (as
    :func:`block_transform` says). ``post``: ``(rounded, lo, hi, divisor)``,
    the steps that follow in the same pass: rounded half to even if
    ``rounded``, clamped to ``[lo, hi]``, divided by ``divisor`` (``None``:
    not), the tensor operations' values. ``out``: where to write, ``x``
    itself (in place) or a tensor of its shape apart from it.

    Example:
        >>> x = torch.rand(1, 3, 5)
        >>> out = color_apply(x, torch.eye(3).expand(1, 3, 3), None)
        >>> out is None and _color_kernel is None or out.equal(x)
        True
    """
    views = _loop_views(_color_kernel, x, x.shape, out, _channels_of)
    if views is None or any(t is not None and (t.dtype != x.dtype or t.device != x.device) for t in (matrix, offset)):
        return None
    source, target, result = views
    a, b = source.numpy(), target.numpy()
    m = matrix.detach().numpy()
    o = None if offset is None else offset.detach().numpy()
    if a.size < 1 << 16:  # not worth a thread
        _color_kernel.apply(a, b, m, o, 0, a.shape[2], post)
    else:
        run_parallel(lambda start, stop: _color_kernel.apply(a, b, m, o, start, stop, post), a.shape[2])
    if out is not None:
        mark_written(out)
    return result


def _channels_of(t: Tensor) -> Tensor | None:
    """``(B, 3, P)`` as the loop takes it (pixels contiguous); ``None`` otherwise."""
    return t if t.dim() == 3 and t.shape[1] == 3 and t.stride(-1) == 1 else None


# ------------------------------------------------------------ the quantizer (_quantize.c)
QUANTIZE_CHUNK = 2048 * 64  # elements per partial sum of a table's gradient: fixed, so no split among threads changes a sum


def quantizer_rows(coefficients: Tensor, table: Tensor) -> tuple[Tensor, Tensor] | None:
    """``coefficients`` ``(N, ..., 8, 8)``, float32 or float64, as ``(N, M)``
    rows and ``table`` (``(N or 1, 1, ..., 1, 8, 8)``, the same dtype) as
    ``(N, 64)``, without a copy; ``None`` where they cannot be. The layout
    the quantizer's kernels take on every device (this loop's and the
    GPU's, :func:`diffjpeg.backends.gpu_stages.quantize`)."""
    if coefficients.dtype not in (torch.float32, torch.float64) or table.dtype != coefficients.dtype or coefficients.dim() < 3:
        return None
    n, dims = coefficients.shape[0], coefficients.dim()
    if coefficients.shape[-2:] != (8, 8) or table.dim() != dims or table.shape[0] not in (1, n) or table.shape[-2:] != (8, 8):
        return None
    if any(size != 1 for size in table.shape[1:-2]) or n == 0:
        return None
    try:
        rows = coefficients.detach().view(n, -1)
        tables = table.detach().expand(n, *table.shape[1:]).view(n, 64)
    except RuntimeError:  # not viewable as rows
        return None
    return (rows, tables) if rows.stride(-1) == 1 and tables.stride(-1) == 1 else None


def _quantizer_views(coefficients: Tensor, table: Tensor) -> tuple[Tensor, Tensor] | None:
    """:func:`quantizer_rows` where this loop takes the tensors (built, turned on, the CPU, not traced)."""
    if _quantize_kernel is None or not usable(coefficients, table):
        return None
    return quantizer_rows(coefficients, table)


def quantizer_takes(coefficients: Tensor, table: Tensor) -> bool:
    """Whether :func:`quantize` and :func:`quantize_adjoint` take these tensors."""
    return _quantizer_views(coefficients, table) is not None


def _split(task, rows: int, elements: int) -> None:
    """``task(r0, r1, e0, e1)`` over ``rows`` x ``elements``, shared among
    the threads by rows, or, with fewer rows than threads, by chunks of
    :data:`QUANTIZE_CHUNK` elements (the table gradient's partial sums)."""
    threads = torch.get_num_threads()
    if rows * elements < 1 << 16 or threads == 1:
        task(0, rows, 0, elements)
    elif rows >= threads:
        run_parallel(lambda r0, r1: task(r0, r1, 0, elements), rows)
    else:
        chunks = -(-elements // QUANTIZE_CHUNK)
        run_parallel(lambda c0, c1: task(0, rows, c0 * QUANTIZE_CHUNK, min(c1 * QUANTIZE_CHUNK, elements)), chunks)


def quantize(coefficients: Tensor, table: Tensor, soft: bool, surrogate: str, parameters: tuple, noise: Tensor | None = None) -> Tensor | None:
    """``round(F / Q)`` (``soft``: the surrogate's value ``r(F / Q)``, with
    ``noise``, uniform draws in [0, 1) shaped as ``coefficients``, for the
    noise surrogate), in one pass (``diffjpeg/backends/_quantize.c``), a new
    tensor; ``None`` where the loop does not take the tensors (:func:`quantizer_takes`)
    or a gradient is to be recorded. ``surrogate``, ``parameters``: the
    :class:`~diffjpeg.stages.rounding.Rounding`'s ``name`` and ``parameters()``.

    Example:
        >>> out = quantize(torch.full((1, 1, 8, 8), 20.0), torch.full((1, 1, 8, 8), 8.0), False, "linear", ())
        >>> out is None and _quantize_kernel is None or out[0, 0, 0, 0].item()  # 2.5: half to even
        2.0
    """
    views = _quantizer_views(coefficients, table)
    if views is None or torch.is_grad_enabled() and (coefficients.requires_grad or table.requires_grad):
        return None
    rows, tables = views
    out = coefficients.new_empty(coefficients.shape)
    target = out.view(rows.shape)
    drawn = None if noise is None else noise.detach().contiguous().view(rows.shape).numpy()
    a, q, b = rows.numpy(), tables.numpy(), target.numpy()
    _split(lambda r0, r1, e0, e1: _quantize_kernel.forward(a, q, b, drawn, bool(soft), surrogate, parameters, r0, r1, e0, e1), *rows.shape)
    return out


def quantize_slope(coefficients: Tensor, table: Tensor, surrogate: str, parameters: tuple) -> Tensor | None:
    """The surrogate's derivative ``r'(F / Q)`` of each coefficient, in one
    pass (``diffjpeg/backends/_quantize.c``), a new tensor; ``None`` where
    the loop does not take the tensors."""
    views = _quantizer_views(coefficients, table)
    if views is None:
        return None
    rows, tables = views
    out = coefficients.new_empty(coefficients.shape)
    a, q, b = rows.numpy(), tables.numpy(), out.view(rows.shape).numpy()
    _split(lambda r0, r1, e0, e1: _quantize_kernel.slope(a, q, b, surrogate, parameters, r0, r1, e0, e1), *rows.shape)
    return out


def quantize_adjoint(grad: Tensor, coefficients: Tensor, table: Tensor, surrogate: str, parameters: tuple, table_grad: bool) -> tuple[Tensor, Tensor | None] | None:
    """The gradients of :func:`quantize`'s ``F`` and (``table_grad``) ``Q``
    from ``grad``, the surrogate's derivative ``r'(F / Q)`` in every mode:
    ``grad r' / Q`` and the sums of ``-grad r' (F / Q) / Q`` over each
    image's blocks (over all images for a table shared by them), in one
    fixed order whatever the threads (``diffjpeg/backends/_quantize.c``);
    ``None`` where the loop does not take the tensors."""
    views = _quantizer_views(coefficients, table)
    if views is None or grad.shape != coefficients.shape or grad.dtype != coefficients.dtype or not usable(grad):
        return None
    rows, tables = views
    g = grad.detach().contiguous().view(rows.shape)
    out = coefficients.new_empty(coefficients.shape)
    n, elements = rows.shape
    partials = torch.empty(n, -(-elements // QUANTIZE_CHUNK), 64, dtype=torch.float64) if table_grad else None
    a, f, q, b = g.numpy(), rows.numpy(), tables.numpy(), out.view(rows.shape).numpy()
    p = None if partials is None else partials.numpy()
    _split(lambda r0, r1, e0, e1: _quantize_kernel.backward(a, f, q, b, p, surrogate, parameters, QUANTIZE_CHUNK, r0, r1, e0, e1), n, elements)
    table_gradient = None
    if partials is not None:
        shared = table.shape[0] == 1 and n > 1
        if shared:  # one table for all: every image's chunks, in order
            partials = partials.view(1, -1, 64)
        table_gradient = table.new_empty((partials.shape[0], 64))
        _quantize_kernel.fold(partials.numpy(), table_gradient.numpy())
        table_gradient = table_gradient.view(table.shape)
    return out, table_gradient


# ------------------------------------------------------------ the block pass (_quantize.c)
def block_pass_takes(plane: Tensor, table: Tensor) -> bool:
    """Whether :func:`block_pass` and :func:`block_pass_adjoint` take planes
    and tables like these: built and on, the CPU, float32 or float64, not
    traced (what a plan can know before the planes exist; their shapes are
    checked by the calls)."""
    return _quantize_kernel is not None and usable(plane, table) and plane.dtype in (torch.float32, torch.float64) and table.dtype == plane.dtype


def block_pass_built(tables: Tensor) -> bool:
    """Whether the block pass's loop is built and on for planes of the dtype
    and device of ``tables``, whatever transform is active (a custom
    operator's implementation runs below them, on plain tensors)."""
    return _quantize_kernel is not None and _enabled and tables.device.type == "cpu" and tables.dtype in (torch.float32, torch.float64)


def _pass_shapes(plane: Tensor, table: Tensor, out: Tensor) -> bool:
    """A ``(P, 8 BY, 8 BX)`` plane with rows contiguous, its ``(P or 1, 8, 8)`` table, and an ``out`` like it."""
    return (
        block_pass_takes(plane, table) and plane.dim() == 3 and plane.shape[-2] % 8 == 0 and plane.shape[-1] % 8 == 0
        and plane.stride(-1) == 1 and table.dim() == 3 and table.shape[-2:] == (8, 8) and table.shape[0] in (1, plane.shape[0])
        and out.shape == plane.shape and out.dtype == plane.dtype and out.stride(-1) == 1 and usable(out) and not out.requires_grad
    )


def _plane_blocks(plane: Tensor) -> Tensor:
    """A ``(P, 8 BY, 8 BX)`` plane's ``(P, BY, BX, 8, 8)`` blocks as a view (what the pass reads and writes)."""
    p, h, w = plane.shape
    return plane.detach().unflatten(1, (h // 8, 8)).unflatten(3, (w // 8, 8)).transpose(2, 3)


def _table_rows(table: Tensor, count: int) -> Tensor:
    return table.detach().reshape(-1, 64).expand(count, 64)


def _blockwise(task, count: int) -> None:
    """``task(start, stop)`` over ``count`` blocks, shared among the threads
    (each block's work stands alone: no split changes a value)."""
    if count < 1 << 11:  # not worth a thread
        task(0, count)
    else:
        run_parallel(task, count)


def block_pass(
    plane: Tensor, table: Tensor, out: Tensor, matrices: tuple[Tensor, Tensor], soft: bool, surrogate: str, parameters: tuple,
    slopes: Tensor | None = None, noise: Tensor | None = None,
) -> Tensor | None:
    """One component's block pass (:mod:`diffjpeg.stages.dctmgr`) in one
    compiled pass over ``plane``'s blocks, into ``out`` (the plane's shape;
    ``plane`` itself allowed); ``matrices``: the DCT's ``C`` and ``C^T``
    (64 values each, of the plane's dtype); ``slopes``: where the
    surrogate's derivative ``r'(F / Q)`` goes (``(P, BY, BX, 8, 8)``,
    contiguous); ``noise``: the noise surrogate's draws, shaped as ``slopes``.
    ``None`` where the loop does not take the tensors (:func:`block_pass_takes`)."""
    arrays = _pass_arrays(plane, table, out, matrices, slopes, noise)
    if arrays is None:
        return None
    count, a, b, q, c, ct, r, z = arrays
    _blockwise(lambda start, stop: _quantize_kernel.block_forward(a, b, q, r, z, c, ct, bool(soft), surrogate, parameters, start, stop), count)
    mark_written(out)
    if slopes is not None:
        mark_written(slopes)
    return out


def block_pass_adjoint(grad: Tensor, slopes: Tensor | None, table: Tensor, out: Tensor, matrices: tuple[Tensor, Tensor]) -> Tensor | None:
    """The gradient of :func:`block_pass`'s ``plane`` from ``grad``, its
    output's, with the ``slopes`` it saved (``None``: ``r' = 1``, linear and
    noise), into ``out`` (``grad`` itself allowed); ``None`` where the loop
    does not take the tensors."""
    arrays = _pass_arrays(grad, table, out, matrices, slopes)
    if arrays is None:
        return None
    count, a, b, q, c, ct, r, _ = arrays
    _blockwise(lambda start, stop: _quantize_kernel.block_backward(a, b, q, r, c, ct, start, stop), count)
    mark_written(out)
    return out


def _pass_arrays(
    plane: Tensor, table: Tensor, out: Tensor, matrices: tuple[Tensor, Tensor], slopes: Tensor | None, noise: Tensor | None = None
) -> tuple | None:
    """What the pass's two entry points read, as numpy arrays: the number of
    blocks, ``plane``'s and ``out``'s blocks, the table rows, ``C`` and
    ``C^T``, ``slopes`` and ``noise`` (one value per coefficient,
    contiguous, or ``None``); ``None`` where the loop does not take them."""
    if not _pass_shapes(plane, table, out) or any(t is not None and not _pass_rows(t, plane) for t in (slopes, noise)):
        return None
    count = plane.shape[0] * (plane.shape[1] // 8) * (plane.shape[2] // 8)
    c, ct = (m.detach().contiguous().numpy() for m in matrices)
    a, b, q = _plane_blocks(plane).numpy(), _plane_blocks(out).numpy(), _table_rows(table, plane.shape[0]).numpy()
    r, z = (None if t is None else t.detach().view(plane.shape[0], -1).numpy() for t in (slopes, noise))
    return count, a, b, q, c, ct, r, z


def _pass_rows(t: Tensor, plane: Tensor) -> bool:
    """``t`` holds one value per coefficient of ``plane``'s blocks, contiguous, as the pass reads and writes them."""
    return usable(t) and t.dtype == plane.dtype and t.is_contiguous() and t.numel() == plane.numel() and not (t.requires_grad and torch.is_grad_enabled())


for _slot in ("color_apply", "block_transform", "round_clamp", "downsample", "upsample", "downsample_adjoint", "upsample_adjoint"):
    dispatch.register(_slot, globals()[_slot], "native")  # each slot's kernel is this module's function of that name
dispatch.register("preprocess", preprocess, "native", takes=merged_takes)
dispatch.register("merged_upsample", merged_upsample, "native", takes=merged_takes)
dispatch.register("merged_upsample_adjoint", merged_upsample_adjoint, "native", takes=merged_adjoint_takes)
dispatch.register("quantize", quantize, "native", takes=quantizer_takes)
dispatch.register("quantize_adjoint", quantize_adjoint, "native", takes=quantizer_takes)
dispatch.register("quantize_slope", quantize_slope, "native", takes=quantizer_takes)
dispatch.register("block_pass", block_pass, "native", takes=block_pass_takes)
dispatch.register("block_pass_adjoint", block_pass_adjoint, "native", takes=block_pass_takes)

__all__ = ["available", "enabled", "set_enabled", "usable"]
