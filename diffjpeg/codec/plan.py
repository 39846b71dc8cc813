"""One call, decided once: every argument checked and resolved into an
immutable plan, before a straight pipeline runs it.

libjpeg-turbo does this once per image: ``jinit_compress_master()``
(jcinit.c) validates the parameters and selects each stage's module (color
converter, downsampler, DCT, entropy coder, SIMD or portable C); the row
loop then calls what was chosen and asks nothing again. Here
:func:`encode_plan` and :func:`decode_plan` do it for one call of
:func:`diffjpeg.encode`, :func:`diffjpeg.decode` and :func:`diffjpeg.jpeg`:

* every argument is checked (a ``TypeError`` or ``ValueError`` naming it and
  what is allowed) and resolved: the mode's surrogate, the tables, the color
  matrices, the working dtype, each component's geometry;
* the backend is chosen: the compiled exact codec
  (:mod:`diffjpeg.backends.exact`) where it applies, else the tensor stages;
* the pipeline (:mod:`diffjpeg.codec.pipeline`) then runs the plan and
  checks none of it again.

What depends only on shapes and settings is cached across calls: the
geometry of a size and sampling, the tables of a whole-number quality. The
image's values are not the plan's: the first compiled pass that reads them
checks them as it reads (one pass, not two), or
:func:`diffjpeg.core.check.check_image_values` does where none runs.
"""
from __future__ import annotations

import math
from functools import lru_cache
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

from ..backends import exact, gpu, gpu_ops
from ..core.check import (
    check_all_finite,
    check_choice,
    check_device,
    check_finite,
    check_image,
    check_subsampling,
    checking_values,
    is_number,
)
from ..core.coefficients import Coefficients
from ..core.dispatch import BACKENDS
from ..core.geometry import ComponentGeometry, component_geometry, subsampling_factors
from ..core.modes import MODES
from ..core.precision import cached_constant, full_precision, working_dtype
from ..stages import color
from ..stages.quality import DEFAULT_QUALITY, quality_tables, standard_tables
from ..stages.rounding import Rounding, as_rounding, clamp_ste, needs_grad, round_ste


def per_image(name: str, value: Tensor, batch: torch.Size | None, tail: tuple[int, ...]) -> Tensor:
    """Reshape ``value`` (shared, per image over ``batch``, or flat ``(B, ...)``) to ``(B, *tail)``.

    A leading batch of ones (``(1, *tail)``) is shared, as a one-element
    quality is. ``batch=None`` (a module's held value, before any image) checks
    only the ``tail``."""
    shape = tuple(value.shape)
    if shape[len(shape) - len(tail):] != tail:
        raise ValueError(f"{name} has shape {shape}; expected {tail}, (B, *{tail}) or the batch shape + {tail}")
    if batch is None:
        return value
    count = math.prod(batch)
    if shape == tail or math.prod(shape[: len(shape) - len(tail)]) == 1:
        return value.reshape(tail).expand((count,) + tail)
    if shape == tuple(batch) + tail or shape == (count,) + tail:
        return value.reshape((count,) + tail)
    allowed = [tail, (1,) + tail, tuple(batch) + tail, (count,) + tail]
    raise ValueError(f"{name} has shape {shape}; expected one of {sorted(set(allowed))} for a batch of shape {tuple(batch)}")


def quality_tensor(quality, batch: torch.Size | None, dtype, device) -> Tensor:
    if isinstance(quality, Tensor):
        if quality.dtype == torch.bool or quality.is_complex():
            raise TypeError(f"quality must be a number or a real tensor, got a tensor of dtype {quality.dtype}")
    elif not is_number(quality):
        raise TypeError(f"quality must be a number (int, float, numpy scalar) or a tensor, got {type(quality).__name__}")
    check_device("quality", quality, device)
    q = quality if isinstance(quality, Tensor) else torch.tensor(float(quality))
    if not q.is_floating_point():
        q = q.to(dtype)
    check_finite("quality", q)
    if checking_values() and bool(((q.detach() < 0) | (q.detach() > 100)).any()):
        raise ValueError(f"quality must be in [0, 100], got {q.detach().flatten()[:8].tolist()}")
    if q.numel() == 1:
        q = q.reshape(())
    return per_image("quality", q.to(device=device, dtype=dtype), batch, ())


def qtables_tensor(qtables, batch: torch.Size | None, dtype, device, scaled: bool) -> Tensor:
    """Tables; ``scaled``: base tables that quality scales (entries <= 0 allowed, as libjpeg's)."""
    if not isinstance(qtables, Tensor):
        raise TypeError(f"qtables must be a torch.Tensor of shape (2, 8, 8) or (B, 2, 8, 8), got {type(qtables).__name__}")
    if qtables.dtype == torch.bool or qtables.is_complex():
        raise TypeError(f"qtables must be a real tensor, got dtype {qtables.dtype}")
    check_device("qtables", qtables, device)
    if not qtables.is_floating_point():
        qtables = qtables.to(dtype)
    check_finite("qtables", qtables)
    if qtables.shape[-3:] != (2, 8, 8):
        raise ValueError(f"qtables must have shape (2, 8, 8) or (B, 2, 8, 8) (luma, chroma), got {tuple(qtables.shape)}")
    # Base tables that quality scales may hold entries <= 0: libjpeg's
    # jpeg_add_quant_table (jcparam.c) computes (base * scale + 50) / 100 and
    # then sets any result <= 0 to 1 (its base table is unsigned, so only 0
    # reaches it; a negative entry goes the same way here, to 1).
    if not scaled and checking_values() and bool((qtables.detach() <= 0).any()):
        raise ValueError(
            "qtables used as given (no quality) must have entries > 0: they are the quantizer's divisors; "
            "with quality they are base tables, scaled as libjpeg's (a scaled entry <= 0 becomes 1)"
        )
    return per_image("qtables", qtables.to(device=device, dtype=dtype), batch, (2, 8, 8))


def matrix_tensor(name: str, matrix, batch: torch.Size, dtype, device) -> Tensor | None:
    if matrix is None:
        return None
    if not isinstance(matrix, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape (3, 3) or (B, 3, 3), got {type(matrix).__name__}")
    check_device(name, matrix, device)
    check_finite(name, matrix)
    m = matrix.to(device=device, dtype=dtype)
    if m.shape == (3, 3):
        return m
    return per_image(name, m, batch, (3, 3))


def whole_quality(quality, qtables) -> int | None:
    """The whole-number quality whose tables a call's ``quality`` and
    ``qtables`` give (libjpeg's default where neither is given), or ``None``:
    those tables are built once and cached, and in exact mode are whole
    numbers in [1, 255], which the compiled encoder need not check."""
    if quality is None and qtables is None:
        return DEFAULT_QUALITY
    if qtables is None and is_number(quality) and quality in _WHOLE_QUALITIES:
        return int(quality)
    return None


def resolve_tables(quality, qtables, batch: torch.Size, exact: bool, dtype, device) -> Tensor:
    """The ``(B, 2, 8, 8)`` tables a call quantizes with (see :func:`diffjpeg.encode`)."""
    whole = whole_quality(quality, qtables)
    if whole is not None:
        # the common call, jpeg(x, 75): the tables of a whole-number quality,
        # built once (a third of a small image's call went into building them)
        # and copied, so that nothing the caller does to them reaches the cache
        tables = _whole_quality_tables(whole, exact, dtype, device)
        return tables.expand((math.prod(batch),) + tables.shape).clone()
    base = None if qtables is None else qtables_tensor(qtables, batch, dtype, device, scaled=quality is not None)
    if exact and base is not None:
        base = round_ste(base)
    if quality is None:
        return clamp_ste(base, 1.0, 255.0)
    q = quality_tensor(quality, batch, dtype, device)
    return quality_tables(q, standard_tables(dtype, device) if base is None else base, exact)


_WHOLE_QUALITIES = frozenset(range(101))  # a bounded cache: 101 qualities per mode kind, dtype and device


def _whole_quality_tables(quality: int, exact: bool, dtype, device) -> Tensor:
    """``(2, 8, 8)`` tables of a whole-number quality given as a number, as
    the general path builds them (its elementwise steps give each image
    these very values; a whole number is exact in every float dtype)."""
    return _every_whole_quality_tables(exact, dtype, device)[quality]


@cached_constant
def _every_whole_quality_tables(exact: bool, dtype, device) -> Tensor:
    """``(101, 2, 8, 8)``: the tables of qualities 0..100, built together on
    first use (one call's worth of work instead of one per quality: an
    augmentation drawing qualities meets a new one on most of its first calls)."""
    every = torch.arange(101, dtype=dtype, device=device)  # known good: no check (its read-back would wait for a GPU)
    return quality_tables(every, standard_tables(dtype, device), exact)


@lru_cache(maxsize=512)
def encoder_geometries(size: tuple[int, int], factors: tuple) -> tuple[ComponentGeometry, ...]:
    """Each component's geometry for an image of ``size`` with sampling ``factors``."""
    return tuple(component_geometry(size, f, factors[0]) for f in factors)


@lru_cache(maxsize=512)
def _kernel_layout(count: int, size: tuple[int, int], factors: tuple) -> tuple:
    # keyed by numbers: hashing the geometries themselves costs a call's worth of microseconds
    return exact.layout(count, size[0], encoder_geometries(size, factors))


class EncodePlan(NamedTuple):
    """One encode, decided: what :func:`diffjpeg.codec.pipeline.encode` runs.

    ``tables`` ``(count, 2, 8, 8)`` and ``matrix`` (``None``: libjpeg's) in
    ``work``, the dtype the stages compute in; ``kernel``: the compiled exact
    encoder takes this image (:func:`diffjpeg.backends.exact.encode`);
    ``grad``: a graph is to be built (the image, tables or matrix require
    grad, and grad mode is on); ``kernel_tables``: the kernel's encoder and
    decoder tables (:func:`diffjpeg.backends.exact.encoder_tables`,
    :func:`~diffjpeg.backends.exact.decoder_tables`) where they are cached
    (a whole-number quality), else ``None`` (made per call);
    ``kernel_layout``: :func:`diffjpeg.backends.exact.layout` of the batch
    where the kernel runs; ``triton``: the GPU's fused exact encoder takes
    this image instead (:func:`diffjpeg.backends.gpu.encode`);
    ``triton_ops``: through its custom operator
    (:func:`diffjpeg.backends.gpu_ops.encode`), where the direct call
    cannot run (``torch.compile`` tracing, ``torch.func`` transforms)."""

    mode: str
    rounding: Rounding
    batch: torch.Size
    channels: int
    size: tuple[int, int]
    work: torch.dtype
    factors: tuple
    geometries: tuple[ComponentGeometry, ...]
    tables: Tensor
    matrix: Tensor | None
    kernel: bool
    grad: bool
    kernel_tables: tuple | None = None
    kernel_layout: tuple | None = None
    backend: str = "auto"
    triton: bool = False
    triton_ops: bool = False

    @property
    def count(self) -> int:
        return math.prod(self.batch)


def check_backend(backend, device: torch.device) -> None:
    """``backend=`` (:data:`diffjpeg.core.dispatch.Backend`) for tensors on
    ``device``: ``"triton"`` needs Triton and the kernels' device (CUDA, or
    the CPU under ``TRITON_INTERPRET=1``), and says what is missing."""
    check_choice("backend", backend, BACKENDS)
    if backend != "triton":
        return
    if not gpu.available():
        raise ValueError("backend='triton' needs Triton, which does not import here (pip install triton); backend='auto' runs without it")
    if device.type != gpu.device_type():
        raise ValueError(
            f"backend='triton' runs its kernels on {gpu.device_type()} tensors, got tensors on {device} "
            "(CPU tensors take them under TRITON_INTERPRET=1, set before diffjpeg builds a kernel)"
        )


def encode_plan(image, quality, qtables, subsampling, mode, rounding, rgb_to_ycbcr, backend: str = "auto") -> EncodePlan:
    """:func:`diffjpeg.encode`'s arguments checked and resolved (its
    docstring says what each may be). The image's shape and dtype are
    checked, not its values."""
    check_image(image, values=False)
    check_choice("mode", mode, MODES)
    subsampling = check_subsampling(subsampling)
    rounding = as_rounding(rounding, mode=mode)
    check_backend(backend, image.device)
    *batch, channels, height, width = image.shape
    batch, device, work = torch.Size(batch), image.device, working_dtype(image.dtype)
    with full_precision(device):
        tables = resolve_tables(quality, qtables, batch, mode == "exact", work, device)
    whole = whole_quality(quality, qtables)
    matrix = matrix_tensor("rgb_to_ycbcr", rgb_to_ycbcr, batch, work, device)
    factors = subsampling_factors(subsampling, channels)
    kind = torch.uint8 if image.dtype == torch.uint8 else work  # what the stages read: 8-bit levels, or floats in work
    kernel = mode == "exact" and backend in ("auto", "native") and exact.encode_applies(image, kind, matrix, tables, tables_checked=whole is not None)
    fused = mode == "exact" and not kernel and backend in ("auto", "triton") and gpu.codec_takes(image, matrix)
    triton = fused and gpu.applies(image)
    # traced or transformed, the kernels run as custom operators (eagerly a direct call costs less)
    triton_ops = fused and not triton and gpu_ops.applies(image)
    count, geometries_ = math.prod(batch), encoder_geometries((height, width), factors)
    kernel_tables = kernel_layout = None
    if kernel:
        kernel_layout = _kernel_layout(count, (height, width), factors)
        if whole is not None:
            kernel_tables = _whole_quality_kernel_tables(whole, count, channels)
    return EncodePlan(
        mode, rounding, batch, channels, (height, width), work, factors, geometries_,
        tables, matrix, kernel, needs_grad(image, tables, matrix), kernel_tables, kernel_layout, backend, triton or triton_ops, triton_ops,
    )


@lru_cache(maxsize=256)
def _whole_quality_kernel_tables(quality: int, count: int, channels: int) -> tuple:
    """The compiled codec's encoder and decoder tables (read-only) for a
    batch of ``count`` images of a whole-number quality, in exact mode."""
    encoder, decoder = (a[quality : quality + 1] for a in _every_whole_quality_kernel_tables(channels))
    if count != 1:
        encoder, decoder = np.repeat(encoder, count, axis=0), np.repeat(decoder, count, axis=0)
        encoder.flags.writeable = decoder.flags.writeable = False
    return encoder, decoder


@lru_cache(maxsize=None)
def _every_whole_quality_kernel_tables(channels: int) -> tuple:
    # qualities 0..100 as the kernel reads them, built together (as _every_whole_quality_tables)
    tables = _every_whole_quality_tables(True, torch.float32, torch.device("cpu"))
    encoder = exact.encoder_tables(tables, channels)
    decoder = exact.decoder_tables(tables[:, [min(c, 1) for c in range(channels)]])
    encoder.flags.writeable = decoder.flags.writeable = False
    return encoder, decoder


class DecodePlan(NamedTuple):
    """One decode, decided: what :func:`diffjpeg.codec.pipeline.decode` runs.

    ``components`` ``(count, rows, cols, 8, 8)`` and ``tables`` ``(count, C,
    8, 8)`` (each component's) in ``work``; ``matrix``: the YCbCr to RGB
    matrix where the color space takes one (``None``: libjpeg's); ``kernel``:
    the compiled exact decoder takes them (:func:`diffjpeg.backends.exact.decode`);
    ``triton``: the GPU's fused exact decoder does (:func:`diffjpeg.backends.gpu.decode`);
    ``triton_ops``: through its custom operator (:func:`diffjpeg.backends.gpu_ops.decode`),
    as :class:`EncodePlan`'s."""

    mode: str
    batch: torch.Size
    size: tuple[int, int]
    work: torch.dtype
    color_space: str
    progression: object
    geometries: tuple[ComponentGeometry, ...]
    components: tuple[Tensor, ...]
    tables: Tensor
    matrix: Tensor | None
    kernel: bool
    backend: str = "auto"
    triton: bool = False
    triton_ops: bool = False

    @property
    def count(self) -> int:
        return math.prod(self.batch)


def decode_plan(coefficients, mode, ycbcr_to_rgb, finite: bool = False, backend: str = "auto") -> DecodePlan:
    """:func:`diffjpeg.decode`'s arguments checked and resolved; ``finite``:
    the coefficients are known finite (encode's, unless a custom matrix
    overflowed), not scanned again."""
    if not isinstance(coefficients, Coefficients):
        raise TypeError(f"coefficients must be diffjpeg.Coefficients, got {type(coefficients).__name__}")
    check_choice("mode", mode, MODES)
    c = coefficients
    device = c.y.device
    check_backend(backend, device)
    named = dict(zip([f"coefficients.{n}" for n in ("y", "cb", "cr", "k")[: len(c.components)]] + ["coefficients.qtables"], c.components + [c.qtables]))
    for name, t in named.items():
        check_device(name, t, device)
    if not finite:
        check_all_finite(named)
    color.check_decoder_matrix(c.color_space, ycbcr_to_rgb)
    batch = c.batch_shape
    geometries_ = tuple(c.geometries())
    for ci, (blocks, geo) in enumerate(zip(c.components, geometries_)):
        expected = batch + geo.blocks + (8, 8)
        if blocks.shape != expected:
            raise ValueError(f"component {ci} has shape {tuple(blocks.shape)}, expected {tuple(expected)}")
    count = math.prod(batch)
    work = working_dtype(c.y.dtype)
    tables = c.component_qtables().reshape(count, -1, 8, 8).to(work)
    components = tuple(b.reshape(count, *b.shape[len(batch) :]).to(work) for b in c.components)
    matrix = matrix_tensor("ycbcr_to_rgb", ycbcr_to_rgb, batch, work, device) if c.color_space in color.TAKES_MATRIX else None
    kernel = mode == "exact" and backend in ("auto", "native") and exact.decode_applies(list(components), tables, list(geometries_), matrix, c.color_space)
    fused = mode == "exact" and not kernel and backend in ("auto", "triton") and matrix is None and c.color_space in gpu.DECODER_COLOR_SPACES
    triton = fused and gpu.applies(tables, *components)
    triton_ops = fused and not triton and gpu_ops.applies(tables, *components)  # traced or transformed
    return DecodePlan(mode, batch, c.size, work, c.color_space, c.progression, geometries_, components, tables, matrix, kernel, backend,
                      triton or triton_ops, triton_ops)
