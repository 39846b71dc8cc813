"""Dtypes, autocast and inference mode: what the stages compute in, whatever the caller's tensors and modes say.

The codec's results must not depend on the input's dtype, on autocast or on
the device. Facts the rest of the package relies on:

* Exact mode's values are integers and are computed in integer tensors
  (int32; int64 only where a bound below is exceeded by hostile input), with
  elementwise operations only: no matrix product, so neither autocast, TF32
  nor a backend's reduced-precision GEMM can touch them, and every device
  with int32 arithmetic (CPU, CUDA, MPS) computes them alike. The bounds that
  keep int32 exact are proven where each integer form is defined.
* The real-valued forms (float and soft modes, and the graph of exact mode)
  run in float32 for uint8, float16, bfloat16 and float32 inputs, in float64
  for float64 inputs (:func:`working_dtype`), with autocast off
  (:func:`full_precision`): results are float32's, rounded once to the
  output dtype at the end.
* Every 8-bit level ``k / 255`` survives the round trip through float16 and
  bfloat16: bfloat16 keeps 8 significant bits, so its rounding error on a
  value in [0, 1] is at most ``2**-9`` (``2**-10`` below 1/2, and so on
  down), less than half a level, ``0.5 / 255``. So ``round(y.float() * 255)``
  recovers the exact levels from any of these dtypes.
* Exact mode's float outputs are the levels ``k / 255`` correctly rounded to
  the working dtype (:func:`levels_to_unit`), on every device: not
  ``samples / 255``, which CUDA computes as ``samples * (1 / 255)`` (its
  division by a Python scalar multiplies by the reciprocal), one unit in the
  last place off for 126 of the 256 levels in float32 (seen on an H200,
  torch 2.11: the CPU and CUDA outputs of one image differed in 40-50% of
  their pixels, by one unit).
* Constant tensors (transform matrices, index and level tables) are built
  once per dtype and device (:func:`cached_constant`), outside inference
  mode: a table first made under ``torch.inference_mode()`` would be an
  inference tensor, which autograd refuses to save, so every later call
  that trains through it (a learned color matrix, the differentiable rate)
  would fail.
"""
from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable

import torch
from torch import Tensor

# device types that torch.autocast knows; others have no autocast to turn off
_AUTOCAST_DEVICES = ("cpu", "cuda", "mps", "xpu", "hpu")


def working_dtype(dtype: torch.dtype) -> torch.dtype:
    """The float dtype the real-valued stages compute in for inputs of ``dtype``.

    Example:
        >>> working_dtype(torch.bfloat16), working_dtype(torch.float64)
        (torch.float32, torch.float64)
    """
    return torch.float64 if dtype == torch.float64 else torch.float32


def full_precision(device: torch.device):
    """A context in which autocast is off on ``device`` (the stages choose their dtypes)."""
    if device.type not in _AUTOCAST_DEVICES:
        return contextlib.nullcontext()
    return torch.autocast(device.type, enabled=False)


def cached_constant(build: Callable[..., Tensor]) -> Callable[..., Tensor]:
    """``build`` (a function of hashable arguments such as a dtype and a
    device, returning a tensor of constants) cached per arguments, and built
    outside inference mode (module docstring); built afresh while
    ``torch.compile`` traces, where the tensor becomes part of the graph.
    Callers must not write into the tensor: every later call shares it.

    Example:
        >>> ramp = cached_constant(lambda n: torch.arange(n))
        >>> with torch.inference_mode():
        ...     t = ramp(3)
        >>> t.is_inference(), ramp(3) is t
        (False, True)
    """

    @functools.lru_cache(maxsize=None)
    def cached(*key) -> Tensor:
        with torch.inference_mode(False):
            return build(*key)

    @functools.wraps(build)
    def get(*key) -> Tensor:
        if torch.compiler.is_compiling():
            return build(*key)
        return cached(*key)

    return get


@cached_constant
def _level_table(dtype: torch.dtype, device: torch.device) -> Tensor:
    return torch.arange(256, dtype=dtype).div_(255.0).to(device)  # divided on the CPU: IEEE division


def levels_to_unit(samples: Tensor, dtype: torch.dtype) -> Tensor:
    """The 8-bit levels ``samples`` (an integer tensor, values 0..255) as
    ``k / 255`` in the float ``dtype``, correctly rounded, the same bits on
    every device: a 256-entry table divided on the CPU (IEEE division) and
    gathered where ``samples`` are (the table cached per dtype and device).

    Example:
        >>> k = torch.tensor([0, 1, 128, 255], dtype=torch.int32)
        >>> torch.equal(levels_to_unit(k, torch.float32), k.float() / 255)
        True
    """
    table = _level_table(dtype, samples.device)
    return table.index_select(0, samples.reshape(-1)).reshape(samples.shape)
