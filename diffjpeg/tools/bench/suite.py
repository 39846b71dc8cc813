"""The benchmark suite: fidelity, speed and memory, gradient usefulness, beside the peers.

Run it as ``diffjpeg bench`` (:mod:`diffjpeg.tools.cli`) or ``python benchmarks/suite.py``; it writes
``report.md`` and PNG plots to ``--out`` (default ``benchmarks/results``).
Peers, in the same run: real JPEG through Pillow and OpenCV, kornia's
``jpeg_codec_differentiable`` and, where its package ``diff_jpeg`` is
installed, the straight-through layer of Reich et al. (WACV 2024) (both 4:2:0
only, sizes divisible by 16; :data:`~diffjpeg.tools.bench.methods.PEERS`);
the fidelity section also sets soft mode's default (:data:`SOFT_DEFAULT`, the forward pass
that is its surrogate) beside the peers' soft forwards: kornia's and Reich et al.'s (``ste=False``). Needs the
``bench`` extra (kornia, OpenCV, scikit-image, scikit-learn, matplotlib);
the report says which peer is not installed.

Everything in the report is measured by this run; nothing is copied in.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ... import jpeg
from ...stages.rounding import DEFAULT_ROUNDING, ROUNDINGS, default_rounding
from ..images import skimage_photo
from ..metrics import psnr
from ..progress import Progress
from ..reference import opencv_roundtrip, pillow_roundtrip
from . import scaling
from .machine import machine
from .methods import (
    COMPILED,
    PEERS,
    REICH_QUALITIES,
    TENSOR_STAGES,
    float_tensor,
    kornia_jpeg,
    make_method,
    methods,
    photos,
    quality_range,
    reich_jpeg,
    uint8_array,
)
from .report import best_time, markdown_table, plot_fidelity, plot_speed

QUALITIES = (1, 5, 10, 25, 50, 75, 90, 95, 100)
SOFT_DEFAULT = "soft (default)"  # jpeg(mode="soft") with its default surrogate, beside the soft-forward peers
REICH_SOFT = "reich (soft)"  # Reich et al.'s soft forward (ste=False): a soft-forward peer of SOFT_DEFAULT
REICH_STE_NOTE = "beside their straight-through layer, reich (ste)"
PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "immunohistochemistry", "hubble_deep_field")


# ---------------------------------------------------------------- 1. fidelity
def fidelity(names, qualities, subsamplings, progress: Progress | None = None) -> list[dict]:
    """PSNR and share of identical pixels against Pillow, per method and quality; ``progress`` counts the qualities.

    A method has no row at a quality it does not take (:func:`~diffjpeg.tools.bench.methods.quality_range`).
    Beside the methods of :func:`~diffjpeg.tools.bench.methods.methods`: :data:`SOFT_DEFAULT` and, where
    ``diff_jpeg`` is installed, :data:`REICH_SOFT`.
    """
    images = photos(names)
    rows = []
    for subsampling in subsamplings:
        compared = {name: f for name, f in methods(subsampling).items() if not name.startswith(("exact/", "float/")) or name.endswith("/polynomial")}
        compared = {name.split("/")[0] if not name.startswith("soft") else name: f for name, f in compared.items()}
        ours = {name: f for name, f in compared.items() if name not in PEERS}
        soft_default = {SOFT_DEFAULT: lambda x, q, s=subsampling: jpeg(x, quality=q, subsampling=s, mode="soft")}
        compared = {**ours, **soft_default, **{name: f for name, f in compared.items() if name in PEERS}}  # before the peers
        reich_soft = reich_jpeg(ste=False) if subsampling == "4:2:0" else None
        if reich_soft is not None:
            compared[REICH_SOFT] = reich_soft

        def takes(name, quality):
            low, high = REICH_QUALITIES if name == REICH_SOFT else quality_range(name)
            return low <= quality <= high

        for quality in qualities:
            references = [pillow_roundtrip(a, quality, subsampling) for a in images]
            taking = {name: f for name, f in compared.items() if takes(name, quality)}
            candidates = {name: [uint8_array(f(float_tensor(a)[None], torch.tensor(float(quality)))[0]) for a in images] for name, f in taking.items()}
            candidates["OpenCV (real JPEG)"] = [opencv_roundtrip(a, quality, subsampling) for a in images]
            for name, outputs in candidates.items():
                rows.append({
                    "subsampling": subsampling, "quality": quality, "method": name,
                    "psnr": float(np.mean([min(psnr(o, r), 100.0) for o, r in zip(outputs, references)])),
                    "identical": float(np.mean([np.mean(o == r) for o, r in zip(outputs, references)])),
                })
            if progress is not None:
                progress.update()
    return rows


def fidelity_section(rows: list[dict], subsampling: str, qualities, upto: int = 95) -> str:
    """The report's fidelity section (Markdown) for one subsampling, from rows of :func:`fidelity`:
    PSNR and identical pixels per quality and method, and each method's mean PSNR over the qualities
    up to ``upto`` that every method takes (the soft forwards side by side)."""
    sub = [r for r in rows if r["subsampling"] == subsampling]
    names = list(dict.fromkeys(r["method"] for r in sub))
    cell = {(r["quality"], r["method"]): r for r in sub}  # none where a method does not take the quality: a dash
    table = [{"quality": q, **{m: cell[q, m]["psnr"] if (q, m) in cell else None for m in names}} for q in qualities]
    identical = [{"quality": q, **{m: cell[q, m]["identical"] * 100 if (q, m) in cell else None for m in names}} for q in qualities]
    shared = [q for q in qualities if q <= upto and all((q, m) in cell for m in names)]
    means = ", ".join(f"{m} {np.mean([cell[q, m]['psnr'] for q in shared]):.2f}" for m in names)
    return (
        f"## Fidelity against Pillow, {subsampling}\n\nMean PSNR (dB; 100 means identical) over the photos, "
        f"and the share of identical pixels (%). exact and float do not depend on the surrogate. "
        f"{SOFT_DEFAULT}: `jpeg(mode=\"soft\")` with its default surrogate, `{default_rounding('soft')!r}`"
        + (f"; {REICH_SOFT}: Reich et al.'s soft forward (`ste=False`), {REICH_STE_NOTE}" if REICH_SOFT in names else "")
        + "."
        + (" A dash: a quality the method does not take (Reich et al.'s layer takes 1 to 99)." if any(None in r.values() for r in table) else "")
        + "\n\n"
        + markdown_table(table, ["quality"] + names, {m: "{:.2f}" for m in names})
        + f"\n\nMean PSNR over qualities {shared}: {means}."
        + "\n\nIdentical pixels (%):\n\n"
        + markdown_table(identical, ["quality"] + names, {m: "{:.1f}" for m in names})
    )


# ---------------------------------------------------------------- 2. speed and memory
def throughput(names, batch: int, size: int, repeats: int, device: str, progress: Progress | None = None) -> list[dict]:
    """Megapixels per second, forward (no grad) and forward+backward; ``progress`` counts the methods."""
    x = torch.rand(batch, 3, size, size, device=device)
    q = torch.tensor(50.0, device=device)
    megapixels = batch * size * size / 1e6
    rows = []
    for name in names:
        f = make_method(name)
        if f is None:
            if progress is not None:
                progress.update()
            continue

        def forward_only():
            with torch.no_grad():
                f(x, q)

        def forward_backward():
            xx = x.clone().requires_grad_()
            f(xx, q).sum().backward()

        start = time.perf_counter()
        forward_backward()  # compiles, if it is compiled
        forward_only()
        warm_up = time.perf_counter() - start
        rows.append({
            "device": device, "method": name,
            "forward MP/s": megapixels / best_time(forward_only, repeats),
            "forward+backward MP/s": megapixels / best_time(forward_backward, repeats),
            "first call s": warm_up,
        })
        if progress is not None:
            progress.update()
    return rows


def pillow_throughput(batch: int, size: int, repeats: int, threads: int) -> float:
    """Pillow (libjpeg-turbo) encode+decode of the same batch, ``threads`` images at a time."""
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for _ in range(batch)]
    with ThreadPoolExecutor(threads) as pool:  # Pillow releases the GIL while coding
        seconds = best_time(lambda: list(pool.map(lambda a: pillow_roundtrip(a, 50), images)), repeats)
    return batch * size * size / 1e6 / seconds


def large_photo(size: tuple[int, int] = (2000, 3000)) -> np.ndarray:
    """scikit-image's astronaut resized (Lanczos) to ``size`` (H, W): a camera-sized photo."""
    return np.array(Image.fromarray(skimage_photo("astronaut")).resize(size[::-1], Image.LANCZOS))


def large_photo_times(a: np.ndarray, repeats: int) -> dict:
    """Seconds for one exact ``jpeg`` of a uint8 photo and for Pillow's encode+decode of it."""
    x = torch.from_numpy(a).permute(2, 0, 1).contiguous()
    with torch.no_grad():
        ours_s = best_time(lambda: jpeg(x, quality=75), repeats)
    return {"diffjpeg exact jpeg s": ours_s, "Pillow encode+decode s": best_time(lambda: pillow_roundtrip(a, 75), repeats)}


_MEMORY_PROBE = """
import sys, torch
sys.path[:0] = {path!r}
from diffjpeg.tools.bench.methods import make_method
def status(field):
    for line in open("/proc/self/status"):
        if line.startswith(field):
            return int(line.split()[1])
f = make_method({name!r})
x = torch.rand({batch}, 3, {size}, {size}, requires_grad=True)
q = torch.tensor(50.0)
f(x, q).sum().backward()  # the first call loads kernels and libraries: not the method's memory
x.grad = None
open("/proc/self/clear_refs", "w").write("5")  # reset the peak (VmHWM) to the current size
before = status("VmRSS:")
f(x, q).sum().backward()
print((status("VmHWM:") - before) / 1024)
"""


def peak_memory_cpu(name: str, batch: int, size: int) -> float | None:
    """Rise of the peak resident memory (MiB) of a fresh process over its
    second forward+backward (Linux: the peak is reset first through
    /proc/self/clear_refs; large blocks go straight back to the system)."""
    code = _MEMORY_PROBE.format(path=sys.path, name=name, batch=batch, size=size)
    # glibc returns every freed block of 64 KiB or more to the system, so that
    # the resident set follows the live tensors instead of malloc's caches
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    if out.returncode != 0:
        return None
    return float(out.stdout.strip().splitlines()[-1])


def peak_memory_cuda(name: str, batch: int, size: int) -> float:
    f = make_method(name)
    x = torch.rand(batch, 3, size, size, device="cuda", requires_grad=True)
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    f(x, torch.tensor(50.0, device="cuda")).sum().backward()
    torch.cuda.synchronize()
    return (torch.cuda.max_memory_allocated() - base) / 2**20


def peer_ratios(speed: list[dict]) -> list[str]:
    """The speed section's lines on the peers: our float and exact forward+backward throughput (with the
    default surrogate) over the fastest peer present and over each peer; a peer missing from ``speed`` is
    "not installed: " and how to install it.

    ``speed``: rows of :func:`throughput` (``"method"``, ``"forward+backward MP/s"``).

    >>> rows = [{"method": "float/sigmoid", "forward+backward MP/s": 30.0}, {"method": "exact/sigmoid", "forward+backward MP/s": 20.0},
    ...         {"method": "kornia", "forward+backward MP/s": 3.0}]
    >>> print("\\n".join(peer_ratios(rows)))  # doctest: +ELLIPSIS
    - forward+backward / the fastest peer present (kornia, 3.00 MP/s): float 10.00x, exact 6.67x
    - forward+backward / kornia (3.00 MP/s): float 10.00x, exact 6.67x
    - reich (ste): not installed: pip install --no-deps git+...
    """
    by_name = {r["method"]: r for r in speed}
    ours = {mode: by_name[f"{mode}/{DEFAULT_ROUNDING}"]["forward+backward MP/s"] for mode in ("float", "exact")}
    rates = {name: by_name[name]["forward+backward MP/s"] for name in PEERS if name in by_name}

    def line(label: str, rate: float) -> str:
        return f"- forward+backward / {label}: " + ", ".join(f"{mode} {v / rate:.2f}x" for mode, v in ours.items())

    lines = []
    if rates:
        fastest = max(rates, key=rates.get)
        lines.append(line(f"the fastest peer present ({fastest}, {rates[fastest]:.2f} MP/s)", rates[fastest]))
    lines += [line(f"{name} ({rate:.2f} MP/s)", rate) for name, rate in rates.items()]
    lines += [f"- {name}: not installed: {install}" for name, (_, install) in PEERS.items() if name not in by_name]
    return lines


# ---------------------------------------------------------------- 3. gradient usefulness
def quality_recovery(name: str, images, targets, steps: int) -> float:
    """Share of q* recovered within +-1 by Adam on quality, from 50, matching the real JPEG."""
    f = make_method(name)
    hits = 0
    for target in targets:
        for a in images:
            x = float_tensor(a)[None]
            real = float_tensor(pillow_roundtrip(a, target))[None]
            q = torch.tensor(50.0, requires_grad=True)
            optimizer = torch.optim.Adam([q], lr=2.0)
            schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)  # settle, don't orbit
            for _ in range(steps):
                optimizer.zero_grad()
                loss = torch.mean((f(x, q.clamp(1, 100)) - real) ** 2)
                loss.backward()
                optimizer.step()
                schedule.step()
            hits += abs(float(q.detach()) - target) <= 1
    return hits / (len(targets) * len(images))


def digits_classifier(seed: int = 0, epochs: int = 15):
    """A small CNN trained on scikit-learn's digits, upscaled to 32x32 RGB."""
    from sklearn.datasets import load_digits

    torch.manual_seed(seed)
    digits = load_digits()
    images = torch.tensor(digits.images, dtype=torch.float32)[:, None] / 16
    images = torch.nn.functional.interpolate(images, size=32, mode="bilinear", align_corners=False).clamp(0, 1).repeat(1, 3, 1, 1)
    labels = torch.tensor(digits.target)
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
    train, test = order[:1400], order[1400:]
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 16, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(16, 32, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Flatten(), torch.nn.Linear(32 * 8 * 8, 10),
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(epochs):
        for batch in train.split(64):
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(model(images[batch]), labels[batch]).backward()
            optimizer.step()
    model.eval()
    return model, images[test], labels[test]


def real_jpeg_batch(x: torch.Tensor, quality: int) -> torch.Tensor:
    return torch.stack([float_tensor(pillow_roundtrip(uint8_array(img), quality)) for img in x])


def attack_through_jpeg(name: str | None, model, images, labels, eps: float, steps: int, quality: int = 50) -> tuple[float, int]:
    """PGD (L-inf) with a differentiable JPEG in the loop (or none): the success
    rate after the real Pillow JPEG over the images the model gets right after
    real JPEG, and how many those are."""
    f = make_method(name) if name else None
    q = torch.tensor(float(quality))
    with torch.no_grad():
        correct = model(real_jpeg_batch(images, quality)).argmax(1) == labels
    x, y = images[correct], labels[correct]
    adversarial = x.clone()
    for _ in range(steps):
        adversarial.requires_grad_()
        seen = f(adversarial, q) if f else adversarial
        loss = torch.nn.functional.cross_entropy(model(seen), y)
        (gradient,) = torch.autograd.grad(loss, adversarial)
        adversarial = (adversarial.detach() + 2.5 * eps / steps * gradient.sign())
        adversarial = (x + (adversarial - x).clamp(-eps, eps)).clamp(0, 1)
    with torch.no_grad():
        fooled = model(real_jpeg_batch(adversarial, quality)).argmax(1) != y
    return float(fooled.float().mean()), int(correct.sum())


def pre_editing(name: str, images, quality: int, steps: int) -> float:
    """Mean change in real-JPEG PSNR after optimizing the input through the differentiable JPEG."""
    f = make_method(name)
    q = torch.tensor(float(quality))
    gains = []
    for a in images:
        x = float_tensor(a)[None]
        edited = x.clone().requires_grad_()
        optimizer = torch.optim.Adam([edited], lr=1e-3)
        for _ in range(steps):
            optimizer.zero_grad()
            torch.mean((f(edited.clamp(0, 1), q) - x) ** 2).backward()
            optimizer.step()
        before = psnr(pillow_roundtrip(a, quality), a)
        after = psnr(pillow_roundtrip(uint8_array(edited[0]), quality), a)
        gains.append(after - before)
    return float(np.mean(gains))


# ---------------------------------------------------------------- report
def run(out: Path, quick: bool, echo=None) -> Path:
    """Run the suite; write report.md, results.json and the plots into ``out``; returns report.md's path.

    ``echo``, if given, is called with each section of the report (Markdown) as
    it finishes, and progress bars (terminal) or lines (logs) go to stderr.
    """
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    shown = 0

    def finished() -> None:  # the sections not shown yet, with the time so far
        nonlocal shown
        if echo is not None:
            for section in sections[shown:]:
                echo(section + "\n")
            echo(f"_({time.perf_counter() - started:.0f} s so far)_\n")
        shown = len(sections)

    def bar(total: int, what: str, unit: str):
        return Progress(total, f"bench: {what}", unit=unit) if echo is not None else nullcontext()

    info = machine()
    settings = {
        "photos": PHOTOS[:2] if quick else PHOTOS,
        "qualities": (10, 75) if quick else QUALITIES,
        "batch": 2 if quick else 16, "size": 64 if quick else 256, "repeats": 1 if quick else 5,
        "recovery targets": (30, 70) if quick else tuple(range(10, 91, 10)), "recovery steps": 5 if quick else 60,
        "attack eps": 16 / 255, "attack steps": 2 if quick else 20, "attack images": 40 if quick else 397,
        "pre-edit quality": 50, "pre-edit steps": 3 if quick else 60,
    }
    sections = [f"# diffjpeg benchmark report\n\nGenerated by `diffjpeg bench{' --quick' if quick else ''}`."
                " Every number below was measured in this run, on this machine.\n"]
    sections.append("## Machine and versions\n\n" + "\n".join(f"- {k}: {v}" for k, v in info.items()))
    sections.append("## Settings\n\n" + "\n".join(f"- {k}: {v}" for k, v in settings.items()))
    finished()

    # 1. fidelity
    with bar(2 * len(settings["qualities"]), "fidelity", "quality") as progress:
        rows = fidelity(settings["photos"], settings["qualities"], ("4:2:0", "4:4:4"), progress)
    for subsampling in ("4:2:0", "4:4:4"):
        plot_fidelity(rows, out / f"fidelity_{subsampling.replace(':', '')}.png", subsampling)
        sections.append(fidelity_section(rows, subsampling, settings["qualities"]) + f"\n\n![fidelity](fidelity_{subsampling.replace(':', '')}.png)")
    finished()

    # 2. speed and memory
    # exact and float with the default surrogate (the peer ratios') and with the polynomial (the rows of earlier reports)
    names = list(dict.fromkeys([f"exact/{DEFAULT_ROUNDING}", "exact/polynomial", "exact/polynomial" + TENSOR_STAGES,
                                f"float/{DEFAULT_ROUNDING}", "float/polynomial", "soft/polynomial"]))
    names += [f"soft/{r}" for r in ROUNDINGS if r != "polynomial"] + list(PEERS)
    names += [] if quick else ["float/polynomial" + COMPILED]
    with bar(len(names), "speed", "method") as progress:
        speed = throughput(names, settings["batch"], settings["size"], settings["repeats"], "cpu", progress)
    for r in speed:
        compiled = r["method"].endswith(COMPILED)
        r["peak MiB (fwd+bwd)"] = None if compiled else peak_memory_cpu(r["method"], settings["batch"], settings["size"])
    threads = torch.get_num_threads()
    pillow = pillow_throughput(settings["batch"], settings["size"], settings["repeats"], threads)
    pillow_one = pillow_throughput(settings["batch"], settings["size"], settings["repeats"], 1)
    photo = large_photo((200, 300) if quick else (2000, 3000))
    large = large_photo_times(photo, settings["repeats"])
    plot_speed(speed, pillow, out / "speed.png")
    kornia = next((r for r in speed if r["method"] == "kornia"), None)
    exact = next(r for r in speed if r["method"] == f"exact/{DEFAULT_ROUNDING}")
    floating = next(r for r in speed if r["method"] == f"float/{DEFAULT_ROUNDING}")
    stages = next(r for r in speed if r["method"] == "exact/polynomial" + TENSOR_STAGES)
    ratios = [f"- exact forward (no grad) / Pillow encode+decode with {threads} threads: {exact['forward MP/s'] / pillow:.2f} "
              f"(Pillow {pillow:.1f} MP/s; with 1 thread {pillow_one:.1f} MP/s); on the tensor stages: {stages['forward MP/s'] / pillow:.2f}. "
              "Pillow's loop also writes and parses a file (Huffman coding); the exact forward stops at the coefficients."]
    ratios += peer_ratios(speed)
    if kornia and kornia["peak MiB (fwd+bwd)"] and floating["peak MiB (fwd+bwd)"]:
        ratios.append(f"- float forward+backward / kornia: {floating['forward+backward MP/s'] / kornia['forward+backward MP/s']:.2f}x throughput, "
                      f"{floating['peak MiB (fwd+bwd)'] / kornia['peak MiB (fwd+bwd)']:.2f}x peak memory")
    ratios.append(f"- one {photo.shape[1]}x{photo.shape[0]} photo (uint8, quality 75, 4:2:0), exact `jpeg` with {threads} threads: "
                  f"{large['diffjpeg exact jpeg s'] * 1e3:.0f} ms; Pillow encode+decode (one thread, as libjpeg-turbo codes one image): "
                  f"{large['Pillow encode+decode s'] * 1e3:.0f} ms")
    compiled = next((r for r in speed if r["method"] == "float/polynomial" + COMPILED), None)
    if kornia and compiled:
        ratios.append(f"- float forward+backward under torch.compile / kornia (not compiled): "
                      f"{compiled['forward+backward MP/s'] / kornia['forward+backward MP/s']:.2f}x throughput")
    speed_section = (
        f"## Speed and memory (CPU, {threads} torch threads)\n\nBatch {settings['batch']}x3x{settings['size']}x{settings['size']} float32, quality 50, 4:2:0; "
        f"best of {settings['repeats']} after a warm-up (\"first call\": the warm-up forward+backward and forward, compilation included). "
        "Peak memory: rise of the peak resident set of a fresh process over its second forward+backward, with glibc returning freed "
        "blocks of 64 KiB and more to the system (`MALLOC_MMAP_THRESHOLD_=65536`), so that it follows the live tensors; not measured for compiled rows.\n\n"
        + markdown_table(speed, ["method", "forward MP/s", "forward+backward MP/s", "peak MiB (fwd+bwd)", "first call s"], {"forward MP/s": "{:.2f}", "forward+backward MP/s": "{:.2f}", "peak MiB (fwd+bwd)": "{:.0f}", "first call s": "{:.1f}"})
        + "\n\n" + "\n".join(ratios) + "\n\n![speed](speed.png)"
    )
    if torch.cuda.is_available():
        gpu = throughput(names, settings["batch"], settings["size"], settings["repeats"], "cuda")
        for r in gpu:
            r["peak MiB (fwd+bwd)"] = peak_memory_cuda(r["method"], settings["batch"], settings["size"])
        speed_section += "\n\nCUDA (" + info["gpu"] + "):\n\n" + markdown_table(gpu, ["method", "forward MP/s", "forward+backward MP/s", "peak MiB (fwd+bwd)"], {"forward MP/s": "{:.1f}", "forward+backward MP/s": "{:.1f}", "peak MiB (fwd+bwd)": "{:.0f}"})
    else:
        speed_section += "\n\nNo CUDA device in this run."
    sections.append(speed_section)
    finished()

    # 2b. scaling with the image size (one thread)
    sizes = scaling.QUICK_SIZES if quick else scaling.SIZES
    with bar(len(sizes) * len(scaling.MODES), "scaling", "size and mode") as progress:
        scale_rows = scaling.scaling(sizes, repeats=settings["repeats"] if quick else 3, progress=progress)
    flat_sizes = scaling.QUICK_FLAT_SIZES if quick else scaling.FLAT_SIZES
    with bar(len(scaling.MODES), "flat cost", "mode") as progress:
        flat = scaling.flat_cost(flat_sizes, rounds=1 if quick else 5, progress=progress)
    sections.append(scaling.section(scale_rows, flat, flat_sizes))
    finished()

    # 3. gradient usefulness
    gradient_names = [f"exact/{r}" for r in ROUNDINGS] + [f"soft/{r}" for r in ROUNDINGS] + (["kornia"] if kornia_jpeg() else [])
    recovery_images = photos(settings["photos"][:2 if quick else 4], size=64)
    model, test_images, test_labels = digits_classifier(epochs=2 if quick else 15)
    test_images, test_labels = test_images[: settings["attack images"]], test_labels[: settings["attack images"]]
    edit_images = photos(settings["photos"][:2], size=64)
    usefulness = []
    with bar(len(gradient_names), "gradient usefulness", "method") as progress:
        for name in gradient_names:
            usefulness.append({
                "method": name,
                "quality recovered within ±1 (%)": 100 * quality_recovery(name, recovery_images, settings["recovery targets"], settings["recovery steps"]),
                "attack success after real JPEG (%)": 100 * attack_through_jpeg(name, model, test_images, test_labels, settings["attack eps"], settings["attack steps"])[0],
                "pre-editing Δ real-JPEG PSNR (dB)": pre_editing(name, edit_images, settings["pre-edit quality"], settings["pre-edit steps"]),
            })
            if progress is not None:
                progress.update()
    baseline, attacked = attack_through_jpeg(None, model, test_images, test_labels, settings["attack eps"], settings["attack steps"])
    baseline *= 100
    columns = ["method", "quality recovered within ±1 (%)", "attack success after real JPEG (%)", "pre-editing Δ real-JPEG PSNR (dB)"]
    sections.append(
        "## Gradient usefulness\n\n"
        f"- Quality recovery: Adam on quality from 50 ({settings['recovery steps']} steps, lr 2 with cosine decay), matching Pillow's JPEG at q* in {settings['recovery targets']}, on {len(recovery_images)} 64x64 crops.\n"
        f"- Attack: a small CNN trained on scikit-learn's digits (32x32 RGB); PGD L-inf eps {settings['attack eps']:.4f}, {settings['attack steps']} steps, JPEG q=50 in the loop; "
        f"success = misclassified after the real Pillow JPEG, over the {attacked} of {len(test_labels)} test images the model gets right after real JPEG. Without JPEG in the loop: {baseline:.1f}%.\n"
        f"- Pre-editing: Adam on the input (lr 1e-3, {settings['pre-edit steps']} steps) to bring its JPEG at q={settings['pre-edit quality']} closer to the original; mean change of the real (Pillow) JPEG's PSNR.\n\n"
        + markdown_table(usefulness, columns, {c: "{:.1f}" if "%" in c else "{:+.2f}" for c in columns[1:]})
    )
    finished()
    sections.append(f"_Total run time: {time.perf_counter() - started:.0f} s._")
    report = out / "report.md"
    report.write_text("\n\n".join(sections) + "\n")
    (out / "results.json").write_text(json.dumps({"machine": info, "settings": settings, "fidelity": rows, "speed": speed,
                                                  "pillow MP/s": pillow, "large photo": large, "scaling": scale_rows, "flat cost": flat, "usefulness": usefulness, "attack baseline": baseline}, indent=1, default=str))
    return report
