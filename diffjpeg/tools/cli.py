"""The ``diffjpeg`` command: one parser for every subcommand, one error format.

Subcommands: ``demo`` (the bundled photo through the exact codec beside
Pillow, a gradient-based quality recovery, a figure), ``compare`` (the same
for your image), ``compress`` (write a real JPEG with diffjpeg's encoder),
``optimize-tables`` (learn quantization tables, :mod:`diffjpeg.tools.qtables`;
``torchrun -m diffjpeg optimize-tables`` for several processes) and ``bench``
(the benchmark suite, :mod:`diffjpeg.tools.bench`). Each handler imports its
tool when it runs. Mistakes in the arguments or files give one line on
stderr, ``diffjpeg: error: ...``, and exit status 2 (arguments) or 1 (files),
not a traceback.
"""
from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path

from .. import geometry
from .images import ImageError, load_image

SUBSAMPLINGS = tuple(geometry.SUBSAMPLINGS)  # "4:4:4", "4:2:2", "4:2:0"


class CommandError(Exception):
    """A mistake the user can fix; printed as one line, exit status 1."""


class UsageError(CommandError):
    """A mistake in the arguments that argparse cannot see alone; exit status 2."""


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors: ``diffjpeg: error: ...``."""

    def error(self, message):
        command = self.prog.split(" ", 1)[1] + ": " if " " in self.prog else ""
        self.exit(2, f"diffjpeg: error: {command}{message} (see {self.prog} --help)\n")


# ---------------------------------------------------------------- argument types
def _number(kind, allowed, wanted: str):
    """An argument type: ``kind(text)`` where ``allowed`` holds, else the error ``"{wanted}, got 'text'"``."""

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or not allowed(value):
            raise argparse.ArgumentTypeError(f"{wanted}, got {text!r}")
        return value

    return parse


def _count(name: str, lowest: int, highest: int):
    return _number(int, lambda v: lowest <= v <= highest, f"{name} must be an integer from {lowest} to {highest}")


quality = _number(int, lambda v: 0 <= v <= 100, "quality must be an integer from 0 to 100")  # -q of demo, compare, compress
_positive_float = _number(float, lambda v: math.isfinite(v) and v > 0, "must be a number > 0")
_positive_int = _number(int, lambda v: v > 0, "must be an integer > 0")
_crop = _number(int, lambda v: v == 0 or v >= 8, "must be 0 (whole images) or an integer of at least 8")
_init_quality = _number(float, lambda v: 1 <= v <= 100, "must be a quality in [1, 100]")


def _tables_file(text: str) -> Path:
    if Path(text).suffix.lower() not in (".json", ".pt"):
        raise argparse.ArgumentTypeError(f"must end in .json or .pt, got {text!r}")
    return Path(text)


# ---------------------------------------------------------------- files
def check_output(path) -> None:
    """Fail early, before any work, if ``path`` cannot be written."""
    p = Path(path)
    if p.is_dir():
        raise CommandError(f"cannot write {path}: it is a folder")
    folder = p.parent if str(p.parent) else Path(".")
    if not folder.is_dir():
        raise CommandError(f"cannot write {path}: folder {folder} does not exist")
    if not os.access(folder, os.W_OK) or (p.exists() and not os.access(p, os.W_OK)):
        raise CommandError(f"cannot write {path}: permission denied")


def _save(data: bytes, path) -> None:
    try:
        with open(path, "wb") as f:
            f.write(data)
    except OSError as e:
        raise CommandError(f"cannot write {path}: {e.strerror or e}") from None


def _need(packages: dict[str, str], what: str, extra: str) -> None:
    """Fail before any work if an optional package is missing; ``packages``: import name -> pip name."""
    for module, name in packages.items():
        try:
            __import__(module)
        except ImportError:
            raise CommandError(f"{what} needs {name}: pip install \"diffjpeg[{extra}]\" (or pip install {name})") from None


def _check_figure_path(path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    check_output(path)
    kinds = FigureCanvasAgg(Figure()).get_supported_filetypes()
    suffix = Path(path).suffix.lower().lstrip(".")
    if suffix not in kinds:
        raise CommandError(f"cannot write a figure as {path!r}: the name must end in one of {', '.join('.' + k for k in sorted(kinds))}")


# ---------------------------------------------------------------- subcommands
def compress(args) -> int:
    import numpy as np
    import torch
    from PIL import Image, features

    from .. import encode, write
    from .demo import describe
    from .images import to_tensor
    from .metrics import psnr
    from .reference import pillow_decode, pillow_jpeg

    a, notes = load_image(args.input)
    check_output(args.output)
    for note in notes:
        print(f"diffjpeg: note: {note}", file=sys.stderr)
    subsampling = args.subsampling if a.ndim == 3 else "4:4:4"
    with torch.no_grad():
        c = encode(to_tensor(a), quality=args.quality, subsampling=subsampling)
    data = write(c, optimize=args.optimize, progressive=args.progressive)
    _save(data, args.output)

    coding = "progressive" if args.progressive else "optimized Huffman tables" if args.optimize else "standard Huffman tables"
    print(f"wrote {args.output}: {len(data)} bytes, {describe(a)}, quality {args.quality}, "
          f"{subsampling if a.ndim == 3 else 'grayscale'}, {coding}")
    decoded = pillow_decode(data)
    print(f"PSNR against the input: {psnr(decoded, a):.2f} dB")
    reference_file = pillow_jpeg(a, args.quality, subsampling, optimize=args.optimize, progressive=args.progressive)
    reference = pillow_decode(reference_file)
    codec = f"Pillow {Image.__version__} (libjpeg-turbo {features.version('libjpeg_turbo') or '?'})"
    if np.array_equal(decoded, reference):
        pixels = f"identical (all {decoded.size} samples)"
    else:
        differ = np.abs(decoded.astype(np.int16) - reference.astype(np.int16))
        pixels = f"NOT identical: {np.count_nonzero(differ)} of {differ.size} samples differ, by up to {differ.max()}"
    if data == reference_file:
        same_bytes = "file bytes identical"
    elif len(data) == len(reference_file):
        differing = np.count_nonzero(np.frombuffer(data, np.uint8) != np.frombuffer(reference_file, np.uint8))
        same_bytes = f"file bytes: {differing} of {len(data)} differ"
    else:
        same_bytes = "file sizes differ"
    print(f"{codec}, same settings: {len(reference_file)} bytes; decoded pixels {pixels}; {same_bytes}")
    return 0


def _compare(args, path, name: str | None = None) -> int:
    """demo and compare: the table, the recovery and the figure for one image."""
    from .demo import run
    from .images import SAMPLE, sample_image

    _need({"matplotlib": "matplotlib"}, "the figure", "demo")  # before any work: the figure comes last
    if path is None:
        a, name = sample_image(), f"the bundled photo ({SAMPLE}, scikit-image's chelsea, CC0)"
    else:
        a, notes = load_image(path)
        for note in notes:
            print(f"diffjpeg: note: {note}", file=sys.stderr)
    _check_figure_path(args.output)
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    try:
        run(a, args.output, args.quality, args.subsampling, args.steps, args.starts, name=name or str(path))
    finally:
        torch.set_num_threads(threads)
    return 0


def demo(args) -> int:
    return _compare(args, args.image)


def compare(args) -> int:
    return _compare(args, args.input)


def optimize_tables(args) -> int:
    from . import qtables

    if args.resume and args.checkpoint is None:
        raise UsageError("--resume needs --checkpoint PATH")
    started = False
    try:
        images = qtables.ImageSet(args.dir)
        device, started = qtables.join_process_group(args.device)
        tables = qtables.learn_qtables(
            images, lam=args.lam, steps=args.steps, batch_size=args.batch_size, crop=args.crop or None, lr=args.lr,
            init=args.init, subsampling=args.subsampling, mode=args.mode, rounding=args.rounding,
            huffman=args.huffman, distortion=args.distortion, seed=args.seed, device=device,
            checkpoint=args.checkpoint, checkpoint_every=args.checkpoint_every, resume=args.resume,
            progress=not args.quiet,
        )
        if qtables.rank_and_world()[0] == 0:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            qtables.save_qtables(tables, args.out, **{"lambda": args.lam, "steps": args.steps, "subsampling": args.subsampling,
                                                      "distortion": args.distortion, "images": len(images)})
            if not args.quiet:
                print(f"wrote {args.out}", file=sys.stderr)
    except (ValueError, TypeError, ImportError, OSError) as e:
        raise CommandError(str(e)) from None
    finally:
        if started:
            import torch.distributed as dist

            dist.destroy_process_group()
    return 0


def bench(args) -> int:
    _need({"cv2": "opencv-python-headless", "skimage": "scikit-image", "sklearn": "scikit-learn", "matplotlib": "matplotlib"},
          "bench", "bench")
    from .bench.suite import run

    print(f"wrote {run(args.out, args.quick)}")
    return 0


# ---------------------------------------------------------------- parser
def _comparison_options(p, default_output: str) -> None:
    p.add_argument("-o", "--output", default=default_output, help=f"figure to write: .png, .pdf, .svg, ... (default {default_output})")
    p.add_argument("-q", "--quality", type=quality, nargs="+", default=[10, 50, 90], metavar="Q",
                   help="qualities of the table and of the recovery, 0..100; the images shown use the lowest (default 10 50 90)")
    p.add_argument("--subsampling", choices=SUBSAMPLINGS, default="4:2:0", help="chroma subsampling (default 4:2:0)")
    p.add_argument("--steps", type=_count("steps", 0, 10000), default=30,
                   help="Adam steps of the quality recovery; 0 skips it (default 30)")
    p.add_argument("--starts", type=_count("starts", 1, 64), default=8, help="starting qualities of the recovery (default 8)")
    # Many small tensor operations: torch's thread pool gains little on them
    # and stalls badly when the cores are busy with other work.
    p.add_argument("--threads", type=_count("threads", 1, 1024), default=1,
                   help="CPU threads for torch (default 1: the work is many small operations)")


def parser() -> argparse.ArgumentParser:
    from .. import __version__

    top = _Parser(prog="diffjpeg", description="Differentiable JPEG, bit-exact with libjpeg-turbo.")
    top.add_argument("--version", action="version", version=f"diffjpeg {__version__}")
    commands = top.add_subparsers(dest="command", required=True, metavar="command")

    p = commands.add_parser("demo", help="the bundled photo through diffjpeg and Pillow, a quality recovery, a figure",
                            description="Compress the bundled photo (scikit-image's chelsea, CC0) at a few qualities with "
                                        "diffjpeg's exact codec and with Pillow, check every pixel, recover the quality of "
                                        "Pillow's JPEGs from their pixels by gradient descent, print a table and write a figure.")
    p.add_argument("--image", help="use this image instead of the bundled photo (as 'diffjpeg compare IMAGE')")
    _comparison_options(p, "diffjpeg_demo.png")

    p = commands.add_parser("compare", help="the demo's table and figure for your image",
                            description="The demo's table and figure for your image: diffjpeg's exact codec beside Pillow at "
                                        "the given qualities, the forward passes' fidelity over the quality range, and the "
                                        "quality recovery (on a centre crop of at most 256x256).")
    p.add_argument("input", help="any image Pillow opens")
    _comparison_options(p, "diffjpeg_compare.png")

    p = commands.add_parser("compress", help="write a real JPEG with diffjpeg's encoder",
                            description="Encode an image with diffjpeg.encode and write it with diffjpeg.write; report its "
                                        "size, its PSNR against the input, and whether its decoded pixels equal those of "
                                        "the JPEG Pillow writes with the same settings.")
    p.add_argument("input", help="any image Pillow opens (RGB or grayscale; other modes are converted)")
    p.add_argument("-q", "--quality", type=quality, required=True, help="quality, 0..100 (libjpeg's scale; 0 acts as 1)")
    p.add_argument("-o", "--output", required=True, help="the JPEG file to write")
    p.add_argument("--subsampling", choices=SUBSAMPLINGS, default="4:2:0", help="chroma subsampling (default 4:2:0; ignored for grayscale)")
    p.add_argument("--optimize", action="store_true", help="optimized Huffman tables (Pillow's optimize=True)")
    p.add_argument("--progressive", action="store_true", help="a progressive file (libjpeg's default scan script)")

    _optimize_tables_options(commands)

    p = commands.add_parser("bench", help="run the benchmark suite (fidelity, speed, memory, gradients; bench extra)",
                            description="The benchmark suite: fidelity against Pillow and OpenCV, speed and memory beside "
                                        "kornia, gradient usefulness; writes report.md and PNG plots. Needs the bench extra: "
                                        "pip install \"diffjpeg[bench]\".")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results"), help="folder for report.md and the plots (default benchmarks/results)")
    p.add_argument("--quick", action="store_true", help="tiny settings, for a smoke test (numbers not meaningful)")
    return top


def _optimize_tables_options(commands) -> None:
    from ..check import MODES
    from ..huffman import HUFFMAN
    from ..losses import DISTORTIONS
    from ..rounding import ROUNDINGS
    from .qtables.learn import DEFAULT_LAMBDA, DEFAULT_MODE, DEFAULT_ROUNDING

    p = commands.add_parser("optimize-tables", help="learn quantization tables for a folder of images (torchrun for several processes)",
                            description="Learn JPEG quantization tables (luma, chroma) for the images in DIR, minimizing "
                                        "bits per pixel + lambda * distortion (diffjpeg.RateDistortionLoss). Runs under "
                                        "torchrun for several processes: torchrun --nproc_per_node N -m diffjpeg optimize-tables DIR ...")
    p.add_argument("dir", metavar="DIR", help="folder of images (png, jpg, bmp, tif, ...); all are used as RGB")
    p.add_argument("--lambda", dest="lam", metavar="LAMBDA", type=_positive_float, default=DEFAULT_LAMBDA,
                   help=f"weight of the distortion (MSE on 0..255, or 1-SSIM); larger = higher quality (default {DEFAULT_LAMBDA})")
    p.add_argument("--steps", type=_positive_int, default=200, help="optimizer steps (default 200)")
    p.add_argument("--batch-size", type=_positive_int, default=2, help="random crops per step, over all processes (default 2)")
    p.add_argument("--crop", type=_crop, default=256, help="crop side in pixels; 0 = whole images (default 256)")
    p.add_argument("--lr", type=_positive_float, default=0.05, help="Adam step size on the log tables (default 0.05)")
    p.add_argument("--init", type=_init_quality, default=50, help="start from the IJG tables at this quality (default 50)")
    p.add_argument("--subsampling", choices=SUBSAMPLINGS, default="4:2:0")
    p.add_argument("--mode", "--forward", dest="mode", choices=MODES, default=DEFAULT_MODE,
                   help=f"forward pass of the codec while learning (default {DEFAULT_MODE}; --forward is the old spelling)")
    p.add_argument("--rounding", choices=ROUNDINGS, default=DEFAULT_ROUNDING)
    p.add_argument("--huffman", choices=HUFFMAN, default="optimized")
    p.add_argument("--distortion", choices=DISTORTIONS, default="mse")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda:LOCAL_RANK under torchrun with NCCL, else cpu)")
    p.add_argument("--out", type=_tables_file, default=Path("tables.json"), help="output tables, .json or .pt (default tables.json)")
    p.add_argument("--checkpoint", default=None, metavar="PATH", help="write a checkpoint here periodically")
    p.add_argument("--checkpoint-every", type=_positive_int, default=50, help="steps between checkpoints (default 50)")
    p.add_argument("--resume", action="store_true", help="continue from --checkpoint if it exists")
    p.add_argument("--quiet", action="store_true", help="no progress line")


HANDLERS = {"demo": demo, "compare": compare, "compress": compress, "optimize-tables": optimize_tables, "bench": bench}


def main(argv=None) -> int:
    """Run the command line; returns the exit status (argparse exits with 2 on bad arguments)."""
    top = parser()
    args, rest = top.parse_known_args(argv)
    if rest:
        top.error(f"{args.command}: unrecognized arguments: {' '.join(rest)}")
    try:
        return HANDLERS[args.command](args)
    except UsageError as e:
        print(f"diffjpeg: error: {args.command}: {e} (see diffjpeg {args.command} --help)", file=sys.stderr)
        return 2
    except (CommandError, ImageError) as e:
        print(f"diffjpeg: error: {e}", file=sys.stderr)
        return 1
    except MemoryError:
        print("diffjpeg: error: out of memory (is the image very large?)", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        checkpoint = getattr(args, "checkpoint", None)
        print("diffjpeg: interrupted" + (f"; resume with --resume --checkpoint {checkpoint}" if checkpoint else ""), file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
