"""``diffjpeg demo`` and ``diffjpeg compare``: what they compute, print and draw.

For an image and a few qualities: diffjpeg's exact codec beside Pillow's own
JPEG (libjpeg-turbo), pixel for pixel; the real-valued forward passes' PSNR
against Pillow over the quality range; and a gradient-based task, recovering
the unknown quality of a Pillow JPEG from its pixels by gradient descent on
quality through the soft pipeline. Everything printed or drawn is measured in
the run.
"""
from __future__ import annotations

import math
import time
from contextlib import nullcontext
from dataclasses import dataclass, field

import numpy as np
import torch

from .. import decode, encode, jpeg, write
from ..stages.rounding import Sigmoid
from .images import sample_image, to_array, to_tensor  # noqa: F401 - sample_image: the doctests
from .metrics import psnr
from .progress import Progress
from .reference import pillow_decode, pillow_jpeg

SWEEP = (1, 5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95, 100)  # qualities of the fidelity plot
SHOWN = 256  # image panels and the quality recovery use a centre crop at most this size


def centre_crop(a: np.ndarray, size: int = SHOWN) -> np.ndarray:
    top, left = max(0, (a.shape[0] - size) // 2), max(0, (a.shape[1] - size) // 2)
    return np.ascontiguousarray(a[top : top + size, left : left + size])


def describe(a: np.ndarray) -> str:
    return f"{a.shape[1]}x{a.shape[0]} {'RGB' if a.ndim == 3 else 'grayscale'}"


# ---------------------------------------------------------------- 1. the exact codec beside Pillow
@dataclass
class Row:
    quality: int
    ours_bytes: int  # diffjpeg.encode + diffjpeg.write
    pillow_bytes: int
    psnr_original: float  # our decoded image against the input
    identical: bool  # our decoded pixels == Pillow's
    differing: int  # samples that differ
    float_psnr: float  # mode="float" against Pillow
    soft_psnr: float  # mode="soft" against Pillow


def codec_rows(a: np.ndarray, qualities, subsampling: str) -> tuple[list[Row], dict]:
    """One :class:`Row` per quality, and the images of the lowest quality (for the figure)."""
    x = to_tensor(a)
    rows, shown = [], {}
    for q in qualities:
        c = encode(x, quality=q, subsampling=subsampling)
        ours = to_array(torch.round(decode(c) * 255).to(torch.uint8))
        data = write(c)
        reference_file = pillow_jpeg(a, q, subsampling)
        reference = pillow_decode(reference_file)
        relaxed = {f: to_array(jpeg(x, quality=q, subsampling=subsampling, mode=f)) for f in ("float", "soft")}
        rows.append(Row(
            quality=q, ours_bytes=len(data), pillow_bytes=len(reference_file), psnr_original=psnr(ours, a),
            identical=np.array_equal(ours, reference), differing=int(np.count_nonzero(ours != reference)),
            float_psnr=psnr(relaxed["float"], reference), soft_psnr=psnr(relaxed["soft"], reference),
        ))
        if not shown:
            shown = {"quality": q, "ours": ours, "pillow": reference}
    return rows, shown


def fidelity_sweep(a: np.ndarray, qualities, subsampling: str, progress: Progress | None = None) -> dict[str, list[float]]:
    """PSNR against Pillow of each forward pass at each quality (``inf``: identical); ``progress`` counts the qualities."""
    x = to_tensor(a)
    out = {f: [] for f in ("exact", "float", "soft")}
    for q in qualities:
        reference = pillow_decode(pillow_jpeg(a, q, subsampling))
        for f in out:
            out[f].append(psnr(to_array(jpeg(x, quality=q, subsampling=subsampling, mode=f)), reference))
        if progress is not None:
            progress.update()
    return out


# ---------------------------------------------------------------- 2. recover an unknown quality
@dataclass
class Recovery:
    true_quality: list[int]
    found: list[float]  # the chosen end point of gradient descent
    identical: list[bool]  # exact codec at round(found) == Pillow's pixels
    correct: list[bool]  # round(found) is the true quality (0 and 1 are the same in libjpeg)
    reached: list[int]  # how many starts ended within 0.5 of the true quality
    starts: list[float]
    trajectories: np.ndarray  # (steps + 1, targets, starts)
    chosen: list[int]  # index of the chosen start per target
    size: tuple[int, int]
    seconds: float = 0.0
    settings: dict = field(default_factory=dict)


def recover_quality(a: np.ndarray, qualities, subsampling: str = "4:2:0", steps: int = 30, starts: int = 8,
                    lr: float = 1.5, temperature: float = 0.1, progress: Progress | None = None) -> Recovery:
    """Find the quality of Pillow JPEGs of ``a`` from their pixels alone, by gradient descent.

    For each true quality, Pillow compresses ``a``; the quality is then
    searched by Adam on ``mean((jpeg(a, q, mode="soft", rounding="sigmoid") - target)**2)``
    from ``starts`` starting qualities spread over 5..89 at once (one batch).
    The loss has local minima above the true quality, where the tables are
    near multiples of the true ones, so one start is not enough. Of the end
    points, the one whose rounded quality gives the smallest error through the
    exact codec is kept; it is checked pixel for pixel against Pillow.

    Args:
        a: ``(H, W)`` or ``(H, W, 3)`` uint8 image (use a small one: the batch is
            ``len(qualities) * starts`` images).
        qualities: the true qualities, integers in [0, 100].
        steps, starts, lr, temperature: Adam steps, number of starting
            qualities, learning rate (quality units), sigmoid temperature.
        progress: a :class:`~diffjpeg.tools.progress.Progress` that counts the steps.

    Example:
        >>> a = sample_image()[:32, :32]
        >>> r = recover_quality(a, [60], steps=2, starts=2)
        >>> r.trajectories.shape
        (3, 1, 2)
    """
    began = time.perf_counter()
    qualities = [int(q) for q in qualities]
    n, k = len(qualities), starts
    x = to_tensor(a).float().div(255)
    targets = torch.stack([to_tensor(pillow_decode(pillow_jpeg(a, q, subsampling))).float().div(255) for q in qualities])
    batch_targets = targets.repeat_interleave(k, 0)
    batch_x = x.expand(n * k, *x.shape)
    start_values = np.linspace(5, 89, k).tolist() if k > 1 else [47.0]
    q = torch.tensor(start_values, dtype=torch.float32).repeat(n)
    # Adam with a cosine learning-rate schedule, written out: torch.optim's
    # first use imports torch._dynamo, which takes seconds.
    m, v = torch.zeros_like(q), torch.zeros_like(q)
    history = [q.clone()]
    for t in range(1, steps + 1):
        q.requires_grad_(True)
        y = jpeg(batch_x, quality=q, subsampling=subsampling, mode="soft", rounding=Sigmoid(temperature))
        loss = ((y - batch_targets) ** 2).flatten(1).mean(1).sum()
        (grad,) = torch.autograd.grad(loss, q)
        with torch.no_grad():
            m = 0.9 * m + 0.1 * grad
            v = 0.999 * v + 0.001 * grad**2
            step = lr * 0.5 * (1 + math.cos(math.pi * (t - 1) / steps))
            q = (q - step * (m / (1 - 0.9**t)) / ((v / (1 - 0.999**t)).sqrt() + 1e-8)).clamp(0.0, 100.0)
        history.append(q.clone())
        if progress is not None:
            progress.update()
    with torch.no_grad():
        rounded = q.round()
        exact_error = ((jpeg(batch_x, quality=rounded, subsampling=subsampling) - batch_targets) ** 2).flatten(1).mean(1)
        soft_error = ((jpeg(batch_x, quality=q, subsampling=subsampling, mode="soft", rounding=Sigmoid(temperature)) - batch_targets) ** 2).flatten(1).mean(1)
    exact_error, soft_error = exact_error.reshape(n, k).numpy(), soft_error.reshape(n, k).numpy()
    # smallest exact error; among equal ones (same rounded quality), smallest soft loss
    chosen = [int(np.lexsort((soft_error[i], exact_error[i]))[0]) for i in range(n)]
    ends = q.reshape(n, k)
    return Recovery(
        true_quality=qualities,
        found=[float(ends[i, j]) for i, j in enumerate(chosen)],
        identical=[bool(exact_error[i, j] == 0) for i, j in enumerate(chosen)],
        correct=[max(round(float(ends[i, j])), 1) == max(t, 1) for (i, j), t in zip(enumerate(chosen), qualities)],
        reached=[int(((ends[i] - t).abs() < 0.5).sum()) for i, t in enumerate(qualities)],
        starts=start_values,
        trajectories=torch.stack(history).reshape(steps + 1, n, k).numpy(),
        chosen=chosen,
        size=(a.shape[0], a.shape[1]),
        seconds=time.perf_counter() - began,
        settings={"steps": steps, "starts": k, "lr": lr, "temperature": temperature},
    )


# ---------------------------------------------------------------- 3. report and figure
def _db(value: float) -> str:
    return "identical" if math.isinf(value) else f"{value:.2f}"


def format_rows(rows: list[Row]) -> str:
    head = ("quality", "ours (bytes)", "Pillow (bytes)", "PSNR vs input (dB)", "exact = Pillow?", "float vs Pillow (dB)", "soft vs Pillow (dB)")
    body = []
    for r in rows:
        same = "every pixel" if r.identical else f"no: {r.differing} samples differ"
        body.append((str(r.quality), str(r.ours_bytes), str(r.pillow_bytes), f"{r.psnr_original:.2f}", same, _db(r.float_psnr), _db(r.soft_psnr)))
    return _table(head, body)


def format_recovery(r: Recovery) -> str:
    head = ("true quality", "found", "starts that reached it", "exact codec at found = Pillow?")
    body = [
        (str(t), f"{f:.2f} -> {round(f)}", f"{reached} of {len(r.starts)}", "every pixel" if same else "no")
        for t, f, reached, same in zip(r.true_quality, r.found, r.reached, r.identical)
    ]
    return _table(head, body)


def _table(head, body) -> str:
    widths = [max(len(h), *(len(row[i]) for row in body)) for i, h in enumerate(head)]
    line = lambda cells: "  ".join(c.rjust(w) for c, w in zip(cells, widths))  # noqa: E731
    return "\n".join([line(head), line(["-" * w for w in widths])] + [line(row) for row in body])


def draw(path, a: np.ndarray, shown: dict, sweep_qualities, sweep: dict, recovery: Recovery | None, title: str) -> None:
    """The comparison figure: original, ours, Pillow, their difference, fidelity
    against quality, and (if run) the quality recovery."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    crop = lambda im: centre_crop(im, SHOWN)  # noqa: E731
    h, w = crop(a).shape[:2]
    where = f" (centre {w}x{h})" if (h, w) != a.shape[:2] else ""
    gray = a.ndim == 2
    fig = Figure(figsize=(16, 8.5), layout="constrained")
    FigureCanvasAgg(fig)
    grid = fig.add_gridspec(2, 4, height_ratios=(1, 1))
    q = shown["quality"]
    panels = [(crop(a), f"original{where}"), (crop(shown["ours"]), f"diffjpeg exact, quality {q}"), (crop(shown["pillow"]), f"Pillow (libjpeg-turbo), quality {q}")]
    for i, (image, name) in enumerate(panels):
        ax = fig.add_subplot(grid[0, i])
        ax.imshow(image, cmap="gray" if gray else None, vmin=0, vmax=255, interpolation="nearest")
        ax.set_title(name)
        ax.set_axis_off()
    difference = np.abs(shown["ours"].astype(np.int16) - shown["pillow"].astype(np.int16))
    if difference.ndim == 3:
        difference = difference.max(axis=2)
    ax = fig.add_subplot(grid[0, 3])
    im = ax.imshow(crop(difference), cmap="magma", vmin=0, vmax=max(4, int(difference.max())), interpolation="nearest")
    fig.colorbar(im, ax=ax, shrink=0.8, label="|difference| (8-bit levels)")
    changed = int(np.count_nonzero(difference))
    ax.set_title("|diffjpeg - Pillow|: " + ("0 everywhere" if changed == 0 else f"{changed} pixels differ, max {difference.max()}"))
    ax.set_axis_off()

    ax = fig.add_subplot(grid[1, :2] if recovery is not None else grid[1, :])
    cap = 100.0
    for name, marker in (("exact", "o"), ("float", "s"), ("soft", "^")):
        values = [min(v, cap) for v in sweep[name]]
        label = f"{name} (plotted at {cap:.0f} where identical)" if name == "exact" else f"{name}"
        ax.plot(sweep_qualities, values, marker=marker, label=label)
    ax.set_xlabel("quality")
    ax.set_ylabel("PSNR against Pillow's JPEG (dB)")
    ax.set_title("fidelity to the real codec, per forward pass")
    ax.grid(alpha=0.3)
    ax.legend(loc="center right")

    if recovery is not None:
        ax = fig.add_subplot(grid[1, 2:])
        colors = [f"C{i}" for i in range(len(recovery.true_quality))]
        steps = np.arange(recovery.trajectories.shape[0])
        for i, (t, color) in enumerate(zip(recovery.true_quality, colors)):
            ax.plot(steps, recovery.trajectories[:, i, :], color=color, alpha=0.25, linewidth=1)
            ax.plot(steps, recovery.trajectories[:, i, recovery.chosen[i]], color=color, linewidth=2.5,
                    label=f"true {t}: found {recovery.found[i]:.2f}")
            ax.axhline(t, color=color, linestyle="--", linewidth=1)
        ax.set_xlabel("Adam step")
        ax.set_ylabel("quality")
        ax.set_ylim(0, 100)
        ax.set_title(f"recovering Pillow's quality from pixels: soft pipeline, sigmoid rounding, {len(recovery.starts)} starts")
        ax.grid(alpha=0.3)
        ax.legend(loc="best", fontsize=9)
    fig.suptitle(title)
    fig.savefig(path, dpi=80)


def run(a: np.ndarray, output, qualities=(10, 50, 90), subsampling: str = "4:2:0", steps: int = 30, starts: int = 8,
        name: str = "image", echo=print, shown_as=None, progress: bool = False) -> dict:
    """Compare, recover and draw for one image; print as it goes. Returns the measurements.

    Args:
        a: ``(H, W)`` or ``(H, W, 3)`` uint8 image.
        output: path of the PNG (or any format matplotlib writes) figure.
        qualities: the table's qualities; the images shown use the lowest.
        subsampling: ``"4:4:4"``, ``"4:2:2"`` or ``"4:2:0"``.
        steps, starts: of the quality recovery; ``steps=0`` skips it.
        name: what to call the image in the printout.
        echo: where lines go.
        shown_as: how to name ``output`` in the last line (default: ``output``).
        progress: show bars of the sweep and the recovery on a terminal (stderr).
    """
    from PIL import Image, features

    began = time.perf_counter()
    qualities = sorted(set(int(q) for q in qualities))
    codec = f"Pillow {Image.__version__} (libjpeg-turbo {features.version('libjpeg_turbo') or '?'})"
    echo(f"{name}: {describe(a)}, {subsampling if a.ndim == 3 else 'grayscale'}; reference: {codec}")
    echo("")
    echo("diffjpeg's exact codec (encode -> decode, and encode -> write for the file size) beside Pillow:")
    rows, shown = codec_rows(a, qualities, subsampling)
    echo(format_rows(rows))
    identical = sum(r.identical for r in rows)
    echo(f"every pixel identical to Pillow's at {identical} of {len(rows)} qualities")

    sweep_qualities = sorted(set(SWEEP) | set(qualities))
    with Progress(len(sweep_qualities), "fidelity sweep", unit="quality", lines=False) if progress else nullcontext() as bar:
        sweep = fidelity_sweep(a, sweep_qualities, subsampling, bar)
    echo("")
    echo(f"exact forward identical to Pillow at {sum(math.isinf(v) for v in sweep['exact'])} of {len(sweep_qualities)} qualities "
         f"({sweep_qualities[0]}..{sweep_qualities[-1]}); PSNR against Pillow, float {min(sweep['float']):.1f}..{_db(max(sweep['float']))} dB, "
         f"soft {min(sweep['soft']):.1f}..{_db(max(sweep['soft']))} dB")

    recovery = None
    if steps > 0:
        part = centre_crop(a)
        echo("")
        echo(f"Recovering the quality of Pillow's JPEGs from their pixels ({describe(part)}"
             f"{' centre crop' if part.shape[:2] != a.shape[:2] else ''}): Adam on quality through "
             f"jpeg(mode='soft', rounding='sigmoid'), {starts} starts, {steps} steps; "
             "the end point with the smallest exact-codec error is kept:")
        with Progress(steps, "quality recovery", unit="step", lines=False) if progress else nullcontext() as bar:
            recovery = recover_quality(part, qualities, subsampling, steps, starts, progress=bar)
        echo(format_recovery(recovery))
        echo(f"true quality found: {sum(recovery.correct)} of {len(qualities)}; pixels equal to Pillow's: "
             f"{sum(recovery.identical)} of {len(qualities)} ({recovery.seconds:.1f} s)")

    title = f"diffjpeg vs Pillow on {name} ({describe(a)})"
    draw(output, a, shown, sweep_qualities, sweep, recovery, title)
    echo("")
    echo(f"wrote {output if shown_as is None else shown_as} ({time.perf_counter() - began:.1f} s)")
    return {"rows": rows, "sweep_qualities": sweep_qualities, "sweep": sweep, "recovery": recovery}
