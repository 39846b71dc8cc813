"""The benchmark suite: fidelity, speed and memory, gradient usefulness, beside the peers.

Run it as ``diffjpeg bench`` or ``python benchmarks/suite.py``; it writes
``report.md`` and PNG plots to ``--out`` (default ``benchmarks/results``).
Peers, in the same run: real JPEG through Pillow and OpenCV, and kornia's
``jpeg_codec_differentiable`` (4:2:0 only, sizes divisible by 16). Needs the
``bench`` extra (kornia, OpenCV, scikit-image, scikit-learn, matplotlib).

Everything in the report is measured by this run; nothing is copied in.
"""
from __future__ import annotations

import argparse
import datetime
import io
import json
import os
import platform
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from . import __version__, jpeg, native
from .demo import psnr
from .rounding import ROUNDINGS

QUALITIES = (1, 5, 10, 25, 50, 75, 90, 95, 100)
PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "immunohistochemistry", "hubble_deep_field")
SUBSAMPLING_PIL = {"4:4:4": 0, "4:2:2": 1, "4:2:0": 2}


# ---------------------------------------------------------------- helpers
def photos(names, size: int | None = None) -> list[np.ndarray]:
    """scikit-image photos, cropped to multiples of 16 (kornia needs them), or centre ``size`` crops."""
    from skimage import data

    out = []
    for name in names:
        a = getattr(data, name)()[..., :3]
        if size:
            top, left = (a.shape[0] - size) // 2, (a.shape[1] - size) // 2
            a = a[top : top + size, left : left + size]
        else:
            a = a[: a.shape[0] // 16 * 16, : a.shape[1] // 16 * 16]
        out.append(np.ascontiguousarray(a))
    return out


def pillow_jpeg(a: np.ndarray, quality: int, subsampling: str = "4:2:0") -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, "JPEG", quality=int(quality), subsampling=SUBSAMPLING_PIL[subsampling])
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))


def opencv_jpeg(a: np.ndarray, quality: int, subsampling: str = "4:2:0") -> np.ndarray:
    import cv2

    flag = {"4:4:4": 0x111111, "4:2:2": 0x211111, "4:2:0": 0x221111}[subsampling]
    ok, data = cv2.imencode(".jpg", a[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(quality), cv2.IMWRITE_JPEG_SAMPLING_FACTOR, flag])
    return cv2.imdecode(data, cv2.IMREAD_COLOR)[..., ::-1]


def to_tensor(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.array(a)).permute(2, 0, 1).float().div(255)


def to_array(x: torch.Tensor) -> np.ndarray:
    return x.detach().clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).cpu().numpy()


def kornia_jpeg():
    """kornia's differentiable JPEG as ``f(x (B, 3, H, W), quality tensor (B,))``, or None."""
    try:
        from kornia.enhance import jpeg_codec_differentiable
    except ImportError:
        return None
    return lambda x, q: jpeg_codec_differentiable(x, q.reshape(-1).expand(x.shape[0]))


def ours(forward: str, rounding: str = "polynomial", subsampling: str = "4:2:0"):
    return lambda x, q: jpeg(x, quality=q, subsampling=subsampling, forward=forward, rounding=rounding)


TENSOR_STAGES = " (tensor stages)"


def tensor_stages(f):
    """``f`` with the compiled exact kernel turned off: the path that runs on
    GPUs, with gradients, and where no C compiler was at hand."""

    def run(x, q):
        with native.enabled(False):
            return f(x, q)

    return run


def methods(subsampling: str) -> dict:
    """Every differentiable JPEG compared: ours per forward mode and surrogate, kornia."""
    out = {f"{forward}/{rounding}": ours(forward, rounding, subsampling) for forward in ("exact", "float", "soft") for rounding in ROUNDINGS}
    k = kornia_jpeg()
    if k is not None and subsampling == "4:2:0":
        out["kornia"] = k
    return out


def _cpuinfo() -> dict[str, str]:
    """The first value of each field of /proc/cpuinfo (empty off Linux)."""
    fields: dict[str, str] = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    return fields


def machine() -> dict:
    cpuinfo = _cpuinfo()
    cpu = cpuinfo.get("model name") or platform.processor() or platform.machine()
    versions = {"diffjpeg": __version__, "torch": torch.__version__, "Pillow": Image.__version__, "numpy": np.__version__}
    for name in ("kornia", "cv2", "skimage", "sklearn"):
        try:
            versions[name] = __import__(name).__version__
        except ImportError:
            versions[name] = "not installed"
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "load average at start (1 min)": f"{os.getloadavg()[0]:.2f}" if hasattr(os, "getloadavg") else "n/a",
        "torch threads": torch.get_num_threads(),
        "exact kernel (diffjpeg/_native.c)": ("compiled" if native.compiled() else "not built: tensor stages only")
        + (", CPU has AVX2" if "avx2" in cpuinfo.get("flags", "").split() else ", CPU without AVX2 (portable build)"),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none",
        "python": platform.python_version(),
        **versions,
    }


# ---------------------------------------------------------------- 1. fidelity
def fidelity(names, qualities, subsamplings) -> list[dict]:
    """PSNR and share of identical pixels against Pillow, per method and quality."""
    images = photos(names)
    rows = []
    for subsampling in subsamplings:
        compared = {name: f for name, f in methods(subsampling).items() if not name.startswith(("exact/", "float/")) or name.endswith("/polynomial")}
        compared = {name.split("/")[0] if not name.startswith("soft") else name: f for name, f in compared.items()}
        for quality in qualities:
            references = [pillow_jpeg(a, quality, subsampling) for a in images]
            candidates = {name: [to_array(f(to_tensor(a)[None], torch.tensor(float(quality)))[0]) for a in images] for name, f in compared.items()}
            candidates["OpenCV (real JPEG)"] = [opencv_jpeg(a, quality, subsampling) for a in images]
            for name, outputs in candidates.items():
                rows.append({
                    "subsampling": subsampling, "quality": quality, "method": name,
                    "psnr": float(np.mean([min(psnr(o, r), 100.0) for o, r in zip(outputs, references)])),
                    "identical": float(np.mean([np.mean(o == r) for o, r in zip(outputs, references)])),
                })
    return rows


# ---------------------------------------------------------------- 2. speed and memory
def _best_time(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return min(times)


COMPILED = " + torch.compile"


def _make(name: str):
    if name.endswith(COMPILED):
        return torch.compile(_make(name[: -len(COMPILED)]))
    if name.endswith(TENSOR_STAGES):
        return tensor_stages(_make(name[: -len(TENSOR_STAGES)]))
    if name == "kornia":
        return kornia_jpeg()
    forward, rounding = name.split("/")
    return ours(forward, rounding)


def throughput(names, batch: int, size: int, repeats: int, device: str) -> list[dict]:
    """Megapixels per second, forward (no grad) and forward+backward."""
    x = torch.rand(batch, 3, size, size, device=device)
    q = torch.tensor(50.0, device=device)
    megapixels = batch * size * size / 1e6
    rows = []
    for name in names:
        f = _make(name)
        if f is None:
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
            "forward MP/s": megapixels / _best_time(forward_only, repeats),
            "forward+backward MP/s": megapixels / _best_time(forward_backward, repeats),
            "first call s": warm_up,
        })
    return rows


def pillow_throughput(batch: int, size: int, repeats: int, threads: int) -> float:
    """Pillow (libjpeg-turbo) encode+decode of the same batch, ``threads`` images at a time."""
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for _ in range(batch)]
    with ThreadPoolExecutor(threads) as pool:  # Pillow releases the GIL while coding
        seconds = _best_time(lambda: list(pool.map(lambda a: pillow_jpeg(a, 50), images)), repeats)
    return batch * size * size / 1e6 / seconds


def large_photo(size: tuple[int, int] = (2000, 3000)) -> np.ndarray:
    """scikit-image's astronaut resized (Lanczos) to ``size`` (H, W): a camera-sized photo."""
    from skimage import data

    return np.array(Image.fromarray(data.astronaut()).resize(size[::-1], Image.LANCZOS))


def large_photo_times(a: np.ndarray, repeats: int) -> dict:
    """Seconds for one exact ``jpeg`` of a uint8 photo and for Pillow's encode+decode of it."""
    x = torch.from_numpy(a).permute(2, 0, 1).contiguous()
    with torch.no_grad():
        ours_s = _best_time(lambda: jpeg(x, quality=75), repeats)
    return {"diffjpeg exact jpeg s": ours_s, "Pillow encode+decode s": _best_time(lambda: pillow_jpeg(a, 75), repeats)}


_MEMORY_PROBE = """
import sys, torch
sys.path[:0] = {path!r}
from diffjpeg.benchmark import _make
def status(field):
    for line in open("/proc/self/status"):
        if line.startswith(field):
            return int(line.split()[1])
f = _make({name!r})
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
    f = _make(name)
    x = torch.rand(batch, 3, size, size, device="cuda", requires_grad=True)
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    f(x, torch.tensor(50.0, device="cuda")).sum().backward()
    torch.cuda.synchronize()
    return (torch.cuda.max_memory_allocated() - base) / 2**20


# ---------------------------------------------------------------- 3. gradient usefulness
def quality_recovery(name: str, images, targets, steps: int) -> float:
    """Share of q* recovered within +-1 by Adam on quality, from 50, matching the real JPEG."""
    f = _make(name)
    hits = 0
    for target in targets:
        for a in images:
            x = to_tensor(a)[None]
            real = to_tensor(pillow_jpeg(a, target))[None]
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
    return torch.stack([to_tensor(pillow_jpeg(to_array(img), quality)) for img in x])


def attack_through_jpeg(name: str | None, model, images, labels, eps: float, steps: int, quality: int = 50) -> tuple[float, int]:
    """PGD (L-inf) with a differentiable JPEG in the loop (or none): the success
    rate after the real Pillow JPEG over the images the model gets right after
    real JPEG, and how many those are."""
    f = _make(name) if name else None
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
    f = _make(name)
    q = torch.tensor(float(quality))
    gains = []
    for a in images:
        x = to_tensor(a)[None]
        edited = x.clone().requires_grad_()
        optimizer = torch.optim.Adam([edited], lr=1e-3)
        for _ in range(steps):
            optimizer.zero_grad()
            torch.mean((f(edited.clamp(0, 1), q) - x) ** 2).backward()
            optimizer.step()
        before = psnr(pillow_jpeg(a, quality), a)
        after = psnr(pillow_jpeg(to_array(edited[0]), quality), a)
        gains.append(after - before)
    return float(np.mean(gains))


# ---------------------------------------------------------------- report
def _table(rows: list[dict], columns: list[str], formats: dict | None = None) -> str:
    formats = formats or {}
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---:" if i else "---" for i in range(len(columns))) + "|"]
    for r in rows:
        cells = ("—" if r[c] is None else r[c] if isinstance(r[c], str) else formats.get(c, "{}").format(r[c]) for c in columns)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _plot_fidelity(rows, path: Path, subsampling: str) -> None:
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


def _plot_speed(rows, pillow, path: Path) -> None:
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


def run(out: Path, quick: bool) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
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

    # 1. fidelity
    rows = fidelity(settings["photos"], settings["qualities"], ("4:2:0", "4:4:4"))
    for subsampling in ("4:2:0", "4:4:4"):
        sub = [r for r in rows if r["subsampling"] == subsampling]
        names = list(dict.fromkeys(r["method"] for r in sub))
        table = [{"quality": q, **{m: next(r for r in sub if r["quality"] == q and r["method"] == m)["psnr"] for m in names}} for q in settings["qualities"]]
        identical = [{"quality": q, **{m: next(r for r in sub if r["quality"] == q and r["method"] == m)["identical"] * 100 for m in names}} for q in settings["qualities"]]
        _plot_fidelity(rows, out / f"fidelity_{subsampling.replace(':', '')}.png", subsampling)
        sections.append(
            f"## Fidelity against Pillow, {subsampling}\n\nMean PSNR (dB; 100 means identical) over the photos, "
            f"and the share of identical pixels (%). exact and float do not depend on the surrogate.\n\n"
            + _table(table, ["quality"] + names, {m: "{:.2f}" for m in names})
            + "\n\nIdentical pixels (%):\n\n"
            + _table(identical, ["quality"] + names, {m: "{:.1f}" for m in names})
            + f"\n\n![fidelity](fidelity_{subsampling.replace(':', '')}.png)"
        )

    # 2. speed and memory
    names = ["exact/polynomial", "exact/polynomial" + TENSOR_STAGES, "float/polynomial", "soft/polynomial"]
    names += [f"soft/{r}" for r in ROUNDINGS if r != "polynomial"] + ["kornia"]
    names += [] if quick else ["float/polynomial" + COMPILED]
    speed = throughput(names, settings["batch"], settings["size"], settings["repeats"], "cpu")
    for r in speed:
        compiled = r["method"].endswith(COMPILED)
        r["peak MiB (fwd+bwd)"] = None if compiled else peak_memory_cpu(r["method"], settings["batch"], settings["size"])
    threads = torch.get_num_threads()
    pillow = pillow_throughput(settings["batch"], settings["size"], settings["repeats"], threads)
    pillow_one = pillow_throughput(settings["batch"], settings["size"], settings["repeats"], 1)
    photo = large_photo((200, 300) if quick else (2000, 3000))
    large = large_photo_times(photo, settings["repeats"])
    _plot_speed(speed, pillow, out / "speed.png")
    kornia = next((r for r in speed if r["method"] == "kornia"), None)
    exact = next(r for r in speed if r["method"] == "exact/polynomial")
    floating = next(r for r in speed if r["method"] == "float/polynomial")
    stages = next(r for r in speed if r["method"] == "exact/polynomial" + TENSOR_STAGES)
    ratios = [f"- exact forward (no grad) / Pillow encode+decode with {threads} threads: {exact['forward MP/s'] / pillow:.2f} "
              f"(Pillow {pillow:.1f} MP/s; with 1 thread {pillow_one:.1f} MP/s); on the tensor stages: {stages['forward MP/s'] / pillow:.2f}. "
              "Pillow's loop also writes and parses a file (Huffman coding); the exact forward stops at the coefficients."]
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
        + _table(speed, ["method", "forward MP/s", "forward+backward MP/s", "peak MiB (fwd+bwd)", "first call s"], {"forward MP/s": "{:.2f}", "forward+backward MP/s": "{:.2f}", "peak MiB (fwd+bwd)": "{:.0f}", "first call s": "{:.1f}"})
        + "\n\n" + "\n".join(ratios) + "\n\n![speed](speed.png)"
    )
    if torch.cuda.is_available():
        gpu = throughput(names, settings["batch"], settings["size"], settings["repeats"], "cuda")
        for r in gpu:
            r["peak MiB (fwd+bwd)"] = peak_memory_cuda(r["method"], settings["batch"], settings["size"])
        speed_section += "\n\nCUDA (" + info["gpu"] + "):\n\n" + _table(gpu, ["method", "forward MP/s", "forward+backward MP/s", "peak MiB (fwd+bwd)"], {"forward MP/s": "{:.1f}", "forward+backward MP/s": "{:.1f}", "peak MiB (fwd+bwd)": "{:.0f}"})
    else:
        speed_section += "\n\nNo CUDA device in this run."
    sections.append(speed_section)

    # 3. gradient usefulness
    gradient_names = [f"exact/{r}" for r in ROUNDINGS] + [f"soft/{r}" for r in ROUNDINGS] + (["kornia"] if kornia_jpeg() else [])
    recovery_images = photos(settings["photos"][:2 if quick else 4], size=64)
    model, test_images, test_labels = digits_classifier(epochs=2 if quick else 15)
    test_images, test_labels = test_images[: settings["attack images"]], test_labels[: settings["attack images"]]
    edit_images = photos(settings["photos"][:2], size=64)
    usefulness = []
    for name in gradient_names:
        usefulness.append({
            "method": name,
            "quality recovered within ±1 (%)": 100 * quality_recovery(name, recovery_images, settings["recovery targets"], settings["recovery steps"]),
            "attack success after real JPEG (%)": 100 * attack_through_jpeg(name, model, test_images, test_labels, settings["attack eps"], settings["attack steps"])[0],
            "pre-editing Δ real-JPEG PSNR (dB)": pre_editing(name, edit_images, settings["pre-edit quality"], settings["pre-edit steps"]),
        })
    baseline, attacked = attack_through_jpeg(None, model, test_images, test_labels, settings["attack eps"], settings["attack steps"])
    baseline *= 100
    columns = ["method", "quality recovered within ±1 (%)", "attack success after real JPEG (%)", "pre-editing Δ real-JPEG PSNR (dB)"]
    sections.append(
        "## Gradient usefulness\n\n"
        f"- Quality recovery: Adam on quality from 50 ({settings['recovery steps']} steps, lr 2 with cosine decay), matching Pillow's JPEG at q* in {settings['recovery targets']}, on {len(recovery_images)} 64x64 crops.\n"
        f"- Attack: a small CNN trained on scikit-learn's digits (32x32 RGB); PGD L-inf eps {settings['attack eps']:.4f}, {settings['attack steps']} steps, JPEG q=50 in the loop; "
        f"success = misclassified after the real Pillow JPEG, over the {attacked} of {len(test_labels)} test images the model gets right after real JPEG. Without JPEG in the loop: {baseline:.1f}%.\n"
        f"- Pre-editing: Adam on the input (lr 1e-3, {settings['pre-edit steps']} steps) to bring its JPEG at q={settings['pre-edit quality']} closer to the original; mean change of the real (Pillow) JPEG's PSNR.\n\n"
        + _table(usefulness, columns, {c: "{:.1f}" if "%" in c else "{:+.2f}" for c in columns[1:]})
    )
    sections.append(f"_Total run time: {time.perf_counter() - started:.0f} s._")
    report = out / "report.md"
    report.write_text("\n\n".join(sections) + "\n")
    (out / "results.json").write_text(json.dumps({"machine": info, "settings": settings, "fidelity": rows, "speed": speed,
                                                  "pillow MP/s": pillow, "large photo": large, "usefulness": usefulness, "attack baseline": baseline}, indent=1, default=str))
    return report


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="diffjpeg bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"), help="folder for report.md and the plots")
    parser.add_argument("--quick", action="store_true", help="tiny settings, for a smoke test (numbers not meaningful)")
    args = parser.parse_args(argv)
    report = run(args.out, args.quick)
    print(f"wrote {report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
