"""Learning quantization tables: one luma and one chroma table that minimize rate + lambda * distortion.

The objective, on a mini-batch of random crops of a set of images, is
:class:`diffjpeg.RateDistortionLoss`,

    J = bits / pixels + lam * D

with ``bits`` from :func:`diffjpeg.rate` (the differentiable estimate of the
entropy-coded scan, libjpeg's optimized Huffman tables by default) and ``D``
the mean squared error on the 0..255 scale (``distortion="mse"``) or
``1 - SSIM`` (``"ssim"``, through kornia). Gradients reach the tables through
:func:`diffjpeg.encode` and :func:`diffjpeg.decode`: through the quantizer's
rounding surrogate and the dequantizer. The tables are held as their
logarithms (:class:`QTableParameters`: a relative step is the natural move for
a divisor), projected onto [1, 255] after each step; the result is integer
tables 1..255, baseline JPEG, natural (row-major) order, that Pillow's
``qtables=`` and :func:`diffjpeg.jpeg` take as they are.

Scale: under ``torchrun`` (or any initialized ``torch.distributed`` process
group) each step's global batch of crops is planned by the same seeded
generator on every rank, each rank encodes its share, and the table gradients
are summed with one all-reduce, so every rank takes the same step and the
result equals one process with the same global batch, up to the order of
floating-point sums. Checkpoints hold the tables, the optimizer, the step and
the generator, so a resumed run equals an uninterrupted one.

The command ``diffjpeg optimize-tables DIR`` (:mod:`diffjpeg.tools.cli`) runs
:func:`learn_qtables`.
"""
from __future__ import annotations

import math
import os
import sys
from pathlib import Path

import torch
from torch import Tensor, nn

from ...bitstream.huffman import Huffman
from ...codec.pipeline import decode, encode
from ...core.geometry import SUBSAMPLINGS, Subsampling
from ...core.modes import MODES, Mode
from ...stages.quality import quality_tables, standard_tables
from ...stages.rounding import Rounding, RoundingName, as_rounding
from ...training.losses import DISTORTIONS, Distortion, RateDistortionLoss
from ..images import ImageSet
from ..progress import Progress

CHECKPOINT_FORMAT = "diffjpeg.tables/1"  # the old module name: checkpoints already written stay readable
# The best layer for learning tables in task (d) of benchmarks/surrogates.py (3 seeds, BD-rate through
# real files, benchmarks/results/surrogates.md): float with Fejer "fourier" -17.9 +- 0.1%, float/sigmoid
# -17.8 +- 0.2%, exact/sigmoid (0.2's default here) -16.8 +- 0.3%.
DEFAULT_MODE = "float"
DEFAULT_ROUNDING = "fourier"
DEFAULT_LAMBDA = 0.03


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


# ---------------------------------------------------------------- the loop
def rank_and_world() -> tuple[int, int]:
    """This process's rank and the number of processes (0, 1 outside torch.distributed)."""
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


def encode_and_score(x: Tensor, tables: Tensor, criterion: RateDistortionLoss, *, subsampling: Subsampling = "4:2:0",
                     mode: Mode = DEFAULT_MODE, rounding: RoundingName | Rounding = DEFAULT_ROUNDING):
    """``criterion`` of ``x`` through the codec with ``tables``: a :class:`diffjpeg.RateDistortion`,
    differentiable in the tables.

    Args:
        x: ``(1, 3, H, W)`` float image in [0, 1] (8-bit values).
        tables: ``(2, 8, 8)`` float tables in [1, 255], may require grad.

    Example:
        >>> r = encode_and_score(torch.rand(1, 3, 16, 16), standard_tables(), RateDistortionLoss())
        >>> r.bits.item() > 0, r.distortion.item() > 0
        (True, True)
    """
    c = encode(x, qtables=tables, subsampling=subsampling, mode=mode, rounding=rounding)
    return criterion(decode(c, mode=mode), x, c)


def _check_settings(lam, steps, batch_size, crop, lr, subsampling, mode, rounding, huffman, distortion, checkpoint_every) -> RateDistortionLoss:
    """Every setting checked before any work; returns the objective."""
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
        ("mode", mode, MODES),
        ("distortion", distortion, DISTORTIONS),
    ):
        if not isinstance(value, str) or value not in allowed:
            raise ValueError(f"{name} must be one of {tuple(allowed)}, got {value!r}")
    as_rounding(rounding)
    return RateDistortionLoss(lam, distortion, huffman)  # checks huffman, and kornia for "ssim"


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
    *,
    lam: float = DEFAULT_LAMBDA,
    steps: int = 200,
    batch_size: int = 2,
    crop: int | None = 256,
    lr: float = 0.05,
    init=50,
    subsampling: Subsampling = "4:2:0",
    mode: Mode = DEFAULT_MODE,
    rounding: RoundingName | Rounding = DEFAULT_ROUNDING,
    huffman: Huffman = "optimized",
    distortion: Distortion = "mse",
    seed: int = 0,
    device=None,
    checkpoint=None,
    checkpoint_every: int = 50,
    resume: bool = False,
    progress: bool = False,
    history: list | None = None,
    codec=None,
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
        subsampling, mode, rounding: as in :func:`diffjpeg.encode`.
        huffman: Huffman tables the rate assumes: ``"optimized"`` or ``"standard"``.
        distortion: ``"mse"`` or ``"ssim"`` (needs kornia).
        seed: seeds the crop sampling (identical on every rank).
        device: where to compute (default CPU).
        checkpoint: path of a checkpoint written every ``checkpoint_every`` steps
            and at the end (tables, optimizer state, step, generator state).
        resume: continue from ``checkpoint`` if it exists; the result equals an
            uninterrupted run.
        progress: ``False`` (the default) is silent; ``True`` shows the steps on
            stderr, tqdm's bar on a terminal and a plain line at every tenth in
            logs; a callable is called after each step with
            ``{"step", "steps", "loss", "bpp", "distortion"}`` (rank 0 only).
        history: if a list, each step appends ``{"step", "loss", "bpp", "distortion"}``.
        codec: another differentiable JPEG in place of diffjpeg's ``encode`` and
            ``decode`` (``subsampling``, ``mode`` and ``rounding`` are then the codec's own):
            ``codec(x, tables) -> (decoded, coefficients)`` with ``x`` a ``(1, 3, h, w)``
            float crop in [0, 1], ``tables`` ``(2, 8, 8)`` float, ``decoded`` like ``x``
            and ``coefficients`` a :class:`diffjpeg.Coefficients` that
            :func:`diffjpeg.rate` prices; both differentiable in ``tables``. The
            surrogate benchmark learns tables through kornia's JPEG with it.

    Returns:
        ``(2, 8, 8)`` int64 tables (luma, chroma), entries 1..255, natural order.

    Example:
        >>> x = torch.rand(1, 3, 32, 32)
        >>> t = learn_qtables(x, lam=0.05, steps=2, crop=16)
        >>> t.shape, t.dtype, 1 <= int(t.min()) and int(t.max()) <= 255
        (torch.Size([2, 8, 8]), torch.int64, True)
    """
    if not isinstance(progress, bool) and not callable(progress):
        raise TypeError(f"progress must be True, False or a callable, got {type(progress).__name__}")
    if codec is not None and not callable(codec):
        raise TypeError(f"codec must be None or a callable (x, tables) -> (decoded, coefficients), got {type(codec).__name__}")
    criterion = _check_settings(lam, steps, batch_size, crop, lr, subsampling, mode, rounding, huffman, distortion, checkpoint_every)
    data = images if isinstance(images, ImageSet) else ImageSet(images)
    rank, world = rank_and_world()
    if batch_size < world:
        raise ValueError(f"batch_size ({batch_size}) must be at least the number of processes ({world})")
    device = torch.device("cpu" if device is None else device)
    params = QTableParameters(_initial_tables(init)).to(device)
    optimizer = torch.optim.Adam(params.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(int(seed))
    config = dict(lam=float(lam), steps=steps, batch_size=batch_size, crop=crop, lr=float(lr), subsampling=subsampling,
                  forward=mode,  # the key checkpoints already written carry
                  rounding=rounding if isinstance(rounding, str) else repr(rounding), huffman=huffman, distortion=distortion, seed=int(seed), images=len(data))
    if codec is not None:  # only then: checkpoints written before codec= existed compare equal
        config["codec"] = getattr(codec, "__qualname__", type(codec).__qualname__)
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
    elif resume and rank == 0 and progress is True:
        print(f"no checkpoint at {checkpoint}; starting at step 0", file=sys.stderr)

    def save(step: int) -> None:
        if checkpoint is not None and rank == 0:
            _save_atomic({"format": CHECKPOINT_FORMAT, "step": step, "log_tables": params.log_tables.detach().cpu(),
                          "optimizer": optimizer.state_dict(), "generator": generator.get_state(), "config": config,
                          "history": past, "tables": params.integer_tables()}, checkpoint)

    report = _Report(progress, steps, start, distortion) if rank == 0 and progress is not False else None
    try:
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
                if codec is None:
                    r = encode_and_score(x, params(), criterion, subsampling=subsampling, mode=mode, rounding=rounding)
                else:
                    decoded, c = codec(x, params())
                    r = criterion(decoded, x, c)
                # each crop's share of the global mean: the ranks' sums add up to it
                (r.loss * (h * w / pixels)).backward()
                stats += torch.tensor([r.bits.item(), r.distortion.item() * h * w, h * w], dtype=torch.float64)
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
            if report is not None:
                report(record)
            if (step + 1) % checkpoint_every == 0 or step + 1 == steps:
                save(step + 1)
    finally:
        if report is not None:
            report.close()
    return params.integer_tables()


class _Report:
    """learn_qtables' progress: each step's record to a callable, or a bar (terminal) or lines (logs) on stderr."""

    def __init__(self, progress, steps: int, start: int, distortion: str):
        self.call = progress if callable(progress) else None
        self.bar = None if self.call else Progress(steps, "learning tables", unit="step", start=start)
        self.steps, self.distortion = steps, distortion

    def __call__(self, record: dict) -> None:
        if self.call is not None:
            self.call({**record, "steps": self.steps})
            return
        d = record["distortion"]
        shown = f"{10 * math.log10(255**2 / max(d, 1e-12)):.2f} dB" if self.distortion == "mse" else f"{d:.4f}"
        self.bar.update(loss=f"{record['loss']:.4f}", bpp=f"{record['bpp']:.4f}",
                        **{"psnr" if self.distortion == "mse" else "1_ssim": shown})

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


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


def join_process_group(device_arg):
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
