"""Large images in horizontal strips of MCU rows: flat cost per pixel, bounded memory.

JPEG is local: an output row depends only on the input rows of its own MCU
row, except through fancy chroma upsampling (h2v2, h1v2), which reads one
chroma row of the MCU rows above and below. So the codec can run on strips
of whole MCU rows, each read with one MCU row of *halo* above and below; the
interior rows of every strip are the whole image's, bit for bit.

Why: a whole 12 MP image makes every temporary a fresh mapping above
glibc's mmap limit (32 MiB per block), paid in page faults and zeroing on
every call (4x slower per pixel than at 1 MP), and most of the 34-54 bytes
per pixel that forward+backward peaks at on a whole image are such
temporaries; what autograd saves for the backward is about 6 bytes per
pixel (the quantizer's input). In strips the temporaries stay small and are
reused; the image-size output and input gradient are faulted in once as
huge pages (:func:`diffjpeg.backends.exact.prefault`). With a gradient,
:class:`_StripJPEG` keeps each strip's own graph (its saved tensors, not
its temporaries, nor the strip's decoded pixels: :class:`_Handle`); its
backward runs each strip's graph with the true output gradient of the
strip and its halo, and takes the strip's interior rows of the input
gradient. Every interior row's gradient is then computed by the very
operations of the whole image's backward (the upsampler's transpose reads
the same neighbours), so values and input gradients are bit-identical to
the whole-image path (``tests/codec/test_strips.py``). Nothing is recomputed,
except for a differentiable gradient (``create_graph=True``), which goes
through the whole image's graph.

A ``run`` that takes a :class:`Window` writes a strip's interior rows
itself: the decoder's last stage into the image's output, the encoder's
first stage's transpose into the input gradient. Neither is then written
twice (a strip-size result copied into the image's), and the rows of the
halo are not converted at all (libjpeg's decoder likewise writes its
output rows into the caller's buffer).

Not taken where it cannot be bit-identical or does not pay: when quality,
tables or color matrices require grad (their gradients are sums over the
whole image, and a sum in strips is another order of additions), for the
noise estimator's soft forward (random: another draw per strip), under
``torch.compile`` (which fuses the whole image anyway), off the CPU (CUDA's
caching allocator reuses its blocks), and for images under :data:`STRIP_PIXELS`.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from ..backends import exact
from ..core.check import transformed

STRIP_PIXELS = 1 << 20  # pixels per strip (the batch's images together): temporaries of a few MiB, reused


def strip_rows(height: int, width: int, count: int, mcu: int, pixels: int = STRIP_PIXELS) -> list[tuple[int, int]]:
    """The interior rows ``[start, stop)`` of each strip: whole MCU rows,
    about ``pixels`` per strip over the ``count`` images; one strip when the
    image is not larger than two.

    Example:
        >>> strip_rows(100, 1000, 1, 16, pixels=40000)
        [(0, 32), (32, 64), (64, 100)]
    """
    per_strip = max(1, pixels // (max(1, width * count) * mcu)) * mcu
    if height <= 2 * per_strip:
        return [(0, height)]
    bounds = list(range(0, height, per_strip))
    if height - bounds[-1] < per_strip // 2 and len(bounds) > 1:  # no thin last strip
        bounds.pop()
    return [(start, stop) for start, stop in zip(bounds, bounds[1:] + [height])]


def _halo(rows: tuple[int, int], height: int, halo: int) -> tuple[int, int]:
    return max(0, rows[0] - halo), min(height, rows[1] + halo)


class Window:
    """A strip's interior rows, for a ``run`` that writes them itself.

    ``start``, ``stop``: the interior rows in the strip's own coordinates
    (the halo above is ``start`` rows). Forward, ``run(part, window)``
    writes rows ``[start, stop)`` of its result into ``out`` (``(..., C', n, W)``,
    the image output's rows) and returns a tensor of the strip's output shape
    that carries the graph (its values are not read; :meth:`stand_in`).
    Backward, while the strip's graph runs, ``grad`` holds the input
    gradient's rows ``(..., C, n, W)``: the graph writes the interior rows'
    gradient there (:meth:`take_grad`); what it gives the strip itself, if
    anything, is added."""

    __slots__ = ("start", "stop", "out", "grad")

    def __init__(self, start: int, stop: int, out: Tensor):
        self.start, self.stop, self.out = start, stop, out
        self.grad: Tensor | None = None

    def take_grad(self) -> Tensor | None:
        """The input gradient's rows to write, once (``None`` outside the
        strips' backward, or once taken): the strips then know they were written."""
        grad, self.grad = self.grad, None
        return grad

    def rows(self, t: Tensor) -> Tensor:
        """The interior rows of ``t`` (``(..., h, W)``, the strip's)."""
        return t[..., self.start : self.stop, :]

    def write(self, result: Tensor) -> Tensor:
        """Copy the interior rows of ``result`` (the whole strip's output) into ``out``; ``result``."""
        with torch.no_grad():
            self.out.view(result.shape[:-2] + self.out.shape[-2:]).copy_(self.rows(result))
        return result

    @staticmethod
    def stand_in(like: Tensor, shape) -> Tensor:
        """A tensor of the strip's output ``shape`` holding one element: the
        graph's output where the rows went into ``out``."""
        return like.new_empty(()).expand(shape)


class _StripJPEG(torch.autograd.Function):
    """``run(image)`` strip by strip. With ``keep`` (the caller wants a
    gradient) each strip's graph is kept for the backward; without, nothing.
    With ``into`` (a run taking a :class:`Window`) each strip writes its
    rows into the output, and its backward into the input gradient.
    ``kept``: an empty dict that the forward fills with what the backward
    needs (the strips' graphs and windows), for :meth:`setup_context`.
    Not for ``torch.func`` transforms (it runs autograd itself):
    :func:`in_strips` is not taken under one."""

    @staticmethod
    def forward(image: Tensor, run: Callable, strips: list[tuple[int, int]], halo: int, keep: bool, into: tuple | None, kept: dict):
        height = image.shape[-2]
        out, direct = None, into is not None
        if direct:
            channels, dtype = into
            out = image.new_empty(image.shape[:-3] + (channels,) + image.shape[-2:], dtype=dtype)
            exact.prefault(out)  # fresh: above glibc's mmap limit, written once
        graphs, windows = [], []
        for rows in strips:
            lo, hi = _halo(rows, height, halo)
            part = image[..., lo:hi, :]
            window = Window(rows[0] - lo, rows[1] - lo, out[..., rows[0] : rows[1], :]) if direct else None
            args = () if window is None else (window,)
            if keep:
                part = part.detach().requires_grad_()
                with torch.enable_grad():
                    result = run(part, *args)
                    graphs.append((part, _Handle.apply(result)))
            else:
                result = run(part, *args)
            if window is not None:
                window.out = None  # written; a view of the output kept in ctx would make a reference cycle
                windows.append(window)
                continue
            if out is None:
                out = result.new_empty(result.shape[:-2] + image.shape[-2:])
                exact.prefault(out)  # fresh: above glibc's mmap limit, written once
            out[..., rows[0] : rows[1], :] = result[..., rows[0] - lo : rows[1] - lo, :]
        kept.update(graphs=graphs, windows=windows)
        return out

    @staticmethod
    def setup_context(ctx, inputs, output):
        image, ctx.run, ctx.strips, ctx.halo, _, _, kept = inputs
        ctx.save_for_backward(image)
        ctx.graphs, ctx.windows = kept.pop("graphs"), kept.pop("windows")

    @staticmethod
    def backward(ctx, grad: Tensor):
        (image,) = ctx.saved_tensors
        height = image.shape[-2]
        if torch.is_grad_enabled():
            # create_graph: the whole image's graph, whose gradient is
            # differentiable (the strips' graphs were built without it)
            with torch.enable_grad():
                (grad_image,) = torch.autograd.grad(ctx.run(image), image, grad, create_graph=True)
            return grad_image, None, None, None, None, None, None
        grad_image = torch.empty_like(image, memory_format=torch.contiguous_format)
        exact.prefault(grad_image)
        windows = ctx.windows or [None] * len(ctx.strips)
        for rows, (part, handle), window in zip(ctx.strips, ctx.graphs, windows):
            lo, hi = _halo(rows, height, ctx.halo)
            target = grad_image[..., rows[0] : rows[1], :]
            if window is not None:
                window.grad = target
            # retain_graph: a second backward through the outer graph (which
            # the caller may have retained) needs the strips' graphs too;
            # they go with the outer graph
            try:
                (grad_part,) = torch.autograd.grad(handle, part, grad[..., lo:hi, :], retain_graph=True, allow_unused=True)
                written = window is not None and window.grad is None  # the graph took the rows (Window.take_grad)
            finally:
                if window is not None:
                    window.grad = None
            interior = None if grad_part is None else grad_part[..., rows[0] - lo : rows[1] - lo, :]
            if written:
                if interior is not None:
                    target.add_(interior)
            elif interior is None:
                target.zero_()  # the strip's rows do not reach the output
            else:
                target.copy_(interior)
        return grad_image, None, None, None, None, None, None


class _Handle(torch.autograd.Function):
    """A strip's graph without its pixels: an output of the strip's shape
    that holds one element (stride 0), whose gradient goes unchanged to the
    strip's decoded pixels, which can then be freed."""

    @staticmethod
    def forward(pixels: Tensor) -> Tensor:
        return pixels.new_empty(()).expand(pixels.shape)

    @staticmethod
    def setup_context(ctx, inputs, output):
        pass

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        return grad


def in_strips(
    run: Callable, image: Tensor, mcu: int, halo: int, pixels: int | None = None, into: tuple[int, torch.dtype] | None = None
) -> Tensor | None:
    """``run(image)`` (a same-size, row-local codec) computed in strips, or
    ``None`` where one strip would hold the whole image.

    Args:
        run: the codec on ``(..., C, h, W)`` rows, returning ``(..., C', h, W)``;
            its only tensor input needing a gradient is its argument. With
            ``into``, called as ``run(rows, window)`` (:class:`Window`), and
            as ``run(image)`` for a differentiable gradient.
        image: ``(..., C, H, W)``.
        mcu: the MCU height in rows (strips are whole MCU rows).
        halo: rows read above and below each strip (0 where rows are independent).
        pixels: about how many pixels per strip; :data:`STRIP_PIXELS` if ``None``.
        into: the output's ``(C', dtype)``, for a run that writes its
            interior rows into it itself.

    Example:
        >>> x = torch.rand(1, 3, 64, 8)
        >>> torch.equal(in_strips(torch.sqrt, x, 8, 0, pixels=64), torch.sqrt(x))
        True
    """
    *lead, _, height, width = image.shape
    count = 1
    for n in lead:
        count *= n
    strips = strip_rows(height, width, count, mcu, STRIP_PIXELS if pixels is None else pixels)
    if len(strips) == 1 or transformed():  # _StripJPEG runs autograd itself: not under a torch.func transform
        return None
    keep = torch.is_grad_enabled() and image.requires_grad
    return _StripJPEG.apply(image, run, strips, halo, keep, into, {})
