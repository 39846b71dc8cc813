"""Learned quantization tables against the IJG tables and mozjpeg, with real files.

    python benchmarks/tables.py            # trains (about 15-25 min on 2 CPU cores), evaluates, writes
                                           # benchmarks/results/tables.md, tables_rd.png, tables.json
    python benchmarks/tables.py --reuse    # evaluates the tables saved in tables.json again

Protocol:

* Training photos (random 256x256 crops): TRAIN below. Held-out photos (whole,
  only ever used for the final numbers): TEST. All from scikit-image, RGB, 4:2:0.
* Anchor: Pillow (libjpeg-turbo) with the IJG tables at qualities QUALITIES,
  ``optimize=True``. Every file is written, its bytes counted, decoded by
  Pillow and compared with the original (PSNR over RGB, mean over images;
  rate = total bits / total pixels).
* lambda for a quality q is the slope -d(bpp)/d(MSE) of the IJG curve at q on
  the training photos (central difference over q - 3 .. q + 3; MSE pooled over pixels), so the learned curve spans the
  same qualities; learning starts from the IJG tables at q.
* Forward/rounding choice: at the lambda of q = 50, each setting learns tables
  and is scored by the real-file objective bpp + lambda * MSE on the training
  photos (not the held-out ones). The best is used for everything after.
* "learned, lambda sweep": one pair of tables per lambda.
  "learned, one shape": the q = 50 tables used as base tables, scaled by
  libjpeg's quality formula over the same qualities.
* mozjpeg 4.0.3 through jpeglib at the same qualities with its defaults
  (jpeg_set_defaults: its quant table set 3, trellis quantization, optimized
  Huffman tables, progressive with optimized scans), and the same files
  recoded losslessly as baseline with optimized Huffman tables (its
  coefficients through :func:`diffjpeg.write`, as jpegtran would), since
  jpeglib does not let mozjpeg's progression be switched off. At low
  qualities jpeglib's mozjpeg stores table entries above 255 (16-bit DQT,
  extended sequential, which baseline cannot hold); those qualities are left
  out of that curve.
* BD-rate: :func:`diffjpeg.tools.qtables.bd_rate` (PCHIP on log rate vs PSNR) over
  the overlapping PSNR range, against the IJG curve.
* Per-image tables: PER_IMAGE photos each learn tables from crops of
  themselves (the q 50 lambda), scaled by quality like the one-shape curve.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

import diffjpeg
from diffjpeg.tools import qtables as T
from diffjpeg.tools.images import skimage_photo as photo
from diffjpeg.tools.qtables import ijg_curve, slope_lambdas

TRAIN = ("astronaut", "rocket", "stereo_motorcycle", "retina")  # stereo_motorcycle: the left view only
TEST = ("chelsea", "coffee", "immunohistochemistry", "hubble_deep_field")
QUALITIES = T.QUALITIES  # 30 .. 95; the BD-rate protocol's functions live in diffjpeg.tools.qtables.evaluate
SWEEP = (30, 50, 70, 85, 95)  # qualities whose lambda gets its own learned tables
SELECT = [("exact", "polynomial"), ("float", "polynomial"), ("soft", "polynomial"),
          ("exact", "linear"), ("exact", "fourier"), ("exact", "sigmoid"),
          ("float", "sigmoid"), ("soft", "sigmoid"), ("soft", "linear")]
PER_IMAGE = ("chelsea", "immunohistochemistry")  # held-out photos that also get tables of their own
RESULTS = Path(__file__).parent / "results"


def mozjpeg_curve(images, qualities, progressive: bool, score=T.score_files) -> list[dict]:
    """mozjpeg 4.0.3's files through jpeglib (defaults: progressive), or their
    coefficients recoded baseline; ``score`` of each quality's files."""
    import jpeglib

    out = []
    for q in qualities:
        files = []
        for a in images:
            path = RESULTS / "_moz.jpg"
            with jpeglib.version("mozjpeg403"):
                jpeglib.from_spatial(a).write_spatial(str(path), qt=q)
            data = path.read_bytes()
            path.unlink()
            if not progressive:  # the same coefficients, recoded baseline with optimized Huffman tables (as jpegtran)
                c = diffjpeg.read(data)
                if float(c.qtables.max()) > 255:
                    break
                data = diffjpeg.write(c, None, optimize=True)
            files.append((a, data))
        if len(files) < len(images):  # tables above 255: no baseline file at this quality
            continue
        out.append({"quality": q, **score(files)})
    return out


def train(images, lam: float, init: int, forward: str, rounding: str, steps: int, seed: int) -> tuple[torch.Tensor, float]:
    t = time.perf_counter()
    tables = T.learn_qtables(images, lam=lam, steps=steps, batch_size=2, crop=256, lr=0.05, init=init,
                             mode=forward, rounding=rounding, seed=seed, progress=True)
    return tables, time.perf_counter() - t


def summary(r: dict) -> dict:
    return {"bpp": r["bpp"], "psnr": r["mean_psnr"]}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=120)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--reuse", action="store_true", help="reuse the tables in results/tables.json")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    RESULTS.mkdir(exist_ok=True)
    store_path = RESULTS / "tables.json"
    store = json.loads(store_path.read_text()) if args.reuse else {"steps": args.steps, "seed": args.seed, "runs": {}}
    started = time.perf_counter()

    train_images = [photo(n) for n in TRAIN]
    test_images = [photo(n) for n in TEST]
    ijg_train = ijg_curve(train_images, QUALITIES)
    lambdas = slope_lambdas(train_images, sorted(set(SWEEP) | {50}))
    print("lambda per quality:", {q: round(v, 5) for q, v in lambdas.items()}, file=sys.stderr)

    def learned(key, q, forward, rounding):
        if key not in store["runs"]:
            tables, seconds = train(train_images, lambdas[q], q, forward, rounding, store["steps"], store["seed"])
            store["runs"][key] = {"quality": q, "lambda": lambdas[q], "forward": forward, "rounding": rounding,
                                  "seconds": seconds, "tables": tables.tolist()}
            store_path.write_text(json.dumps(store, indent=1) + "\n")
        return torch.tensor(store["runs"][key]["tables"])

    # 1. which forward pass and surrogate learn the best tables (training photos, real files)
    lam50 = lambdas[50]
    selection = []
    for forward, rounding in SELECT:
        tables = learned(f"select/{forward}/{rounding}", 50, forward, rounding)
        r = T.evaluate_qtables(train_images, qtables=tables)
        mse = 255**2 / 10 ** (np.array(r["psnr"]) / 10)
        objective = r["bpp"] + lam50 * float(np.sum(mse * np.array(r["pixels"])) / np.sum(r["pixels"]))
        selection.append((forward, rounding, objective, r["bpp"], r["mean_psnr"], store["runs"][f"select/{forward}/{rounding}"]["seconds"]))
    ijg50 = T.evaluate_qtables(train_images, quality=50)
    ijg50_mse = 255**2 / 10 ** (np.array(ijg50["psnr"]) / 10)
    ijg50_objective = ijg50["bpp"] + lam50 * float(np.sum(ijg50_mse * np.array(ijg50["pixels"])) / np.sum(ijg50["pixels"]))
    best_forward, best_rounding = min(selection, key=lambda s: s[2])[:2]

    # 2. the lambda sweep and the one-shape quality sweep, with the chosen setting
    sweep = {}
    for q in SWEEP:
        key = f"select/{best_forward}/{best_rounding}" if q == 50 else f"sweep/{q}/{best_forward}/{best_rounding}"
        sweep[q] = learned(key, q, best_forward, best_rounding)
    shape = sweep[50]

    # per-image tables: each of PER_IMAGE learns its own shape (whole-image lambda of q 50, crops of itself)
    per_image = {}
    for name in PER_IMAGE:
        key = f"per-image/{name}/{best_forward}/{best_rounding}"
        if key not in store["runs"]:
            tables, seconds = train([photo(name)], lam50, 50, best_forward, best_rounding, store["steps"], store["seed"])
            store["runs"][key] = {"quality": 50, "lambda": lam50, "forward": best_forward, "rounding": best_rounding,
                                  "seconds": seconds, "tables": tables.tolist()}
            store_path.write_text(json.dumps(store, indent=1) + "\n")
        per_image[name] = torch.tensor(store["runs"][key]["tables"])

    # 3. real files on the held-out photos
    curves = {
        "IJG (Pillow, optimize=True)": ijg_curve(test_images, QUALITIES),
        "learned, lambda sweep": [T.evaluate_qtables(test_images, qtables=sweep[q]) for q in SWEEP],
        "learned, one shape scaled by quality": T.scaled_curve(test_images, shape, QUALITIES),
        "mozjpeg 4.0.3 defaults (progressive)": mozjpeg_curve(test_images, QUALITIES, progressive=True),
        "mozjpeg 4.0.3, recoded baseline": mozjpeg_curve(test_images, QUALITIES, progressive=False),
    }
    train_curves = {
        "IJG (Pillow, optimize=True)": ijg_train,
        "learned, lambda sweep": [T.evaluate_qtables(train_images, qtables=sweep[q]) for q in SWEEP],
        "learned, one shape scaled by quality": T.scaled_curve(train_images, shape, QUALITIES),
    }
    anchor = "IJG (Pillow, optimize=True)"

    def bd(curve_set, name, subset=None):
        return T.curve_bd_rate(curve_set[anchor], curve_set[name])

    def per_image_bd(curve_set, name):
        a, b = curve_set[anchor], curve_set[name]
        out = []
        for i in range(len(a[0]["bytes"])):
            try:
                out.append(T.bd_rate([c["bytes"][i] for c in a], [c["psnr"][i] for c in a], [c["bytes"][i] for c in b], [c["psnr"][i] for c in b]))
            except ValueError:
                out.append(float("nan"))
        return out

    # 4. the report
    lines = ["# Learned quantization tables: BD-rate against the IJG tables, real files", ""]
    lines += [f"Written by `python benchmarks/tables.py` ({datetime.date.today().isoformat()}, {time.perf_counter() - started:.0f} s"
              f"{' with tables reused from tables.json, where each training run records its seconds' if args.reuse else ''}). Machine: {platform.machine()}, "
              f"{os.cpu_count()} CPU cores (shared), {platform.python_version()}, torch {torch.__version__}, "
              f"Pillow {__import__('PIL').__version__}, jpeglib {__import__('jpeglib').__version__}, "
              f"scikit-image {__import__('skimage').__version__}, diffjpeg {diffjpeg.__version__}.", ""]
    lines += ["Training photos (random 256x256 crops, 2 per step, "
              f"{store['steps']} Adam steps, lr 0.05 cosine-decayed, seed {store['seed']}): " + ", ".join(f"{n} (left view)" if n == "stereo_motorcycle" else n for n in TRAIN)
              + ". Held-out photos (whole, for the numbers below): " + ", ".join(TEST) + ". "
              "All RGB, 4:2:0, files written and decoded by Pillow 4:2:0 with `optimize=True`; "
              "rate = total bits / total pixels, PSNR = mean over photos of the RGB PSNR.", ""]
    lines += ["## BD-rate against the IJG tables (negative = fewer bytes at equal PSNR)", "",
              "| method | held-out photos | training photos | held-out, per photo |", "|---|---:|---:|---|"]
    for name in curves:
        if name == anchor:
            continue
        train_bd = f"{bd(train_curves, name):+.2f}%" if name in train_curves else "—"
        per = ", ".join(f"{n} {v:+.1f}%" for n, v in zip(TEST, per_image_bd(curves, name)))
        lines.append(f"| {name} | **{bd(curves, name):+.2f}%** | {train_bd} | {per} |")
    lines += ["", f"PSNR range of the BD integral: the overlap of each curve with IJG q {QUALITIES[0]}–{QUALITIES[-1]} "
              f"({curves[anchor][0]['mean_psnr']:.2f}–{curves[anchor][-1]['mean_psnr']:.2f} dB held-out)."]
    lines += ["", "## Forward pass and surrogate (chosen on the training photos)", "",
              f"lambda = {lam50:.5f} (the IJG slope at q 50), learning from the IJG q 50 tables; score = real-file "
              f"bpp + lambda * MSE on the training photos (IJG q 50 itself: {ijg50_objective:.4f}).", "",
              "| forward | rounding | objective | bpp | PSNR (dB) | training time (s) |", "|---|---|---:|---:|---:|---:|"]
    for forward, rounding, objective, bpp, mean_psnr, seconds in sorted(selection, key=lambda s: s[2]):
        lines.append(f"| {forward} | {rounding} | {objective:.4f} | {bpp:.4f} | {mean_psnr:.2f} | {seconds:.0f} |")
    lines += ["", f"Chosen: forward=\"{best_forward}\", rounding=\"{best_rounding}\"."]
    lines += ["", "## Per-image tables (learned on the photo itself, scaled by quality)", "",
              f"Each photo learns its own tables at the lambda of q 50 (crops of itself, same settings), used as base "
              f"tables and scaled by quality {QUALITIES[0]}-{QUALITIES[-1]}; BD-rate against IJG on that photo, beside the "
              "dataset tables (learned on the training photos) on the same photo.", "",
              "| photo | per-image tables | dataset tables |", "|---|---:|---:|"]
    for name in PER_IMAGE:
        a = [photo(name)]
        ijg = ijg_curve(a, QUALITIES)
        own = [T.evaluate_qtables(a, qtables=T.scaled_qtables(per_image[name], q)) for q in QUALITIES]
        shared = [T.evaluate_qtables(a, qtables=T.scaled_qtables(shape, q)) for q in QUALITIES]
        bds = [T.bd_rate([c["bpp"] for c in ijg], [c["mean_psnr"] for c in ijg], [c["bpp"] for c in o], [c["mean_psnr"] for c in o]) for o in (own, shared)]
        lines.append(f"| {name} | {bds[0]:+.2f}% | {bds[1]:+.2f}% |")
    lines += ["", "## Curves (held-out photos)", "", "| method | setting | bpp | PSNR (dB) |", "|---|---|---:|---:|"]
    for name, curve in curves.items():
        settings = ([f"lambda {lambdas[q]:.5f} (IJG slope at q {q})" for q in SWEEP] if name == "learned, lambda sweep"
                    else [f"q {c.get('quality', q)}" for q, c in zip(QUALITIES[len(QUALITIES) - len(curve):], curve)])
        for s, c in zip(settings, curve):
            lines.append(f"| {name} | {s} | {c['bpp']:.4f} | {c['mean_psnr']:.2f} |")
    lines += ["", "## Learned tables at the lambda of q 50 (natural order; luma, chroma)", ""]
    for label, t in (("luma", shape[0]), ("chroma", shape[1])):
        lines += [f"{label}:", "", "```"] + [" ".join(f"{v:3d}" for v in row) for row in t.tolist()] + ["```", ""]
    lines += ["![rate-distortion](tables_rd.png)", ""]
    (RESULTS / "tables.md").write_text("\n".join(lines))

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=90)
    for (name, curve), style in zip(curves.items(), ("k-o", "r-s", "m--^", "b-.d", "c:v")):
        ax.plot([c["bpp"] for c in curve], [c["mean_psnr"] for c in curve], style, label=name, ms=4, lw=1.2)
    ax.set_xlabel("bits per pixel (total over held-out photos)")
    ax.set_ylabel("PSNR (dB, mean over held-out photos)")
    ax.set_title("4:2:0, held-out scikit-image photos")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(RESULTS / "tables_rd.png")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
