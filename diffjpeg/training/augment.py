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
* The random draws run eagerly on the CPU (``torch.compiler.disable``, applied by :func:`diffjpeg.core.check.eager`), from
  torch's global generator or the one given: ``torch.manual_seed`` makes them
  reproducible, DataLoader workers (which PyTorch seeds one by one) get
  distinct streams, and the same seed gives the same draws on every device and
  under ``torch.compile``.
* A draw is a :class:`RandomJPEGParams`: ``return_params=True`` returns it and
  ``params=`` replays it exactly (kornia's ``params=``); ``same_on_batch``
  makes one draw for the whole batch.
* :class:`RandomJPEG` is one plain ``nn.Module`` that takes samples as
  torchvision's v2 transforms do (``make_params``, then ``transform`` on each
  input of a tuple, list or dict, nested): ``v2.Compose`` hands it
  ``(image, boxes)`` or a dict and gets them back with the images compressed.
  It recognizes ``tv_tensors`` by the module torchvision itself imported
  (``sys.modules``), so it never imports torchvision: ``import diffjpeg`` and
  ``RandomJPEG(...)`` stay cheap, and it pickles by name into DataLoader
  workers, with or without torchvision. ``return_params`` and ``params`` are
  keyword-only, so that a sample's second element is never taken for them.
"""
from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils._pytree import tree_flatten, tree_unflatten

from ..codec.pipeline import jpeg
from ..core.check import check_choice, check_image, check_subsampling, eager, is_number
from ..core.dispatch import BACKENDS, Backend
from ..core.geometry import SUBSAMPLINGS, PillowSubsampling, Subsampling
from ..core.modes import MODES, Mode
from ..stages.rounding import Rounding, RoundingName, as_rounding


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
def _plain(value):
    """A 0-d real tensor as its Python number (the codec's quality takes tensors too); anything else as it is."""
    if isinstance(value, Tensor) and value.dim() == 0 and not value.dtype.is_complex and value.dtype != torch.bool:
        return value.item()
    return value


def _check_quality_range(quality, fractional: bool) -> tuple[float, float]:
    values = [_plain(q) for q in quality] if isinstance(quality, (tuple, list)) else _plain(quality)
    if is_number(values):
        low = high = values
    elif isinstance(values, list) and len(values) == 2 and all(is_number(q) for q in values):
        low, high = values
    else:
        raise TypeError(f"quality must be a number or a (low, high) pair of numbers in [0, 100], got {quality!r}")
    low, high = float(low), float(high)
    if not (math.isfinite(low) and math.isfinite(high) and 0 <= low <= high <= 100):
        raise ValueError(f"quality must satisfy 0 <= low <= high <= 100, got {quality!r}")
    if not fractional and not (low.is_integer() and high.is_integer()):
        raise ValueError(f"quality bounds must be whole numbers unless fractional=True, got {quality!r}")
    return low, high


def _check_subsamplings(subsampling) -> tuple[str, ...]:
    if not isinstance(subsampling, Sequence) or isinstance(subsampling, str):
        return (check_subsampling(subsampling),)
    if len(subsampling) == 0:
        raise ValueError(f"subsampling must be one of {tuple(SUBSAMPLINGS)} or a non-empty sequence of them, got {subsampling!r}")
    return tuple(check_subsampling(s) for s in subsampling)


def _check_options(quality, p, subsampling, mode, rounding, fractional, generator):
    if not isinstance(fractional, bool):
        raise TypeError(f"fractional must be a bool, got {type(fractional).__name__}")
    low, high = _check_quality_range(quality, fractional)
    if not is_number(p):
        raise TypeError(f"p must be a number in [0, 1], got {type(p).__name__}")
    if not (0.0 <= float(p) <= 1.0):  # also rejects NaN
        raise ValueError(f"p must be in [0, 1], got {p}")
    subsamplings = _check_subsamplings(subsampling)
    check_choice("mode", mode, MODES)
    rounding = as_rounding(rounding, mode=mode)
    if fractional and mode == "exact":
        raise ValueError(
            "fractional=True needs mode='float' or 'soft': the exact codec, like libjpeg, takes whole-number qualities"
        )
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
    return low, high, float(p), subsamplings, rounding


# ---------------------------------------------------------------- drawing
@eager
def _draw(batch: torch.Size, low, high, p, fractional, subsamplings, generator, same_on_batch=False) -> RandomJPEGParams:
    """Always the same three draws of ``prod(batch)`` values (one each with
    ``same_on_batch``), whatever ``p`` and the image, so one seed gives the
    same qualities for any ``p``."""
    shape = torch.Size(()) if same_on_batch else batch  # drawn in this shape: a generator's values depend on their number only
    device = generator.device if generator is not None else torch.device("cpu")
    applied = torch.rand(shape, generator=generator, device=device) < p  # in [0, 1): p = 1 always, p = 0 never
    if fractional:
        quality = (low + (high - low) * torch.rand(shape, generator=generator, device=device)).clamp_(low, high)
    else:
        quality = torch.randint(int(low), int(high) + 1, shape, generator=generator, device=device).float()
    index = torch.randint(0, len(subsamplings), shape, generator=generator, device=device)
    if same_on_batch:
        return RandomJPEGParams(applied.expand(batch), quality.expand(batch), index.expand(batch), subsamplings)
    return RandomJPEGParams(applied, quality, index, subsamplings)


def _check_params(params, batch: torch.Size, values: bool = True) -> None:
    """A draw to apply must be a :class:`RandomJPEGParams` of the image's batch
    shape; ``values``: also check what it holds (a replayed draw)."""
    if not isinstance(params, RandomJPEGParams):
        raise TypeError(
            f"params must be a RandomJPEGParams (what return_params=True returned), got {type(params).__name__}"
        )
    for name in ("applied", "quality", "subsampling_index"):
        value = getattr(params, name)
        if not isinstance(value, Tensor):
            raise TypeError(f"params.{name} must be a tensor, got {type(value).__name__}")
        if value.shape != batch:
            raise ValueError(
                f"params.{name} has shape {tuple(value.shape)} but the image's batch shape is {tuple(batch)}: "
                "a draw applies to images of the batch shape it was drawn for (every image of a sample shares it)"
            )
    if not values:
        return
    subsamplings = params.subsamplings
    if not isinstance(subsamplings, tuple) or not subsamplings or not all(s in SUBSAMPLINGS for s in subsamplings):
        raise ValueError(f"params.subsamplings must be a non-empty tuple of {tuple(SUBSAMPLINGS)}, got {subsamplings!r}")
    if params.applied.dtype != torch.bool:
        raise TypeError(f"params.applied must be a bool tensor, got {params.applied.dtype}")
    quality = params.quality
    if not quality.is_floating_point() or not bool(((quality >= 0) & (quality <= 100)).all()):
        raise ValueError("params.quality must be a float tensor with values in [0, 100]")
    index = params.subsampling_index
    if index.dtype != torch.int64 or not bool(((index >= 0) & (index < len(subsamplings))).all()):
        raise ValueError(
            f"params.subsampling_index must be an int64 tensor of indices into params.subsamplings (0..{len(subsamplings) - 1})"
        )


def _apply(image: Tensor, params: RandomJPEGParams, p: float | None, options: dict) -> Tensor:
    """Compress the samples ``params`` selects; the others are the input itself.
    ``p`` (``None`` for a replayed draw) only allows the shortcuts it decides."""
    *batch, channels, height, width = image.shape
    count = math.prod(batch)
    if count == 1 and p != 0.0 and not torch.compiler.is_compiling():  # one image: its draw as Python values
        if not bool(params.applied.reshape(())):
            return image
        name = params.subsamplings[int(params.subsampling_index.reshape(()))]
        return jpeg(image, float(params.quality.reshape(())), subsampling=name, **options)
    x = image.reshape(count, channels, height, width)
    applied = params.applied.reshape(count)
    index = params.subsampling_index.reshape(count)
    quality = params.quality.reshape(count)
    names = list(dict.fromkeys(params.subsamplings))  # distinct, in order
    if p == 0.0:
        return image
    if p == 1.0 and len(names) == 1:  # decided by the arguments alone: no data-dependent branch
        shared = quality.to(x.device) if torch.compiler.is_compiling() else _shared(quality.cpu(), x.device)
        return jpeg(x, shared, subsampling=names[0], **options).reshape(image.shape)

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
            out = jpeg(x, _shared(quality, x.device), subsampling=name, **options)
        elif rows.numel():
            shared = _shared(quality[rows], x.device)
            rows = rows.to(x.device)
            out = out.index_copy(0, rows, jpeg(x.index_select(0, rows), shared, subsampling=name, **options))
    return out.reshape(image.shape)


def _shared(quality: Tensor, device: torch.device) -> float | Tensor:
    """The drawn qualities (on the CPU) as :func:`diffjpeg.jpeg` takes them
    fastest: one Python number where every sample has the same (always for
    one image), whose tables jpeg caches, else the tensor on ``device``."""
    first = quality[0]
    if quality.numel() == 1 or bool((quality == first).all()):
        return float(first)
    return quality.to(device)


def _compress(image, params, draw, p, options, replayed=True):
    """``image`` (any tensor subclass) compressed with ``params`` if given, else with
    ``draw(batch)``; returns ``(out, params)``. Given params are checked against
    the image's batch shape, and what they hold when ``replayed``."""
    if not isinstance(image, Tensor):
        check_image(image)  # raises the TypeError naming image
    subclass = type(image) if type(image) is not Tensor and not isinstance(image, nn.Parameter) else None
    plain = image.as_subclass(Tensor) if subclass is not None else image
    batch, *_ = check_image(plain)
    if params is None:
        params = draw(batch)
    else:
        _check_params(params, batch, values=replayed)
        p = None if replayed else p  # a replayed draw need not follow this p
    out = _apply(plain, params, p, options)
    if subclass is not None:
        out = image if out is plain else out.as_subclass(subclass)  # keep e.g. torchvision's tv_tensors.Image
    return out, params


def _check_flag(name: str, value) -> None:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__}")


def _refuse_flag_by_position(rest: tuple) -> None:
    """``augment(x, True)``: return_params is keyword-only; a lone bool after
    the image would otherwise pass through as part of the sample, unnoticed."""
    if len(rest) == 1 and isinstance(rest[0], bool):
        raise TypeError("RandomJPEG: return_params is keyword-only; pass return_params=True")


# ---------------------------------------------------------------- public API
def random_jpeg(
    image: Tensor,
    quality: float | tuple[float, float],
    *,
    p: float = 1.0,
    subsampling: Subsampling | PillowSubsampling | Sequence[Subsampling | PillowSubsampling] = "4:2:0",
    mode: Mode = "exact",
    rounding: RoundingName | Rounding | None = None,
    fractional: bool = False,
    same_on_batch: bool = False,
    generator: torch.Generator | None = None,
    params: RandomJPEGParams | None = None,
    return_params: bool = False,
    backend: Backend = "auto",
):
    """Compress each sample with probability ``p`` at a random quality; functional :class:`RandomJPEG`.

    Arguments as in :class:`RandomJPEG`, plus ``image`` (a tensor), ``params``
    (replay a :class:`RandomJPEGParams` drawn before instead of drawing) and
    ``return_params`` (also return the :class:`RandomJPEGParams` used).

    Example:
        >>> x = torch.rand(2, 3, 8, 8)
        >>> y, params = random_jpeg(x, (30, 90), return_params=True)
        >>> y.shape, params.quality.shape
        (torch.Size([2, 3, 8, 8]), torch.Size([2]))
        >>> torch.equal(random_jpeg(x, (30, 90), params=params), y)  # replayed
        True
    """
    low, high, p, subsamplings, rounding = _check_options(quality, p, subsampling, mode, rounding, fractional, generator)
    _check_flag("same_on_batch", same_on_batch)
    _check_flag("return_params", return_params)
    check_choice("backend", backend, BACKENDS)
    options = dict(mode=mode, rounding=rounding, backend=backend)

    def draw(batch):
        return _draw(batch, low, high, p, fractional, subsamplings, generator, same_on_batch)

    out, params = _compress(image, params, draw, p, options)
    return (out, params) if return_params else out


class RandomJPEG(nn.Module):
    """Random JPEG compression of each sample, differentiable, as a layer or a transform.

    Args:
        quality: ``(low, high)`` in [0, 100] with ``low <= high``, or one number
            (always that quality). Qualities are drawn uniformly: whole numbers
            ``low..high``, each equally likely, by default (bounds must then be
            whole numbers); reals in ``[low, high]`` with ``fractional=True``.
            libjpeg's scaling: 0 acts as 1. Like torchvision's
            ``v2.JPEG(quality)`` (a number or a ``(min, max)`` range, drawn as
            whole numbers); unlike kornia's ``RandomJPEG(jpeg_quality=q)``,
            where one number ``q`` means the range ``(50 - q, 50 + q)``:
            kornia's ``jpeg_quality=20`` is ``quality=(30, 70)`` here, and
            ``quality=20`` here is always 20.
        p: probability in [0, 1] that a sample is compressed; the others are
            returned unchanged (gradient: identity).
        subsampling: ``"4:4:4"``, ``"4:2:2"``, ``"4:2:0"``, or a sequence of
            them to draw from uniformly per sample (repeat an entry to weight
            it). Ignored for grayscale. Keyword-only, as is every parameter
            after ``quality``.
        mode, rounding, backend: as in :func:`diffjpeg.jpeg`.
        fractional: draw real qualities (``mode="float"`` or ``"soft"`` only).
        same_on_batch: one draw (whether, quality, subsampling) for the whole
            batch instead of one per sample, as kornia's ``same_on_batch``.
        generator: a ``torch.Generator`` to draw from (draws happen on its
            device); ``None`` draws from torch's global CPU generator.

    Input ``(..., C, H, W)``, C = 3 or 1, float in [0, 1] or uint8; a single
    image ``(C, H, W)`` is one sample. Output: same shape, dtype, device and
    tensor subclass; uint8 in, uint8 out. ``forward(image,
    return_params=True)`` also returns the :class:`RandomJPEGParams` drawn, and
    ``forward(image, params=params)`` replays them exactly (as kornia's
    ``params=``) on images of the same batch shape, with this module's
    ``mode`` and ``rounding``.

    Samples, as torchvision v2 transforms take them: ``augment(image, boxes)``,
    ``augment({"image": ..., "label": ...})``, nested, as ``v2.Compose`` hands
    them. ``tv_tensors.Image``, ``tv_tensors.Video`` (one draw per clip), PIL
    images (``"RGB"`` or ``"L"``, returned as PIL images, as ``v2.JPEG`` does)
    and plain tensors (the first one, when the sample has no explicit image,
    by v2's rule) are compressed with one draw per sample; boxes, masks,
    labels and everything else pass through untouched. ``make_params`` and
    ``transform`` follow v2's protocol. torchvision is never imported here:
    its tensor types are known by the module it loaded itself.

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
        >>> torch.equal(augment(x, params=params), y)  # the same draws again
        True
    """

    def __init__(
        self,
        quality: float | tuple[float, float],
        *,
        p: float = 1.0,
        subsampling: Subsampling | PillowSubsampling | Sequence[Subsampling | PillowSubsampling] = "4:2:0",
        mode: Mode = "exact",
        rounding: RoundingName | Rounding | None = None,
        fractional: bool = False,
        same_on_batch: bool = False,
        generator: torch.Generator | None = None,
        backend: Backend = "auto",
    ):
        super().__init__()
        check_choice("backend", backend, BACKENDS)
        self.backend = backend
        self.low, self.high, self.p, self.subsamplings, self.rounding = _check_options(
            quality, p, subsampling, mode, rounding, fractional, generator
        )
        _check_flag("same_on_batch", same_on_batch)
        self.mode, self.fractional, self.same_on_batch, self.generator = mode, fractional, same_on_batch, generator

    def draw(self, batch: Sequence[int] = ()) -> RandomJPEGParams:
        """Draw the parameters for images of batch shape ``batch`` (``()``: one image).

        Example:
            >>> RandomJPEG(50).draw((2,)).quality
            tensor([50., 50.])
        """
        batch = torch.Size(batch)
        return _draw(batch, self.low, self.high, self.p, self.fractional, self.subsamplings, self.generator, self.same_on_batch)

    def _compress(self, image, params, replayed=True):
        options = dict(mode=self.mode, rounding=self.rounding, backend=self.backend)
        return _compress(image, params, self.draw, self.p, options, replayed)

    def forward(self, *inputs, params: RandomJPEGParams | None = None, return_params: bool = False):
        if not inputs:
            raise TypeError("RandomJPEG needs a sample: an image, or a tuple, list or dict that holds images")
        _refuse_flag_by_position(inputs[1:])
        _check_flag("return_params", return_params)
        if len(inputs) == 1 and _is_one_image(inputs[0]):  # the image itself: no sample to take apart
            out, params = self._compress(inputs[0], params)
            return (out, params) if return_params else out
        # v2.Transform.forward's steps: flatten the sample, draw once, transform each image, rebuild
        flat, spec = tree_flatten(inputs if len(inputs) > 1 else inputs[0])
        needs = _images_of(flat)
        drawn = self.make_params([x for x, n in zip(flat, needs) if n]) if params is None else {"params": params}
        out = tree_unflatten([self.transform(x, drawn) if n else x for x, n in zip(flat, needs)], spec)
        return (out, drawn["params"]) if return_params else out

    def make_params(self, flat_inputs: list) -> dict:
        """v2's protocol: ``{"params": RandomJPEGParams}``, drawn for the batch
        shape of the first image of ``flat_inputs`` (every image of a sample
        shares the draw, so they must share a batch shape).

        Example:
            >>> RandomJPEG(50).make_params([torch.rand(2, 3, 8, 8)])["params"].quality
            tensor([50., 50.])
        """
        # "replayed": False marks a fresh draw, whose values need no check
        return {"params": self.draw(_batch_of(flat_inputs[0]) if flat_inputs else ()), "replayed": False}

    def transform(self, inpt, params: dict):
        """v2's protocol: one input (tensor, ``tv_tensors.Image`` or ``Video``,
        PIL image) compressed with ``params["params"]``, its type kept."""
        drawn, replayed = params["params"], params.get("replayed", True)
        if _is_pil(inpt):
            return self._pil(inpt, drawn, replayed)
        video = _tv_tensor_class("Video")
        if video is not None and isinstance(inpt, video):  # one draw per clip, the same for its frames
            _check_params(drawn, _batch_of(inpt), values=replayed)
            frames = inpt.shape[-4]
            over_frames = (t.unsqueeze(-1).expand(*t.shape, frames) for t in (drawn.applied, drawn.quality, drawn.subsampling_index))
            drawn, replayed = RandomJPEGParams(*over_frames, drawn.subsamplings), False
        return self._compress(inpt, drawn, replayed)[0]

    def _pil(self, image, drawn, replayed):
        from PIL import Image

        if image.mode not in ("RGB", "L"):
            raise ValueError(
                f"RandomJPEG takes PIL images of mode 'RGB' or 'L', got {image.mode!r}: convert it first, e.g. image.convert('RGB')"
            )
        # channels last, as PIL holds them: the compiled codec reads and writes them in place
        a = np.array(image)  # a writable copy (np.asarray's is read-only)
        x = torch.from_numpy(a).permute(2, 0, 1) if a.ndim == 3 else torch.from_numpy(a).unsqueeze(0)
        y = self._compress(x, drawn, replayed)[0]
        if y is x:
            return image
        return Image.fromarray(np.ascontiguousarray(y.permute(1, 2, 0).numpy() if a.ndim == 3 else y[0].numpy()))

    def extra_repr(self) -> str:
        number = (lambda v: v) if self.fractional else int
        quality = (number(self.low), number(self.high))
        subsampling = self.subsamplings[0] if len(self.subsamplings) == 1 else self.subsamplings
        same = ", same_on_batch=True" if self.same_on_batch else ""
        return (
            f"quality={quality}, p={self.p}, subsampling={subsampling!r}, mode={self.mode!r}, "
            f"rounding={self.rounding!r}, fractional={self.fractional}{same}"
        )


# ---------------------------------------------------------------- samples, as torchvision v2 takes them
def _tv_tensor_class(name: str):
    """torchvision's ``tv_tensors.<name>`` where torchvision is loaded, else
    ``None``: an input of that type exists only once torchvision is imported,
    so there is no need to import it here (a second or more)."""
    module = sys.modules.get("torchvision.tv_tensors")
    return None if module is None else getattr(module, name, None)


def _is_one_image(value) -> bool:
    """A plain tensor or a ``tv_tensors.Image``: an input that is one image
    (or a batch), which v2's rule compresses when it is the whole sample."""
    if type(value) is Tensor:
        return True
    image = _tv_tensor_class("Image")
    return image is not None and isinstance(value, image)


def _is_pil(value) -> bool:
    module = sys.modules.get("PIL.Image")  # likewise: a PIL image means PIL is loaded
    return module is not None and isinstance(value, module.Image)


def _images_of(flat: list) -> list[bool]:
    """Which inputs of a flattened sample to compress, by v2's rule
    (``Transform._needs_transform_list``): ``tv_tensors.Image`` and ``Video``
    and PIL images; a plain tensor only if it is the first and the sample
    holds none of those. A sample with nothing to compress is a ``TypeError``."""
    image, video, tv_tensor = (_tv_tensor_class(n) for n in ("Image", "Video", "TVTensor"))
    explicit = tuple(c for c in (image, video) if c is not None)

    def is_explicit(x) -> bool:
        return (bool(explicit) and isinstance(x, explicit)) or _is_pil(x)

    def is_plain(x) -> bool:  # v2's "pure tensor": a tensor, not a tv_tensor
        return isinstance(x, Tensor) and not (tv_tensor is not None and isinstance(x, tv_tensor))

    take_plain = not any(is_explicit(x) for x in flat)
    needs = []
    for x in flat:
        if is_explicit(x):
            needs.append(True)
        elif is_plain(x) and take_plain:
            needs.append(True)
            take_plain = False
        else:
            needs.append(False)
    if not any(needs):
        if len(flat) == 1:
            check_image(flat[0])  # the TypeError naming image, with how to convert
        kinds = sorted({type(x).__name__ for x in flat})
        raise TypeError(
            f"RandomJPEG found no image in the sample (it holds {', '.join(kinds)}): it compresses torch tensors, "
            "torchvision's tv_tensors.Image and tv_tensors.Video, and PIL images"
        )
    return needs


def _batch_of(value) -> torch.Size:
    if _is_pil(value):
        return torch.Size(())
    video = _tv_tensor_class("Video")
    if video is not None and isinstance(value, video):
        if value.dim() < 4:
            raise ValueError(f"a tv_tensors.Video must have shape (..., T, C, H, W), got {tuple(value.shape)}")
        return value.shape[:-4]
    batch, *_ = check_image(value.as_subclass(Tensor))
    return batch
