"""The custom operators of :mod:`diffjpeg.backends.gpu_ops` (its docstring
says what they take and the facts relied on), defined when
:func:`diffjpeg.backends.gpu.available` first finds Triton: registering them
costs 10 ms, which an import of diffjpeg without a GPU should not pay.
"""
from __future__ import annotations

import torch
from torch import Tensor

from ..core.geometry import geometries as decoder_geometries
from . import gpu
from .gpu_ops import encoder_geometries, factor_pairs


@torch.library.custom_op("diffjpeg::exact_encode", mutates_args=())
def exact_encode(image: Tensor, tables: Tensor, sampling: list[int], work: torch.dtype, with_dct: bool) -> list[Tensor]:
    """The fused encoder kernel (:func:`diffjpeg.backends.gpu_encoder.encode`)."""
    geos = encoder_geometries(image.shape[-2:], sampling)
    encoded = gpu._kernels("gpu_encoder").encode(image, tables, geos, work, with_dct)
    if encoded is None:  # encode() checked what the kernel checks
        raise RuntimeError("diffjpeg::exact_encode: the fused encoder declined its arguments")
    quantized, dct = encoded
    return list(quantized) + (list(dct) if with_dct else [])


@exact_encode.register_fake
def _exact_encode_fake(image, tables, sampling, work, with_dct):
    geos = encoder_geometries(image.shape[-2:], sampling)
    quantized = [image.new_empty((image.shape[0], *g.blocks, 8, 8), dtype=work) for g in geos]
    return quantized + ([torch.empty_like(q) for q in quantized] if with_dct else [])


def _fold(t: Tensor, dim: int | None, n: int, count: int, shared: bool = False) -> Tensor:
    """``t`` ``(count or 1, ...)`` with the vmapped dimension ``dim`` (or
    none) as ``(n * count, ...)``; ``shared``: an unbatched ``(1, ...)``
    stays as it is (the encoder reads one table pair for every image)."""
    if dim is None:
        if shared and t.shape[0] == 1:
            return t
        t = t.unsqueeze(0)
    else:
        t = t.movedim(dim, 0)
    return t.expand(n, count, *t.shape[2:]).reshape(n * count, *t.shape[2:])


@exact_encode.register_vmap
def _exact_encode_vmap(info, in_dims, image, tables, sampling, work, with_dct):
    n = info.batch_size
    count = image.shape[0 if in_dims[0] is None else (1 if in_dims[0] == 0 else 0)]
    x = _fold(image, in_dims[0], n, count)
    t = _fold(tables, in_dims[1], n, count, shared=True)
    out = exact_encode(x, t, sampling, work, with_dct)
    return [o.reshape(n, count, *o.shape[1:]) for o in out], 0


@torch.library.custom_op("diffjpeg::exact_decode", mutates_args=())
def exact_decode(
    components: list[Tensor], tables: Tensor, sampling: list[int], size: list[int], out_dtype: torch.dtype, color_space: str,
) -> Tensor:
    """The fused decoder kernels (:func:`diffjpeg.backends.gpu_decoder.decode`)."""
    geos = decoder_geometries(size, factor_pairs(sampling))
    out = gpu._kernels("gpu_decoder").decode(list(components), tables, geos, (int(size[0]), int(size[1])), out_dtype, color_space)
    if out is None:  # decode() checked what the kernels check
        raise RuntimeError("diffjpeg::exact_decode: the fused decoder declined its arguments")
    return out


@exact_decode.register_fake
def _exact_decode_fake(components, tables, sampling, size, out_dtype, color_space):
    return tables.new_empty((tables.shape[0], len(components), size[0], size[1]), dtype=out_dtype)


@exact_decode.register_vmap
def _exact_decode_vmap(info, in_dims, components, tables, sampling, size, out_dtype, color_space):
    n = info.batch_size
    component_dims, tables_dim = in_dims[0], in_dims[1]
    count = tables.shape[0 if tables_dim is None else (1 if tables_dim == 0 else 0)]
    blocks = [_fold(c, d, n, count) for c, d in zip(components, component_dims)]
    out = exact_decode(blocks, _fold(tables, tables_dim, n, count), sampling, size, out_dtype, color_space)
    return out.reshape(n, count, *out.shape[1:]), 0
