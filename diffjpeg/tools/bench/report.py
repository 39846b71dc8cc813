"""What the benchmarks write: Markdown tables, plots, and the best-of-N timer they measure with."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch


def best_time(fn, repeats: int) -> float:
    """Shortest of ``repeats`` timed calls of ``fn`` (seconds), after one untimed call."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return min(times)


def markdown_table(rows: list[dict], columns: list[str], formats: dict | None = None) -> str:
    """A Markdown table of ``rows`` (dicts) in ``columns``; ``formats`` by column, ``None`` as a dash."""
    formats = formats or {}
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---:" if i else "---" for i in range(len(columns))) + "|"]
    for r in rows:
        cells = ("—" if r[c] is None else r[c] if isinstance(r[c], str) else formats.get(c, "{}").format(r[c]) for c in columns)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_fidelity(rows, path: Path, subsampling: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for method in dict.fromkeys(r["method"] for r in rows if r["subsampling"] == subsampling):
        sub = [r for r in rows if r["subsampling"] == subsampling and r["method"] == method]
        ax.plot([r["quality"] for r in sub], [r["psnr"] for r in sub], marker="o", label=method)
    ax.set(xlabel="quality", ylabel="PSNR against Pillow (dB, 100 = identical)", title=f"Fidelity to libjpeg-turbo, {subsampling}")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_speed(rows, pillow, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    names = [r["method"] for r in rows]
    positions = np.arange(len(names))
    ax.barh(positions - 0.2, [r["forward MP/s"] for r in rows], 0.4, label="forward")
    ax.barh(positions + 0.2, [r["forward+backward MP/s"] for r in rows], 0.4, label="forward+backward")
    ax.axvline(pillow, color="k", linestyle="--", label=f"Pillow encode+decode ({pillow:.0f})")
    ax.set_yticks(positions, names)
    ax.set(xlabel="megapixels per second (CPU)", title="Throughput, 16x3x256x256 float32")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
