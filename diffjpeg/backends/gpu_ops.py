"""Exact mode's fused GPU codec as PyTorch custom operators (issue 29;
defined in :mod:`diffjpeg.backends.gpu_operators`, registered with Triton's
import by :func:`diffjpeg.backends.gpu.available`: not at every import of
diffjpeg, which they would slow by 10 ms), for
where :func:`diffjpeg.backends.gpu.encode` and :func:`~diffjpeg.backends.gpu.decode`
decline although the kernels could run: while ``torch.compile`` traces (a
fake tensor has no data for a kernel to read) and under ``torch.func``
transforms (their wrapper tensors have no data pointer). Eager calls keep
the direct path: a custom op's dispatch costs more than a Python call
(measured on the CPU with the kernels stubbed out: about 35 us a call
through the op against 9 us direct, and 25 us more for :func:`encode`'s
checks; :mod:`diffjpeg.codec.plan` takes the ops only where the direct
path cannot run).

* ``diffjpeg::exact_encode(Tensor image, Tensor tables, int[] sampling,
  ScalarType work, bool with_dct) -> Tensor[]``: ``image`` ``(B, C, H, W)``
  (C = 1 or 3), ``tables`` ``(B or 1, 2, 8, 8)``, ``sampling`` each
  component's ``(h, v)`` flattened: ``[h0, v0, h1, v1, ...]``. Returns each
  component's quantized blocks ``(B, rows, cols, 8, 8)`` in ``work``, then
  with ``with_dct`` each component's DCT.
* ``diffjpeg::exact_decode(Tensor[] components, Tensor tables, int[]
  sampling, int[] size, ScalarType out_dtype, str color_space) -> Tensor``:
  pixels ``(B, C, H, W)`` in ``out_dtype`` from blocks ``(B, rows, cols, 8,
  8)`` and each component's table ``tables`` ``(B, C, 8, 8)``.

The geometries are rebuilt from ``sampling`` and the size as the codec
builds them (the encoder's with the luma factors as the largest,
:func:`diffjpeg.codec.plan.encoder_geometries`; the decoder's with
:func:`diffjpeg.core.geometry.geometries`); :func:`encode` and
:func:`decode` decline (``None``) where that does not give the caller's
geometries, and wherever the kernels would decline (:func:`diffjpeg.backends.gpu.encoder_takes`,
:func:`~diffjpeg.backends.gpu.decoder_takes`), since an op
must return its result: these checks read shapes and dtypes only.

Facts relied on (PyTorch 2.13's ``torch.library`` documentation):
``custom_op`` builds an operator from a type-annotated function (``int`` ->
``SymInt``, ``list[int]`` -> ``SymInt[]``, ``torch.dtype`` ->
``ScalarType``, ``list[Tensor]`` -> ``Tensor[]``), which ``torch.compile``
never traces into (opaque: one node of the graph); its outputs must not
alias its inputs or each other (every output here is a fresh tensor).
``register_fake`` gives its outputs' shapes and dtypes for fake tensors
(tracing) without reading data. ``register_vmap``'s function takes
``(info, in_dims, *args)``, ``in_dims`` in the arguments' structure (a list
argument gets a list) with ``None`` for an argument without the vmapped
dimension, ``info.batch_size`` that dimension's size, and returns
``(output, out_dims)`` (one int for every output); the op called inside it
runs below the vmap level. Without a registered autograd formula an op's
backward raises: the codec passes detached tensors (its outputs are
values; the gradients come from the stages' adjoints, as on the direct path).
``triton_op`` is not used: it wants an implementation of PyTorch operators
and wrapped kernel launches only, traced as such, while the kernel modules'
wrappers compute launch parameters in Python (and under Triton's
interpreter run kernels as Python functions).
"""
from __future__ import annotations

import torch
from torch import Tensor

from ..core.check import traced
from ..core.geometry import component_geometry
from ..core.geometry import geometries as decoder_geometries
from . import gpu


def applies(*tensors: Tensor) -> bool:
    """Whether the ops take these tensors where :func:`diffjpeg.backends.gpu.applies`
    cannot: ``torch.compile`` tracing or a ``torch.func`` transform active
    (:func:`diffjpeg.core.check.traced`),
    every tensor on the kernels' device, Triton importable."""
    if not traced():
        return False
    device = gpu.device_type()
    return all(t.device.type == device for t in tensors) and gpu.available()


def factor_pairs(sampling) -> tuple[tuple[int, int], ...]:
    return tuple((int(sampling[i]), int(sampling[i + 1])) for i in range(0, len(sampling), 2))


def encoder_geometries(size, sampling) -> tuple:
    factors = factor_pairs(sampling)
    return tuple(component_geometry((int(size[0]), int(size[1])), f, factors[0]) for f in factors)


def _same(a, b) -> bool:
    # field by field: plain ints and tuples, which dynamo compares as constants
    fields = ("factors", "scale", "downsampled", "blocks", "padded")
    return len(a) == len(b) and all(getattr(x, f) == getattr(y, f) for x, y in zip(a, b) for f in fields)


def encode(x: Tensor, tables: Tensor, geometries, work: torch.dtype, with_dct: bool):
    """:func:`diffjpeg.backends.gpu.encode` through ``diffjpeg::exact_encode``
    (the same arguments and result); ``None`` where the kernel would
    decline. The caller checks the device (:func:`applies`)."""
    if not gpu.encoder_takes(x, tables, geometries, work):
        return None
    sampling = [int(v) for g in geometries for v in g.factors]
    if not _same(encoder_geometries(x.shape[-2:], sampling), geometries):
        return None
    out = torch.ops.diffjpeg.exact_encode(x.detach(), tables.detach(), sampling, work, with_dct)
    k = len(geometries)
    return list(out[:k]), (list(out[k:]) if with_dct else None)


def decode(components, tables: Tensor, geometries, size: tuple[int, int], out_dtype: torch.dtype, color_space: str):
    """:func:`diffjpeg.backends.gpu.decode` through ``diffjpeg::exact_decode``
    (the same arguments and result); ``None`` where the kernels would
    decline. The caller checks the device (:func:`applies`)."""
    if not gpu.decoder_takes(components, tables, geometries, size, out_dtype, color_space):
        return None
    height, width = size
    sampling = [int(v) for g in geometries for v in g.factors]
    if not _same(decoder_geometries(size, factor_pairs(sampling)), geometries):
        return None
    return torch.ops.diffjpeg.exact_decode([c.detach() for c in components], tables.detach(), sampling, [int(height), int(width)], out_dtype, color_space)
