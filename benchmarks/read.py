"""Reading and decoding JPEG files: ``diffjpeg.read`` + ``diffjpeg.decode`` against Pillow.

For each size (64x64, 256x256, 1 MP, 12 MP) a set of files is written in
memory by Pillow and by OpenCV from scikit-image photos (cropped, or scaled
up with mild seeded noise so that the large files carry a photo's detail;
nothing is downloaded), at two qualities, baseline and progressive, 4:2:0
and 4:4:4. Each file is decoded by

* Pillow: ``Image.open(io.BytesIO(data))``, ``load()``, ``np.asarray``: opening,
  decoding, and the ``(H, W, 3)`` uint8 RGB array;
* diffjpeg: ``c = diffjpeg.read(data)`` (the coefficients, through
  libjpeg-turbo 2.1), then ``diffjpeg.decode(c)`` (exact mode: Pillow's
  pixels, as a ``(3, H, W)`` float32 tensor in [0, 1]);

on one thread (``torch.set_num_threads(1)``), the two interleaved so that
both see the same load. Per file the median over repeats; per size the
median over its files of each time and of the per-file ratio
diffjpeg / Pillow. Then real-world files, as cameras and editors wrote them
(``tests/data/real``: EXIF thumbnails and GPS, XMP, restart intervals,
progressive, unusual sampling; ``--real`` adds folders of your own), each
timed the same way, with the median of the per-file ratios and the worst
among files of 0.25 MP or more (issue 28's targets: <= 1.3 and <= 2). Then
a batch of equally sized files: ``read_batch`` and ``decode`` on every core
against a Pillow loop on one core.

    python benchmarks/read.py                       # writes benchmarks/results/read.md
    python benchmarks/read.py --sizes 64 256 --quick  # a short check, its numbers noisier
    python benchmarks/read.py --real ~/photos       # also every .jpg under ~/photos
"""
from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import diffjpeg
from diffjpeg.tools.bench.machine import machine
from diffjpeg.tools.bench.report import markdown_table
from diffjpeg.tools.images import skimage_photo
from diffjpeg.tools.reference import SUBSAMPLING_PIL

PHOTOS = ("astronaut", "chelsea", "coffee", "rocket")
SIZES = {"64": (64, 64), "256": (256, 256), "1MP": (1024, 1024), "12MP": (3000, 4000)}  # (height, width)
QUALITIES = (75, 95)
SUBSAMPLINGS = ("4:2:0", "4:4:4")
# per size: photos used, repeats per file (the large sizes take a few seconds per file)
PLAN = {"64": (4, 60), "256": (4, 30), "1MP": (2, 7), "12MP": (1, 3)}
QUICK = {"64": (1, 15), "256": (1, 8), "1MP": (1, 3), "12MP": (1, 1)}
OUT = Path(__file__).resolve().parent / "results" / "read.md"
REAL = Path(__file__).resolve().parents[1] / "tests" / "data" / "real"  # real-world files, with their license
REAL_TARGETS = {"median": 1.3, "worst at 0.25 MP or more": 2.0}


def image(name: str, size: tuple[int, int], seed: int) -> np.ndarray:
    """A photo at ``size``: a centre crop when it is large enough, else scaled up
    (bicubic) with Gaussian noise of 2 levels, a camera's texture."""
    a = skimage_photo(name)
    h, w = size
    if a.shape[0] >= h and a.shape[1] >= w:
        top, left = (a.shape[0] - h) // 2, (a.shape[1] - w) // 2
        return np.ascontiguousarray(a[top : top + h, left : left + w])
    a = np.asarray(Image.fromarray(a).resize((w, h), Image.BICUBIC), dtype=np.float32)
    a += np.random.default_rng(seed).normal(0, 2, a.shape).astype(np.float32)
    return np.clip(np.rint(a), 0, 255).astype(np.uint8)


def pillow_file(a: np.ndarray, quality: int, subsampling: str, progressive: bool) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, "JPEG", quality=quality, subsampling=SUBSAMPLING_PIL[subsampling], progressive=progressive)
    return buf.getvalue()


def opencv_file(a: np.ndarray, quality: int, subsampling: str, progressive: bool) -> bytes:
    import cv2

    factor = {"4:4:4": 0x111111, "4:2:0": 0x221111}[subsampling]
    params = [cv2.IMWRITE_JPEG_QUALITY, quality, cv2.IMWRITE_JPEG_SAMPLING_FACTOR, factor, cv2.IMWRITE_JPEG_PROGRESSIVE, int(progressive)]
    ok, data = cv2.imencode(".jpg", np.ascontiguousarray(a[..., ::-1]), params)
    assert ok
    return data.tobytes()


def files(size: tuple[int, int], photos) -> list[tuple[str, bytes]]:
    writers = {"Pillow": pillow_file}
    try:
        import cv2  # noqa: F401

        writers["OpenCV"] = opencv_file
    except ImportError:
        pass
    out = []
    for seed, name in enumerate(photos):
        a = image(name, size, seed)
        for writer, write in writers.items():
            for quality in QUALITIES:
                for subsampling in SUBSAMPLINGS:
                    for progressive in (False, True):
                        label = f"{name} {writer} q{quality} {subsampling} {'progressive' if progressive else 'baseline'}"
                        out.append((label, write(a, quality, subsampling, progressive)))
    return out


def pillow_decode(data: bytes) -> np.ndarray:
    image = Image.open(io.BytesIO(data))
    image.load()
    return np.asarray(image)  # mode RGB: the (H, W, 3) uint8 array


def check_equal(data: bytes) -> None:
    """The benchmark times the real thing: diffjpeg's pixels are Pillow's."""
    ours = torch.round(diffjpeg.decode(diffjpeg.read(data)) * 255).to(torch.uint8).permute(1, 2, 0).numpy()
    if not np.array_equal(ours, pillow_decode(data)) or not np.array_equal(diffjpeg.read_image(data).permute(1, 2, 0).numpy(), ours):
        raise AssertionError("diffjpeg's decode differs from Pillow's")


def timed_rounds(steps, rounds: int) -> list[list[float]]:
    """Seconds of each step in each round. The steps run in turn, each given
    the previous one's result, so that all of them see the same load."""
    times = [[] for _ in steps]
    for _ in range(rounds):
        value = None
        for step, seconds in zip(steps, times):
            t0 = time.perf_counter()
            value = step(value)
            seconds.append(time.perf_counter() - t0)
    return times


def time_file(data: bytes, repeats: int) -> dict:
    """Median seconds over ``repeats`` of Pillow, read and decode, and
    read_image (uint8 pixels, as Pillow's), interleaved."""
    pillow_decode(data), diffjpeg.decode(diffjpeg.read(data)), diffjpeg.read_image(data)  # warm up
    steps = (lambda _: pillow_decode(data), lambda _: diffjpeg.read(data), diffjpeg.decode, lambda _: diffjpeg.read_image(data))
    pillow, read, decode, image = timed_rounds(steps, repeats)
    m = statistics.median
    return {"pillow": m(pillow), "read": m(read), "decode": m(decode), "total": m(r + d for r, d in zip(read, decode)),
            "read_image": m(image)}


def measure_sizes(sizes, plan) -> list[dict]:
    rows = []
    for key in sizes:
        count, repeats = plan[key]
        entries = files(SIZES[key], PHOTOS[:count])
        results = []
        for label, data in entries:
            check_equal(data)
            results.append(time_file(data, repeats))
        m = statistics.median
        h, w = SIZES[key]
        rows.append({
            "size": f"{w}x{h}",
            "files": len(entries),
            "kB": m(len(d) for _, d in entries) / 1000,
            "pillow": m(r["pillow"] for r in results) * 1e3,
            "read": m(r["read"] for r in results) * 1e3,
            "decode": m(r["decode"] for r in results) * 1e3,
            "total": m(r["total"] for r in results) * 1e3,
            "ratio": m(r["total"] / r["pillow"] for r in results),
            "worst": max(r["total"] / r["pillow"] for r in results),
            "read_image": m(r["read_image"] for r in results) * 1e3,
            "image ratio": m(r["read_image"] / r["pillow"] for r in results),
            "image worst": max(r["read_image"] / r["pillow"] for r in results),
        })
        print(f"  {rows[-1]['size']}: {len(entries)} files, median ratio {rows[-1]['ratio']:.2f}", file=sys.stderr, flush=True)
    return rows


def real_files(folders) -> list[Path]:
    return sorted({p for folder in folders for p in Path(folder).expanduser().rglob("*") if p.suffix.lower() in (".jpg", ".jpeg")})


def measure_real(folders, quick: bool) -> list[dict]:
    """Each real-world file Pillow decodes, timed as :func:`time_file`, after
    checking that diffjpeg's pixels are Pillow's (strictly where the file is
    whole; ``strict=False`` where it is damaged, as Pillow reads it)."""
    rows = []
    for path in real_files(folders):
        data = path.read_bytes()
        try:
            reference = pillow_decode(data)
        except Exception:  # noqa: BLE001 - what Pillow refuses is not compared
            continue
        try:
            ours, strict = diffjpeg.read_image(data), True
        except diffjpeg.JPEGError:
            ours, strict = diffjpeg.read_image(data, strict=False), False
        if not np.array_equal(ours.permute(1, 2, 0).numpy().reshape(reference.shape), reference):
            raise AssertionError(f"{path}: diffjpeg's pixels differ from Pillow's")
        height, width = reference.shape[:2]
        megapixels = height * width / 1e6
        repeats = (5 if megapixels < 0.5 else 3) if quick else (31 if megapixels < 0.5 else 9 if megapixels < 3 else 5)
        options = {} if strict else {"strict": False}
        pillow_decode(data), diffjpeg.decode(diffjpeg.read(data, **options)), diffjpeg.read_image(data, **options)  # warm up
        steps = (lambda _: pillow_decode(data), lambda _: diffjpeg.read(data, **options), diffjpeg.decode,
                 lambda _: diffjpeg.read_image(data, **options))
        pillow, read, decode, image = timed_rounds(steps, repeats)
        m = statistics.median
        total = [r + d for r, d in zip(read, decode)]
        rows.append({"file": path.name, "size": f"{width}x{height}", "MP": megapixels, "kB": len(data) / 1000,
                     "pillow": m(pillow) * 1e3, "total": m(total) * 1e3, "ratio": m(total) / m(pillow),
                     "read_image": m(image) * 1e3, "image ratio": m(image) / m(pillow)})
        print(f"  {path.name}: {rows[-1]['ratio']:.2f}", file=sys.stderr, flush=True)
    return rows


def real_summary(rows) -> dict:
    large = [r for r in rows if r["MP"] >= 0.25]
    out = {"files": len(rows), "of 0.25 MP or more": len(large)}
    for key, name in (("ratio", "read + decode"), ("image ratio", "read_image")):
        out[f"{name}: median"] = statistics.median(r[key] for r in rows)
        out[f"{name}: worst at 0.25 MP or more"] = max((r[key] for r in large), default=float("nan"))
    return out


def measure_batch(count: int, size: int, repeats: int) -> dict:
    """``read_batch`` + ``decode`` of ``count`` Pillow files (4:2:0 baseline, qualities
    50..95) on every core, against a loop of Pillow decodes on one core."""
    photos = [image(name, (size, size), seed) for seed, name in enumerate(PHOTOS)]
    batch = [pillow_file(photos[i % len(photos)], 50 + (i * 7) % 46, "4:2:0", False) for i in range(count)]
    cores = os.cpu_count() or 1
    single = torch.get_num_threads()

    def pillow_loop(_):
        torch.set_num_threads(1)
        return [pillow_decode(data) for data in batch]

    def read_all(_):
        torch.set_num_threads(cores)
        return diffjpeg.read_batch(batch)

    def decode_float(c):
        diffjpeg.decode(c)
        return c

    def decode_uint8(c):
        diffjpeg.decode(c, dtype=torch.uint8)
        return c

    try:
        times = timed_rounds((pillow_loop, read_all, decode_float, decode_uint8), repeats + 1)
    finally:
        torch.set_num_threads(single)
    pillow, read, decode, decode8 = (t[1:] for t in times)  # the first round warms up
    m = statistics.median
    total = m(r + d for r, d in zip(read, decode))
    total8 = m(r + d for r, d in zip(read, decode8))
    return {"files": count, "size": f"{size}x{size}", "cores": cores, "pillow": m(pillow) * 1e3, "read_batch": m(read) * 1e3,
            "decode": m(decode) * 1e3, "decode uint8": m(decode8) * 1e3, "read_batch / pillow": m(read) / m(pillow),
            "+ decode / pillow": total / m(pillow), "+ decode uint8 / pillow": total8 / m(pillow)}


def report(rows, batch, info, real=(), real_folders=()) -> str:
    lines = [
        "# Reading JPEG files: diffjpeg against Pillow",
        "",
        f"`python benchmarks/read.py`, {info['date']}: {info['cpu']}, {info['cores']} cores "
        f"(load average {info['load average at start (1 min)']} at the start: the machine is shared), "
        f"torch {info['torch']}, Pillow {info['Pillow']} (libjpeg-turbo {info['libjpeg-turbo']}), "
        f"OpenCV {info['cv2']}, numpy {info['numpy']}; {info['exact kernel (diffjpeg/backends/_native.c)']}.",
        "",
        "One thread. Pillow: `Image.open` + `load` + `np.asarray` (uint8 `(H, W, 3)`). diffjpeg: `read` "
        "(libjpeg-turbo 2.1's coefficients) + `decode` (exact: Pillow's pixels as float32 `(3, H, W)` in [0, 1], "
        "checked equal before timing). Milliseconds, the median over each size's files of each file's median over "
        "its repeats; *ratio*: the median over files of diffjpeg's total / Pillow's, *worst*: the largest. "
        "*read_image*: `diffjpeg.read_image` (Pillow's uint8 pixels, `(3, H, W)`), its ratio to Pillow likewise.",
        "",
        markdown_table(rows, ["size", "files", "kB", "pillow", "read", "decode", "total", "ratio", "worst", "read_image",
                              "image ratio", "image worst"],
                       {"kB": "{:.1f}", "pillow": "{:.3f}", "read": "{:.3f}", "decode": "{:.3f}", "total": "{:.3f}",
                        "ratio": "{:.2f}", "worst": "{:.2f}", "read_image": "{:.3f}", "image ratio": "{:.2f}",
                        "image worst": "{:.2f}"}),
    ]
    if real:
        summary = real_summary(real)
        met = lambda name, key, limit: f"{summary[f'{name}: {key}']:.2f} (target <= {limit}: {'met' if summary[f'{name}: {key}'] <= limit else 'not met'})"  # noqa: E731
        folders = ", ".join(f"`{f}`" for f in real_folders)
        lines += [
            "",
            f"Real-world files ({folders}: {summary['files']} files Pillow decodes, {summary['of 0.25 MP or more']} of "
            "0.25 MP or more), each timed as above, its pixels checked equal to Pillow's first. Median of the per-file "
            f"ratios, read + decode: {met('read + decode', 'median', REAL_TARGETS['median'])}; the worst among files of "
            f"0.25 MP or more: {met('read + decode', 'worst at 0.25 MP or more', REAL_TARGETS['worst at 0.25 MP or more'])}. "
            f"read_image: median {met('read_image', 'median', REAL_TARGETS['median'])}, worst at 0.25 MP or more "
            f"{met('read_image', 'worst at 0.25 MP or more', REAL_TARGETS['worst at 0.25 MP or more'])}.",
            "",
            markdown_table(sorted(real, key=lambda r: r["MP"]), ["file", "size", "kB", "pillow", "total", "ratio", "read_image", "image ratio"],
                           {"kB": "{:.1f}", "pillow": "{:.3f}", "total": "{:.3f}", "ratio": "{:.2f}", "read_image": "{:.3f}",
                            "image ratio": "{:.2f}"}),
        ]
    if batch is not None:
        lines += [
            "",
            f"A batch of {batch['files']} files ({batch['size']}, 4:2:0, baseline, qualities 50–95): `read_batch` (the "
            f"coefficients), then `decode` (the pixels, float32 in [0, 1]) or `decode(dtype=torch.uint8)` (Pillow's "
            f"uint8 samples), on {batch['cores']} threads, against a loop of Pillow decodes on one thread (milliseconds, "
            "median of the rounds after the first; the ratios: read_batch, and read_batch + each decode, over Pillow):",
            "",
            markdown_table([batch], ["files", "size", "cores", "pillow", "read_batch", "decode", "decode uint8",
                                     "read_batch / pillow", "+ decode / pillow", "+ decode uint8 / pillow"],
                           {"pillow": "{:.1f}", "read_batch": "{:.1f}", "decode": "{:.1f}", "decode uint8": "{:.1f}",
                            "read_batch / pillow": "{:.2f}", "+ decode / pillow": "{:.2f}", "+ decode uint8 / pillow": "{:.2f}"}),
        ]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    parser.add_argument("--quick", action="store_true", help="one photo, few repeats")
    parser.add_argument("--batch", type=int, default=64, help="files in the read_batch comparison (0: skip it)")
    parser.add_argument("--real", nargs="*", type=Path, default=[], help=f"more folders of real-world .jpg files (beside {REAL.relative_to(REAL.parents[2])})")
    parser.add_argument("--out", type=Path, default=OUT, help="where the Markdown report goes")
    args = parser.parse_args(argv)
    from PIL import features

    info = machine()
    info["libjpeg-turbo"] = features.version("libjpeg_turbo")
    started = time.perf_counter()
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        rows = measure_sizes(args.sizes, QUICK if args.quick else PLAN)
        folders = [REAL, *args.real]
        real = measure_real(folders, args.quick)
        batch = measure_batch(args.batch, 256, 3 if args.quick else 7) if args.batch else None
    finally:
        torch.set_num_threads(threads)
    shown = [str(f.relative_to(REAL.parents[2])) if f == REAL else str(f) for f in folders]
    text = report(rows, batch, info, real, shown) + f"\n_{time.perf_counter() - started:.0f} s in all._\n"
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
