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

What is bit for bit, and what is to float rounding (the contract; docs/modes.rst):

* Exact mode's pixels, coefficients, bit counts and files are libjpeg-turbo's
  bit for bit, on every device, dtype, thread count and CPU (integer
  arithmetic: nothing to round).
* Float and soft modes' values and every mode's gradients are real-valued
  computations: another summation order, a fused loop, another vector
  width or device may change them within :func:`rounding_tolerance`.
  Where two paths perform the same operations in the same order, they are
  equal by construction, and the tests hold them so: on the CPU the DCT
  and the color conversion sum each output in one fixed order
  (:func:`diffjpeg.stages.dct.block_transform`, :func:`diffjpeg.stages.color.color_product`),
  so strips and whole images, batches and single images, one thread and
  many, compiled loops and tensor stages give the same bits. The
  quantizer's compiled loop (diffjpeg/backends/_quantize.c) sums a table's
  gradient in one fixed order too (the same bits for any thread count,
  strip or batch), but computes the surrogates' tanh, sine and cosine its
  own way, and the adjoints fold the scaling by 255 into the color
  matrices: soft mode's values and the gradients equal the tensor stages'
  to :func:`rounding_tolerance`, not bit for bit.
* Float mode rounds (coefficients, 8-bit samples): where a value lies within
  rounding error of a half-integer, two paths that differ by float rounding
  may round it apart, by one quantization step or one 8-bit level. The
  bound holds for soft mode's values, and for gradients at the same forward.
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
    if device.type not in _AUTOCAST_DEVICES or not _autocast_enabled(device.type):
        return contextlib.nullcontext()  # already off: entering autocast's context would cost a call's worth of microseconds
    return torch.autocast(device.type, enabled=False)


def _autocast_enabled(device_type: str) -> bool:
    try:
        return torch.is_autocast_enabled(device_type)
    except TypeError:  # torch < 2.4: one query per device type
        return torch.is_autocast_cpu_enabled() if device_type == "cpu" else torch.is_autocast_enabled()


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
def level_table(dtype: torch.dtype, device: torch.device) -> Tensor:
    """``k / 255`` for k in 0..255 in ``dtype`` on ``device``, correctly
    rounded (divided on the CPU: IEEE division; a GPU's may differ), cached:
    what :func:`levels_to_unit` and the GPU decoder gather from."""
    return torch.arange(256, dtype=dtype).div_(255.0).to(device)


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
    table = level_table(dtype, samples.device)
    return table.index_select(0, samples.reshape(-1)).reshape(samples.shape)


ROUNDING_UNITS = 64  # k of rounding_tolerance: units of the working dtype's eps


def rounding_tolerance(dtype: torch.dtype, scale: float) -> float:
    """How far two real-valued computations of the same result (float or
    soft mode's values, a gradient) may lie apart: ``k eps scale``, with
    ``k =`` :data:`ROUNDING_UNITS`, ``eps`` that of the working dtype
    (:func:`working_dtype`: float32, or float64 for float64), ``scale`` the
    largest magnitude of the result; plus one unit in the last place of a
    float16 or bfloat16 result (``eps(dtype) scale``), whose one rounding
    from float32 may go either way.

    Why ``k = 64``: an IEEE operation errs by at most half a unit of its
    result, and the longest chain from an input to one output has about 50:
    the color conversion (3 products, 3 sums), chroma downsampling (3 sums,
    a product), each DCT (two passes of 8 products and 7 sums: 30), the
    quantizer (a division, the surrogate's 4-6 operations, a product), the
    inverse DCT (30), upsampling (4), the inverse color conversion (6) and
    the scaling (2), each at most once per path. The orthonormal transforms
    move an error relative to the signal's scale without growing it, so two
    paths that reorder sums, fuse loops or differ by one unit in a
    transcendental function (tanh, sin) lie within ``k eps scale``. For
    float32 results in [0, 1] that is ``7.6e-6``: 500 times less than one
    8-bit level (1/255), which such a comparison therefore always catches
    (for bfloat16 results near 1, one unit of the output, ``2**-7``, is
    itself two levels).

    Example:
        >>> rounding_tolerance(torch.float32, 1.0) == 64 * 2.0**-23
        True
        >>> rounding_tolerance(torch.float32, 1.0) < 1 / 255 / 500
        True
    """
    tolerance = ROUNDING_UNITS * torch.finfo(working_dtype(dtype)).eps * scale
    if dtype in (torch.float16, torch.bfloat16):
        tolerance += torch.finfo(dtype).eps * scale
    return tolerance
