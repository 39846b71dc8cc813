"""How cost per pixel and memory scale with the image: 256² batches to 12 MP, each mode.

Throughput (megapixels per second, one torch thread, best of ``repeats``
after a warm-up) and peak memory (bytes per pixel) of ``jpeg``'s forward
(no grad) and forward+backward, float32 RGB input, quality 50, 4:2:0.
Memory is measured as :func:`diffjpeg.tools.bench.suite.peak_memory_cpu`
measures it: the rise of the peak resident set of a fresh process over its
second call, with glibc returning freed blocks of 64 KiB and more to the
system (``MALLOC_MMAP_THRESHOLD_=65536``), so that it follows the live
tensors; the input (and, forward+backward, nothing else) exists before.

The issue's flat-cost ratio (12 MP throughput over 1 MP's) is measured
apart from the table, by :func:`flat_cost`: rounds alternating the two
sizes, the median of the rounds' ratios. Read off the table, whose sizes
are measured a minute or more apart, the same code's ratio moved by up to
0.2 between runs on this project's shared host (0.80 to 0.96 for exact,
0.70 to 0.92 for float, in the four runs committed on 2026-11-30).

Run ``python benchmarks/scaling.py`` (writes ``benchmarks/results/scaling.md``);
the benchmark suite includes the same table.
"""
from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time

import torch

from ...core.modes import MODES
from .report import best_time, markdown_table

SIZES = ((16, 256, 256), (1, 1024, 1024), (1, 2048, 2048), (1, 3000, 4000))  # (batch, H, W)
QUICK_SIZES = ((4, 64, 64), (1, 256, 256))
FLAT_SIZES = ((1, 1024, 1024), (1, 3000, 4000))  # the flat-cost target: 12 MP against 1 MP
QUICK_FLAT_SIZES = ((1, 64, 64), (1, 128, 128))

_PROBE = """
import sys, torch
sys.path[:0] = {path!r}
from diffjpeg import jpeg
torch.set_num_threads(1)
def status(field):
    for line in open("/proc/self/status"):
        if line.startswith(field):
            return int(line.split()[1])
x = torch.rand({batch}, 3, {height}, {width}, requires_grad={grad})
q = torch.tensor(50.0)
def call():
    if {grad}:
        jpeg(x, q, mode={mode!r}).sum().backward()
        x.grad = None
    else:
        with torch.no_grad():
            jpeg(x, q, mode={mode!r})
call()  # the first call loads kernels and libraries: not the method's memory
open("/proc/self/clear_refs", "w").write("5")  # reset the peak (VmHWM) to the current size
before = status("VmRSS:")
call()
print((status("VmHWM:") - before) * 1024)
"""


def peak_bytes(mode: str, batch: int, height: int, width: int, grad: bool) -> float | None:
    """Rise of the peak resident memory (bytes) of a fresh process over its second call (Linux)."""
    code = _PROBE.format(path=sys.path, mode=mode, batch=batch, height=height, width=width, grad=grad)
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"}  # the probe's process only, as the suite's
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    if out.returncode != 0:
        return None
    return float(out.stdout.strip().splitlines()[-1])


def scaling(sizes=SIZES, modes=MODES, repeats: int = 3, memory: bool = True, progress=None) -> list[dict]:
    """One row per size and mode: Mpx/s and bytes per pixel, forward and forward+backward, one thread."""
    from ... import jpeg

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    rows = []
    try:
        for batch, height, width in sizes:
            x = torch.rand(batch, 3, height, width, generator=torch.Generator().manual_seed(0))
            q = torch.tensor(50.0)
            megapixels = batch * height * width / 1e6
            for mode in modes:

                def forward():
                    with torch.no_grad():
                        jpeg(x, q, mode=mode)

                def forward_backward():
                    xx = x.detach().requires_grad_()
                    jpeg(xx, q, mode=mode).sum().backward()

                forward_backward(), forward()  # warm-up
                row = {"size": f"{batch}x{height}x{width}" if batch > 1 else f"{height}x{width}", "megapixels": megapixels, "mode": mode,
                       "forward Mpx/s": megapixels / best_time(forward, repeats),
                       "forward+backward Mpx/s": megapixels / best_time(forward_backward, repeats)}
                if memory:
                    for key, grad in (("forward B/px", False), ("forward+backward B/px", True)):
                        peak = peak_bytes(mode, batch, height, width, grad)
                        row[key] = None if peak is None else peak / (megapixels * 1e6)
                rows.append(row)
                if progress is not None:
                    progress.update()
    finally:
        torch.set_num_threads(threads)
    return rows


def flat_cost(sizes=FLAT_SIZES, modes=MODES, rounds: int = 5, progress=None) -> dict:
    """Per mode and pass, the larger size's throughput over the smaller's,
    in ``rounds`` rounds that alternate the two sizes (one thread):
    ``{mode: {"forward": [...], "forward+backward": [...]}}``, one ratio per
    round. In a round each size runs one untimed call, then two timed ones,
    the faster kept: repeated calls of one size, as in a training loop (a
    1 MP call right after a 12 MP one finds freed memory returned to the
    system and pays for it again), and both sizes within seconds of each
    other, on the same state of a shared host."""
    from ... import jpeg

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    q = torch.tensor(50.0)
    images = [torch.rand(b, 3, h, w, generator=torch.Generator().manual_seed(0)) for b, h, w in sizes]
    megapixels = [x.numel() / 3e6 for x in images]
    result = {}
    try:
        for mode in modes:

            def forward(x):
                with torch.no_grad():
                    jpeg(x, q, mode=mode)

            def forward_backward(x):
                xx = x.detach().requires_grad_()
                jpeg(xx, q, mode=mode).sum().backward()

            result[mode] = {}
            for name, fn in (("forward", forward), ("forward+backward", forward_backward)):
                ratios = []
                for _ in range(rounds):
                    rates = [mp / best_time(lambda: fn(x), 2) for x, mp in zip(images, megapixels)]
                    ratios.append(rates[1] / rates[0])
                result[mode][name] = ratios
            if progress is not None:
                progress.update()
    finally:
        torch.set_num_threads(threads)
    return result


def flat_cost_lines(flat: dict, sizes=FLAT_SIZES) -> list[str]:
    """:func:`flat_cost` as report lines: median and range of the rounds' ratios."""
    (_, h0, w0), (_, h1, w1) = sizes
    lines = []
    for mode, passes in flat.items():
        parts = [f"{name} {statistics.median(r):.2f} ({min(r):.2f}-{max(r):.2f})" for name, r in passes.items()]
        rounds = len(next(iter(passes.values())))
        lines.append(f"- {mode}: {h1}x{w1} / {h0}x{w0} throughput, median (range) of {rounds} alternating rounds: " + ", ".join(parts))
    return lines


COLUMNS = ["size", "mode", "forward Mpx/s", "forward+backward Mpx/s", "forward B/px", "forward+backward B/px"]
FORMATS = {"forward Mpx/s": "{:.1f}", "forward+backward Mpx/s": "{:.1f}", "forward B/px": "{:.0f}", "forward+backward B/px": "{:.0f}"}


def ratios(rows: list[dict]) -> list[str]:
    """The issue's scaling targets read off the table: largest over the 1024² image, bytes per pixel at the largest."""
    lines = []
    sizes = list(dict.fromkeys(r["size"] for r in rows))
    if "1024x1024" not in sizes or len(sizes) < 2:
        return lines
    largest = sizes[-1]
    for mode in dict.fromkeys(r["mode"] for r in rows):
        small = next(r for r in rows if r["size"] == "1024x1024" and r["mode"] == mode)
        big = next(r for r in rows if r["size"] == largest and r["mode"] == mode)
        memory = big.get("forward+backward B/px")
        lines.append(f"- {mode}: {largest} / 1024x1024 throughput, forward {big['forward Mpx/s'] / small['forward Mpx/s']:.2f}, "
                     f"forward+backward {big['forward+backward Mpx/s'] / small['forward+backward Mpx/s']:.2f}"
                     + ("" if memory is None else f"; forward+backward peak at {largest}: {memory:.0f} bytes per pixel"))
    return lines


def section(rows: list[dict], flat: dict | None = None, flat_sizes=FLAT_SIZES) -> str:
    """The scaling table as a Markdown section; with ``flat`` (:func:`flat_cost`) its ratios too."""
    text = ("## Scaling with the image size (CPU, one thread)\n\n"
            "`jpeg` on float32 RGB, quality 50, 4:2:0, default surrogate; Mpx/s best of the repeats after a warm-up; "
            "B/px: rise of the peak resident set of a fresh process over its second call (`MALLOC_MMAP_THRESHOLD_=65536`, "
            "as for the speed table), over the pixels of the batch; the input exists before.\n\n"
            + markdown_table(rows, [c for c in COLUMNS if all(c in r for r in rows)], FORMATS))
    lines = ratios(rows)
    if lines:
        text += "\n\nFrom the table (one size after the other, a minute or more apart):\n\n" + "\n".join(lines)
    if flat:
        text += ("\n\nFlat cost, measured apart in rounds that alternate the two sizes (per size one untimed call, "
                 "then the faster of two), so that both see the same state of the shared host:\n\n"
                 + "\n".join(flat_cost_lines(flat, flat_sizes)))
    return text


def main(argv=None) -> int:
    import argparse
    from pathlib import Path

    from .machine import machine

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/scaling.md"), help="the Markdown file written (default: %(default)s)")
    parser.add_argument("--quick", action="store_true", help="small sizes, one repeat: a smoke test whose numbers mean nothing")
    parser.add_argument("--repeats", type=int, default=3, help="timed calls per measurement, best kept (default: %(default)s)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds alternating the two sizes for the flat-cost ratio (default: %(default)s)")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    rows = scaling(QUICK_SIZES if args.quick else SIZES, repeats=1 if args.quick else args.repeats)
    flat_sizes = QUICK_FLAT_SIZES if args.quick else FLAT_SIZES
    flat = flat_cost(flat_sizes, rounds=1 if args.quick else args.rounds)
    info = machine()
    text = (f"# Scaling\n\nGenerated by `python benchmarks/scaling.py{' --quick' if args.quick else ''}` in "
            f"{time.perf_counter() - started:.0f} s.\n\n" + "\n".join(f"- {k}: {v}" for k, v in info.items()) + "\n\n" + section(rows, flat, flat_sizes) + "\n")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)
    return 0
