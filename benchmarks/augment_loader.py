"""RandomJPEG in a torchvision v2 pipeline, in DataLoader workers, against torchvision's own ``v2.JPEG``.

The same 256x256 photos (8 crops of 4 scikit-image photos, as PIL images;
nothing is downloaded) go through ``v2.Compose`` pipelines in a
``DataLoader`` with 2 workers and batches of 32:

* ``tensor``: ``[v2.ToImage(), <jpeg>]``, uint8 ``tv_tensors.Image`` in;
* ``PIL``: ``[<jpeg>, v2.ToImage()]``, the JPEG on the PIL image;

where ``<jpeg>`` is ``diffjpeg.RandomJPEG((30, 95))`` (exact mode: libjpeg's
pixels) or ``torchvision.transforms.v2.JPEG((30, 95))`` (torchvision's
libjpeg-turbo on tensors, Pillow on PIL images). The pipelines take turns,
round after round, so that both see the same load; images/s over one pass
of the data after the first batch (worker start-up not counted), the median
over rounds. Then one process, one thread, one image at a time (ms per
image), and a batch of 32 on every core.

Needs a torchvision whose compiled image operators load (``v2.JPEG`` does not
run without them; PyPI's Linux torchvision is built for torch's CUDA build):

    python benchmarks/augment_loader.py            # writes benchmarks/results/augment_loader.md
    python benchmarks/augment_loader.py --quick    # fewer images and rounds
"""
from __future__ import annotations

import argparse
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

PHOTOS = ("astronaut", "chelsea", "coffee", "rocket")
OUT = Path(__file__).resolve().parent / "results" / "augment_loader.md"
QUALITY = (30, 95)


def photos() -> list[Image.Image]:
    """Two 256x256 crops of each photo."""
    out = []
    for name in PHOTOS:
        a = skimage_photo(name)
        for top, left in ((0, 0), (a.shape[0] - 256, a.shape[1] - 256)):
            out.append(Image.fromarray(np.ascontiguousarray(a[top : top + 256, left : left + 256, :3])))
    return out


class Photos(torch.utils.data.Dataset):
    def __init__(self, images, transform, length):
        self.images, self.transform, self.length = images, transform, length

    def __len__(self):
        return self.length

    def __getitem__(self, i):
        return self.transform(self.images[i % len(self.images)])


def pipelines(v2):
    jpegs = {"diffjpeg RandomJPEG": lambda: diffjpeg.RandomJPEG(QUALITY), "torchvision v2.JPEG": lambda: v2.JPEG(QUALITY)}
    out = {}
    for name, make in jpegs.items():
        out[("tensor", name)] = v2.Compose([v2.ToImage(), make()])
        out[("PIL", name)] = v2.Compose([make(), v2.ToImage()])
    return out


def loader_rate(images, transform, length, workers, batch) -> float:
    loader = torch.utils.data.DataLoader(
        Photos(images, transform, length), batch_size=batch, num_workers=workers, multiprocessing_context="fork"
    )
    it = iter(loader)
    next(it)  # workers started, first batch
    start, count = time.perf_counter(), 0
    for x in it:
        count += x.shape[0]
    return count / (time.perf_counter() - start)


def per_image_ms(images, transform, repeats) -> float:
    times = []
    for _ in range(repeats):
        for image in images:
            start = time.perf_counter()
            transform(image)
            times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer images and rounds (default: off)")
    parser.add_argument("--out", type=Path, default=OUT, help=f"report file (default: {OUT})")
    args = parser.parse_args(argv)
    from torchvision.transforms import v2

    started = time.perf_counter()
    load = os.getloadavg()[0]
    images = photos()
    length, rounds = (256, 2) if args.quick else (1024, 4)
    # equal pixels before timing: exact mode is libjpeg's
    x = v2.ToImage()(images[0])
    y, params = diffjpeg.RandomJPEG(QUALITY)(x, return_params=True)
    assert torch.equal(y, v2.JPEG(int(params.quality))(x)), "diffjpeg's exact pixels differ from v2.JPEG's"

    transforms = pipelines(v2)
    rates = {key: [] for key in transforms}
    for _ in range(rounds):
        for key, transform in transforms.items():
            rates[key].append(loader_rate(images, transform, length, workers=2, batch=32))
            print(key, f"{rates[key][-1]:.0f} images/s", file=sys.stderr)

    torch.set_num_threads(1)
    single = {key: per_image_ms(images, t, 2 if args.quick else 5) for key, t in transforms.items()}
    batch = torch.stack([v2.ToImage()(im) for im in images] * 4).as_subclass(torch.Tensor)  # (32, 3, 256, 256) uint8
    jpegs = {"diffjpeg RandomJPEG": diffjpeg.RandomJPEG(QUALITY), "torchvision v2.JPEG": v2.JPEG(QUALITY)}
    batched = {}
    for threads in sorted({1, os.cpu_count() or 1}):
        torch.set_num_threads(threads)
        times = {name: [] for name in jpegs}
        for _ in range(4 if args.quick else 10):  # interleaved; the first round warms up
            for name, t in jpegs.items():
                start = time.perf_counter()
                t(batch)
                times[name].append(time.perf_counter() - start)
        for name in jpegs:
            batched[(threads, name)] = 32 / statistics.median(times[name][1:])

    columns = ["input", "JPEG", "images/s", "rounds", "ms/image, 1 thread"]
    rows = [
        dict(zip(columns, (kind, name, statistics.median(rates[(kind, name)]), " ".join(f"{r:.0f}" for r in rates[(kind, name)]), single[(kind, name)])))
        for kind, name in transforms
    ]
    import torchvision

    info = machine()

    lines = [
        "# RandomJPEG in a torchvision v2 pipeline: DataLoader throughput",
        "",
        f"`python benchmarks/augment_loader.py{' --quick' if args.quick else ''}`, {info['date']}: {info['cpu']}, {info['cores']} cores "
        f"(load average {load:.2f} at the start: the machine is shared), torch {torch.__version__}, "
        f"torchvision {torchvision.__version__}, Pillow {info['Pillow']}; exact kernel {info['exact kernel (diffjpeg/backends/_native.c)']}.",
        "",
        f"{length} images of 256x256 (8 crops of {', '.join(PHOTOS)}), quality drawn from {QUALITY}, 4:2:0, through "
        "`v2.Compose` in a `DataLoader` (2 workers, batches of 32, fork); images/s after the first batch, "
        f"the median of {rounds} rounds (each round's in order); per image: one process, one thread, the median ms. "
        "diffjpeg's exact pixels were checked equal to v2.JPEG's first.",
        "",
        markdown_table(rows, columns, {"images/s": "{:.0f}", "ms/image, 1 thread": "{:.2f}"}),
        "",
        "A batch of 32 uint8 images (32, 3, 256, 256) in one call in the main process, images/s (median of the "
        "interleaved rounds after the first): "
        + "; ".join(f"{threads} thread{'s' if threads > 1 else ''}: {name} {rate:.0f}" for (threads, name), rate in batched.items())
        + ". v2.JPEG draws one quality for the batch and loops over its images; RandomJPEG draws per image and "
        "compresses the batch in one call.",
        "",
        f"_{time.perf_counter() - started:.0f} s in all._",
        "",
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
