"""Exact bits and the differentiable rate against real file sizes.

For each photo and quality, Pillow writes the JPEG (standard Huffman tables,
and again with optimize=True). Reported: the file's size, the scan's size
(8 x its entropy-coded bytes), ``diffjpeg.bits`` of the coefficients read
back (which must equal the scan's size exactly), and ``diffjpeg.rate``'s
relative error against ``bits``, with the Spearman rank correlation over all
photos x qualities.

    python benchmarks/rate.py                 # six scikit-image photos, 4:2:0
    python benchmarks/rate.py --photos astronaut coffee --subsampling 4:4:4
"""
from __future__ import annotations

import argparse
import platform
import sys
import time

import numpy as np
import torch
from PIL import Image

import diffjpeg
from diffjpeg.bitstream.markers import parse_structure
from diffjpeg.tools.images import skimage_photo
from diffjpeg.tools.reference import SUBSAMPLING_PIL, pillow_jpeg

QUALITIES = tuple(range(5, 100, 10))
PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "immunohistochemistry", "hubble_deep_field")


def spearman(a, b) -> float:
    ranks = lambda v: np.argsort(np.argsort(np.asarray(v)))  # noqa: E731
    return float(np.corrcoef(ranks(a), ranks(b))[0, 1])


def measure(photos, qualities, subsampling: str) -> list[dict]:
    rows = []
    for name in photos:
        a = skimage_photo(name)
        for quality in qualities:
            row = {"photo": name, "quality": quality}
            for optimize, huffman in ((False, "standard"), (True, "optimized")):
                data = pillow_jpeg(a, quality, subsampling, optimize=optimize)
                start, end = parse_structure(data).scans[0].data
                c = diffjpeg.read(data)
                row[f"file_{huffman}"] = 8 * len(data)
                row[f"scan_{huffman}"] = 8 * (end - start)
                row[f"bits_{huffman}"] = int(diffjpeg.bits(c, huffman))
                row[f"rate_{huffman}"] = float(diffjpeg.rate(c, huffman))
            rows.append(row)
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", nargs="+", default=list(PHOTOS))
    parser.add_argument("--subsampling", default="4:2:0", choices=tuple(SUBSAMPLING_PIL))
    args = parser.parse_args(argv)
    started = time.perf_counter()
    rows = measure(args.photos, QUALITIES, args.subsampling)
    print(f"diffjpeg {diffjpeg.__version__}, torch {torch.__version__}, Pillow {Image.__version__}, "
          f"{platform.machine()}, {args.subsampling}, photos: {', '.join(args.photos)}")
    exact = all(r[f"bits_{h}"] == r[f"scan_{h}"] for r in rows for h in ("standard", "optimized"))
    print(f"bits == 8 x scan length for every file: {exact}\n")
    print("| quality | file kB (std) | scan share of file | optimized / standard bits | rate error std (median) | rate error opt (median) |")
    print("|---:|---:|---:|---:|---:|---:|")
    for q in QUALITIES:
        sub = [r for r in rows if r["quality"] == q]
        error = lambda h: np.median([abs(r[f"rate_{h}"] / r[f"bits_{h}"] - 1) for r in sub]) * 100  # noqa: E731
        print(
            f"| {q} | {np.mean([r['file_standard'] for r in sub]) / 8192:.1f} "
            f"| {np.mean([r['scan_standard'] / r['file_standard'] for r in sub]) * 100:.1f}% "
            f"| {np.mean([r['bits_optimized'] / r['bits_standard'] for r in sub]):.3f} "
            f"| {error('standard'):.2f}% | {error('optimized'):.2f}% |"
        )
    for h in ("standard", "optimized"):
        errors = np.array([r[f"rate_{h}"] / r[f"bits_{h}"] - 1 for r in rows]) * 100
        rho = spearman([r[f"rate_{h}"] for r in rows], [r[f"bits_{h}"] for r in rows])
        print(f"\nrate vs bits ({h} tables), {len(rows)} files: median |error| {np.median(np.abs(errors)):.2f}%, "
              f"max |error| {np.max(np.abs(errors)):.2f}%, mean error {np.mean(errors):+.2f}%, Spearman {rho:.4f}")
    print(f"\n({time.perf_counter() - started:.0f} s)")
    return 0 if exact else 1


if __name__ == "__main__":
    sys.exit(main())
