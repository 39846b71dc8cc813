"""diffjpeg on a GPU, measured in one command: tests, exactness, speed, memory.

    python benchmarks/gpu.py                       # on a CUDA machine, about 5 minutes
    python benchmarks/gpu.py --skip-tests          # without the pytest run
    python benchmarks/gpu.py --quick               # a short check; its numbers mean little
    python benchmarks/gpu.py --device cpu --quick  # the same script on the CPU, for development

Sections, each written to the report (default ``benchmarks/results/gpu.md``,
``--out``) as soon as it is done, so that a run killed on the way still leaves
what it measured; progress lines go to stdout as it goes.

1. Tests: pytest (``-m "not slow"``) over the test files with
   ``DIFFJPEG_TEST_DEVICES`` set to the device, one process per file, several at
   a time, under a time limit; it runs beside section 2, which does not time anything.
2. Exactness: ``diffjpeg.jpeg`` on the device against Pillow's save and load
   (libjpeg-turbo) of scikit-image's photos (bundled with it; nothing is
   downloaded), at every quality 1-100, subsamplings 4:4:4, 4:2:2 and 4:2:0, for
   float32, float16, bfloat16 and uint8 inputs; float outputs are compared as
   ``torch.round(y.float() * 255)``. Qualities run coarse to fine, so that a time
   limit leaves a spread of them.
3. Speed and memory: forward (no grad) and forward+backward throughput
   (megapixels/s, median and best of N timed calls after warm-up, with
   ``torch.cuda.synchronize``) and peak memory (``torch.cuda.max_memory_allocated``
   above what was allocated before the call) of the exact, float and soft modes
   (batch 64x3x256x256, quality 50, 4:2:0) for float32 and bfloat16 inputs, eager,
   per backend (``auto``: the Triton kernels where they apply; ``torch``: the
   tensor stages alone), beside kornia's ``jpeg_codec_differentiable`` when kornia
   is installed; then the same under ``torch.compile`` in a child process with a
   time limit, which records the compile time (``--no-compile`` to skip).
4. First call: each (mode, dtype) variant's first forward+backward in a fresh
   process with an empty Triton cache, CUDA initialised first and not counted,
   then again in a second process that finds the first one's cache on disk.
5. Decoding: ``decode`` of coefficients already on the device, and files (bytes)
   to pixels on the device, beside ``torchvision.io.decode_jpeg(device=...)``.
6. Targets (issue 29): met or not, from this run's numbers only.

The JSON beside the report holds, besides each section's raw numbers, the
device name and date at the top and ``records``: one per speed row, with
``backend``, ``mode``, ``dtype``, ``compiled``, ``fwd_mps``, ``fwd_bwd_mps`` and
``peak_mib`` (forward+backward).

Everything in the report is measured by the run; nothing is copied in.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # runs from a checkout without installing it
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

import diffjpeg  # noqa: E402
from diffjpeg.tools.bench.machine import machine  # noqa: E402
from diffjpeg.tools.bench.methods import kornia_jpeg, ours  # noqa: E402
from diffjpeg.tools.bench.report import markdown_table  # noqa: E402
from diffjpeg.tools.images import skimage_photo  # noqa: E402
from diffjpeg.tools.reference import pillow_roundtrip  # noqa: E402

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16, "uint8": torch.uint8}
SUBSAMPLINGS = ("4:4:4", "4:2:2", "4:2:0")
PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "camera")  # camera: grayscale
FORWARDS = ("exact", "float", "soft")
BACKEND_ROWS = ("auto", "torch")  # diffjpeg's backend= in the eager rows: the kernels where they apply, and none
SPEED_DTYPES = ("float32", "bfloat16")
# issue 29's targets: eager, batch 64x3x256², q50, 4:2:0, float32 and bfloat16
TARGET_EXACT_FWD = 25_000.0  # MP/s
TARGET_FWD_BWD = 10_000.0  # MP/s, each mode
TARGET_KORNIA = 20.0  # forward+backward over kornia's
TARGET_FIRST_FRESH, TARGET_FIRST_WARM = 5.0, 1.0  # seconds
TARGET_MEMORY = 2.5  # forward+backward peak over the input's bytes
COMPILED = "torch.compile"

# budget: the whole run's seconds; the compile rows get what is left of it (at least 30 s) unless --compile-timeout says
FULL = {"photos": PHOTOS, "qualities": tuple(range(1, 101)), "crop": None, "batch": 64, "size": 256, "warmup": 3, "repeats": 20,
        "budget": 330.0, "test_timeout": 140.0, "exact_timeout": 100.0, "first_call_timeout": 90.0, "compile_timeout": None}
QUICK = {"photos": ("chelsea", "camera"), "qualities": (1, 50, 95, 100), "crop": 96, "batch": 4, "size": 64, "warmup": 1, "repeats": 3,
         "budget": 60.0, "test_timeout": 40.0, "exact_timeout": 30.0, "first_call_timeout": 60.0, "compile_timeout": None}
QUICK_TESTS = ("tests/core/test_validation.py",)
DEVICE_TESTS = "tests/codec/test_devices.py"  # the device x dtype matrix (conftest's device and dtype fixtures)
# the CPU benchmark suite's smoke tests (and this script's), and the Triton interpreter's checks of the kernels on CPU
# tensors: on a GPU the kernels themselves run (the device x dtype matrix, section 2)
NOT_DEVICE_TESTS = ("tests/tools/test_benchmark.py", "tests/backends/test_gpu.py", "tests/backends/test_gpu_encoder.py",
                    "tests/backends/test_gpu_decoder.py", "tests/backends/test_gpu_stages.py", "tests/backends/test_gpu_ops.py",
                    "tests/backends/test_gpu_compile.py")

_started = time.monotonic()


def brief(e: Exception) -> str:
    """An exception in one line: its type and first message line (with the next, if that one ends in a colon)."""
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    text = " ".join(lines[:2]) if len(lines) > 1 and lines[0].endswith(":") else (lines[0] if lines else "")
    return f"{type(e).__name__}: {text}"[:200].replace("|", "/")  # no table cell ends inside it


def log(message: str) -> None:
    print(f"[{time.monotonic() - _started:6.1f} s] {message}", flush=True)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Report:
    """The markdown report, rewritten whole each time a section changes."""

    ORDER = ("title", "machine", "settings", "tests", "exactness", "speed", "compiled", "first call", "decoding", "targets", "footer")

    def __init__(self, path: Path, data_path: Path):
        self.path, self.data_path = path, data_path
        self.sections: dict[str, str] = {}
        self.data: dict = {}
        path.parent.mkdir(parents=True, exist_ok=True)

    def set(self, name: str, text: str, data=None) -> None:
        self.sections[name] = text
        if data is not None:
            self.data[name] = data
        pending = [n for n in self.ORDER if n not in self.sections and n != "footer"]
        footer = self.sections.get("footer") or f"_Unfinished: {', '.join(pending)} not written yet._"
        body = [self.sections[n] for n in self.ORDER if n in self.sections and n != "footer"]
        self.path.write_text("\n\n".join(body + [footer]) + "\n")
        self.data_path.write_text(json.dumps(self.data, indent=1, default=str) + "\n")


# ---------------------------------------------------------------- machine
def machine_info(device: torch.device) -> dict:
    info = machine()
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info["gpu"] = f"{props.name}, {props.total_memory / 2**30:.0f} GiB, compute capability {props.major}.{props.minor}"
        info["CUDA (torch built with)"] = torch.version.cuda
        try:
            out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"], capture_output=True, text=True, timeout=20)
            info["driver"] = out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else "n/a"
        except (OSError, subprocess.TimeoutExpired):
            info["driver"] = "n/a (no nvidia-smi)"
    try:
        from PIL import features

        info["Pillow's libjpeg-turbo"] = features.version("libjpeg_turbo") or "n/a"
    except Exception:  # noqa: BLE001 (old Pillow)
        info["Pillow's libjpeg-turbo"] = "n/a"
    try:
        import jpeglib

        info["jpeglib"] = getattr(jpeglib, "__version__", "installed")
    except ImportError:
        info["jpeglib"] = "not installed (import diffjpeg works without it; diffjpeg.read/write and their tests need it)"
    info["device of this run"] = str(device)
    return info


# ---------------------------------------------------------------- 1. tests
def _counts(text: str) -> dict[str, int]:
    """pytest's counts: from its last summary line, else from the -q progress characters."""
    summary = [line for line in text.splitlines() if re.search(r"\d+ (passed|failed|error|skipped|deselected)", line)]
    if summary:
        counts = {}
        for number, word in re.findall(r"(\d+) (passed|failed|errors?|skipped|deselected|xfailed|xpassed)", summary[-1]):
            counts["error" if word.startswith("error") else word] = int(number)
        return counts
    progress = "".join(line.split("[")[0] for line in text.splitlines() if re.fullmatch(r"[.FEsxX]+\s*(\[\s*\d+%\])?", line.strip()))
    return {"passed": progress.count("."), "failed": progress.count("F"), "error": progress.count("E"), "skipped": progress.count("s")}


class PytestRun:
    """pytest over ``files``, one process per file, ``jobs`` at a time, in the background."""

    def __init__(self, files: list[str], device: str, jobs: int, logs: Path):
        self.queue = list(files)
        self.device, self.jobs, self.logs = device, jobs, logs
        self.running: dict[str, tuple[subprocess.Popen, Path, float]] = {}
        self.done: dict[str, dict] = {}
        self.env = {**os.environ, "DIFFJPEG_TEST_DEVICES": device, "PYTHONUNBUFFERED": "1", "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
        cores = os.cpu_count() or 1
        if jobs > 1 and "OMP_NUM_THREADS" not in os.environ:  # share the cores among the processes
            self.env["OMP_NUM_THREADS"] = str(max(1, cores // jobs))
        logs.mkdir(parents=True, exist_ok=True)
        self.poll()

    def poll(self) -> bool:
        """Collect finished files and start queued ones; True when all are done."""
        for name, (proc, path, started) in list(self.running.items()):
            if proc.poll() is not None:
                del self.running[name]
                self._collect(name, path, time.monotonic() - started, proc.returncode)
        while self.queue and len(self.running) < self.jobs:
            name = self.queue.pop(0)
            path = self.logs / f"{len(self.done) + len(self.running):02d}-{Path(name.split('::')[0]).stem}.log"
            command = [sys.executable, "-m", "pytest", "-m", "not slow", "-q", "-rfE", "-p", "no:cacheprovider", name]
            with open(path, "w") as f:
                proc = subprocess.Popen(command, cwd=ROOT, env=self.env, stdout=f, stderr=subprocess.STDOUT)
            self.running[name] = (proc, path, time.monotonic())
        return not self.queue and not self.running

    def _collect(self, name: str, path: Path, seconds: float, returncode: int | None) -> None:
        text = path.read_text(errors="replace")
        row = {"file": name, "seconds": seconds, "returncode": returncode, "log": str(path), **_counts(text)}
        if returncode is None:
            row["status"] = "killed before it finished (counts so far)"
        elif returncode in (0, 5):  # 5: nothing collected
            row["status"] = "ok"
        else:
            row["status"] = "failures" if returncode == 1 else f"exit code {returncode}"
            short = text.split("short test summary info")[-1].splitlines()[1:] if "short test summary info" in text else []
            summary = [line for line in short if line.startswith(("FAILED", "ERROR"))][:20]
            details = [line for line in text.splitlines() if line.startswith("E ")][:40]  # the failures' error lines
            row["tail"] = summary + ([""] if summary and details else []) + details if summary else text.splitlines()[-25:]
        self.done[name] = row
        log(f"tests: {name}: {row['status']}, {row.get('passed', 0)} passed, {row.get('failed', 0)} failed, {row.get('error', 0)} errors, {seconds:.0f} s")

    def finish(self, deadline: float) -> list[dict]:
        while not self.poll() and time.monotonic() < deadline:
            time.sleep(0.5)
        self.stop()
        return list(self.done.values()) + [{"file": name, "status": "not started (time limit)"} for name in self.queue]

    def stop(self) -> None:
        for name, (proc, path, started) in list(self.running.items()):
            proc.kill()
            proc.wait()
            del self.running[name]
            self._collect(name, path, time.monotonic() - started, None)


def tests_section(rows: list[dict], runner: PytestRun, timeout: float) -> tuple[str, dict]:
    device, jobs = runner.device, runner.jobs
    env_threads = runner.env.get("OMP_NUM_THREADS") if jobs > 1 else None
    total = {k: sum(r.get(k, 0) for r in rows) for k in ("passed", "failed", "error", "skipped", "deselected")}
    table = [{"file": r["file"], "status": r["status"], **{k: r.get(k, 0) for k in ("passed", "failed", "error", "skipped")},
              "s": r.get("seconds")} for r in rows]
    lines = [f"## 1. Tests on {device}\n",
             f"`pytest -m \"not slow\" -q` per test file with `DIFFJPEG_TEST_DEVICES={device}`, {jobs} file(s) at a time"
             + (f" (`OMP_NUM_THREADS={env_threads}` each)" if env_threads else "")
             + f", time limit {timeout:.0f} s in all. Not run: {', '.join(NOT_DEVICE_TESTS)} (CPU benchmark smoke tests, the kernels through Triton's interpreter) and the doctests.\n",
             f"**{total['passed']} passed, {total['failed']} failed, {total['error']} errors, {total['skipped']} skipped** "
             f"({total['deselected']} deselected as slow).\n",
             markdown_table(table, ["file", "status", "passed", "failed", "error", "skipped", "s"], {"s": "{:.0f}"})]
    tails = [(r["file"], r["tail"]) for r in rows if r.get("tail")]
    if tails:
        lines.append(f"\nFailures (the full logs: {runner.logs}):\n")
        for name, tail in tails:
            lines.append(f"`{name}`:\n\n```\n" + "\n".join(tail) + "\n```")
    return "\n".join(lines), {"total": total, "files": rows}


# ---------------------------------------------------------------- 2. exactness
def load_photo(name: str, crop: int | None) -> np.ndarray:
    """A scikit-image photo, (H, W, 3) RGB or (H, W) grayscale, uint8; with ``crop``, its top-left ``crop`` rows and
    1.5 ``crop`` + 3 columns."""
    a = skimage_photo(name)
    if crop:
        a = a[:crop, : crop + crop // 2 + 3]  # keep a width that is no multiple of 8
    return np.ascontiguousarray(a)


def reference(a: np.ndarray, quality: int, subsampling: str) -> np.ndarray:
    """Pillow's save and load of ``a``, as ``a``'s shape (a grayscale file decodes to equal R, G, B)."""
    out = pillow_roundtrip(a, quality, subsampling)
    return out[..., 0] if a.ndim == 2 else out


def coarse_to_fine(qualities) -> list[int]:
    """1 and 100, then multiples of 10, then of 5, then the rest."""
    return sorted(qualities, key=lambda q: (q not in (1, 100), q % 10 != 0, q % 5 != 0, q))


def exactness(device: torch.device, names, qualities, crop: int | None, deadline: float) -> dict:
    images, inputs = {}, {}
    for name in names:
        try:
            images[name] = load_photo(name, crop)
        except Exception as e:  # noqa: BLE001 (a photo this scikit-image lacks)
            log(f"exactness: photo {name} not available: {e}")
            continue
        a = torch.from_numpy(images[name])
        u8 = (a.permute(2, 0, 1) if a.dim() == 3 else a[None]).contiguous().to(device)
        # k / 255 divided on the CPU: CUDA divides by a Python scalar as a product with its reciprocal
        inputs[name] = {dtype: u8 if dtype == "uint8" else u8.cpu().float().div(255).to(device, DTYPES[dtype]) for dtype in DTYPES}
    cases, done_qualities = [], []
    pool = ThreadPoolExecutor(max(1, min(8, os.cpu_count() or 1)))  # Pillow codes without the GIL
    order = coarse_to_fine(qualities)
    for i, quality in enumerate(order):
        if time.monotonic() > deadline:
            log(f"exactness: time limit reached after {len(done_qualities)} of {len(order)} qualities")
            break
        keys = [(name, s) for name in images for s in SUBSAMPLINGS]
        refs = dict(zip(keys, pool.map(lambda k: reference(images[k[0]], quality, k[1]), keys)))
        for (name, subsampling), ref in refs.items():
            r = torch.tensor(ref)  # a copy: Pillow's arrays are read-only
            expected = (r.permute(2, 0, 1) if r.dim() == 3 else r[None]).to(device, torch.float32)
            # the very values exact mode returns: k / 255 in float32, divided on the CPU, rounded once to the dtype
            unit = (expected.cpu() / 255).to(device)
            for dtype, x in inputs[name].items():
                case = {"photo": name, "quality": quality, "subsampling": subsampling, "dtype": dtype}
                try:
                    y = diffjpeg.jpeg(x, quality=quality, subsampling=subsampling)
                except Exception as e:  # noqa: BLE001 (reported as a case that differs)
                    cases.append({**case, "identical": False, "max diff": None, "differing pixels": None, "values not k/255": None, "error": brief(e)})
                    continue
                got = y.float() if dtype == "uint8" else torch.round(y.float() * 255)
                diff = (got - expected).abs()
                max_diff = diff.max().item()
                # levels right but not the bits of k / 255 (one unit in the last place, say)
                off = 0 if dtype == "uint8" else int(((y != unit.to(y.dtype)) & (diff == 0)).sum().item())
                cases.append({**case, "identical": max_diff == 0 and off == 0, "max diff": max_diff, "differing pixels": int((diff > 0).sum().item()),
                              "values not k/255": off, "error": None})
        done_qualities.append(quality)
        if i % 10 == 9 or i == len(order) - 1:
            same = sum(c["identical"] for c in cases)
            log(f"exactness: {len(done_qualities)}/{len(order)} qualities, {same}/{len(cases)} cases identical")
    pool.shutdown()
    sizes = {name: "x".join(map(str, a.shape[:2])) + (" gray" if a.ndim == 2 else " RGB") for name, a in images.items()}
    return {"cases": cases, "qualities done": sorted(done_qualities), "qualities planned": len(order), "photos": sizes}


def exactness_section(result: dict, device: str) -> str:
    cases = result["cases"]
    same = sum(c["identical"] for c in cases)
    qualities = result["qualities done"]
    done = (f"all {len(qualities)} qualities" if len(qualities) == result["qualities planned"]
            else f"{len(qualities)} of {result['qualities planned']} qualities (time limit): {qualities}")
    per = [{"dtype": d, **{s: f"{sum(c['identical'] for c in cases if c['dtype'] == d and c['subsampling'] == s)}"
                             f"/{sum(1 for c in cases if c['dtype'] == d and c['subsampling'] == s)}" for s in SUBSAMPLINGS}} for d in DTYPES]
    lines = [f"## 2. Exact mode against Pillow on {device}\n",
             f"`torch.round(diffjpeg.jpeg(x, quality=q, subsampling=s).float() * 255)` (uint8 in: the uint8 output) against Pillow's "
             f"save and load of the uint8 photo; photos {', '.join(f'{n} ({s})' for n, s in result['photos'].items())}; {done}; "
             "float inputs are the uint8 photo / 255 in float32 (divided on the CPU), then cast. A case is identical when every level "
             "is Pillow's and every float output is the very value `k / 255` (float32, divided on the CPU) rounded to its dtype.\n",
             f"**{same} / {len(cases)} cases (photo, quality, subsampling, dtype) identical.**\n",
             "Identical cases per input dtype and subsampling:\n", markdown_table(per, ["dtype", *SUBSAMPLINGS])]
    differ = sorted((c for c in cases if not c["identical"]), key=lambda c: -1 if c["error"] else -c["max diff"])
    if differ:
        columns = ["photo", "quality", "subsampling", "dtype", "max diff", "differing pixels", "values not k/255"] + (["error"] if any(c["error"] for c in differ) else [])
        lines.append(f"\nCases that differ ({len(differ)}; errors first, then the first 40 by max difference):\n")
        lines.append(markdown_table(differ[:40], columns, {"max diff": "{:.0f}"}))
    return "\n".join(lines)


# ---------------------------------------------------------------- 3. speed and memory
def measure(f, dtype: str, batch: int, size: int, warmup: int, repeats: int, device: torch.device) -> dict:
    """Forward (no grad) and forward+backward of ``f(x, q)``: MP/s (median, best) and peak MiB above the inputs."""
    torch.manual_seed(0)
    x = torch.rand(batch, 3, size, size, device=device).to(DTYPES[dtype])
    q = torch.tensor(50.0, device=device)
    xg = x.clone().requires_grad_()
    grad_out = torch.ones_like(x)
    megapixels = batch * size * size / 1e6

    def forward():
        with torch.no_grad():
            f(x, q)

    def forward_backward():
        torch.autograd.grad(f(xg, q), xg, grad_out)

    row = {}
    for label, fn in (("fwd", forward), ("fwd+bwd", forward_backward)):
        for _ in range(warmup):
            fn()
        synchronize(device)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            synchronize(device)
            times.append(time.perf_counter() - start)
        row[f"{label} MP/s"] = megapixels / statistics.median(times)
        row[f"{label} best MP/s"] = megapixels / min(times)
        row[f"{label} peak MiB"] = None
        if device.type == "cuda":
            synchronize(device)
            base = torch.cuda.memory_allocated(device)
            torch.cuda.reset_peak_memory_stats(device)
            fn()
            synchronize(device)
            row[f"{label} peak MiB"] = (torch.cuda.max_memory_allocated(device) - base) / 2**20
    return row


def eager_speed(device: torch.device, settings: dict) -> tuple[list[dict], str | None]:
    rows = []
    kornia = kornia_jpeg()
    # each mode's default surrogate; backend auto (Triton where it applies) and torch (the tensor stages alone) side by side
    candidates = [(f"diffjpeg {forward}" + ("" if backend == "auto" else f" [{backend}]"), dtype, ours(forward, None, backend=backend))
                  for dtype in SPEED_DTYPES for forward in FORWARDS for backend in BACKEND_ROWS]
    if kornia is not None:
        candidates += [("kornia", dtype, kornia) for dtype in SPEED_DTYPES]
    for method, dtype, f in candidates:
        try:
            row = measure(f, dtype, settings["batch"], settings["size"], settings["warmup"], settings["repeats"], device)
        except Exception as e:  # noqa: BLE001 (kornia in bfloat16, say)
            row = {"error": brief(e)}
        backend = method.split("[")[-1].rstrip("]") if "[" in method else ("auto" if method.startswith("diffjpeg") else None)
        forward = method.split()[1] if method.startswith("diffjpeg") else None
        rows.append({"method": method, "dtype": dtype, "run": "eager", "mode": forward, "backend": backend, "compiled": False, **row})
        log(f"speed: {method} {dtype} eager: " + (row.get("error") or f"fwd {_mps(row['fwd MP/s'])} MP/s, fwd+bwd {_mps(row['fwd+bwd MP/s'])} MP/s"))
    return rows, None if kornia is not None else "kornia is not installed here: no kornia rows, no ratios against it."


def compile_worker(spec: dict) -> None:
    """In a child process: each (forward, dtype) of ``spec`` under torch.compile, one JSON line each on stdout."""
    device = torch.device(spec["device"])
    for forward, dtype in spec["rows"]:
        torch._dynamo.reset()  # a fresh cache per row: no recompile limit reached, no row pays for another
        f = torch.compile(ours(forward, None))  # each mode's default surrogate, as the eager rows
        x = torch.rand(spec["batch"], 3, spec["size"], spec["size"], device=device).to(DTYPES[dtype])
        q = torch.tensor(50.0, device=device)
        print(f"[compile worker] compiling diffjpeg {forward} {dtype}", file=sys.stderr, flush=True)
        row = {"method": f"diffjpeg {forward}", "dtype": dtype, "run": COMPILED, "mode": forward, "backend": "auto", "compiled": True}
        try:
            start = time.perf_counter()
            xg = x.clone().requires_grad_()
            torch.autograd.grad(f(xg, q), xg, torch.ones_like(x))
            with torch.no_grad():
                f(x, q)
            synchronize(device)
            row["compile s"] = time.perf_counter() - start
            row.update(measure(f, dtype, spec["batch"], spec["size"], spec["warmup"], spec["repeats"], device))
            done = f"compile {row['compile s']:.0f} s, fwd {_mps(row['fwd MP/s'])} MP/s, fwd+bwd {_mps(row['fwd+bwd MP/s'])} MP/s"
        except Exception as e:  # noqa: BLE001 (a failed compile is a result too)
            row["error"] = done = brief(e)
        print(json.dumps(row), flush=True)
        print(f"[compile worker] diffjpeg {forward} {dtype}: {done}", file=sys.stderr, flush=True)


def compiled_speed(device: torch.device, settings: dict, timeout: float) -> tuple[list[dict], list[str]]:
    """The compile worker under a time limit; returns its rows and the (method, dtype) it did not finish."""
    order = [(forward, dtype) for dtype in SPEED_DTYPES for forward in ("float", "exact", "soft")]
    spec = {"device": str(device), "rows": order, **{k: settings[k] for k in ("batch", "size", "warmup", "repeats")}}
    with tempfile.TemporaryFile("w+") as out:
        proc = subprocess.Popen([sys.executable, __file__, "--compile-worker", json.dumps(spec)], stdout=out, cwd=ROOT)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            log(f"compile: time limit of {timeout:.0f} s reached")
        finally:  # also when this process is stopped
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        out.seek(0)
        rows = [json.loads(line) for line in out.read().splitlines() if line.startswith("{")]
    if proc.returncode > 0:
        log(f"compile: worker exited with code {proc.returncode}")
    finished = {(r["method"].split()[-1], r["dtype"]) for r in rows}
    return rows, [f"diffjpeg {f} {d}" for f, d in order if (f, d) not in finished]


def _mps(v: float) -> str:
    return f"{v:.0f}" if v >= 100 else f"{v:.1f}" if v >= 1 else f"{v:.2f}"


def _ratio(a, b):
    return None if a is None or b is None or not b else a / b


def speed_rows_for_table(rows: list[dict]) -> list[dict]:
    kornia = next((r for r in rows if r["method"] == "kornia" and r["dtype"] == "float32" and "error" not in r), None)
    out = []
    for r in rows:
        if "error" in r:
            out.append({"method": r["method"], "dtype": r["dtype"], "run": r["run"], "fwd MP/s": r["error"]})
            continue
        out.append({**r, "fwd MP/s": f"{_mps(r['fwd MP/s'])} ({_mps(r['fwd best MP/s'])})",
                    "fwd+bwd MP/s": f"{_mps(r['fwd+bwd MP/s'])} ({_mps(r['fwd+bwd best MP/s'])})",
                    "x kornia fwd": _ratio(r["fwd MP/s"], kornia and kornia["fwd MP/s"]),
                    "x kornia fwd+bwd": _ratio(r["fwd+bwd MP/s"], kornia and kornia["fwd+bwd MP/s"]),
                    "mem / kornia": _ratio(r["fwd+bwd peak MiB"], kornia and kornia["fwd+bwd peak MiB"])})
    return [{c: row.get(c) for c in ["compile s"] + SPEED_COLUMNS} for row in out]


SPEED_COLUMNS = ["method", "dtype", "run", "fwd MP/s", "fwd+bwd MP/s", "fwd peak MiB", "fwd+bwd peak MiB", "x kornia fwd", "x kornia fwd+bwd", "mem / kornia"]
SPEED_FORMATS = {"fwd peak MiB": "{:.0f}", "fwd+bwd peak MiB": "{:.0f}", "x kornia fwd": "{:.2f}", "x kornia fwd+bwd": "{:.2f}", "mem / kornia": "{:.2f}", "compile s": "{:.0f}"}


def speed_section(rows: list[dict], device: str, settings: dict, note: str | None) -> str:
    memory = ("peak MiB: `torch.cuda.max_memory_allocated` over one call, after `reset_peak_memory_stats`, above what was allocated "
              "before it (the input, and for fwd+bwd a second input that requires grad and the output gradient)"
              if device.startswith("cuda") else "peak memory is measured on CUDA only")
    return "\n".join([
        f"## 3. Speed and memory on {device}, eager\n",
        f"Batch {settings['batch']}x3x{settings['size']}x{settings['size']} (`torch.rand`, cast to the dtype), quality 50, 4:2:0, "
        f"each mode's default rounding surrogate; `[torch]`: `backend=\"torch\"` (the tensor stages alone), else `backend=\"auto\"` (Triton kernels where they apply). MP/s: megapixels per second, median (best) of {settings['repeats']} calls after "
        f"{settings['warmup']} warm-up calls{', each followed by `torch.cuda.synchronize`' if device.startswith('cuda') else ''}; fwd runs under `no_grad`, fwd+bwd is "
        f"`torch.autograd.grad(f(x), x, ones)`; {memory}. Ratios: against kornia float32, medians.\n",
        *([f"{note}\n"] if note else []),
        markdown_table(speed_rows_for_table(rows), SPEED_COLUMNS, SPEED_FORMATS),
    ])


def compiled_section(rows: list[dict], missing: list[str], eager: list[dict], timeout: float, skipped: str | None) -> str:
    head = "## 3b. Speed and memory under torch.compile\n"
    if skipped:
        return head + f"\nNot run: {skipped}."
    kornia = [r for r in eager if r["method"] == "kornia"]
    lines = [head, f"`torch.compile(f)` (default mode), one fresh dynamo cache per row, in a child process with a time limit of {timeout:.0f} s "
             "in all; compile s: the first forward+backward and the first no-grad forward, compilation included. Otherwise as above "
             "(kornia: eager).\n",
             markdown_table(speed_rows_for_table(rows + kornia), ["compile s"] + SPEED_COLUMNS, SPEED_FORMATS) if rows else "No row finished."]
    if missing:
        lines.append(f"\nNot finished within the time limit: {', '.join(missing)}.")
    return "\n".join(lines)


def records(rows: list[dict]) -> list[dict]:
    """One record per speed row, in the schema issue 29 asks for (and the compile time where there is one)."""
    out = []
    for r in rows:
        record = {"method": r["method"].split()[0], "backend": r.get("backend"), "mode": r.get("mode"), "dtype": r["dtype"],
                  "compiled": bool(r.get("compiled")), "fwd_mps": r.get("fwd MP/s"), "fwd_bwd_mps": r.get("fwd+bwd MP/s"),
                  "peak_mib": r.get("fwd+bwd peak MiB"), "fwd_peak_mib": r.get("fwd peak MiB")}
        if "compile s" in r:
            record["compile_s"] = r["compile s"]
        if "error" in r:
            record["error"] = r["error"]
        out.append(record)
    return out


def targets_section(rows: list[dict], first: list[dict], device: str, settings: dict) -> tuple[str, list[dict]]:
    """Issue 29's targets, eager, float32 and bfloat16, each from this run's rows alone."""
    ok = [r for r in rows if "error" not in r and not r.get("compiled") and r.get("backend") in ("auto", None)]
    kornia = next((r for r in ok if r["method"] == "kornia" and r["dtype"] == "float32"), None)
    checks = []

    def check(target: str, value, limit: float, shown: str, at_least: bool = True) -> None:
        result = "—" if value is None else "met" if (value >= limit if at_least else value <= limit) else "not met"
        checks.append({"target": target, "measured": shown if value is not None else "not measured", "result": result})

    for dtype in SPEED_DTYPES:
        row = {r["mode"]: r for r in ok if r["method"].startswith("diffjpeg") and r["dtype"] == dtype}
        exact = row.get("exact")
        check(f"exact forward ≥ {TARGET_EXACT_FWD / 1000:.0f} Gpx/s ({dtype})", exact and exact["fwd MP/s"], TARGET_EXACT_FWD,
              exact and f"{_mps(exact['fwd MP/s'])} MP/s")
        for forward in FORWARDS:
            r = row.get(forward)
            check(f"{forward} forward+backward ≥ {TARGET_FWD_BWD / 1000:.0f} Gpx/s ({dtype})", r and r["fwd+bwd MP/s"], TARGET_FWD_BWD,
                  r and f"{_mps(r['fwd+bwd MP/s'])} MP/s")
            ratio = _ratio(r and r["fwd+bwd MP/s"], kornia and kornia["fwd+bwd MP/s"])
            check(f"{forward} forward+backward ≥ {TARGET_KORNIA:.0f}x kornia's ({dtype})", ratio, TARGET_KORNIA,
                  ratio and f"{ratio:.1f}x (kornia float32 {_mps(kornia['fwd+bwd MP/s'])} MP/s)")
            element = torch.empty((), dtype=DTYPES[dtype]).element_size()
            input_mib = settings["batch"] * 3 * settings["size"] ** 2 * element / 2**20
            peak = r and r["fwd+bwd peak MiB"]
            check(f"{forward} forward+backward peak memory ≤ {TARGET_MEMORY}x the input's bytes ({dtype})", peak and peak / input_mib,
                  TARGET_MEMORY, peak and f"{peak / input_mib:.2f}x ({peak:.0f} MiB over a {input_mib:.0f} MiB input)", at_least=False)
    for r in first:
        for key, limit, label in (("fresh s", TARGET_FIRST_FRESH, "fresh process"), ("warm s", TARGET_FIRST_WARM, "cache warm")):
            value = r.get(key)
            check(f"first call ≤ {limit:.0f} s, {label} ({r['mode']} {r['dtype']})", value, limit, value and f"{value:.2f} s", at_least=False)
    text = (f"## 6. Targets of issue 29\n\nOn {device}: eager, `backend=\"auto\"`, batch {settings['batch']}x3x{settings['size']}², "
            "quality 50, 4:2:0, each mode's default surrogate; medians of this run. Peak memory: section 3's forward+backward peak "
            "over the input's bytes. First call: section 4.\n\n" + markdown_table(checks, ["target", "measured", "result"]))
    return text, checks


# ---------------------------------------------------------------- 4. first call
def first_call_worker(spec: dict) -> None:
    """In a fresh child process: CUDA initialised (not counted), then one
    variant's first forward+backward and first no-grad forward, timed; one JSON line."""
    device = torch.device(spec["device"])
    x = torch.rand(spec["batch"], 3, spec["size"], spec["size"], device=device).to(DTYPES[spec["dtype"]])
    q = torch.tensor(50.0, device=device)
    synchronize(device)
    f = ours(spec["mode"], None)
    start = time.perf_counter()
    xg = x.clone().requires_grad_()
    torch.autograd.grad(f(xg, q), xg, torch.ones_like(x))
    synchronize(device)
    middle = time.perf_counter()
    with torch.no_grad():
        f(x, q)
    synchronize(device)
    print(json.dumps({"fwd_bwd_s": middle - start, "then_fwd_s": time.perf_counter() - middle}), flush=True)


def first_calls(device: torch.device, variants, settings: dict, deadline: float) -> list[dict]:
    """Each variant in a fresh process with an empty Triton cache of its own, then in a second process on that cache."""
    rows = []
    for mode, dtype in variants:
        row = {"mode": mode, "dtype": dtype}
        with tempfile.TemporaryDirectory() as cache:
            env = {**os.environ, "TRITON_CACHE_DIR": cache}
            for key in ("fresh s", "warm s"):
                left = deadline - time.monotonic()
                if left < 5:
                    row[key + " error"] = "time limit"
                    break
                spec = json.dumps({"device": str(device), "mode": mode, "dtype": dtype, "batch": settings["batch"], "size": settings["size"]})
                try:
                    done = subprocess.run([sys.executable, __file__, "--first-call-worker", spec], cwd=ROOT, env=env,
                                          capture_output=True, text=True, timeout=min(120.0, left))
                    line = [ln for ln in done.stdout.splitlines() if ln.startswith("{")]
                    if line:
                        timing = json.loads(line[-1])
                        row[key], row[key.replace(" s", " then fwd s")] = timing["fwd_bwd_s"], timing["then_fwd_s"]
                    else:
                        row[key + " error"] = (done.stderr.strip().splitlines() or ["no output"])[-1][:200]
                except subprocess.TimeoutExpired:
                    row[key + " error"] = "time limit"
        rows.append(row)
        log(f"first call: {mode} {dtype}: " + ", ".join(f"{k} {v:.2f}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items() if k not in ("mode", "dtype")))
    return rows


def first_call_section(rows: list[dict], device: str) -> str:
    table = [{**r, "error": "; ".join(str(r[k]) for k in r if k.endswith("error"))} for r in rows]
    return "\n".join([
        f"## 4. First call on {device}\n",
        "Each (mode, dtype) variant's first `jpeg(x, 50, mode=...)` forward+backward (`backend=\"auto\"`, the batch of section 3), "
        "in a fresh Python process: CUDA initialised and the input made before the clock starts; the import of Triton and the "
        "compilation of its kernels counted. Fresh: an empty Triton cache (`TRITON_CACHE_DIR`); warm: a second process on the "
        "cache the first one wrote. Then fwd: the first no-grad forward right after.\n",
        markdown_table(table, ["mode", "dtype", "fresh s", "fresh then fwd s", "warm s", "warm then fwd s", "error"],
                       {k: "{:.2f}" for k in ("fresh s", "fresh then fwd s", "warm s", "warm then fwd s")}),
    ])


# ---------------------------------------------------------------- 5. decoding
def decoding(device: torch.device, settings: dict) -> list[dict]:
    """decode of coefficients on the device, and files to pixels on the device beside torchvision's decode_jpeg."""
    from diffjpeg.tools.reference import pillow_jpeg

    size, batch = settings["size"], settings["batch"]
    photos = [load_photo(name, None) for name in ("astronaut", "coffee", "chelsea", "rocket")]
    crops = [np.ascontiguousarray(p[(i * 7) % (p.shape[0] - size):][:size, (i * 13) % (p.shape[1] - size):][:, :size])
             for i, p in enumerate(photos * (batch // len(photos) + 1))][:batch]
    files = [pillow_jpeg(c, 50, "4:2:0") for c in crops]
    megapixels = batch * size * size / 1e6
    rows = []

    def timed(label: str, fn) -> None:
        try:
            for _ in range(settings["warmup"]):
                fn()
            synchronize(device)
            times = []
            for _ in range(settings["repeats"]):
                start = time.perf_counter()
                fn()
                synchronize(device)
                times.append(time.perf_counter() - start)
            rows.append({"what": label, "MP/s": megapixels / statistics.median(times), "best MP/s": megapixels / min(times)})
        except Exception as e:  # noqa: BLE001 (reported)
            rows.append({"what": label, "error": brief(e)})
        log(f"decoding: {label}: " + (rows[-1].get("error") or f"{_mps(rows[-1]['MP/s'])} MP/s"))

    x = torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).contiguous().to(device)
    coefficients = diffjpeg.encode(x, 50)
    timed("decode(coefficients) to uint8", lambda: diffjpeg.decode(coefficients, dtype=torch.uint8))
    timed("decode(coefficients) to float32", lambda: diffjpeg.decode(coefficients))
    timed("files: diffjpeg.read on the CPU, decode on the device", lambda: [diffjpeg.decode(diffjpeg.read(f, device=device), dtype=torch.uint8) for f in files])
    try:
        from torchvision.io import decode_jpeg
    except Exception as e:  # noqa: BLE001 (not installed, or built for another torch)
        rows.append({"what": "files: torchvision.io.decode_jpeg", "error": f"torchvision's decode_jpeg does not import here: {brief(e)}"})
    else:
        data = [torch.frombuffer(bytearray(f), dtype=torch.uint8) for f in files]
        timed(f"files: torchvision.io.decode_jpeg(device={device.type!r})", lambda: decode_jpeg(data, device=device))
    return rows


def decoding_section(rows: list[dict], device: str, settings: dict) -> str:
    return "\n".join([
        f"## 5. Decoding on {device}\n",
        f"{settings['batch']} crops of {settings['size']}x{settings['size']} from four scikit-image photos, quality 50, 4:2:0. "
        "Coefficients: `diffjpeg.encode` of the batch on the device, then `decode` of them. Files: Pillow's bytes of each crop, "
        "one call per file (diffjpeg: `read(data, device=...)` parses the file on the CPU and moves the coefficients, then `decode`); "
        f"torchvision: one batched `decode_jpeg` call. Median (best) of {settings['repeats']} runs.\n",
        markdown_table([{**r, "MP/s": r.get("error") or f"{_mps(r['MP/s'])} ({_mps(r['best MP/s'])})"} for r in rows], ["what", "MP/s"]),
    ])


# ---------------------------------------------------------------- main
def parse(argv):
    parser = argparse.ArgumentParser(prog="python benchmarks/gpu.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda", help="cuda (default), cuda:N or cpu")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "gpu.md", help="the markdown report (a .json of the raw numbers goes beside it)")
    parser.add_argument("--quick", action="store_true", help="few qualities and photos, a small batch, one test file, no compile")
    parser.add_argument("--skip-tests", action="store_true", help="no pytest run")
    parser.add_argument("--tests", nargs="+", help="test files or node ids (default: every tests/**/test_*.py but the benchmark's)")
    parser.add_argument("--test-jobs", type=int, help="test files run at a time (default: half the cores, at most the files)")
    parser.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None, help="the torch.compile rows (default: on, off with --quick)")
    for key in ("budget", "test_timeout", "exact_timeout", "first_call_timeout"):
        parser.add_argument("--" + key.replace("_", "-"), type=float, help=f"seconds (default {FULL[key]:.0f}, quick {QUICK[key]:.0f})")
    parser.add_argument("--compile-timeout", type=float, help="seconds (default: what is left of --budget, at least 30)")
    parser.add_argument("--photos", nargs="+", help=f"scikit-image photos (default {' '.join(PHOTOS)})")
    parser.add_argument("--qualities", nargs="+", type=int, help="default 1-100")
    parser.add_argument("--crop", type=int, help="top-left crops of about crop x 1.5 crop pixels (default: whole photos)")
    for key in ("batch", "size", "warmup", "repeats"):
        parser.add_argument("--" + key, type=int, help=f"speed: default {FULL[key]}, quick {QUICK[key]}")
    parser.add_argument("--compile-worker", help=argparse.SUPPRESS)
    parser.add_argument("--first-call-worker", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv=None) -> int:
    global _started
    _started = time.monotonic()
    args = parse(argv)
    if args.compile_worker:
        compile_worker(json.loads(args.compile_worker))
        return 0
    if args.first_call_worker:
        first_call_worker(json.loads(args.first_call_worker))
        return 0
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("no CUDA device here: run with --device cpu (and --quick) for a development run", file=sys.stderr)
        return 2
    settings = dict(QUICK if args.quick else FULL)
    settings.update({k: v for k, v in vars(args).items() if k in settings and v is not None})
    compile_on = (not args.quick) if args.compile is None else args.compile
    # the device x dtype matrix first: it is what this run is for
    tests = [] if args.skip_tests else args.tests or (list(QUICK_TESTS) if args.quick else
                                                      [str(p.relative_to(ROOT)) for p in sorted((ROOT / "tests").rglob("test_*.py"),
                                                                                                key=lambda p: str(p.relative_to(ROOT)) != DEVICE_TESTS)
                                                       if str(p.relative_to(ROOT)) not in NOT_DEVICE_TESTS])
    jobs = args.test_jobs or max(1, min(len(tests) or 1, (os.cpu_count() or 2) // 2))
    report = Report(args.out, args.out.with_suffix(".json"))
    command = "python benchmarks/gpu.py " + " ".join(argv if argv is not None else sys.argv[1:])
    report.set("title", f"# diffjpeg on {device.type.upper()}: tests, exactness, speed, memory\n\nWritten by `{command.strip()}`"
               f"{' (quick: numbers not meaningful)' if args.quick else ''}. Every number below was measured in this run.")
    log(f"writing {args.out}")
    info = machine_info(device)
    # the report's device and date at the top of the JSON, before each section's numbers
    report.data.update({"device": info["gpu"] if device.type == "cuda" else f"{info.get('cpu')} (cpu)", "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())})
    report.set("machine", "## Machine and versions\n\n" + "\n".join(f"- {k}: {v}" for k, v in info.items()), info)
    shown = {**settings, "compile": compile_on, "tests": tests or "skipped", "test files at a time": jobs}
    report.set("settings", "## Settings\n\n" + "\n".join(f"- {k}: {v}" for k, v in shown.items()), shown)

    runner = None
    stop = lambda *_: sys.exit(f"stopped by signal; report so far in {args.out}")  # noqa: E731
    previous = signal.signal(signal.SIGTERM, stop) if sys.platform != "win32" else None
    try:
        if tests and importlib.util.find_spec("pytest") is None:
            report.set("tests", "## 1. Tests\n\nNot run: pytest is not installed here.")
            tests = []
        if tests:  # beside the exactness check, which times nothing
            log(f"tests: {len(tests)} file(s) on {device.type}, {jobs} at a time, limit {settings['test_timeout']:.0f} s")
            logs = args.out.with_name(args.out.stem + "-pytest-logs")  # beside the report, to come back with it
            runner = PytestRun(tests, device.type, jobs, logs)
            test_deadline = time.monotonic() + settings["test_timeout"]
        else:
            report.set("tests", "## 1. Tests\n\nSkipped (`--skip-tests`).")

        log(f"exactness: {len(settings['photos'])} photos x {len(settings['qualities'])} qualities x {len(SUBSAMPLINGS)} subsamplings x {len(DTYPES)} dtypes")
        result = exactness(device, settings["photos"], settings["qualities"], settings["crop"], time.monotonic() + settings["exact_timeout"])
        report.set("exactness", exactness_section(result, str(device)), result)

        if runner:
            log("tests: waiting for the last files")
            report.set("tests", *tests_section(runner.finish(test_deadline), runner, settings["test_timeout"]))
            runner = None

        log("speed: eager")
        eager, note = eager_speed(device, settings)
        report.set("speed", speed_section(eager, str(device), settings, note), eager)
        report.data["records"] = records(eager)
        targets, checks = targets_section(eager, [], str(device), settings)
        report.set("targets", targets, checks)

        variants = [("exact", "float32")] if args.quick else [(m, d) for d in SPEED_DTYPES for m in FORWARDS]
        log(f"first call: {len(variants)} variant(s), two processes each")
        first = first_calls(device, variants, settings, time.monotonic() + settings["first_call_timeout"])
        report.set("first call", first_call_section(first, str(device)), first)
        targets, checks = targets_section(eager, first, str(device), settings)
        report.set("targets", targets, checks)

        log("decoding")
        report.set("decoding", decoding_section(decoding(device, settings), str(device), settings), None)

        compiled, missing, skipped = [], [], None if compile_on else ("--quick" if args.quick else "--no-compile")
        compile_timeout = settings["compile_timeout"] or max(30.0, settings["budget"] - (time.monotonic() - _started) - 5)
        if compile_on:
            log(f"compile: up to {compile_timeout:.0f} s")
            if device.type == "cuda":
                torch.cuda.empty_cache()  # the child process gets the memory this one cached
            compiled, missing = compiled_speed(device, settings, compile_timeout)
        report.data["records"] = records(eager + compiled)
        report.set("compiled", compiled_section(compiled, missing, eager, compile_timeout, skipped), compiled)
        targets, checks = targets_section(eager + compiled, first, str(device), settings)
        report.set("targets", targets, checks)
        report.set("footer", f"_Total run time: {time.monotonic() - _started:.0f} s._")
        for line in targets.splitlines()[-3:]:
            log(line)
    finally:
        if runner:  # stopped on the way: what the tests did so far
            report.set("tests", *tests_section(runner.finish(0), runner, settings["test_timeout"]))
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    log(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
