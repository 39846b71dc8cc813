"""Rate-distortion optimized encoding (diffjpeg.encode_rdo) against Pillow and mozjpeg, with real files.

    python benchmarks/rdo.py            # about 5 min on 2 CPU cores; writes benchmarks/results/rdo.md,
                                        # rdo.json and rdo_rd.png

Protocol (the photos and curves of benchmarks/tables.py, whose functions it reuses):

* Held-out photos TEST (whole), 4:2:0, qualities QUALITIES. Every point is a
  real file; rate = total bits / total pixels; distortion PSNR (RGB, mean over
  photos, Pillow's decode) and SSIM (scikit-image, RGB, mean over photos),
  the latter as -10 log10(1 - SSIM) for BD-rate.
* Anchor: Pillow (libjpeg-turbo) with the IJG tables, ``optimize=True``.
* encode_rdo's files are written by diffjpeg.write (baseline with optimized
  Huffman tables, or progressive), each checked: Pillow and OpenCV decode the
  same pixels, and diffjpeg.bits equals 8 x the scan length (baseline).
* mozjpeg 4.0.3's defaults through jpeglib (progressive, trellis, its tables),
  and the same coefficients recoded baseline (benchmarks/tables.py). jpegli is
  not in this machine's registries (Debian 12's libjxl 0.7 has no cjpegli).
* LAMBDA_SCALE of diffjpeg.codec.rdo was chosen on the TRAIN photos only: the
  BD-rate (PSNR) of each scale there is reported below.
* Per-image table choice, scored on the TRAIN photos: the learned tables at
  quality q + each of OFFSETS with the lambda of q, the best file by real
  bits + lambda * D kept per photo.
* BD-rate: diffjpeg.tools.qtables.bd_rate (PCHIP), of the pooled curve (total
  bits, mean distortion) and per photo.
* Time: encode_rdo alone, one thread (torch and the kernel), per megapixel,
  median of 3 runs on the largest held-out photo.
"""
from __future__ import annotations

import argparse
import datetime
import io
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
import tables as B  # noqa: E402  (benchmarks/tables.py: the photos, the IJG and mozjpeg curves)

import diffjpeg  # noqa: E402
from diffjpeg.codec import rdo  # noqa: E402
from diffjpeg.tools import qtables as T  # noqa: E402

RESULTS = B.RESULTS
QUALITIES = B.QUALITIES
SCALES = (2.0, 4.0, 8.7, 16.0)  # LAMBDA_SCALE candidates, scored on the training photos
OFFSETS = (-10, -5, 0, 5, 10)  # per-image table choice: learned tables at quality q + offset, lambda of q


def tensor(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(a).permute(2, 0, 1).contiguous()


def ssim(a: np.ndarray, data: bytes) -> float:
    from PIL import Image
    from skimage.metrics import structural_similarity

    decoded = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    return float(structural_similarity(a, decoded, channel_axis=2, data_range=255))


def score(pairs) -> dict:
    """benchmarks/tables.py's scores (bytes, PSNR) and SSIM per file."""
    pairs = list(pairs)
    out = T.score_files(pairs)
    out["ssim"] = [ssim(a, data) for a, data in pairs]
    out["mean_ssim_db"] = float(np.mean([-10 * np.log10(1 - s) for s in out["ssim"]]))
    return out


def checked(a: np.ndarray, c: diffjpeg.Coefficients, progressive: bool) -> bytes:
    """The file, after checking that Pillow and OpenCV decode it alike and that bits equal its scan."""
    import cv2
    from PIL import Image

    from diffjpeg.bitstream.markers import parse_structure

    data = diffjpeg.write(c, optimize=True, progressive=progressive)
    pillow = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    opencv = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)[..., ::-1]
    if not np.array_equal(pillow, opencv):
        raise AssertionError("Pillow and OpenCV decode the file differently")
    if not progressive:
        (scan,) = parse_structure(data).scans
        if int(diffjpeg.bits(c, "optimized")) != 8 * (scan.data[1] - scan.data[0]):
            raise AssertionError("diffjpeg.bits differs from the scan's length")
    return data


def rdo_curve(images, progressive=False, **options) -> list[dict]:
    return [score((a, checked(a, rdo.encode_rdo(tensor(a), q, **options), progressive)) for a in images) for q in QUALITIES]


def table_search_curve(images) -> list[dict]:
    """Per image, the learned tables at quality q + each of OFFSETS with the
    lambda of q, keeping the file of least real bits + lambda * D (D: Pillow's
    decode, RGB squared error / 3)."""
    from PIL import Image

    out = []
    for q in QUALITIES:
        lmbda = rdo.default_lambda(diffjpeg.quality_tables(torch.tensor(float(q)), rdo.learned_tables()))
        files = []
        for a in images:
            best = None
            for offset in OFFSETS:
                c = rdo.encode_rdo(tensor(a), min(100, max(1, q + offset)), lmbda=lmbda)
                data = diffjpeg.write(c, optimize=True)
                decoded = np.asarray(Image.open(io.BytesIO(data)).convert("RGB")).astype(np.float64)
                objective = int(diffjpeg.bits(c, "optimized")) + lmbda * float(((decoded - a) ** 2).sum() / 3)
                if best is None or objective < best[0]:
                    best = (objective, data)
            files.append((a, best[1]))
        out.append(score(files))
    return out


def pillow_curve(images, qtables=None) -> list[dict]:
    from diffjpeg.tools.reference import pillow_jpeg

    out = []
    for q in QUALITIES:
        tables = None if qtables is None else T.pillow_qtables(T.scaled_qtables(qtables, q))
        out.append(score((a, pillow_jpeg(a, None if tables else q, "4:2:0", optimize=True, qtables=tables)) for a in images))
    return out


def mozjpeg_curve(images, progressive: bool) -> list[dict]:
    """benchmarks/tables.py's mozjpeg files, scored with SSIM too."""
    return B.mozjpeg_curve(images, QUALITIES, progressive, score=score)


def bd(anchor, test, metric="mean_psnr") -> float:
    return T.bd_rate([c["bpp"] for c in anchor], [c[metric] for c in anchor], [c["bpp"] for c in test], [c[metric] for c in test])


def per_photo(anchor, test, metric="psnr") -> list[float]:
    convert = (lambda s: -10 * np.log10(1 - s)) if metric == "ssim" else (lambda p: p)
    out = []
    for i in range(len(anchor[0]["bytes"])):
        try:
            out.append(T.bd_rate([c["bytes"][i] for c in anchor], [convert(c[metric][i]) for c in anchor],
                                 [c["bytes"][i] for c in test], [convert(c[metric][i]) for c in test]))
        except ValueError:
            out.append(float("nan"))
    return out


def timing(a: np.ndarray) -> dict:
    x = tensor(a)
    megapixels = a.shape[0] * a.shape[1] / 1e6
    out = {}
    for q in (50, 90):
        for effort in rdo.EFFORTS:
            runs = []
            for _ in range(3):
                t = time.perf_counter()
                c = rdo.encode_rdo(x, q, effort=effort)
                runs.append(time.perf_counter() - t)
            t = time.perf_counter()
            diffjpeg.write(c, optimize=True)
            write = time.perf_counter() - t
            out[f"q{q}/effort{effort}"] = {"encode_rdo_s_per_mp": float(np.median(runs)) / megapixels, "write_s_per_mp": write / megapixels}
    plain = []
    for _ in range(3):
        t = time.perf_counter()
        diffjpeg.encode(x, 50)
        plain.append(time.perf_counter() - t)
    out["diffjpeg.encode q50"] = {"encode_s_per_mp": float(np.median(plain)) / megapixels}
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.parse_args(argv)
    torch.set_num_threads(1)
    started = time.perf_counter()
    train = [B.photo(n) for n in B.TRAIN]
    test = [B.photo(n) for n in B.TEST]

    # 1. the lambda scale, chosen on the training photos
    ijg_train = pillow_curve(train)
    scales = {}
    chosen = rdo.LAMBDA_SCALE
    for k in SCALES:
        rdo.LAMBDA_SCALE = k
        scales[k] = bd(ijg_train, rdo_curve(train))
        print(f"lambda scale {k}: {scales[k]:+.2f}% (training photos)", file=sys.stderr, flush=True)
    rdo.LAMBDA_SCALE = chosen
    t = time.perf_counter()
    searched = bd(ijg_train, table_search_curve(train))
    search_seconds = time.perf_counter() - t
    print(f"per-image table choice: {searched:+.2f}% (training photos, {search_seconds:.0f} s)", file=sys.stderr, flush=True)

    # 2. the held-out curves
    learned = rdo.learned_tables()
    curves = {"IJG (Pillow, optimize=True)": pillow_curve(test)}
    steps = [
        ("learned tables, plain rounding (Pillow)", lambda: pillow_curve(test, learned)),
        ("encode_rdo, IJG tables, baseline", lambda: rdo_curve(test, qtables=diffjpeg.standard_tables())),
        ("encode_rdo, effort 1, baseline", lambda: rdo_curve(test, effort=1)),
        ("encode_rdo, effort 2 (default), baseline", lambda: rdo_curve(test)),
        ("encode_rdo, effort 3, baseline", lambda: rdo_curve(test, effort=3)),
        ("encode_rdo, effort 2, progressive", lambda: rdo_curve(test, progressive=True)),
        ("mozjpeg 4.0.3 defaults (progressive)", lambda: mozjpeg_curve(test, True)),
        ("mozjpeg 4.0.3, recoded baseline", lambda: mozjpeg_curve(test, False)),
    ]
    for name, run in steps:
        t = time.perf_counter()
        curves[name] = run()
        print(f"{name}: {time.perf_counter() - t:.0f} s", file=sys.stderr, flush=True)
    anchor = curves["IJG (Pillow, optimize=True)"]
    speed = timing(max(test, key=lambda a: a.shape[0] * a.shape[1]))

    # 3. the report
    import PIL
    import skimage

    lines = ["# Rate-distortion optimized encoding: BD-rate against Pillow (IJG tables), real files", ""]
    lines += [f"Written by `python benchmarks/rdo.py` ({datetime.date.today().isoformat()}, {time.perf_counter() - started:.0f} s). "
              f"Machine: {platform.machine()}, {os.cpu_count()} CPU cores (shared), Python {platform.python_version()}, "
              f"torch {torch.__version__}, Pillow {PIL.__version__}, jpeglib {__import__('jpeglib').__version__}, "
              f"scikit-image {skimage.__version__}, diffjpeg {diffjpeg.__version__}; "
              f"compiled choices: {'yes' if rdo.compiled() else 'no (numpy)'}.", ""]
    lines += ["Held-out photos (scikit-image, whole): " + ", ".join(B.TEST) + f"; 4:2:0; qualities {QUALITIES[0]}–{QUALITIES[-1]}. "
              "Rate: total bits / total pixels of the real files. PSNR: RGB, Pillow's decode, mean over photos. "
              "SSIM: scikit-image, RGB, mean over photos, as -10 log10(1 - SSIM) for the BD integral. Every "
              "encode_rdo file was decoded by Pillow and OpenCV to the same pixels, and diffjpeg.bits equalled 8 x "
              "its scan length (baseline files).", ""]
    lines += ["## BD-rate against IJG (negative = fewer bytes at equal quality)", "",
              "| method | PSNR | SSIM | per photo (PSNR) | per photo (SSIM) |", "|---|---:|---:|---|---|"]
    summary = {}
    for name, curve in curves.items():
        if name == "IJG (Pillow, optimize=True)":
            continue
        row = {"psnr": bd(anchor, curve), "ssim": bd(anchor, curve, "mean_ssim_db"),
               "per_photo_psnr": per_photo(anchor, curve), "per_photo_ssim": per_photo(anchor, curve, "ssim")}
        summary[name] = row
        lines.append(f"| {name} | **{row['psnr']:+.2f}%** | {row['ssim']:+.2f}% | "
                     + ", ".join(f"{n} {v:+.1f}%" for n, v in zip(B.TEST, row["per_photo_psnr"])) + " | "
                     + ", ".join(f"{n} {v:+.1f}%" for n, v in zip(B.TEST, row["per_photo_ssim"])) + " |")
    moz = curves["mozjpeg 4.0.3 defaults (progressive)"]
    ours = curves["encode_rdo, effort 2 (default), baseline"]
    lines += ["", f"encode_rdo (effort 2, baseline) against mozjpeg's defaults directly: {bd(moz, ours):+.2f}% (PSNR), "
              f"{bd(moz, ours, 'mean_ssim_db'):+.2f}% (SSIM); per photo (PSNR): "
              + ", ".join(f"{n} {v:+.1f}%" for n, v in zip(B.TEST, per_photo(moz, ours))) + ".",
              "", "Mean of the per-photo BD-rates (PSNR) against IJG: "
              + ", ".join(f"{name} {np.nanmean(row['per_photo_psnr']):+.2f}%" for name, row in summary.items()) + "."]
    lines += ["", "## The lambda scale (training photos: " + ", ".join(B.TRAIN) + ")", "",
              "lambda = scale / (geometric mean of the luma table)^2; BD-rate (PSNR) against IJG on the training photos:", "",
              "| scale | BD-rate |", "|---:|---:|"] + [f"| {k} | {v:+.2f}% |" for k, v in scales.items()]
    lines += ["", f"Used: {chosen} (diffjpeg.codec.rdo.LAMBDA_SCALE).", ""]
    lines += [f"Per-image table choice (a route weighed, not kept): the learned tables at quality q + {OFFSETS} with the "
              f"lambda of q, keeping per photo the file of least real bits + lambda * D: {searched:+.2f}% on the training "
              f"photos against {scales[chosen]:+.2f}% with the tables of q alone, for {len(OFFSETS)} times the work "
              f"({search_seconds:.0f} s for the sweep).", ""]
    lines += ["## Time (one thread, largest held-out photo, " + "x".join(map(str, max(test, key=lambda a: a.size).shape[:2])) + ")", "",
              "| setting | encode_rdo (s/MP) | write, optimized Huffman (s/MP) |", "|---|---:|---:|"]
    for key, v in speed.items():
        if "encode_rdo_s_per_mp" in v:
            lines.append(f"| {key} | {v['encode_rdo_s_per_mp']:.3f} | {v['write_s_per_mp']:.3f} |")
    lines += ["", f"diffjpeg.encode (plain, exact) at q 50: {speed['diffjpeg.encode q50']['encode_s_per_mp']:.3f} s/MP.", ""]
    lines += ["## Curves (held-out photos)", "", "| method | quality | bpp | PSNR (dB) | SSIM |", "|---|---:|---:|---:|---:|"]
    for name, curve in curves.items():
        for c, q in zip(curve, QUALITIES[len(QUALITIES) - len(curve):]):
            lines.append(f"| {name} | {c.get('quality', q)} | {c['bpp']:.4f} | {c['mean_psnr']:.2f} | {np.mean(c['ssim']):.4f} |")
    lines += ["", "![rate-distortion](rdo_rd.png)", ""]
    (RESULTS / "rdo.md").write_text("\n".join(lines))
    (RESULTS / "rdo.json").write_text(json.dumps({"scales": scales, "table_search_train": searched, "bd": summary, "speed": speed, "curves": {
        name: [{k: c[k] for k in ("bpp", "mean_psnr", "mean_ssim_db", "bytes", "psnr", "ssim")} for c in curve]
        for name, curve in curves.items()}}, indent=1) + "\n")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = ["IJG (Pillow, optimize=True)", "learned tables, plain rounding (Pillow)", "encode_rdo, IJG tables, baseline",
             "encode_rdo, effort 2 (default), baseline", "mozjpeg 4.0.3 defaults (progressive)"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.4), dpi=90)
    for ax, metric, label in ((axes[0], "mean_psnr", "PSNR (dB, mean over photos)"), (axes[1], "mean_ssim_db", "SSIM as -10 log10(1 - SSIM) (dB)")):
        for name, style in zip(shown, ("k-o", "m--^", "g-.s", "r-s", "b:d")):
            curve = curves[name]
            ax.plot([c["bpp"] for c in curve], [c[metric] for c in curve], style, label=name, ms=4, lw=1.2)
        ax.set_xlabel("bits per pixel (total over held-out photos)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle("4:2:0, held-out scikit-image photos: " + ", ".join(B.TEST), fontsize=9)
    fig.tight_layout()
    fig.savefig(RESULTS / "rdo_rd.png")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
