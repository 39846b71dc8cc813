"""Learned quantization tables: one luma and one chroma table that minimize rate + lambda * distortion.

The objective, on a mini-batch of random crops of a set of images, is

    J = bits / pixels + lam * D

with ``bits`` from :func:`diffjpeg.rate` (the differentiable estimate of the
entropy-coded scan, libjpeg's optimized Huffman tables by default) and ``D``
the mean squared error on the 0..255 scale (``distortion="mse"``) or
``1 - SSIM`` (``"ssim"``, through kornia). Gradients reach the tables through
:func:`diffjpeg.encode` and :func:`diffjpeg.decode`: through the quantizer's
rounding surrogate and the dequantizer. The tables are held as their
logarithms (a relative step is the natural move for a divisor), projected onto
[1, 255] after each step; the result is integer tables 1..255, baseline JPEG,
natural (row-major) order, that Pillow's ``qtables=`` and
:func:`diffjpeg.jpeg` take as they are.

Scale: under ``torchrun`` (or any initialized ``torch.distributed`` process
group) each step's global batch of crops is planned by the same seeded
generator on every rank, each rank encodes its share, and the table gradients
are summed with one all-reduce, so every rank takes the same step and the
result equals one process with the same global batch, up to the order of
floating-point sums.

The command ``diffjpeg optimize-tables DIR`` is :func:`main`.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from .codec import FORWARDS, decode, encode
from .coefficients import SUBSAMPLINGS
from .demo import psnr
from .huffman import check_huffman
from .quality import quality_tables, standard_tables
from .rate import rate
from .rounding import ROUNDINGS, round_ste

DISTORTIONS = ("mse", "ssim")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".ppm", ".pgm", ".pnm", ".webp", ".gif")
CHECKPOINT_FORMAT = "diffjpeg.tables/1"
# Defaults chosen by benchmarks/tables.py (learned tables scored with real files).
DEFAULT_FORWARD = "exact"
DEFAULT_ROUNDING = "sigmoid"
DEFAULT_LAMBDA = 0.03


# ---------------------------------------------------------------- images
def _image_tensor(x, name: str) -> Tensor:
    """A ``(3, H, W)`` uint8 image from a tensor or array (grayscale is replicated)."""
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(np.ascontiguousarray(x))
        if x.dim() == 3 and x.shape[-1] in (1, 3, 4):  # (H, W, C) arrays
            x = x.permute(2, 0, 1)
        elif x.dim() == 2:
            x = x[None]
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a directory, image paths or (C, H, W) tensors, got {type(x).__name__}")
    if x.dim() != 3 or x.shape[0] not in (1, 3, 4) or x.shape[1] < 1 or x.shape[2] < 1:
        raise ValueError(f"{name} must have shape (C, H, W) with C = 1 or 3, got {tuple(x.shape)}")
    x = x[:3]
    if x.is_floating_point():
        if not bool(torch.isfinite(x).all()):
            raise ValueError(f"{name} contains NaN or Inf")
        x = (x.clamp(0, 1) * 255).round().to(torch.uint8)
    elif x.dtype != torch.uint8:
        raise TypeError(f"{name} must be float in [0, 1] or uint8, got {x.dtype}")
    return x.expand(3, -1, -1).contiguous() if x.shape[0] == 1 else x.contiguous()


def _load_path(path: Path) -> Tensor:
    from PIL import Image

    try:
        with Image.open(path) as im:
            a = np.array(im.convert("RGB"))
    except Exception as e:  # Pillow raises many kinds; one message names the file
        raise ValueError(f"cannot read image {str(path)!r}: {e}") from e
    return torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1).contiguous()


def image_paths(directory) -> list[Path]:
    """The image files directly in ``directory`` (by suffix), sorted by name.

    Example:
        >>> import tempfile; image_paths(tempfile.mkdtemp())
        []
    """
    d = Path(directory)
    if not d.is_dir():
        raise ValueError(f"images directory {str(d)!r} does not exist or is not a directory")
    return sorted(p for p in d.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


class ImageSet:
    """Images to learn from: a directory, a list of paths, a tensor or a list of tensors.

    Files are read lazily (their sizes from the headers) and a few are kept in
    memory, so a large folder costs only what each step reads. Every image is
    used as 8-bit RGB; grayscale is replicated to three channels.
    """

    def __init__(self, images, cache: int = 32):
        if isinstance(images, (str, os.PathLike)):
            paths = image_paths(images)
            if not paths:
                raise ValueError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in directory {str(images)!r}")
            items = paths
        elif isinstance(images, Tensor) and images.dim() == 4:
            items = list(images)
        elif isinstance(images, (Tensor, np.ndarray)):
            items = [images]
        elif isinstance(images, Sequence) and not isinstance(images, (str, bytes)):
            items = list(images)
        else:
            raise TypeError(f"images must be a directory, a list of image paths or tensors, or a tensor, got {type(images).__name__}")
        if not items:
            raise ValueError("images is empty")
        self._tensors: dict[int, Tensor] = {}
        self._paths: dict[int, Path] = {}
        self.sizes: list[tuple[int, int]] = []
        for i, item in enumerate(items):
            if isinstance(item, (str, os.PathLike)):
                path = Path(item)
                self.sizes.append(self._header_size(path))
                self._paths[i] = path
            else:
                t = _image_tensor(item, f"images[{i}]")
                self._tensors[i] = t
                self.sizes.append((t.shape[1], t.shape[2]))
        self._cache: dict[int, Tensor] = {}
        self._cache_size = cache

    @staticmethod
    def _header_size(path: Path) -> tuple[int, int]:
        from PIL import Image

        if not path.is_file():
            raise ValueError(f"image {str(path)!r} does not exist")
        try:
            with Image.open(path) as im:
                width, height = im.size
        except Exception as e:
            raise ValueError(f"cannot read image {str(path)!r}: {e}") from e
        return height, width

    def __len__(self) -> int:
        return len(self.sizes)

    def __getitem__(self, i: int) -> Tensor:
        if i in self._tensors:
            return self._tensors[i]
        if i not in self._cache:
            if len(self._cache) >= self._cache_size:
                self._cache.pop(next(iter(self._cache)))
            self._cache[i] = _load_path(self._paths[i])
        return self._cache[i]


# ---------------------------------------------------------------- parameters
class QTableParameters(nn.Module):
    """The learned tables: ``log_tables (2, 8, 8)`` (luma, chroma; natural order) as an ``nn.Parameter``.

    ``forward()`` gives the float tables ``exp(log_tables)`` in [1, 255];
    :meth:`integer_tables` the baseline integer tables a file stores.

    Example:
        >>> p = QTableParameters(standard_tables())
        >>> p().shape, p.integer_tables()[0, 0, :3].tolist()
        (torch.Size([2, 8, 8]), [16, 11, 10])
    """

    def __init__(self, init: Tensor):
        super().__init__()
        init = torch.as_tensor(init, dtype=torch.float64 if init.dtype == torch.float64 else torch.float32)
        if init.shape != (2, 8, 8):
            raise ValueError(f"init tables must have shape (2, 8, 8), got {tuple(init.shape)}")
        self.log_tables = nn.Parameter(init.clamp(1, 255).log())

    def forward(self) -> Tensor:
        return self.log_tables.exp()

    @torch.no_grad()
    def project(self) -> None:
        """Keep every entry in [1, 255] (baseline JPEG)."""
        self.log_tables.clamp_(0.0, math.log(255.0))

    @torch.no_grad()
    def integer_tables(self) -> Tensor:
        return self.log_tables.exp().round().clamp(1, 255).to(torch.int64).cpu()


def _initial_tables(init) -> Tensor:
    if init is None:
        init = 50
    if isinstance(init, bool):
        raise TypeError("init must be a quality in [1, 100] or (2, 8, 8) tables, got a bool")
    if isinstance(init, (int, float)):
        if not 1 <= init <= 100:
            raise ValueError(f"init quality must be in [1, 100], got {init}")
        return quality_tables(torch.tensor(float(init)), standard_tables(), exact=True)
    if isinstance(init, Tensor):
        if init.shape != (2, 8, 8):
            raise ValueError(f"init tables must have shape (2, 8, 8), got {tuple(init.shape)}")
        t = init.detach().float()
        if not bool(torch.isfinite(t).all()) or bool((t <= 0).any()):
            raise ValueError("init tables must be finite and > 0")
        return t
    raise TypeError(f"init must be a quality in [1, 100] or (2, 8, 8) tables, got {type(init).__name__}")


# ---------------------------------------------------------------- the objective
def _distributed() -> tuple[int, int]:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _plan(images: ImageSet, batch_size: int, crop: int | None, generator: torch.Generator) -> list[tuple[int, int, int, int, int]]:
    """The global batch: ``(image, top, left, height, width)`` per crop, from ``generator``."""
    plan = []
    for _ in range(batch_size):
        i = int(torch.randint(len(images), (), generator=generator))
        height, width = images.sizes[i]
        ch, cw = (height, width) if crop is None else (min(crop, height), min(crop, width))
        top = int(torch.randint(height - ch + 1, (), generator=generator))
        left = int(torch.randint(width - cw + 1, (), generator=generator))
        plan.append((i, top, left, ch, cw))
    return plan


def _ssim_distortion(y: Tensor, x: Tensor) -> Tensor:
    try:
        from kornia.metrics import ssim
    except ImportError as e:
        raise ImportError('distortion="ssim" needs kornia: pip install "diffjpeg[tables]"') from e
    return 1.0 - ssim(y, x, window_size=11, max_val=1.0).mean()


def objective_terms(
    x: Tensor,
    tables: Tensor,
    subsampling: str = "4:2:0",
    forward: str = DEFAULT_FORWARD,
    rounding: str = DEFAULT_ROUNDING,
    huffman: str = "optimized",
    distortion: str = "mse",
) -> tuple[Tensor, Tensor]:
    """Bits and distortion of one image under ``tables``, both differentiable in the tables.

    Args:
        x: ``(1, 3, H, W)`` float image in [0, 1] (8-bit values).
        tables: ``(2, 8, 8)`` float tables in [1, 255], may require grad.

    Returns:
        ``(bits, distortion)``: scalar tensors; ``bits`` of the scan
        (:func:`diffjpeg.rate`), distortion the mean squared error on the
        0..255 scale (``"mse"``) or ``1 - SSIM`` (``"ssim"``).

    Example:
        >>> b, d = objective_terms(torch.rand(1, 3, 16, 16), standard_tables())
        >>> b.item() > 0, d.item() > 0
        (True, True)
    """
    c = encode(x, qtables=tables, subsampling=subsampling, forward=forward, rounding=rounding)
    y = decode(c, forward=forward)
    bits = rate(c, huffman=huffman).sum()
    if distortion == "mse":
        d = ((y - x) * 255.0).pow(2).mean()
    else:
        d = _ssim_distortion(y, x)
    return bits, d


def _check_settings(lam, steps, batch_size, crop, lr, subsampling, forward, rounding, huffman, distortion, checkpoint_every) -> None:
    if isinstance(lam, bool) or not isinstance(lam, (int, float)) or not math.isfinite(lam) or lam <= 0:
        raise ValueError(f"lam (lambda) must be a finite number > 0, got {lam!r}")
    for name, value, low in (("steps", steps, 0), ("batch_size", batch_size, 1), ("checkpoint_every", checkpoint_every, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    if crop is not None and (isinstance(crop, bool) or not isinstance(crop, int) or crop < 8):
        raise ValueError(f"crop must be an integer >= 8 or None (whole images), got {crop!r}")
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not math.isfinite(lr) or lr <= 0:
        raise ValueError(f"lr must be a finite number > 0, got {lr!r}")
    for name, value, allowed in (
        ("subsampling", subsampling, SUBSAMPLINGS),
        ("forward", forward, FORWARDS),
        ("rounding", rounding, ROUNDINGS),
        ("distortion", distortion, DISTORTIONS),
    ):
        if not isinstance(value, str) or value not in allowed:
            raise ValueError(f"{name} must be one of {tuple(allowed)}, got {value!r}")
    check_huffman(huffman)


def _learning_rate(lr: float, step: int, steps: int) -> float:
    """Cosine decay to a tenth, so the last steps settle the tables."""
    return lr * (0.1 + 0.45 * (1 + math.cos(math.pi * step / max(steps, 1))))


def _save_atomic(obj, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def learn_qtables(
    images,
    lam: float = DEFAULT_LAMBDA,
    steps: int = 200,
    batch_size: int = 2,
    crop: int | None = 256,
    lr: float = 0.05,
    init=50,
    subsampling: str = "4:2:0",
    forward: str = DEFAULT_FORWARD,
    rounding: str = DEFAULT_ROUNDING,
    huffman: str = "optimized",
    distortion: str = "mse",
    seed: int = 0,
    device=None,
    checkpoint=None,
    checkpoint_every: int = 50,
    resume: bool = False,
    progress: bool = False,
    history: list | None = None,
) -> Tensor:
    """Learn one luma and one chroma quantization table for a set of images.

    Minimizes ``bits / pixels + lam * D`` over random crops with Adam on the
    tables' logarithms (cosine-decayed step size, entries projected onto
    [1, 255]). Under an initialized ``torch.distributed`` process group the
    global batch is shared across ranks (see the module docstring).

    Args:
        images: a directory, a list of image paths, a ``(N, C, H, W)`` tensor or
            a list of ``(C, H, W)`` tensors (uint8, or float in [0, 1]); one image
            learns per-image tables.
        lam: lambda > 0, the weight of the distortion (MSE on the 0..255 scale, or
            ``1 - SSIM``); larger gives finer tables and larger files.
        steps: optimizer steps (the total, also when resuming).
        batch_size: crops per step (the global batch under torch.distributed).
        crop: side of the square random crops (clipped to the image); ``None``
            uses whole images.
        lr: Adam's step size on the log tables.
        init: starting point: an IJG quality (libjpeg's scaled Annex K tables) or
            ``(2, 8, 8)`` tables.
        subsampling, forward, rounding: as in :func:`diffjpeg.encode`.
        huffman: Huffman tables the rate assumes: ``"optimized"`` or ``"standard"``.
        distortion: ``"mse"`` or ``"ssim"`` (needs kornia).
        seed: seeds the crop sampling (identical on every rank).
        device: where to compute (default CPU).
        checkpoint: path of a checkpoint written every ``checkpoint_every`` steps
            and at the end (tables, optimizer state, step, generator state).
        resume: continue from ``checkpoint`` if it exists; the result equals an
            uninterrupted run.
        progress: print a progress line to stderr (rank 0).
        history: if a list, each step appends ``{"step", "loss", "bpp", "distortion"}``.

    Returns:
        ``(2, 8, 8)`` int64 tables (luma, chroma), entries 1..255, natural order.

    Example:
        >>> x = torch.rand(1, 3, 32, 32)
        >>> t = learn_qtables(x, lam=0.05, steps=2, crop=16)
        >>> t.shape, t.dtype, 1 <= int(t.min()) and int(t.max()) <= 255
        (torch.Size([2, 8, 8]), torch.int64, True)
    """
    _check_settings(lam, steps, batch_size, crop, lr, subsampling, forward, rounding, huffman, distortion, checkpoint_every)
    if distortion == "ssim":
        try:
            import kornia.metrics  # noqa: F401 - fail before any work
        except ImportError as e:
            raise ImportError('distortion="ssim" needs kornia: pip install "diffjpeg[tables]"') from e
    data = images if isinstance(images, ImageSet) else ImageSet(images)
    rank, world = _distributed()
    if batch_size < world:
        raise ValueError(f"batch_size ({batch_size}) must be at least the number of processes ({world})")
    device = torch.device("cpu" if device is None else device)
    params = QTableParameters(_initial_tables(init)).to(device)
    optimizer = torch.optim.Adam(params.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(int(seed))
    config = dict(lam=float(lam), steps=steps, batch_size=batch_size, crop=crop, lr=float(lr), subsampling=subsampling,
                  forward=forward, rounding=rounding, huffman=huffman, distortion=distortion, seed=int(seed), images=len(data))
    start, past = 0, []
    checkpoint = None if checkpoint is None else Path(checkpoint)
    if resume and checkpoint is None:
        raise ValueError("resume=True needs a checkpoint path")
    if resume and checkpoint.is_file():
        state = load_checkpoint(checkpoint)
        changed = {k: (state["config"].get(k), v) for k, v in config.items() if state["config"].get(k) != v}
        if changed:
            raise ValueError(f"checkpoint {str(checkpoint)!r} was made with other settings: "
                             + ", ".join(f"{k} {a!r} (now {b!r})" for k, (a, b) in changed.items()))
        with torch.no_grad():
            params.log_tables.copy_(state["log_tables"].to(device))
        optimizer.load_state_dict(state["optimizer"])
        generator.set_state(state["generator"])
        start, past = state["step"], list(state.get("history", []))
        if history is not None:
            history.extend(past)
    elif resume and rank == 0 and progress:
        print(f"no checkpoint at {checkpoint}; starting at step 0", file=sys.stderr)

    def save(step: int) -> None:
        if checkpoint is not None and rank == 0:
            _save_atomic({"format": CHECKPOINT_FORMAT, "step": step, "log_tables": params.log_tables.detach().cpu(),
                          "optimizer": optimizer.state_dict(), "generator": generator.get_state(), "config": config,
                          "history": past, "tables": params.integer_tables()}, checkpoint)

    began = time.perf_counter()
    for step in range(start, steps):
        plan = _plan(data, batch_size, crop, generator)
        pixels = sum(h * w for _, _, _, h, w in plan)
        for group in optimizer.param_groups:
            group["lr"] = _learning_rate(lr, step, steps)
        optimizer.zero_grad(set_to_none=False)
        if params.log_tables.grad is None:  # a rank may hold no crop this step
            params.log_tables.grad = torch.zeros_like(params.log_tables)
        stats = torch.zeros(3, dtype=torch.float64)  # bits, pixel-weighted distortion, pixels
        for i, top, left, h, w in plan[rank::world]:
            x = data[i][:, top : top + h, left : left + w].to(device=device, dtype=torch.float32).div(255.0)[None]
            bits, d = objective_terms(x, params(), subsampling, forward, rounding, huffman, distortion)
            # each crop's share of the global mean: the ranks' sums add up to it
            ((bits + lam * d * (h * w)) / pixels).backward()
            stats += torch.tensor([bits.item(), d.item() * h * w, h * w], dtype=torch.float64)
        if world > 1:
            import torch.distributed as dist

            dist.all_reduce(params.log_tables.grad)
            if dist.get_backend() == "nccl":
                stats = stats.to(device)
            dist.all_reduce(stats)
            stats = stats.cpu()
        optimizer.step()
        params.project()
        bpp, dist_mean = float(stats[0] / stats[2]), float(stats[1] / stats[2])
        record = {"step": step + 1, "loss": bpp + lam * dist_mean, "bpp": bpp, "distortion": dist_mean}
        past.append(record)
        if history is not None:
            history.append(record)
        if progress and rank == 0:
            rate_s = (step + 1 - start) / max(time.perf_counter() - began, 1e-9)
            shown = f"psnr {10 * math.log10(255**2 / max(dist_mean, 1e-12)):.2f} dB" if distortion == "mse" else f"1-ssim {dist_mean:.4f}"
            end = "\n" if (step + 1 == steps or not sys.stderr.isatty()) else ""
            if sys.stderr.isatty() or (step + 1) % 10 == 0 or step + 1 == steps:
                print(f"\rstep {step + 1}/{steps}  loss {record['loss']:.4f}  bpp {bpp:.4f}  {shown}  {rate_s:.2f} steps/s",
                      end=end, file=sys.stderr, flush=True)
        if (step + 1) % checkpoint_every == 0 or step + 1 == steps:
            save(step + 1)
    return params.integer_tables()


def load_checkpoint(path) -> dict:
    """Read a checkpoint written by :func:`learn_qtables` (a dict: ``step``, ``log_tables``,
    ``optimizer``, ``generator``, ``config``, ``history``, ``tables``)."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)  # no pickled code from a file
    except Exception as e:
        raise ValueError(f"cannot read checkpoint {str(path)!r}: {e}") from e
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{str(path)!r} is not a diffjpeg tables checkpoint")
    return state


# ---------------------------------------------------------------- tables in and out
def _check_tables(tables) -> Tensor:
    t = torch.as_tensor(tables)
    if t.shape != (2, 8, 8):
        raise ValueError(f"qtables must have shape (2, 8, 8) (luma, chroma), got {tuple(t.shape)}")
    if t.is_floating_point() and not bool((t == t.round()).all()):
        raise ValueError("qtables must be integers (round them first)")
    t = t.to(torch.int64)
    if bool((t < 1).any()) or bool((t > 255).any()):
        raise ValueError(f"qtables entries must be in 1..255 (baseline JPEG), got {int(t.min())}..{int(t.max())}")
    return t


def pillow_qtables(tables) -> list[list[int]]:
    """Tables as Pillow's ``Image.save(..., qtables=...)`` takes them: ``[luma, chroma]``,
    64 integers each in natural (row-major) order (checked against Pillow's files).

    Example:
        >>> pillow_qtables(standard_tables())[0][:4]
        [16, 11, 10, 16]
    """
    t = _check_tables(tables)
    return [t[0].flatten().tolist(), t[1].flatten().tolist()]


def save_qtables(tables, path, **metadata) -> None:
    """Write tables to ``.json`` (``{"luma": 8x8, "chroma": 8x8, "order": "natural", ...}``) or ``.pt``.

    Example:
        >>> import tempfile, os; p = os.path.join(tempfile.mkdtemp(), "t.json")
        >>> save_qtables(standard_tables(), p); load_qtables(p)[1, 0, 0].item()
        17
    """
    t = _check_tables(tables)
    path = Path(path)
    record = {"luma": t[0].tolist(), "chroma": t[1].tolist(), "order": "natural", **metadata}
    if path.suffix.lower() == ".json":
        path.write_text(json.dumps(record, indent=1) + "\n")
    elif path.suffix.lower() == ".pt":
        torch.save({**record, "luma": t[0], "chroma": t[1]}, path)
    else:
        raise ValueError(f"tables file must end in .json or .pt, got {str(path)!r}")


def load_qtables(path) -> Tensor:
    """Read tables written by :func:`save_qtables`: ``(2, 8, 8)`` int64, natural order."""
    path = Path(path)
    if path.suffix.lower() == ".json":
        record = json.loads(path.read_text())
    elif path.suffix.lower() == ".pt":
        record = torch.load(path, map_location="cpu", weights_only=True)
    else:
        raise ValueError(f"tables file must end in .json or .pt, got {str(path)!r}")
    if record.get("order", "natural") != "natural":
        raise ValueError(f"{str(path)!r}: only natural-order tables are supported")
    return _check_tables(torch.stack([torch.as_tensor(record["luma"]), torch.as_tensor(record["chroma"])]))


def scaled_qtables(base, quality: float) -> Tensor:
    """Base tables scaled as libjpeg's ``jpeg_set_quality`` scales Annex K (integers 1..255).

    Example:
        >>> scaled_qtables(standard_tables(), 50)[0, 0, :3].tolist()
        [16, 11, 10]
    """
    if isinstance(quality, bool) or not isinstance(quality, (int, float)) or not 0 <= quality <= 100:
        raise ValueError(f"quality must be a number in [0, 100], got {quality!r}")
    base = torch.as_tensor(base, dtype=torch.float32)
    if base.shape != (2, 8, 8) or bool((base <= 0).any()):
        raise ValueError("base must be (2, 8, 8) tables with entries > 0")
    return quality_tables(torch.tensor(float(quality)), round_ste(base), exact=True).round().to(torch.int64)


# ---------------------------------------------------------------- evaluation with real files
def evaluate_qtables(images, qtables=None, quality=None, subsampling: str = "4:2:0", optimize: bool = True) -> dict:
    """Write each image as a real JPEG file with Pillow, read it back, measure bytes and PSNR.

    Args:
        images: as in :func:`learn_qtables` (whole images are used).
        qtables: ``(2, 8, 8)`` integer tables 1..255, or ``None`` for Pillow's
            own quality scaling of the standard tables (then ``quality`` is needed).
        quality: the IJG quality when ``qtables`` is ``None``.
        subsampling: ``"4:4:4"``, ``"4:2:2"`` or ``"4:2:0"``.
        optimize: Pillow's ``optimize=True`` (optimized Huffman tables).

    Returns:
        ``{"bytes": [...], "psnr": [...], "pixels": [...], "bpp": total bits / total
        pixels, "mean_psnr": mean of the per-image PSNR (dB)}``.

    Example:
        >>> r = evaluate_qtables(torch.rand(1, 3, 16, 16), quality=75)
        >>> r["bytes"][0] > 0 and r["psnr"][0] > 10
        True
    """
    import io

    from PIL import Image

    if subsampling not in SUBSAMPLINGS:
        raise ValueError(f"subsampling must be one of {SUBSAMPLINGS}, got {subsampling!r}")
    options = {"subsampling": subsampling, "optimize": bool(optimize)}
    if qtables is not None:
        options["qtables"] = pillow_qtables(qtables)
    elif quality is None:
        raise ValueError("give qtables or quality")
    else:
        options["quality"] = int(quality)
    data = images if isinstance(images, ImageSet) else ImageSet(images)
    sizes, psnrs, pixels = [], [], []
    for i in range(len(data)):
        a = data[i].permute(1, 2, 0).numpy()
        buf = io.BytesIO()
        Image.fromarray(a).save(buf, "JPEG", **options)
        b = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
        sizes.append(len(buf.getvalue()))
        psnrs.append(psnr(a, b))
        pixels.append(a.shape[0] * a.shape[1])
    return {"bytes": sizes, "psnr": psnrs, "pixels": pixels, "bpp": 8 * sum(sizes) / sum(pixels), "mean_psnr": float(np.mean(psnrs))}


# ---------------------------------------------------------------- Bjontegaard delta rate
def _pchip_slopes(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Fritsch-Carlson monotone slopes (as SciPy's PchipInterpolator)."""
    h = np.diff(x)
    delta = np.diff(y) / h
    n = len(x)
    d = np.zeros(n)
    if n == 2:
        return np.full(2, delta[0])
    for k in range(1, n - 1):
        if delta[k - 1] * delta[k] > 0:
            w1, w2 = 2 * h[k] + h[k - 1], h[k] + 2 * h[k - 1]
            d[k] = (w1 + w2) / (w1 / delta[k - 1] + w2 / delta[k])

    def end(h0, h1, m0, m1):
        s = ((2 * h0 + h1) * m0 - h0 * m1) / (h0 + h1)
        if np.sign(s) != np.sign(m0):
            return 0.0
        if np.sign(m0) != np.sign(m1) and abs(s) > abs(3 * m0):
            return 3 * m0
        return s

    d[0] = end(h[0], h[1], delta[0], delta[1])
    d[-1] = end(h[-1], h[-2], delta[-1], delta[-2])
    return d


def _pchip_integral(x: np.ndarray, y: np.ndarray, lo: float, hi: float) -> float:
    """Integral over [lo, hi] of the monotone cubic Hermite interpolant through (x, y)."""
    d = _pchip_slopes(x, y)
    total = 0.0
    for k in range(len(x) - 1):
        a, b = max(lo, x[k]), min(hi, x[k + 1])
        if b <= a:
            continue
        h = x[k + 1] - x[k]
        # the cubic on this interval in t = (s - x_k) / h, integrated in closed form from ta to tb
        c0, c1 = y[k], d[k] * h
        c2 = 3 * (y[k + 1] - y[k]) - (2 * d[k] + d[k + 1]) * h
        c3 = 2 * (y[k] - y[k + 1]) + (d[k] + d[k + 1]) * h
        prim = lambda t: c0 * t + c1 * t**2 / 2 + c2 * t**3 / 3 + c3 * t**4 / 4  # noqa: E731
        total += h * (prim((b - x[k]) / h) - prim((a - x[k]) / h))
    return total


def bd_rate(rate_anchor, psnr_anchor, rate_test, psnr_test) -> float:
    """Bjontegaard delta rate (percent) of ``test`` against ``anchor``.

    The average difference of log rate at equal PSNR over the PSNR range both
    curves cover, with log10(rate) interpolated as a piecewise cubic monotone
    (PCHIP) function of PSNR, as in the VCEG/JVET practice; negative means
    ``test`` needs fewer bits. At least two points per curve, PSNRs strictly
    monotone in rate.

    Example:
        >>> round(bd_rate([1, 2, 4, 8], [30, 33, 36, 39], [0.9, 1.8, 3.6, 7.2], [30, 33, 36, 39]), 6)
        -10.0
    """
    curves = []
    for name, r, p in (("anchor", rate_anchor, psnr_anchor), ("test", rate_test, psnr_test)):
        r, p = np.asarray(r, dtype=np.float64), np.asarray(p, dtype=np.float64)
        if r.shape != p.shape or r.ndim != 1 or len(r) < 2:
            raise ValueError(f"{name}: rates and PSNRs must be 1-D of the same length >= 2")
        if not (np.all(np.isfinite(r)) and np.all(np.isfinite(p)) and np.all(r > 0)):
            raise ValueError(f"{name}: rates must be finite and > 0, PSNRs finite")
        order = np.argsort(p)
        p, lr = p[order], np.log10(r[order])
        if np.any(np.diff(p) <= 0):
            raise ValueError(f"{name}: PSNRs must be distinct")
        curves.append((p, lr))
    lo = max(curves[0][0][0], curves[1][0][0])
    hi = min(curves[0][0][-1], curves[1][0][-1])
    if hi <= lo:
        raise ValueError("the two curves' PSNR ranges do not overlap")
    integrals = [_pchip_integral(p, lr, lo, hi) for p, lr in curves]
    return float((10 ** ((integrals[1] - integrals[0]) / (hi - lo)) - 1) * 100)


# ---------------------------------------------------------------- command line
class _UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, no usage dump
        raise _UsageError(message)


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number > 0, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a number > 0, got {text!r}")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer > 0, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer > 0, got {text!r}")
    return value


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="diffjpeg optimize-tables",
                description="Learn JPEG quantization tables (luma, chroma) for the images in DIR, minimizing "
                            "bits per pixel + lambda * distortion. Runs under torchrun for several processes.")
    p.add_argument("dir", metavar="DIR", help="folder of images (png, jpg, bmp, tif, ...); all are used as RGB")
    p.add_argument("--lambda", dest="lam", metavar="LAMBDA", type=_positive_float, default=DEFAULT_LAMBDA,
                   help=f"weight of the distortion (MSE on 0..255, or 1-SSIM); larger = higher quality (default {DEFAULT_LAMBDA})")
    p.add_argument("--steps", type=_positive_int, default=200, help="optimizer steps (default 200)")
    p.add_argument("--batch-size", type=_positive_int, default=2, help="random crops per step, over all processes (default 2)")
    p.add_argument("--crop", type=int, default=256, help="crop side in pixels; 0 = whole images (default 256)")
    p.add_argument("--lr", type=_positive_float, default=0.05, help="Adam step size on the log tables (default 0.05)")
    p.add_argument("--init", type=float, default=50, help="start from the IJG tables at this quality (default 50)")
    p.add_argument("--subsampling", choices=SUBSAMPLINGS, default="4:2:0")
    p.add_argument("--forward", choices=FORWARDS, default=DEFAULT_FORWARD)
    p.add_argument("--rounding", choices=ROUNDINGS, default=DEFAULT_ROUNDING)
    p.add_argument("--huffman", choices=("optimized", "standard"), default="optimized")
    p.add_argument("--distortion", choices=DISTORTIONS, default="mse")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda:LOCAL_RANK under torchrun with NCCL, else cpu)")
    p.add_argument("--out", default="tables.json", help="output tables, .json or .pt (default tables.json)")
    p.add_argument("--checkpoint", default=None, metavar="PATH", help="write a checkpoint here periodically")
    p.add_argument("--checkpoint-every", type=_positive_int, default=50, help="steps between checkpoints (default 50)")
    p.add_argument("--resume", action="store_true", help="continue from --checkpoint if it exists")
    p.add_argument("--quiet", action="store_true", help="no progress line")
    return p


def _init_distributed(device_arg):
    """Join the process group torchrun describes; returns (device, whether this call started it)."""
    import torch.distributed as dist

    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or dist.is_initialized():
        return device_arg, False
    use_cuda = torch.cuda.is_available() and (device_arg is None or str(device_arg).startswith("cuda"))
    dist.init_process_group("nccl" if use_cuda else "gloo")
    if use_cuda and device_arg in (None, "cuda"):
        device_arg = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
        torch.cuda.set_device(device_arg)
    return device_arg, True


def main(argv=None) -> int:
    """``diffjpeg optimize-tables DIR [...]``: learn tables, write them to ``--out``. Returns the exit code.

    Example:
        >>> main(["/no/such/dir"])
        2
    """
    prog = "diffjpeg optimize-tables"
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except _UsageError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 2
    except SystemExit as e:  # --help
        return int(e.code or 0)
    out = Path(args.out)
    if out.suffix.lower() not in (".json", ".pt"):
        print(f"{prog}: error: --out must end in .json or .pt, got {args.out!r}", file=sys.stderr)
        return 2
    if args.resume and args.checkpoint is None:
        print(f"{prog}: error: --resume needs --checkpoint PATH", file=sys.stderr)
        return 2
    if args.crop < 0 or 0 < args.crop < 8:
        print(f"{prog}: error: --crop must be 0 (whole images) or at least 8, got {args.crop}", file=sys.stderr)
        return 2
    if not 1 <= args.init <= 100:
        print(f"{prog}: error: --init must be a quality in [1, 100], got {args.init}", file=sys.stderr)
        return 2
    started = False
    try:
        images = ImageSet(args.dir)
        device, started = _init_distributed(args.device)
        tables = learn_qtables(
            images, lam=args.lam, steps=args.steps, batch_size=args.batch_size, crop=args.crop or None, lr=args.lr,
            init=args.init, subsampling=args.subsampling, forward=args.forward, rounding=args.rounding,
            huffman=args.huffman, distortion=args.distortion, seed=args.seed, device=device,
            checkpoint=args.checkpoint, checkpoint_every=args.checkpoint_every, resume=args.resume,
            progress=not args.quiet,
        )
        if _distributed()[0] == 0:
            out.parent.mkdir(parents=True, exist_ok=True)
            save_qtables(tables, out, **{"lambda": args.lam, "steps": args.steps, "subsampling": args.subsampling,
                                         "distortion": args.distortion, "images": len(images)})
            if not args.quiet:
                print(f"wrote {out}", file=sys.stderr)
    except (ValueError, TypeError, ImportError, OSError) as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted" + (f"; resume with --resume --checkpoint {args.checkpoint}" if args.checkpoint else ""), file=sys.stderr)
        return 130
    finally:
        if started:
            import torch.distributed as dist

            dist.destroy_process_group()
    return 0


if __name__ == "__main__":  # torchrun -m diffjpeg.tables DIR ... or python -m diffjpeg.tables
    sys.exit(main())
