"""Random JPEG compression as a data augmentation: :class:`RandomJPEG`, :func:`random_jpeg`.

Each sample of a batch is compressed, with probability ``p``, at a quality
drawn uniformly from ``[low, high]`` and a chroma subsampling drawn from the
given choices; the others pass through unchanged. The compression is
:func:`diffjpeg.jpeg`, so ``mode="exact"`` gives what saving and loading
the image with Pillow at the drawn quality gives, and gradients flow to the
image.

Choices made here, and why:

* Qualities are whole numbers by default, each of ``low..high`` equally likely,
  as in Pillow-based augmentations (torchvision's ``v2.JPEG``, albumentations):
  libjpeg takes an int, and drawing reals that the exact codec rounds would
  make ``low`` and ``high`` half as likely as the rest. ``fractional=True``
  draws reals in ``[low, high]`` for the real-valued forward passes, whose
  tables change continuously with quality.
* Subsampling is drawn per sample. The samples drawn for each subsampling are
  compressed together, one :func:`~diffjpeg.jpeg` call per subsampling, so a
  varied batch costs no more than a uniform one.
* The random draws run eagerly on the CPU (``torch.compiler.disable``), from
  torch's global generator or the one given: ``torch.manual_seed`` makes them
  reproducible, DataLoader workers (which PyTorch seeds one by one) get
  distinct streams, and the same seed gives the same draws on every device and
  under ``torch.compile``.
"""
from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .check import MODES, check_choice, check_image
from .codec import jpeg
from .deprecation import deprecated_alias, keyword_only
from .geometry import SUBSAMPLINGS
from .rounding import DEFAULT_ROUNDING, Rounding, as_rounding


@dataclass(frozen=True)
class RandomJPEGParams:
    """What one call of :class:`RandomJPEG` drew, per sample.

    Attributes:
        applied: bool tensor of the image's batch shape (``()`` for one image):
            whether the sample was compressed.
        quality: float32 tensor of the batch shape, the drawn quality. Drawn for
            every sample; used where ``applied``.
        subsampling_index: int64 tensor of the batch shape, an index into
            ``subsamplings``.
        subsamplings: the subsampling choices the draw picked from.

    The tensors lie on the device of the generator that drew them (the CPU
    for torch's global generator).

    Example:
        >>> params = RandomJPEGParams(torch.tensor([True]), torch.tensor([50.0]), torch.tensor([0]), ("4:2:0",))
        >>> params.subsampling
        ['4:2:0']
    """

    applied: Tensor
    quality: Tensor
    subsampling_index: Tensor
    subsamplings: tuple[str, ...]

    @property
    def subsampling(self) -> list[str]:
        """The drawn subsampling of each sample, in row-major order of the batch."""
        return [self.subsamplings[i] for i in self.subsampling_index.reshape(-1).tolist()]


# ---------------------------------------------------------------- validation
def _is_number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _check_quality_range(quality, fractional: bool) -> tuple[float, float]:
    if _is_number(quality):
        low = high = quality
    elif isinstance(quality, (tuple, list)) and len(quality) == 2 and all(_is_number(q) for q in quality):
        low, high = quality
    else:
        raise TypeError(f"quality must be a number or a (low, high) pair of numbers in [0, 100], got {quality!r}")
    low, high = float(low), float(high)
    if not (math.isfinite(low) and math.isfinite(high) and 0 <= low <= high <= 100):
        raise ValueError(f"quality must satisfy 0 <= low <= high <= 100, got {quality!r}")
    if not fractional and not (low.is_integer() and high.is_integer()):
        raise ValueError(f"quality bounds must be whole numbers unless fractional=True, got {quality!r}")
    return low, high


def _check_subsamplings(subsampling) -> tuple[str, ...]:
    choices = (subsampling,) if isinstance(subsampling, str) else subsampling
    if not isinstance(choices, Sequence) or isinstance(choices, str) or len(choices) == 0 or not all(
        isinstance(s, str) and s in SUBSAMPLINGS for s in choices
    ):
        raise ValueError(f"subsampling must be one of {tuple(SUBSAMPLINGS)} or a non-empty sequence of them, got {subsampling!r}")
    return tuple(choices)


def _check_options(quality, p, subsampling, mode, rounding, fractional, generator):
    if not isinstance(fractional, bool):
        raise TypeError(f"fractional must be a bool, got {type(fractional).__name__}")
    low, high = _check_quality_range(quality, fractional)
    if not _is_number(p):
        raise TypeError(f"p must be a number in [0, 1], got {type(p).__name__}")
    if not (0.0 <= float(p) <= 1.0):  # also rejects NaN
        raise ValueError(f"p must be in [0, 1], got {p}")
    subsamplings = _check_subsamplings(subsampling)
    check_choice("mode", mode, MODES)
    rounding = as_rounding(rounding)
    if fractional and mode == "exact":
        raise ValueError(
            "fractional=True needs mode='float' or 'soft': the exact codec, like libjpeg, takes whole-number qualities"
        )
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
    return low, high, float(p), subsamplings, rounding


# ---------------------------------------------------------------- drawing
@torch.compiler.disable
def _draw(batch: torch.Size, low, high, p, fractional, subsamplings, generator) -> RandomJPEGParams:
    """Always the same three draws of ``prod(batch)`` values, whatever ``p`` and the
    image, so one seed gives the same qualities for any ``p``."""
    count = math.prod(batch)
    device = generator.device if generator is not None else torch.device("cpu")
    applied = torch.rand(count, generator=generator, device=device) < p  # in [0, 1): p = 1 always, p = 0 never
    if fractional:
        quality = (low + (high - low) * torch.rand(count, generator=generator, device=device)).clamp_(low, high)
    else:
        quality = torch.randint(int(low), int(high) + 1, (count,), generator=generator, device=device).float()
    index = torch.randint(0, len(subsamplings), (count,), generator=generator, device=device)
    return RandomJPEGParams(applied.reshape(batch), quality.reshape(batch), index.reshape(batch), subsamplings)


def _apply(image: Tensor, params: RandomJPEGParams, p: float, options: dict) -> Tensor:
    """Compress the samples ``params`` selects; the others are the input itself."""
    *batch, channels, height, width = image.shape
    count = math.prod(batch)
    x = image.reshape(count, channels, height, width)
    applied = params.applied.reshape(count)
    index = params.subsampling_index.reshape(count)
    quality = params.quality.reshape(count)
    names = list(dict.fromkeys(params.subsamplings))  # distinct, in order
    if p == 0.0:
        return image
    if p == 1.0 and len(names) == 1:  # decided by the arguments alone: no data-dependent branch
        return jpeg(x, quality.to(x.device), subsampling=names[0], **options).reshape(image.shape)

    def chose(name: str) -> Tensor:
        positions = [i for i, s in enumerate(params.subsamplings) if s == name]
        return applied & torch.isin(index, torch.tensor(positions, device=index.device))

    if torch.compiler.is_compiling():
        # Static shapes for the compiler: every choice on the whole batch, then select.
        out = x
        for name in names:
            mask = chose(name).to(x.device).reshape(count, 1, 1, 1)
            out = torch.where(mask, jpeg(x, quality.to(x.device), subsampling=name, **options), out)
        return out.reshape(image.shape)

    applied, index, quality = applied.cpu(), index.cpu(), quality.cpu()  # index on the host: no device sync
    if not bool(applied.any()):
        return image
    out = x
    for name in names:
        rows = chose(name).nonzero().squeeze(1)
        if rows.numel() == count:
            out = jpeg(x, quality.to(x.device), subsampling=name, **options)
        elif rows.numel():
            rows = rows.to(x.device)
            compressed = jpeg(x.index_select(0, rows), quality.to(x.device)[rows], subsampling=name, **options)
            out = out.index_copy(0, rows, compressed)
    return out.reshape(image.shape)


def _random_jpeg(image, low, high, p, subsamplings, fractional, generator, options, return_params):
    if not isinstance(image, Tensor):
        check_image(image)  # raises the TypeError naming image
    subclass = type(image) if type(image) is not Tensor and not isinstance(image, nn.Parameter) else None
    plain = image.as_subclass(Tensor) if subclass is not None else image
    batch, *_ = check_image(plain)
    params = _draw(batch, low, high, p, fractional, subsamplings, generator)
    out = _apply(plain, params, p, options)
    if subclass is not None:
        out = image if out is plain else out.as_subclass(subclass)  # keep e.g. torchvision's tv_tensors.Image
    return (out, params) if return_params else out


# ---------------------------------------------------------------- public API
_ORDER = ("p", "subsampling", "forward", "rounding")  # before 0.2, by position


@keyword_only(2, _ORDER)
def random_jpeg(
    image: Tensor,
    quality: float | tuple[float, float],
    *,
    p: float = 1.0,
    subsampling: str | Sequence[str] = "4:2:0",
    mode: str = "exact",
    rounding: str | Rounding = DEFAULT_ROUNDING,
    fractional: bool = False,
    generator: torch.Generator | None = None,
    return_params: bool = False,
):
    """Compress each sample with probability ``p`` at a random quality; functional :class:`RandomJPEG`.

    Arguments as in :class:`RandomJPEG`, plus ``image`` and ``return_params``
    (also return the :class:`RandomJPEGParams` drawn).

    Example:
        >>> y, params = random_jpeg(torch.rand(2, 3, 8, 8), (30, 90), return_params=True)
        >>> y.shape, params.quality.shape
        (torch.Size([2, 3, 8, 8]), torch.Size([2]))
    """
    low, high, p, subsamplings, rounding = _check_options(quality, p, subsampling, mode, rounding, fractional, generator)
    options = dict(mode=mode, rounding=rounding)
    return _random_jpeg(image, low, high, p, subsamplings, fractional, generator, options, return_params)


class RandomJPEG(nn.Module):
    """Random JPEG compression of each sample, differentiable, as a layer or a transform.

    Args:
        quality: ``(low, high)`` in [0, 100] with ``low <= high``, or one number
            (always that quality). Qualities are drawn uniformly: whole numbers
            ``low..high``, each equally likely, by default (bounds must then be
            whole numbers); reals in ``[low, high]`` with ``fractional=True``.
            libjpeg's scaling: 0 acts as 1.
        p: probability in [0, 1] that a sample is compressed; the others are
            returned unchanged (gradient: identity).
        subsampling: ``"4:4:4"``, ``"4:2:2"``, ``"4:2:0"``, or a sequence of
            them to draw from uniformly per sample (repeat an entry to weight
            it). Ignored for grayscale. Keyword-only, as is every parameter
            after ``quality``.
        mode, rounding: as in :func:`diffjpeg.jpeg`.
        fractional: draw real qualities (``mode="float"`` or ``"soft"`` only).
        generator: a ``torch.Generator`` to draw from (draws happen on its
            device); ``None`` draws from torch's global CPU generator.

    Input ``(..., C, H, W)``, C = 3 or 1, float in [0, 1] or uint8; a single
    image ``(C, H, W)`` is one sample. Output: same shape, dtype, device and
    tensor subclass (e.g. torchvision's ``tv_tensors.Image``); uint8 in, uint8
    out. ``forward(image, return_params=True)`` also returns the
    :class:`RandomJPEGParams` drawn.

    Randomness: every call draws, per sample, whether to compress, a quality
    and a subsampling index (always all three, so the stream consumed depends
    only on the batch size). With ``generator=None`` these come from torch's
    global RNG: ``torch.manual_seed`` reproduces them, and DataLoader workers,
    which PyTorch seeds with distinct seeds, draw distinct streams. A generator
    passed in is copied into each worker with the same state, so workers would
    repeat each other's draws: prefer the global RNG there.

    Gradients: with respect to the image, through :func:`diffjpeg.jpeg`'s
    surrogates for compressed samples and as the identity for the others. The
    drawn quality is data, not a parameter (see :class:`diffjpeg.DiffJPEG` for a
    learnable one).

    ``torch.compile``: the draws stay eager (one graph break per call) and give
    the same values as without compiling. In a compiled graph every distinct
    subsampling choice is computed on the whole batch and selected with
    ``torch.where`` to keep shapes static; eagerly only the selected samples
    are compressed. Compiling the exact codec with inductor takes minutes on
    the CPU.

    Example:
        >>> augment = RandomJPEG(quality=(30, 90), p=0.5, subsampling=("4:2:0", "4:4:4"))
        >>> x = torch.rand(4, 3, 16, 16, requires_grad=True)
        >>> y, params = augment(x, return_params=True)
        >>> y.sum().backward(); x.grad.shape, params.applied.dtype
        (torch.Size([4, 3, 16, 16]), torch.bool)
    """

    forward_mode = deprecated_alias("forward_mode", "mode")

    @keyword_only(2, _ORDER)
    def __init__(
        self,
        quality: float | tuple[float, float],
        *,
        p: float = 1.0,
        subsampling: str | Sequence[str] = "4:2:0",
        mode: str = "exact",
        rounding: str | Rounding = DEFAULT_ROUNDING,
        fractional: bool = False,
        generator: torch.Generator | None = None,
    ):
        super().__init__()
        self.low, self.high, self.p, self.subsamplings, self.rounding = _check_options(
            quality, p, subsampling, mode, rounding, fractional, generator
        )
        self.mode, self.fractional, self.generator = mode, fractional, generator

    def forward(self, image: Tensor, return_params: bool = False):
        options = dict(mode=self.mode, rounding=self.rounding)
        return _random_jpeg(
            image, self.low, self.high, self.p, self.subsamplings, self.fractional, self.generator, options, return_params
        )

    def extra_repr(self) -> str:
        number = (lambda v: v) if self.fractional else int
        quality = (number(self.low), number(self.high))
        subsampling = self.subsamplings[0] if len(self.subsamplings) == 1 else self.subsamplings
        return (
            f"quality={quality}, p={self.p}, subsampling={subsampling!r}, mode={self.mode!r}, "
            f"rounding={self.rounding!r}, fractional={self.fractional}"
        )
