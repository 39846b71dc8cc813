"""Input checks, in one place (as kornia's ``core/check.py``).

Bad input gets a ``ValueError`` or ``TypeError`` that names the argument and
what is allowed, never a NaN, a crash or a silently wrong result. Checks that
read values back to Python (NaN, ranges) run eagerly and are skipped while
``torch.compile`` traces; shape, type and device checks always run. Under
``torch.func.vmap`` (also inside ``vmap(grad(f))``, but not under ``grad``,
``jacrev``'s forward pass or ``vjp``, whose tensors hold their values) no
value is checked either: a batched tensor cannot be read back to Python, so
NaN, an image on another scale or a quality outside [0, 100] go unreported
there (:func:`vmapped`).

Decisions, and why:

* Images are tensors. A PIL image, a numpy array, a list or a number gets a
  ``TypeError`` that says how to convert it (``pil_to_tensor``,
  ``torch.from_numpy``): guessing the layout (``(H, W, C)`` or ``(C, H, W)``)
  and the range of an array would be a silent source of wrong results.
* Float images are in [0, 1]. Values a little outside (a network's
  overshoot, added noise) are clipped, straight-through, as documented; values
  outside :data:`FLOAT_IMAGE_RANGE` (one whole range beyond either end) mean
  another scale, almost always [0, 255] or a mean/std-normalized image, which
  clipping would turn into an almost white or black image: a ``ValueError``,
  not a warning, because a warning shown once is easily lost in a training
  loop while every result after it is wrong. The check shares the one
  read-back (minimum and maximum) of the NaN/Inf check, so it costs no
  extra device sync, and like it is skipped while ``torch.compile`` traces
  (no graph break). Where a compiled first pass reads the image anyway (the
  exact kernel, float's scaling loop), it checks the range as it reads, and
  only an image it refuses is read again, for the message
  (:func:`check_image_values`). Whoever does want values far outside clipped with an identity
  gradient can do it explicitly: ``x - (x - x.clamp(0, 1)).detach()``.
* Numbers are Python's or numpy's (``numbers.Real``), or one-element tensors
  where a tensor is allowed; ``bool`` is refused (``True`` as a quality is a
  mistake, not 1).
* A subsampling is a name (``"4:2:0"``) or Pillow's number for it (0, 1, 2;
  torchvision's ``v2.JPEG`` and Pillow's ``Image.save`` take these).
"""
from __future__ import annotations

import functools
import math
import numbers

import torch
from torch import Tensor

from .geometry import PILLOW_SUBSAMPLING, SUBSAMPLINGS
from .modes import MODES, Mode
from .precision import full_precision

# Float image values outside this interval are refused: the image is on another scale (module docstring).
FLOAT_IMAGE_RANGE = (-1.0, 2.0)


def check_choice(name: str, value, allowed) -> None:
    """``ValueError`` unless ``value`` is one of the strings ``allowed``.

    Example:
        >>> check_choice("mode", "exact", MODES)
    """
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(f"{name} must be one of {tuple(allowed)}, got {value!r}")


def check_blocks(name: str, blocks) -> None:
    """``blocks`` must be a tensor of ``(..., 8, 8)`` blocks.

    Example:
        >>> check_blocks("blocks", torch.zeros(2, 8, 9))
        Traceback (most recent call last):
        ...
        ValueError: blocks must be a tensor of shape (..., 8, 8), got (2, 8, 9)
    """
    if not isinstance(blocks, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape (..., 8, 8), got {type(blocks).__name__}")
    if blocks.dim() < 2 or blocks.shape[-2:] != (8, 8):
        raise ValueError(f"{name} must be a tensor of shape (..., 8, 8), got {tuple(blocks.shape)}")


def check_mode(mode: Mode) -> None:
    """A stage's ``mode``: one of :data:`MODES`."""
    check_choice("mode", mode, MODES)


def checking_values() -> bool:
    """Whether value checks run: eagerly yes, while ``torch.compile`` traces
    or under ``torch.func.vmap`` (:func:`vmapped`) no."""
    return not torch.compiler.is_compiling() and not vmapped()


# torch 2.13: torch._C._are_functorch_transforms_active() is what
# torch.autograd.Function.apply asks before it routes a call through
# functorch; one C call (about 40 ns), no tensor to look at.
_transforms_active = torch._C._are_functorch_transforms_active


def transformed() -> bool:
    """Whether a ``torch.func`` transform (``grad``, ``vmap``, ``jacrev``,
    ``vjp``, ``jvp``) is active. Its tensors are then wrappers without storage
    (no data pointer: a compiled kernel cannot read them), so every compiled
    kernel declines while one is, and the tensor forms run: the same values.

    Example:
        >>> transformed(), torch.func.vmap(lambda x: torch.tensor(transformed()))(torch.ones(1)).item()
        (False, True)
    """
    return _transforms_active()


def traced() -> bool:
    """Whether the tensors in hand may hold no data: ``torch.compile``
    traces (fake tensors) or a ``torch.func`` transform is active (wrappers
    without storage, :func:`transformed`). Compiled kernels, which read data
    pointers, decline then, and stages write no ``out=`` into views (neither
    traces nor vmaps right)."""
    return torch.compiler.is_compiling() or _transforms_active()


def vmapped() -> bool:
    """Whether a ``torch.func.vmap`` is among the active transforms (alone,
    or around or inside ``grad``): its batched tensors cannot be read back
    to Python (``.tolist()``, ``bool()``)."""
    if not _transforms_active():
        return False
    from torch._C._functorch import TransformType, get_interpreter_stack  # only under a transform

    return any(level.key() == TransformType.Vmap for level in get_interpreter_stack() or ())


def check_reverse_mode(*tensors: Tensor) -> None:
    """``NotImplementedError`` under forward-mode differentiation
    (``torch.func.jvp``, ``jacfwd``; ``tensors`` holding a tangent of
    ``torch.autograd.forward_ad``): the codec's derivatives are backward
    rules (its exact and rounded values come from forms without a
    derivative), so a tangent would silently come out zero. Reverse mode
    (``grad``, ``vjp``, ``jacrev``, ``backward``) works."""
    if torch.compiler.is_compiling():  # torch.compile differentiates in reverse mode; nothing to ask
        return
    forward = False
    if torch.autograd.forward_ad._current_level >= 0:  # inside a dual_level: a tangent on one of them?
        forward = any(torch.autograd.forward_ad.unpack_dual(t).tangent is not None for t in tensors)
    if not forward and _transforms_active():
        from torch._C._functorch import TransformType, get_interpreter_stack

        forward = any(level.key() == TransformType.Jvp for level in get_interpreter_stack() or ())
    if forward:
        raise NotImplementedError(
            "diffjpeg has no forward-mode derivative (torch.func.jvp, jacfwd, torch.autograd.forward_ad): "
            "use reverse mode (torch.func.grad, vjp, jacrev, or .backward())"
        )


def eager(fn):
    """``fn`` kept out of ``torch.compile``'s graphs (a graph break around each
    call), as ``torch.compiler.disable`` does, without importing
    ``torch._dynamo`` (a second or more) when diffjpeg is imported: the
    disabled form is made on the first call under compilation, when dynamo is
    loaded anyway. Eager calls call ``fn`` itself.

    Example:
        >>> eager(lambda x: x + 1)(1)
        2
    """
    disabled = None

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        nonlocal disabled
        if not torch.compiler.is_compiling():
            return fn(*args, **kwargs)
        if disabled is None:
            disabled = torch.compiler.disable(fn)
        return disabled(*args, **kwargs)

    return wrapper


def extremes(t: Tensor) -> tuple[Tensor, Tensor]:
    """``t``'s minimum and maximum (NaN if ``t`` holds one; not empty): one
    pass (``aminmax``) where ``t`` is contiguous; elsewhere ``amin`` and
    ``amax``, two passes that read ``t`` where it lies, as ``aminmax`` first
    copies a strided tensor (a strip of a large image: twice the time).

    Example:
        >>> extremes(torch.tensor([[3.0, -1.0], [2.0, 5.0]]).t())
        (tensor(-1.), tensor(5.))
    """
    if t.is_contiguous():
        return torch.aminmax(t)
    return t.amin(), t.amax()


def check_finite(name: str, t: Tensor) -> None:
    """``ValueError`` naming ``name`` if float tensor ``t`` holds NaN or Inf."""
    check_all_finite({name: t})


def check_all_finite(named: dict[str, Tensor]) -> None:
    """:func:`check_finite` of every float tensor of ``named`` (name: tensor,
    all on one device) with one read-back, not one each: on a GPU each waits
    for the device.

    Example:
        >>> check_all_finite({"a": torch.ones(2), "b": torch.tensor([1.0, float("nan")])})
        Traceback (most recent call last):
          ...
        ValueError: b contains NaN or Inf
    """
    check_reverse_mode(*named.values())  # (decode's one check of every call)
    if not checking_values():
        return
    floats = {n: t.detach() for n, t in named.items() if t.is_floating_point() and t.numel()}
    if not floats:
        return
    with full_precision(next(iter(floats.values())).device):  # min and max propagate NaN: one pass each
        flags = [torch.isfinite(torch.stack([lo.float(), hi.float()])).all() for lo, hi in map(extremes, floats.values())]
        finite = torch.stack(flags).tolist()
    for name, ok in zip(floats, finite):
        if not ok:
            raise ValueError(f"{name} contains NaN or Inf")


def is_number(value) -> bool:
    """A real number of Python or numpy, not a bool.

    Example:
        >>> import numpy as np
        >>> is_number(np.int64(50)), is_number(2.5), is_number(True)
        (True, True, False)
    """
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def check_subsampling(subsampling, name: str = "subsampling") -> str:
    """The subsampling's name, from a name or Pillow's number for it.

    ``ValueError`` naming ``name`` for anything else.

    Example:
        >>> check_subsampling(2), check_subsampling("4:4:4")
        ('4:2:0', '4:4:4')
    """
    if isinstance(subsampling, str) and subsampling in SUBSAMPLINGS:
        return subsampling
    if isinstance(subsampling, numbers.Integral) and not isinstance(subsampling, bool):
        for label, number in PILLOW_SUBSAMPLING.items():
            if number == subsampling:
                return label
    pillow = ", ".join(f"{n} ({label})" for label, n in PILLOW_SUBSAMPLING.items())
    raise ValueError(f"{name} must be one of {tuple(SUBSAMPLINGS)} or Pillow's number for it, {pillow}; got {subsampling!r}")


def _conversion_hint(value) -> str:
    """How to turn a non-tensor image into one."""
    kind = type(value)
    if kind.__module__.startswith("PIL."):
        return ("; convert a PIL image with torchvision.transforms.functional.pil_to_tensor(image) (uint8, (C, H, W)) "
                "or torch.from_numpy(numpy.array(image)).permute(2, 0, 1)")
    if kind.__module__ == "numpy":
        return ("; convert a numpy array with torch.from_numpy(array), and an (H, W, C) array with "
                "torch.from_numpy(array).permute(2, 0, 1) (uint8, or float in [0, 1])")
    if isinstance(value, (list, tuple)):
        return "; convert nested lists with torch.tensor(value) (uint8, or float in [0, 1])"
    if isinstance(value, numbers.Number):
        return "; a single number is not an image"
    return ""


def check_image(image, name: str = "image", values: bool = True) -> tuple[torch.Size, int, int, int]:
    """An image ``(..., C, H, W)``, C = 1 or 3, not empty, uint8 or float
    with finite values in :data:`FLOAT_IMAGE_RANGE` (module docstring);
    returns ``(batch shape, C, H, W)``. ``TypeError`` with a hint for
    PIL images, numpy arrays, lists and numbers. ``values=False`` leaves
    the values to :func:`check_image_values`, for a caller whose first pass
    over the image checks them as it reads them (the compiled encoder).

    Example:
        >>> check_image(torch.rand(2, 3, 8, 16))
        (torch.Size([2]), 3, 8, 16)
    """
    if not isinstance(image, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape (..., C, H, W), got {type(image).__name__}{_conversion_hint(image)}")
    if image.dim() < 3:
        raise ValueError(f"{name} must have shape (..., C, H, W) with C = 1 or 3, got shape {tuple(image.shape)}")
    *batch, channels, height, width = image.shape
    if channels not in (1, 3):
        raise ValueError(f"{name} must have 1 (grayscale) or 3 (RGB) channels, got {channels} in shape {tuple(image.shape)}")
    if image.numel() == 0:
        raise ValueError(f"{name} is empty: shape {tuple(image.shape)}")
    check_reverse_mode(image)
    if image.dtype != torch.uint8 and not image.is_floating_point():
        raise TypeError(f"{name} must be float in [0, 1] or uint8, got dtype {image.dtype}")
    if values:
        check_image_values(image, name)
    return torch.Size(batch), channels, height, width


def check_image_values(image: Tensor, name: str = "image") -> None:
    """``ValueError`` naming ``name`` if float ``image`` (shape and dtype
    checked by :func:`check_image`) holds NaN or Inf, or values outside
    :data:`FLOAT_IMAGE_RANGE`; nothing for uint8, or while ``torch.compile`` traces.

    Example:
        >>> check_image_values(torch.full((1, 8, 8), 255.0))
        Traceback (most recent call last):
          ...
        ValueError: image is float with values in [255, 255]; float images must lie in [0, 1] (values within [-1, 2] are clipped); for a [0, 255] image divide by 255 or pass uint8
    """
    if not image.is_floating_point() or not checking_values():
        return
    # one read-back for both checks: min and max propagate NaN (autocast off: stack of half tensors under it fails)
    with full_precision(image.device):
        lo, hi = torch.stack(extremes(image.detach())).tolist()
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError(f"{name} contains NaN or Inf")
    low, high = FLOAT_IMAGE_RANGE
    if lo < low or hi > high:
        scale = "; for a [0, 255] image divide by 255 or pass uint8" if hi > high and lo >= 0 else ""
        raise ValueError(
            f"{name} is float with values in [{lo:g}, {hi:g}]; float images must lie in [0, 1] (values within "
            f"[{low:g}, {high:g}] are clipped){scale}"
        )


def check_device(name: str, value, device: torch.device) -> None:
    """``ValueError`` if tensor ``value`` lies on another device than the image's."""
    if isinstance(value, Tensor) and value.device != device:
        # torch.device("cuda") and "cuda:0" name the same device
        same = value.device.type == device.type and (value.device.index is None or device.index is None)
        if not same:
            raise ValueError(
                f"{name} is on {value.device} but the image (or coefficients) on {device}: move it with .to({str(device)!r})"
            )
