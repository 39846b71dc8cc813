"""Fidelity against the real codec: mean PSNR against Pillow's JPEG, per quality.

For each quality, every photo is saved and loaded with Pillow (libjpeg-turbo,
4:2:0 by default) and compared with diffjpeg's exact, float and soft forward
passes and with kornia's ``jpeg_codec_differentiable`` (if installed), on the
same images. "inf" means identical on every pixel.

    python benchmarks/fidelity.py                       # six photos bundled with scikit-image
    python benchmarks/fidelity.py --photos astronaut    # one of them
"""
from __future__ import annotations

import argparse
import io
import math
import platform
import sys
import time

import numpy as np
import torch
from PIL import Image

import diffjpeg

QUALITIES = (1, 5, 10, 25, 50, 75, 90, 95, 100)
PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "immunohistochemistry", "hubble_deep_field")
SUBSAMPLING_PIL = {"4:4:4": 0, "4:2:2": 1, "4:2:0": 2}


def load_photos(names) -> list[np.ndarray]:
    from skimage import data

    photos = []
    for name in names:
        a = getattr(data, name)()
        h, w = (a.shape[0] // 16) * 16, (a.shape[1] // 16) * 16  # kornia needs multiples of 16
        photos.append(np.ascontiguousarray(a[:h, :w, :3]))
    return photos


def pillow_jpeg(a: np.ndarray, quality: int, subsampling: str) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, "JPEG", quality=quality, subsampling=SUBSAMPLING_PIL[subsampling])
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)


def kornia_codec():
    try:
        from kornia.enhance import jpeg_codec_differentiable
    except ImportError:
        return None
    return lambda x, q: jpeg_codec_differentiable(x, torch.tensor([float(q)]))


def run(photos, qualities, subsampling: str) -> list[dict]:
    kornia = kornia_codec() if subsampling == "4:2:0" else None  # kornia does 4:2:0 only
    methods = {
        "exact": lambda x, q: diffjpeg.jpeg(x, q, subsampling=subsampling, forward="exact"),
        "float": lambda x, q: diffjpeg.jpeg(x, q, subsampling=subsampling, forward="float"),
        "soft": lambda x, q: diffjpeg.jpeg(x, q, subsampling=subsampling, forward="soft"),
    }
    if kornia is not None:
        methods["kornia"] = kornia
    rows = []
    for q in qualities:
        row = {"quality": q}
        for name, fn in methods.items():
            scores = []
            for a in photos:
                ref = pillow_jpeg(a, q, subsampling)
                x = torch.from_numpy(a).permute(2, 0, 1)[None].float() / 255.0
                with torch.no_grad():
                    y = fn(x, q)
                ours = (y[0].permute(1, 2, 0).clamp(0, 1) * 255.0).round().to(torch.uint8).numpy()
                scores.append(psnr(ours, ref))
            row[name] = float(np.mean(scores))
        rows.append(row)
    return rows


def table(rows: list[dict]) -> str:
    names = [k for k in rows[0] if k != "quality"]
    lines = ["| quality | " + " | ".join(names) + " |", "|---:|" + "---:|" * len(names)]
    for r in rows:
        cells = ["identical" if math.isinf(r[n]) else f"{r[n]:.2f}" for n in names]
        lines.append(f"| {r['quality']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", nargs="+", default=list(PHOTOS), choices=PHOTOS, metavar="NAME",
                        help=f"scikit-image photos to use (default: all of {', '.join(PHOTOS)})")
    parser.add_argument("--subsampling", default="4:2:0", choices=tuple(SUBSAMPLING_PIL))
    args = parser.parse_args(argv)
    names = args.photos
    photos = load_photos(names)
    start = time.perf_counter()
    rows = run(photos, QUALITIES, args.subsampling)
    print(f"Mean PSNR (dB) against Pillow {Image.__version__} JPEG, {args.subsampling}, photos: {', '.join(names)}")
    print(f"torch {torch.__version__}, Python {sys.version.split()[0]}, {platform.machine()}, "
          f"{time.perf_counter() - start:.0f} s")
    print(table(rows))
    exact_ok = all(math.isinf(r["exact"]) for r in rows)
    print("exact forward identical to Pillow on every pixel:", "yes" if exact_ok else "NO")
    return 0 if exact_ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
