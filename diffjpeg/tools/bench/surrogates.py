"""Gradient-usefulness tasks that tell the surrogates apart, each scored through a real Pillow JPEG.

Run as ``python benchmarks/surrogates.py`` (``--quick`` for a smoke run);
it writes ``surrogates.md`` and ``surrogates.json``. Every layer is trained or
attacked through in the same run, kornia's ``jpeg_codec_differentiable``
beside diffjpeg's forward passes and surrogates, over several seeds (mean and
standard deviation). The tasks:

* **watermark**: an encoder hides 16 bits in a 32x32 photo crop at a fixed
  strength (PSNR 33 dB), a decoder reads them back; both are trained through
  the layer at quality 10 (``"watermark q10"``) or at a quality drawn per image
  from [10, 75] (``"watermark mixed"``); score: bit accuracy after a real
  Pillow JPEG of held-out photos (at 10; for mixed, the mean over 10, 25, 50
  and 75).
* **attack**: PGD (L-inf) on a small CNN trained on scikit-learn's digits
  (32x32 RGB), at a budget that fools it on at least 95% of the images
  without JPEG; the layer at quality 50 or 75 in the loop; score: success
  after the real Pillow JPEG at that quality. Beside the layers: no JPEG in the
  loop, BPDA (the real JPEG forward, identity backward; Athalye et al. 2018)
  and an expectation over qualities (Shin & Song 2017: each step a quality per
  image from [30, 90], through diffjpeg's default layer).
* **recovery**: the quality of Pillow's JPEG recovered from its pixels by
  Adam on quality through the layer (share within +-1).
* **tables** (d): a pair of quantization tables (luma, chroma) learned through
  the layer by :func:`diffjpeg.tools.qtables.learn_qtables` (the same Adam,
  steps, crops and objective for every layer: bits / pixel + lambda * MSE,
  lambda the slope of the IJG curve at quality 50 on the training photos,
  from the IJG q 50 tables); the rate is :func:`diffjpeg.rate` of the layer's
  own quantized coefficients (kornia's through
  :func:`~diffjpeg.tools.bench.methods.kornia_table_codec`), one rate model for
  every layer; the seed draws the crops. Score: BD-rate (%, lower is better)
  against the IJG tables through real Pillow files (4:2:0, ``optimize=True``)
  on the held-out photos, the learned tables scaled by libjpeg's quality
  formula over :data:`diffjpeg.tools.qtables.QUALITIES` (30..95), as
  ``benchmarks/tables.py`` scores them.

Models are trained here on data that ships with scikit-image and
scikit-learn; nothing is downloaded.
"""
from __future__ import annotations

import functools
import json
import math
import re
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ... import jpeg
from ...stages.rounding import Fourier, Rounding, Sigmoid, as_rounding
from ..images import skimage_photo
from ..qtables import QUALITIES, curve_bd_rate, ijg_curve, learn_qtables, scaled_curve, slope_lambdas
from ..reference import pillow_roundtrip
from .machine import machine
from .methods import float_tensor, kornia_jpeg, kornia_table_codec, uint8_array
from .report import markdown_table

TRAIN_PHOTOS = ("astronaut", "coffee", "rocket", "immunohistochemistry", "hubble_deep_field", "retina")
TEST_PHOTOS = ("chelsea", "stereo_motorcycle")
BITS = 16
PSNR_DB = 33.0


# ---------------------------------------------------------------- the layers
def surrogate(label: str) -> Rounding:
    """A rounding label: a name, ``fourier-DAMPING-ORDER`` (``fourier-none-10``) or
    ``sigmoid-TEMPERATURE`` (``sigmoid-0.1``)."""
    if label.startswith("fourier-"):
        _, damping, order = label.split("-")
        return Fourier(order=int(order), damping=damping)
    if label.startswith("sigmoid-"):
        return Sigmoid(temperature=float(label.split("-", 1)[1]))
    return as_rounding(label)


def layer(name: str):
    """``f(x (B, 3, H, W), quality (B,))`` for ``"mode/rounding-label"`` or ``"kornia"``."""
    if name == "kornia":
        k = kornia_jpeg()
        if k is None:
            return None
        return lambda x, q: k(x, q)
    mode, label = name.split("/")
    rounding = surrogate(label)
    return lambda x, q: jpeg(x, quality=q, mode=mode, rounding=rounding)


def real_jpeg(x: torch.Tensor, qualities) -> torch.Tensor:
    """Pillow's JPEG of each image of ``x`` (float in [0, 1]) at its quality."""
    qualities = [int(q) for q in torch.as_tensor(qualities).reshape(-1).expand(x.shape[0])]
    return torch.stack([float_tensor(pillow_roundtrip(uint8_array(img), q)) for img, q in zip(x, qualities)])


class _BPDA(torch.autograd.Function):
    """Real JPEG forward, identity backward (Athalye et al. 2018)."""

    @staticmethod
    def forward(ctx, x, q):
        return real_jpeg(x.detach(), q).to(x.dtype)

    @staticmethod
    def backward(ctx, grad):
        return grad, None


# ---------------------------------------------------------------- data
@functools.lru_cache(maxsize=None)
def _photo(name: str) -> torch.Tensor:
    return float_tensor(skimage_photo(name))


def crops(names, count: int, size: int, generator: torch.Generator) -> torch.Tensor:
    """``count`` random ``size`` x ``size`` crops of the photos, ``(count, 3, size, size)`` float in [0, 1]."""
    images = [_photo(n) for n in names]
    out = []
    for i in range(count):
        img = images[int(torch.randint(len(images), (), generator=generator))]
        top = int(torch.randint(img.shape[1] - size + 1, (), generator=generator))
        left = int(torch.randint(img.shape[2] - size + 1, (), generator=generator))
        out.append(img[:, top : top + size, left : left + size])
    return torch.stack(out)


# ---------------------------------------------------------------- (a) watermark
class Embedder(nn.Module):
    """Bits and image to a residual of fixed strength (PSNR ``PSNR_DB`` against the image): a
    learned spread-spectrum pattern per bit, shaped by a small convolutional net that sees the image."""

    def __init__(self, width: int = 16, size: int = 32):
        super().__init__()
        self.pattern = nn.Linear(BITS, 3 * size * size)
        self.net = nn.Sequential(
            nn.Conv2d(6, width, 3, padding=1), nn.ReLU(),
            nn.Conv2d(width, 3, 3, padding=1),
        )
        self.rms = 10 ** (-PSNR_DB / 20)

    def forward(self, x, bits):
        pattern = self.pattern(2 * bits - 1).reshape(x.shape)
        r = pattern + self.net(torch.cat([x, pattern], 1))
        r = r * (self.rms / r.pow(2).mean((1, 2, 3), keepdim=True).add(1e-12).sqrt())
        return (x + r).clamp(0, 1)


class Extractor(nn.Module):
    def __init__(self, width: int = 16):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(3, width, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(width, 2 * width, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(2 * width, 2 * width, 3, stride=2, padding=1), nn.ReLU(),
            nn.Flatten(), nn.LazyLinear(BITS),
        )

    def forward(self, x):
        return self.net(x)


def watermark(name: str, seed: int, steps: int, train_quality, test_qualities, batch: int = 32,
              train_crops: int = 2048, test_crops: int = 256) -> float:
    """Bit accuracy (%) after real JPEG of a watermark trained through the layer ``name``.

    ``train_quality``: a number, or ``(low, high)`` for a quality drawn per image.
    """
    f = layer(name)
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    train = crops(TRAIN_PHOTOS, train_crops, 32, g)
    test = crops(TEST_PHOTOS, test_crops, 32, torch.Generator().manual_seed(10_000 + seed))
    embed, extract = Embedder(), Extractor()
    extract(torch.zeros(1, 3, 32, 32))  # materialize the lazy layer before the optimizer sees it
    optimizer = torch.optim.Adam([*embed.parameters(), *extract.parameters()], lr=1e-3)
    for _ in range(steps):
        x = train[torch.randint(len(train), (batch,), generator=g)]
        bits = torch.randint(2, (batch, BITS), generator=g).float()
        if isinstance(train_quality, tuple):
            q = torch.randint(train_quality[0], train_quality[1] + 1, (batch,), generator=g).float()
        else:
            q = torch.full((batch,), float(train_quality))
        loss = nn.functional.binary_cross_entropy_with_logits(extract(f(embed(x, bits), q)), bits)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    accuracies = []
    with torch.no_grad():
        bits = torch.randint(2, (len(test), BITS), generator=g).float()
        marked = embed(test, bits)
        for q in test_qualities:
            read = extract(real_jpeg(marked, q)) > 0
            accuracies.append(float((read == bits.bool()).float().mean()) * 100)
    return float(np.mean(accuracies))


# ---------------------------------------------------------------- (b) attack
class Standardize(nn.Module):
    """Each crop to zero mean and unit variance: the classifier must read texture, not brightness."""

    def forward(self, x):
        return (x - x.mean((1, 2, 3), keepdim=True)) / x.std((1, 2, 3), keepdim=True).add(1e-3)


def photo_classifier(seed: int, epochs: int, train_per_class: int = 200, test_per_class: int = 25):
    """A small CNN that tells which scikit-image photo a 32x32 crop comes from (8 classes):
    natural-image content, as attacks meet it; the model and a test set of fresh crops."""
    names = TRAIN_PHOTOS + TEST_PHOTOS
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    train = torch.cat([crops((n,), train_per_class, 32, g) for n in names])
    labels = torch.arange(len(names)).repeat_interleave(train_per_class)
    test = torch.cat([crops((n,), test_per_class, 32, g) for n in names])
    test_labels = torch.arange(len(names)).repeat_interleave(test_per_class)
    model = nn.Sequential(
        Standardize(),
        nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64 * 8 * 8, len(names)),
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(epochs):
        for batch in torch.randperm(len(train), generator=g).split(64):
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(train[batch]), labels[batch]).backward()
            optimizer.step()
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model, test, test_labels


def pgd(model, x, y, through, eps: float, steps: int, generator: torch.Generator) -> torch.Tensor:
    """L-inf PGD from a random start in the eps-ball; ``through(x)`` is what the model sees."""
    adversarial = (x + (torch.rand(x.shape, generator=generator) * 2 - 1) * eps).clamp(0, 1)
    step = 2.5 * eps / steps
    for _ in range(steps):
        adversarial.requires_grad_()
        loss = nn.functional.cross_entropy(model(through(adversarial)), y)
        (gradient,) = torch.autograd.grad(loss, adversarial)
        adversarial = adversarial.detach() + step * gradient.sign()
        adversarial = (x + (adversarial - x).clamp(-eps, eps)).clamp(0, 1)
    return adversarial.detach()


def attack_setting(name: str, quality: int, eot_range=(30, 90)):
    """What the model sees during the attack for a method name (a layer, ``none``, ``BPDA``, ``EOT``)."""
    if name == "none":
        return lambda x: x
    if name == "BPDA":
        return lambda x: _BPDA.apply(x, quality)
    if name == "EOT":
        def through(x):
            q = torch.randint(eot_range[0], eot_range[1] + 1, (x.shape[0],)).float()
            return jpeg(x, quality=q)
        return through
    f = layer(name)
    q = torch.full((1,), float(quality))
    return lambda x: f(x, q.expand(x.shape[0]))


def attack(names, seed: int, qualities, eps: float, steps: int, epochs: int, per_class=(200, 25)) -> dict:
    """Attack success (%) after real JPEG, per quality and method, over the test crops the model gets
    right after that JPEG; also the success without JPEG (``clean``), over those it gets right."""
    model, x, y = photo_classifier(seed, epochs, *per_class)
    out = {}
    with torch.no_grad():
        clean_correct = model(x).argmax(1) == y
    adversarial = pgd(model, x[clean_correct], y[clean_correct], lambda v: v, eps, steps, torch.Generator().manual_seed(seed))
    with torch.no_grad():
        out["clean"] = float((model(adversarial).argmax(1) != y[clean_correct]).float().mean()) * 100
    for quality in qualities:
        with torch.no_grad():
            correct = model(real_jpeg(x, quality)).argmax(1) == y
        xs, ys = x[correct], y[correct]
        for name in names:
            torch.manual_seed(seed)
            adv = pgd(model, xs, ys, attack_setting(name, quality), eps, steps, torch.Generator().manual_seed(seed))
            with torch.no_grad():
                fooled = model(real_jpeg(adv, quality)).argmax(1) != ys
            out[(name, quality)] = float(fooled.float().mean()) * 100
    return out


# ---------------------------------------------------------------- (c) quality recovery
def recovery(name: str, seed: int, targets, steps: int, count: int) -> float:
    """Share (%) of qualities recovered within +-1 from Pillow's pixels by Adam on quality through the layer."""
    f = layer(name)
    x = crops(TRAIN_PHOTOS + TEST_PHOTOS, count, 64, torch.Generator().manual_seed(seed))
    hits = []
    for target in targets:
        real = real_jpeg(x, target)
        q = torch.full((count,), 50.0, requires_grad=True)
        optimizer = torch.optim.Adam([q], lr=2.0)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
        for _ in range(steps):
            optimizer.zero_grad()
            ((f(x, q.clamp(1, 100)) - real) ** 2).mean((1, 2, 3)).sum().backward()
            optimizer.step()
            schedule.step()
        hits += ((q.detach() - target).abs() <= 1).tolist()
    return float(np.mean(hits)) * 100


# ---------------------------------------------------------------- (d) learned tables
def photos_uint8(names) -> list[torch.Tensor]:
    """The photos as ``(3, H, W)`` uint8 tensors (what ImageSet and Pillow take as they are)."""
    return [_photo(n).mul(255).round().to(torch.uint8) for n in names]


def table_lambda(quality: int = 50) -> float:
    """lambda of the IJG tables at ``quality`` on the training photos (:func:`diffjpeg.tools.qtables.slope_lambdas`)."""
    return slope_lambdas(photos_uint8(TRAIN_PHOTOS), (quality,))[quality]


def learn_tables(name: str, seed: int, lam: float, steps: int, batch: int, crop: int) -> torch.Tensor | None:
    """``(2, 8, 8)`` integer tables learned through the layer ``name`` (None: kornia missing)."""
    if name == "kornia":
        codec = kornia_table_codec()
        if codec is None:
            return None
        through = dict(codec=codec)
    else:
        mode, label = name.split("/")
        through = dict(mode=mode, rounding=surrogate(label))
    torch.manual_seed(seed)  # the noise rounding draws from torch's default generator
    return learn_qtables(photos_uint8(TRAIN_PHOTOS), lam=lam, steps=steps, batch_size=batch, crop=crop, seed=seed, **through)


def tables_bd_rate(tables: torch.Tensor, anchor: list[dict], qualities=QUALITIES) -> float:
    """BD-rate (%) of ``tables`` scaled by quality against ``anchor`` (:func:`ijg_curve` of the held-out photos)."""
    return curve_bd_rate(anchor, scaled_curve(photos_uint8(TEST_PHOTOS), tables, qualities))


# ---------------------------------------------------------------- the run
LAYERS = ("exact/linear", "exact/polynomial", "exact/sigmoid", "exact/fourier-none-10", "exact/fourier-fejer-1",
          "exact/fourier-fejer-3", "exact/fourier-fejer-10", "exact/fourier-lanczos-10", "soft/sigmoid", "soft/noise", "kornia")
# (d) crosses the three forward passes with the surrogates; soft/linear is left out (its forward pass
# quantizes nothing, see diffjpeg.stages.rounding), and noise only with the soft forward (elsewhere it is linear).
TABLE_LAYERS = (*(f"{mode}/{label}" for mode in ("exact", "float") for label in ("linear", "polynomial", "sigmoid", "fourier-fejer-1", "fourier-none-10")),
                *(f"soft/{label}" for label in ("polynomial", "sigmoid", "fourier-fejer-1", "fourier-none-10", "noise")), "kornia")

FULL = dict(seeds=(0, 1, 2), steps=300, batch=32, train_crops=2048, test_crops=256, low_quality=15, mixed=(10, 75),
            mixed_test=(10, 25, 50, 75), attack_eps=12 / 255, attack_steps=20, attack_epochs=10, attack_crops=(200, 25),
            recovery_targets=(15, 35, 55, 75, 90), recovery_steps=40, recovery_crops=4,
            table_quality=50, table_steps=100, table_batch=3, table_crop=128, table_qualities=QUALITIES)
QUICK = dict(FULL, seeds=(0,), steps=2, batch=4, train_crops=16, test_crops=8, attack_steps=1, attack_epochs=1, attack_crops=(4, 2),
             recovery_targets=(50,), recovery_steps=1, recovery_crops=1, table_steps=2, table_batch=1, table_crop=32,
             table_qualities=(40, 60, 80))


def _stats(values):
    return float(np.mean(values)), float(np.std(values))


TASKS = ("watermark low", "watermark mixed", "attack", "recovery", "tables")
TABLES_COLUMN = "tables BD-rate"
LOWER_IS_BETTER = (TABLES_COLUMN,)
BASELINES = ("none", "BPDA", "EOT")


def run(out: Path, quick: bool = False, layers=None, tasks=TASKS, seeds=None, progress=print,
        command: str = "python benchmarks/surrogates.py", merge: bool = False) -> Path:
    """Every task for every layer and seed; writes ``surrogates.md`` and ``surrogates.json`` to ``out``.

    ``layers``: the layers of every task (default :data:`LAYERS`, and :data:`TABLE_LAYERS` for
    ``"tables"``). ``merge``: keep the scores of the ``surrogates.json`` already in ``out`` that
    this run does not measure, other columns and other layers alike (each run is recorded and
    reported with the columns and layers it measured).
    """
    torch.set_num_threads(1)
    settings = dict(QUICK if quick else FULL)
    if seeds is not None:
        settings["seeds"] = tuple(seeds)
    tables_only = set(tasks) <= {"tables"}  # the report lists the settings of the tasks run
    settings = {k: v for k, v in settings.items() if k == "seeds" or (k.startswith("table_") == tables_only or "tables" in tasks and not tables_only)}
    have_kornia = kornia_jpeg() is not None

    def layers_of(task):
        names = layers if layers is not None else TABLE_LAYERS if task == "tables" else LAYERS
        return [n for n in names if n != "kornia" or have_kornia]

    info = machine()  # its date and load average: at the start
    started = time.perf_counter()
    scores: dict[str, dict[str, list[float]]] = {}
    learned: dict[str, list] = {}
    touched: set[str] = set()
    if "tables" in tasks:
        lam = table_lambda(settings["table_quality"])
        settings["table_lambda"] = lam
        anchor = ijg_curve(photos_uint8(TEST_PHOTOS), settings["table_qualities"])

    def record(task, name, value):
        scores.setdefault(task, {}).setdefault(name, []).append(value)
        touched.add(task)

    for seed in settings["seeds"]:
        for task in tasks:
            t = time.perf_counter()
            touched.clear()
            names = layers_of(task)
            if task == "watermark low":
                low = settings["low_quality"]
                for name in names:
                    record(f"watermark q{low}", name, watermark(name, seed, settings["steps"], low, (low,), settings["batch"],
                                                               settings["train_crops"], settings["test_crops"]))
            elif task == "watermark mixed":
                for name in names:
                    record(task, name, watermark(name, seed, settings["steps"], settings["mixed"], settings["mixed_test"], settings["batch"],
                                                 settings["train_crops"], settings["test_crops"]))
            elif task == "attack":
                result = attack(list(names) + list(BASELINES), seed, (50, 75), settings["attack_eps"],
                                settings["attack_steps"], settings["attack_epochs"], settings["attack_crops"])
                record("attack without JPEG (clean model)", "PGD", result.pop("clean"))
                for (name, quality), value in result.items():
                    record(f"attack q{quality}", name, value)
            elif task == "recovery":
                for name in names:
                    record(task, name, recovery(name, seed, settings["recovery_targets"], settings["recovery_steps"], settings["recovery_crops"]))
            elif task == "tables":
                for name in names:
                    tables = learn_tables(name, seed, lam, settings["table_steps"], settings["table_batch"], settings["table_crop"])
                    if tables is not None:
                        record(TABLES_COLUMN, name, tables_bd_rate(tables, anchor, settings["table_qualities"]))
                        learned.setdefault(name, []).append(tables.tolist())
            progress(f"seed {seed}: {task} in {time.perf_counter() - t:.0f} s: "
                     + "; ".join(f"{k}: " + ", ".join(f"{n} {v[-1]:.1f}" for n, v in d.items()) for k, d in scores.items() if k in touched))
    elapsed = time.perf_counter() - started
    out.mkdir(parents=True, exist_ok=True)
    this = {"command": command, "machine": info, "settings": settings, "seconds": elapsed, "columns": list(scores),
            "layers": {column: list(by_layer) for column, by_layer in scores.items()}}
    data = {"runs": [this], "scores": scores, "tables": learned}
    path = out / "surrogates.json"
    if merge and path.is_file():
        data = _merged(_load(path), data)
    path.write_text(_json(data))
    report = out / "surrogates.md"
    report.write_text(render(path))  # from the file, so that --render gives the same report
    return report


def _json(data: dict) -> str:
    """Indented JSON with each list of integers (a table row, the seeds) on one line."""
    text = json.dumps(data, indent=1, default=str)
    return re.sub(r"\[\s*(-?\d+(?:,\s*-?\d+)*)\s*\]", lambda m: "[" + ", ".join(re.split(r",\s*", m.group(1))) + "]", text) + "\n"


def _load(path: Path) -> dict:
    """A ``surrogates.json``; one written before runs were recorded per column becomes a single run."""
    data = json.loads(path.read_text())
    if "runs" not in data:
        run = {k: data[k] for k in ("command", "machine", "settings", "seconds") if k in data}
        data = {"runs": [{**run, "columns": list(data["scores"])}], "scores": data["scores"], "tables": {}}
    return data


def _merged(old: dict, new: dict) -> dict:
    """``old`` with ``new``'s cells (a layer's scores in a column, and its learned tables) in place of
    its own, the other layers of a column kept (a run of one new layer adds a row); each old run keeps
    the cells it still holds, and is dropped when none is left."""
    scores = {column: dict(by_layer) for column, by_layer in old["scores"].items()}
    for column, by_layer in new["scores"].items():
        scores.setdefault(column, {}).update(by_layer)
    runs = []
    for run in old["runs"]:
        # a run recorded before its layers were: every layer its columns hold in old
        layers = {c: [n for n in run.get("layers", {}).get(c, old["scores"].get(c, {})) if n not in new["scores"].get(c, {})]
                  for c in run["columns"]}
        layers = {c: names for c, names in layers.items() if names}
        if layers:
            runs.append({**run, "columns": list(layers), "layers": layers})
    return {"runs": runs + new["runs"], "scores": scores, "tables": {**old.get("tables", {}), **new["tables"]}}


def markdown(scores, runs, command="python benchmarks/surrogates.py") -> str:
    """The results as one table: a row per layer, a column per task, mean ± standard deviation over seeds;
    per task, the best layer and those within one standard deviation of it; each run's command,
    settings and machine, with the columns it measured."""
    tasks = [t for t in scores if not t.startswith("attack without")]
    names = list(dict.fromkeys(n for t in tasks for n in scores[t] if n not in BASELINES))
    names += [n for n in BASELINES if any(n in scores[t] for t in tasks)]
    rows = []
    for name in names:
        row = {"layer": name}
        for task in tasks:
            if name in scores[task]:
                mean, std = _stats(scores[task][name])
                row[task] = f"{mean:+.1f} ± {std:.1f}" if task in LOWER_IS_BETTER else f"{mean:.1f} ± {std:.1f}"
            else:
                row[task] = ""
        rows.append(row)
    best = []
    for task in tasks:
        means = {n: _stats(v) for n, v in scores[task].items() if n not in BASELINES}
        sign = -1 if task in LOWER_IS_BETTER else 1
        top = max(means, key=lambda n: sign * means[n][0])
        close = [n for n in means if n != top and sign * means[n][0] >= sign * means[top][0] - means[top][1]]
        best.append(f"- {task}{' (lower is better)' if sign < 0 else ''}: **{top}** ({means[top][0]:.1f} ± {means[top][1]:.1f})"
                    + (f"; within one standard deviation: {', '.join(close)}" if close else ""))
    clean = scores.get("attack without JPEG (clean model)", {}).get("PGD")
    lines = [
        "# Surrogates on tasks that tell them apart",
        "",
        "Mean ± standard deviation over seeds; every score is measured after a real Pillow JPEG. "
        "Tasks: see `diffjpeg/tools/bench/surrogates.py`."
        + (" Which run measured which column: below." if len(runs) > 1 else ""),
        "",
        markdown_table(rows, ["layer"] + tasks, {}),
        "",
        "Best layer per task, and those within one standard deviation of it:",
        "",
        *best,
    ]
    if clean:
        lines += ["", f"PGD success without JPEG (the attack's budget check, over the crops the model gets right): "
                      f"{_stats(clean)[0]:.1f} ± {_stats(clean)[1]:.1f}%."]
    for i, run in enumerate(runs, 1):
        settings, elapsed = run.get("settings", {}), run.get("seconds", 0.0)
        shown = [c for c in run["columns"] if not c.startswith("attack without")]
        lines += ["", f"## Run {i}: {', '.join(shown)}" if len(runs) > 1 else "## Run", "",
                  f"Generated by `{run.get('command', command)}`. Seeds {list(settings.get('seeds', []))}."
                  + (f" Layers: {', '.join(_layers_of(run, shown))}." if len(runs) > 1 and run.get("layers") else ""), "",
                  "Settings: " + ", ".join(f"{k} {v if not isinstance(v, float) else round(v, 4)}" for k, v in settings.items())]
        if run.get("machine"):
            lines += ["", "Machine: " + "; ".join(f"{k}: {v}" for k, v in run["machine"].items())]
        lines += ["", f"_Run time {elapsed:.0f} s ({math.ceil(elapsed / 60)} min), torch on one thread._"]
    return "\n".join(lines) + "\n"


def _layers_of(run: dict, columns) -> list[str]:
    """The layers (and baselines) a run measured in ``columns``."""
    return list(dict.fromkeys(n for c in columns for n in run["layers"].get(c, ())))


def render(results: Path, command: str = "python benchmarks/surrogates.py") -> str:
    """The Markdown report of a ``surrogates.json``."""
    data = _load(results)
    return markdown(data["scores"], data["runs"], command)
