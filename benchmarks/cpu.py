"""Forward+backward on the CPU beside the peers, as issue 30 measures it: writes
benchmarks/results/cpu.md and cpu.json.

Batch 16x3x256x256 float32, quality 50, 4:2:0, each mode with its default
surrogate (and the linear one, to compare the sigmoid's cost); torch's
threads as the machine has cores. Each round times every method once after
the other (interleaved, so that a slow moment of the shared machine falls on
all of them), each round starting one method later (so that each takes each
place as often); the report gives the median over the rounds and the ratios
of those medians. Peers in the same process: Reich et al.'s straight-through
layer (their package ``diff_jpeg``) and kornia; a peer that is not installed
is named as missing. Memory: the rise of the peak resident set of a fresh
process over its second forward+backward of one 12-megapixel image
(3456x3456), in bytes per pixel, the input allocated before (the benchmark
suite's probe, ``diffjpeg.tools.bench.suite.peak_memory_cpu``).

    python benchmarks/cpu.py                # 14 rounds and the memory probes (about 4 minutes on 2 cores)
    python benchmarks/cpu.py --rounds 2 --no-memory    # a smoke test; its numbers mean nothing
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
import warnings
from pathlib import Path

import torch

from diffjpeg.stages.rounding import DEFAULT_ROUNDINGS
from diffjpeg.tools.bench.machine import machine
from diffjpeg.tools.bench.methods import PEERS, REICH_STE, make_method
from diffjpeg.tools.bench.report import markdown_table
from diffjpeg.tools.bench.suite import peak_memory_cpu

BATCH, SIZE, QUALITY = 16, 256, 50
MEMORY_SIDE = 3456  # 11.9 megapixels, a multiple of 16 (the peers need one)
OURS = [f"{mode}/{DEFAULT_ROUNDINGS[mode].name}" for mode in ("exact", "float", "soft")] + ["float/linear", "soft/linear"]
# issue 30's targets: (numerator, denominator, least ratio of their forward+backward throughput)
TARGETS = [
    (OURS[1], REICH_STE, 4.0),
    (OURS[1], "kornia", 10.0),
    (OURS[2], REICH_STE, 4.0),
    (OURS[0], REICH_STE, 4.0),
    (OURS[1], "float/linear", 0.9),
    (OURS[2], "soft/linear", 0.9),
]
MEMORY_TARGET = 24.0  # bytes per pixel over the caller's input, forward+backward


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=14)  # twice the methods: each in each place twice
    parser.add_argument("--no-memory", action="store_true", help="skip the memory probes")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    warnings.simplefilter("ignore")  # soft/linear's "quantizes nothing": measured on purpose

    names = OURS + list(PEERS)
    methods = {name: make_method(name) for name in names}
    missing = [name for name, f in methods.items() if f is None]
    methods = {name: f for name, f in methods.items() if f is not None}
    x0 = torch.rand(BATCH, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(0))
    q = torch.tensor(float(QUALITY))

    def forward_backward(f) -> float:
        x = x0.clone().requires_grad_()
        start = time.perf_counter()
        f(x, q).sum().backward()
        return time.perf_counter() - start

    def forward(f) -> float:
        start = time.perf_counter()
        with torch.no_grad():
            f(x0, q)
        return time.perf_counter() - start

    for f in methods.values():  # warm-up: libraries, kernels, the thread pool
        forward_backward(f)
        forward(f)
    times = {name: {"fwd": [], "fwd_bwd": []} for name in methods}
    order = list(methods)
    for r in range(args.rounds):
        # each round starts one method later: every method takes every place in a round as often (the
        # first after the peers' large frees pays the page faults of a trimmed heap, say)
        for name in order[r % len(order):] + order[: r % len(order)]:
            times[name]["fwd"].append(forward(methods[name]))
            times[name]["fwd_bwd"].append(forward_backward(methods[name]))
    megapixels = BATCH * SIZE * SIZE / 1e6
    medians = {name: {k: statistics.median(v) for k, v in t.items()} for name, t in times.items()}
    memory = {}
    if not args.no_memory:
        for name in OURS[:3] + list(methods.keys() & set(PEERS)):
            mib = peak_memory_cpu(name, 1, MEMORY_SIDE)
            memory[name] = None if mib is None else mib * 2**20 / MEMORY_SIDE**2

    rows = [{
        "method": name,
        "forward MP/s": megapixels / m["fwd"],
        "forward+backward MP/s": megapixels / m["fwd_bwd"],
        "fwd+bwd spread (min-max ms)": f"{min(times[name]['fwd_bwd']) * 1e3:.1f}-{max(times[name]['fwd_bwd']) * 1e3:.1f}",
        "fwd+bwd B/px at 12 MP": "—" if memory.get(name) is None else f"{memory[name]:.1f}",
    } for name, m in medians.items()]
    targets = []
    for ours, peer, least in TARGETS:
        if peer not in medians or ours not in medians:
            targets.append({"target": f"{ours} / {peer}", "goal": f">= {least}", "measured": f"{peer} not installed", "met": "—"})
            continue
        ratio = medians[peer]["fwd_bwd"] / medians[ours]["fwd_bwd"]
        targets.append({"target": f"{ours} / {peer}, forward+backward", "goal": f">= {least}", "measured": f"{ratio:.2f}", "met": "yes" if ratio >= least else "no"})
    for name in OURS[:3]:
        if memory.get(name) is not None:
            targets.append({"target": f"{name} forward+backward memory, B/px at 12 MP", "goal": f"<= {MEMORY_TARGET:.0f}",
                            "measured": f"{memory[name]:.1f}", "met": "yes" if memory[name] <= MEMORY_TARGET else "no"})

    facts = machine()
    lines = [
        "# CPU forward+backward beside the peers (issue 30)",
        "",
        "Generated by `python benchmarks/cpu.py`; every number was measured in this run, on this machine.",
        "",
        *[f"- {k}: {v}" for k, v in facts.items()],
        "",
        f"Batch {BATCH}x3x{SIZE}x{SIZE} float32, quality {QUALITY}, 4:2:0; each mode with its default surrogate; "
        f"median of {args.rounds} interleaved rounds after a warm-up, each round starting one method later; torch threads: {torch.get_num_threads()}. "
        f"Memory: rise of the peak resident set of a fresh process over its second forward+backward of one "
        f"{MEMORY_SIDE}x{MEMORY_SIDE} image, per pixel (the input allocated before).",
        "",
        markdown_table(rows, list(rows[0]), {"forward MP/s": "{:.1f}", "forward+backward MP/s": "{:.1f}"}),
        "",
        "## Targets",
        "",
        markdown_table(targets, ["target", "goal", "measured", "met"]),
    ]
    if missing:
        lines += ["", "Not installed, so not measured: " + ", ".join(f"{name} ({PEERS[name][1]})" for name in missing)]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "cpu.md").write_text("\n".join(lines) + "\n")
    record = {"machine": facts, "rounds": args.rounds, "threads": torch.get_num_threads(), "rows": rows, "targets": targets,
              "times_s": times, "missing": missing}
    (args.out / "cpu.json").write_text(json.dumps(record, indent=1, default=str) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
