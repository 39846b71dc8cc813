"""The ``diffjpeg`` command: one parser for every subcommand, one error format.

Subcommands: ``demo`` (the bundled photo through the exact codec beside
Pillow, a gradient-based quality recovery, a figure), ``compare`` (the same
for your image), ``compress`` (write a real JPEG with diffjpeg's encoder, at a
quality or with the tables ``optimize-tables`` wrote), ``optimize-tables``
(learn quantization tables, :mod:`diffjpeg.tools.qtables`; ``torchrun -m
diffjpeg optimize-tables`` for several processes) and ``bench`` (the benchmark
suite, :mod:`diffjpeg.tools.bench`). Each handler imports its tool when it runs.

What a user can count on:

* every failure is one line on stderr, ``diffjpeg: error: ...``, with exit
  status 2 (arguments) or 1 (anything else), never a traceback;
* nothing is written when a command fails: names, folders, sizes and memory
  are checked before the work, and each file is written to a temporary file
  in its folder, then renamed onto its name (``bench``: a temporary folder);
* ``-o -`` (``--out -``) writes the file to stdout, and the report goes to stderr;
* an output name must end as its format does (``.jpg`` for a JPEG, ...);
* images are read by :func:`diffjpeg.tools.images.load_image` (EXIF orientation,
  alpha onto white, 16-bit, palette, CMYK), which refuses images larger than
  Pillow's ``Image.MAX_IMAGE_PIXELS`` from their header;
* ``--threads N`` sets torch's threads for the command (default 1, measured
  the fastest for these commands on a busy machine; ``bench``: torch's own);
* long work shows tqdm's bar on a terminal and plain lines in logs, on stderr.
"""
from __future__ import annotations

import argparse
import math
import os
import shutil
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

from ..core import geometry
from .images import ImageError, image_size, load_image

SUBSAMPLINGS = tuple(geometry.SUBSAMPLINGS)  # "4:4:4", "4:2:2", "4:2:0"
JPEG_SUFFIXES = (".jpg", ".jpeg", ".jpe", ".jfif")
STDOUT = "-"
# Peak memory of compress (encode, write, the Pillow comparison) per pixel: 350
# bytes measured on noise at quality 95 (RGB, 1 and 4 megapixels), the worst
# case; the demo's codec table writes files too.
BYTES_PER_PIXEL = 400


class CommandError(Exception):
    """A mistake the user can fix; printed as one line, exit status 1."""


class UsageError(CommandError):
    """A mistake in the arguments that argparse cannot see alone; exit status 2."""


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors: ``diffjpeg: error: ...``."""

    def error(self, message):
        command = self.prog.split(" ", 1)[1] + ": " if " " in self.prog else ""
        self.exit(2, f"diffjpeg: error: {command}{message} (see {self.prog} --help)\n")


class DefaultsFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Each option's help ends with its default, unless it has none (flags, required options) or says it."""

    def _get_help_string(self, action):
        text = action.help or ""
        default = action.default
        if "(default" in text or default is None or default is False or default is argparse.SUPPRESS or not action.option_strings:
            return text
        shown = " ".join(map(str, default)) if isinstance(default, (list, tuple)) else str(default)
        return f"{text} (default: {shown.replace('%', '%%')})"


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


def _tables_file(text: str):
    """``--out`` of optimize-tables: a .json or .pt name, or ``-`` (JSON on stdout)."""
    if text == STDOUT:
        return text
    if Path(text).suffix.lower() not in (".json", ".pt"):
        raise argparse.ArgumentTypeError(f"must end in .json or .pt (or be - for JSON on stdout), got {text!r}")
    return Path(text)


# ---------------------------------------------------------------- files
def check_output(path, suffixes: tuple[str, ...] = (), kind: str = "") -> None:
    """Fail early, before any work, if ``path`` cannot be written or its name does not end in ``suffixes``."""
    if str(path) == STDOUT:
        return
    p = Path(path)
    if p.is_dir():
        raise CommandError(f"cannot write {path}: it is a folder")
    if suffixes and p.suffix.lower() not in suffixes:
        allowed = ", ".join(suffixes[:-1]) + " or " + suffixes[-1] if len(suffixes) > 1 else suffixes[0]
        raise CommandError(f"cannot write {kind} data to {str(path)!r}: the name must end in {allowed}")
    folder = p.parent if str(p.parent) else Path(".")
    if not folder.is_dir():
        raise CommandError(f"cannot write {path}: folder {folder} does not exist")
    if not os.access(folder, os.W_OK) or (p.exists() and not os.access(p, os.W_OK)):
        raise CommandError(f"cannot write {path}: permission denied")


def _umask() -> int:
    mask = os.umask(0)  # reading it means setting it: the CLI's own process, at once restored
    os.umask(mask)
    return mask


@contextmanager
def output_file(path, stdout_suffix: str = ""):
    """A temporary file beside ``path`` (same suffix) to write into; when the block
    ends without an error it becomes ``path`` (``os.replace``), or goes to stdout
    for ``-`` (then the temporary name ends in ``stdout_suffix``, which says the
    format); otherwise it is removed and nothing is left."""
    to_stdout = str(path) == STDOUT
    folder = tempfile.gettempdir() if to_stdout else Path(path).parent
    suffix = stdout_suffix if to_stdout else Path(path).suffix
    try:
        handle, temporary = tempfile.mkstemp(prefix=".diffjpeg-", suffix=suffix, dir=folder)
    except OSError as e:
        raise CommandError(f"cannot write {path}: {e.strerror or e}") from None
    os.close(handle)
    try:
        yield Path(temporary)
        try:
            if to_stdout:
                stream = getattr(sys.stdout, "buffer", sys.stdout)
                with open(temporary, "rb") as f:
                    shutil.copyfileobj(f, stream)
                stream.flush()
            else:
                os.chmod(temporary, 0o666 & ~_umask())  # as open() would have made it
                os.replace(temporary, path)
        except BrokenPipeError:
            raise
        except OSError as e:
            raise CommandError(f"cannot write {path}: {e.strerror or e}") from None
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def _need(packages: dict[str, str], what: str, extra: str) -> None:
    """Fail before any work if an optional package is missing; ``packages``: import name -> pip name."""
    for module, name in packages.items():
        try:
            __import__(module)
        except ImportError:
            raise CommandError(f"{what} needs {name}: pip install \"diffjpeg[{extra}]\" (or pip install {name})") from None


def _check_figure_path(path) -> None:
    if str(path) == STDOUT:
        return
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    check_output(path)
    kinds = FigureCanvasAgg(Figure()).get_supported_filetypes()
    suffix = Path(path).suffix.lower().lstrip(".")
    if suffix not in kinds:
        raise CommandError(f"cannot write a figure as {str(path)!r}: the name must end in one of {', '.join('.' + k for k in sorted(kinds))}")


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation (Linux's MemAvailable), or None where unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _bytes(n: int) -> str:
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.0f} MiB"


def _check_memory(path, what: str) -> None:
    """Refuse, from the image's header, an image whose ``what`` needs more memory than there is."""
    height, width = image_size(path)  # also refuses more pixels than Pillow's MAX_IMAGE_PIXELS
    need, free = height * width * BYTES_PER_PIXEL, available_memory()
    if free is not None and need > free:
        raise CommandError(f"{path}: {what} a {width}x{height} image needs about {_bytes(need)} of memory "
                           f"({BYTES_PER_PIXEL} bytes per pixel); {_bytes(free)} is available")


def _notes(notes, stream) -> None:
    for note in notes:
        print(f"diffjpeg: note: {note}", file=stream)


# ---------------------------------------------------------------- subcommands
def _read_tables(path) -> object:
    from .qtables import load_qtables

    try:
        return load_qtables(path)
    except OSError as e:
        raise CommandError(f"--qtables: cannot read {path}: {e.strerror or e}") from None
    except ValueError as e:
        raise CommandError(f"--qtables: {e}") from None


def compress(args) -> int:
    import numpy as np
    import torch
    from PIL import Image, features

    from .. import encode, write
    from .demo import describe
    from .images import to_tensor
    from .metrics import psnr
    from .qtables import pillow_qtables
    from .reference import pillow_decode, pillow_jpeg

    if not args.optimize_rd:
        for option, value in (("--lambda", args.lam), ("--effort", args.effort)):
            if value is not None:
                raise UsageError(f"{option} needs --optimize-rd")
    report = sys.stderr if str(args.output) == STDOUT else sys.stdout  # stdout carries the file
    check_output(args.output, JPEG_SUFFIXES, "JPEG")
    tables = None if args.qtables is None else _read_tables(args.qtables)
    _check_memory(args.input, "compressing")
    a, notes = load_image(args.input)
    _notes(notes, sys.stderr)
    subsampling = args.subsampling if a.ndim == 3 else "4:4:4"
    if args.optimize_rd:
        return _compress_rd(args, a, tables, subsampling, report)
    with torch.no_grad():
        c = encode(to_tensor(a), quality=args.quality, qtables=tables, subsampling=subsampling)
    data = write(c, optimize=args.optimize, progressive=args.progressive)

    decoded = pillow_decode(data)
    reference_file = pillow_jpeg(a, args.quality, subsampling, optimize=args.optimize, progressive=args.progressive,
                                 qtables=None if tables is None else pillow_qtables(tables))
    reference = pillow_decode(reference_file)
    with output_file(args.output) as temporary:
        temporary.write_bytes(data)

    coding = "progressive" if args.progressive else "optimized Huffman tables" if args.optimize else "standard Huffman tables"
    how = f"quality {args.quality}" if tables is None else f"tables from {args.qtables}"
    print(f"wrote {'the JPEG to stdout' if str(args.output) == STDOUT else args.output}: {len(data)} bytes, {describe(a)}, {how}, "
          f"{subsampling if a.ndim == 3 else 'grayscale'}, {coding}", file=report)
    print(f"PSNR against the input: {psnr(decoded, a):.2f} dB", file=report)
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
    print(f"{codec}, same settings: {len(reference_file)} bytes; decoded pixels {pixels}; {same_bytes}", file=report)
    return 0


def _compress_rd(args, a, tables, subsampling: str, report) -> int:
    """compress --optimize-rd: :func:`diffjpeg.encode_rdo`, then the file, and
    the size Pillow needs for the same PSNR (IJG tables, optimized Huffman tables)."""
    from .. import write
    from ..codec import rdo
    from .demo import describe
    from .images import to_tensor
    from .metrics import psnr
    from .progress import Progress
    from .reference import pillow_decode

    effort = rdo.DEFAULT_EFFORT if args.effort is None else args.effort
    with Progress(rdo.PASSES[effort], "optimize-rd", unit="pass", lines=False) as bar:
        c = rdo.encode_rdo(to_tensor(a), args.quality, lmbda=args.lam, qtables=tables, subsampling=subsampling,
                           effort=effort, progress=lambda done, total: bar.update())
    data = write(c, optimize=True, progressive=args.progressive)
    decoded = pillow_decode(data)
    with output_file(args.output) as temporary:
        temporary.write_bytes(data)

    lmbda = rdo.default_lambda(c.qtables) if args.lam is None else args.lam
    how = f"learned tables at quality {args.quality}" if tables is None else f"tables from {args.qtables}"
    coding = "progressive" if args.progressive else "baseline, optimized Huffman tables"
    print(f"wrote {'the JPEG to stdout' if str(args.output) == STDOUT else args.output}: {len(data)} bytes, {describe(a)}, "
          f"rate-distortion optimized (lambda {lmbda:.4g}, effort {effort}), {how}, "
          f"{subsampling if a.ndim == 3 else 'grayscale'}, {coding}", file=report)
    print(f"PSNR against the input: {psnr(decoded, a):.2f} dB", file=report)
    reached = _pillow_at_psnr(a, psnr(decoded, a), subsampling, args.progressive)
    if reached is None:
        print("Pillow (IJG tables, same coding) does not reach this PSNR at any quality", file=report)
    else:
        q, size, value = reached
        print(f"Pillow (IJG tables, same coding) needs quality {q} for at least this PSNR ({value:.2f} dB): {size} bytes; "
              f"this file is {100 * (len(data) / size - 1):+.1f}%", file=report)
    return 0


def _pillow_at_psnr(a, target: float, subsampling: str, progressive: bool) -> tuple[int, int, float] | None:
    """The lowest IJG quality whose Pillow file (optimized Huffman tables) reaches
    ``target`` PSNR, with its size and PSNR (bisection: PSNR grows with quality),
    or ``None`` if quality 100 does not."""
    from .metrics import psnr
    from .reference import pillow_decode, pillow_jpeg

    def at(q: int) -> tuple[int, float]:
        data = pillow_jpeg(a, q, subsampling, optimize=True, progressive=progressive)
        return len(data), psnr(pillow_decode(data), a)

    low, high = 1, 100
    best = at(high)
    if best[1] < target:
        return None
    found = (high, *best)
    while low < high:
        middle = (low + high) // 2
        size, value = at(middle)
        if value >= target:
            high, found = middle, (middle, size, value)
        else:
            low = middle + 1
    return found


def _compare(args, path, name: str | None = None) -> int:
    """demo and compare: the table, the recovery and the figure for one image."""
    from .demo import run
    from .images import SAMPLE, sample_image

    _need({"matplotlib": "matplotlib"}, "the figure", "demo")  # before any work: the figure comes last
    _check_figure_path(args.output)
    report = sys.stderr if str(args.output) == STDOUT else sys.stdout
    if path is None:
        a, name = sample_image(), f"the bundled photo ({SAMPLE}, scikit-image's chelsea, CC0)"
    else:
        _check_memory(path, "comparing")
        a, notes = load_image(path)
        _notes(notes, sys.stderr)
    with output_file(args.output, ".png") as temporary:
        run(a, temporary, args.quality, args.subsampling, args.steps, args.starts, name=name or str(path),
            echo=lambda *line: print(*line, file=report), shown_as="the figure to stdout" if args.output == STDOUT else args.output,
            progress=True)
    return 0


def demo(args) -> int:
    return _compare(args, args.image)


def compare(args) -> int:
    return _compare(args, args.input)


def _check_device(text) -> None:
    """``--device``: a device this PyTorch has, or one line saying why not."""
    if text is None:
        return
    import torch

    try:
        device = torch.device(text)
    except (RuntimeError, ValueError):
        raise UsageError(f"--device must be a device such as cpu, cuda, cuda:1 or mps, got {text!r}") from None
    if device.type == "cuda":
        if not torch.backends.cuda.is_built():
            raise CommandError(f"--device {text}: this PyTorch ({torch.__version__}) is a CPU build, without CUDA; "
                               "use --device cpu, or install a CUDA build of PyTorch")
        count = torch.cuda.device_count()
        if count == 0:
            raise CommandError(f"--device {text}: no CUDA device is visible (torch.cuda.device_count() is 0)")
        if device.index is not None and device.index >= count:
            raise CommandError(f"--device {text}: there {'is' if count == 1 else 'are'} only {count} CUDA device"
                               f"{'' if count == 1 else 's'} (cuda:0{f'..cuda:{count - 1}' if count > 1 else ''})")
    elif device.type == "mps":
        if not torch.backends.mps.is_available():
            raise CommandError(f"--device {text}: no MPS (Apple GPU) device is available")
    elif device.type != "cpu":
        raise UsageError(f"--device must be cpu, cuda[:N] or mps, got {text!r}")


def optimize_tables(args) -> int:
    from . import qtables

    if args.resume and args.checkpoint is None:
        raise UsageError("--resume needs --checkpoint PATH")
    check_output(args.out)
    if args.checkpoint is not None:
        check_output(args.checkpoint)
    _check_device(args.device)
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
            with output_file(args.out, ".json") as temporary:
                qtables.save_qtables(tables, temporary, **{"lambda": args.lam, "steps": args.steps, "subsampling": args.subsampling,
                                                           "distortion": args.distortion, "images": len(images)})
            if not args.quiet:
                print(f"wrote {args.out if args.out != STDOUT else 'the tables to stdout'}", file=sys.stderr)
    except (ValueError, TypeError, ImportError, OSError) as e:
        raise CommandError(str(e)) from None
    finally:
        if started:
            import torch.distributed as dist

            dist.destroy_process_group()
    return 0


BENCH_NEEDS = {"cv2": "opencv-python-headless", "skimage": "scikit-image", "sklearn": "scikit-learn", "matplotlib": "matplotlib"}


def bench(args) -> int:
    _need(BENCH_NEEDS, "bench", "bench")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise CommandError(f"cannot write the report to {out}: it is a file, not a folder")
    existing = next((p for p in (out, *out.parents) if p.exists()), Path("."))
    if not os.access(existing, os.W_OK):
        raise CommandError(f"cannot write the report to {out}: {existing} is not writable")
    from .bench.suite import run

    # Everything goes to a temporary folder beside the first existing one, and
    # moves into --out only when the whole run has finished.
    scratch = Path(tempfile.mkdtemp(prefix=".diffjpeg-bench-", dir=existing))
    try:
        run(scratch, args.quick, echo=print)
        out.mkdir(parents=True, exist_ok=True)
        for f in sorted(scratch.iterdir()):
            os.replace(f, out / f.name)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print(f"wrote {out / 'report.md'}")
    return 0


# ---------------------------------------------------------------- parser
def _threads(p, default=1, why="the work is many small operations, and more threads stall on a busy machine") -> None:
    p.add_argument("--threads", type=_count("threads", 1, 1024), default=default, metavar="N", help=f"CPU threads for torch ({why})")


def _comparison_options(p, default_output: str) -> None:
    p.add_argument("-o", "--output", default=default_output, help="figure to write: .png, .pdf, .svg, ...; - writes a PNG to stdout")
    p.add_argument("-q", "--quality", type=quality, nargs="+", default=[10, 50, 90], metavar="Q",
                   help="qualities of the table and of the recovery, 0..100; the images shown use the lowest")
    p.add_argument("--subsampling", choices=SUBSAMPLINGS, default="4:2:0", help="chroma subsampling")
    p.add_argument("--steps", type=_count("steps", 0, 10000), default=30, help="Adam steps of the quality recovery; 0 skips it")
    p.add_argument("--starts", type=_count("starts", 1, 64), default=8, help="starting qualities of the recovery")
    _threads(p)


def parser() -> argparse.ArgumentParser:
    import torch

    from .. import __version__
    from ..codec.rdo import DEFAULT_EFFORT, EFFORTS

    top = _Parser(prog="diffjpeg", description="Differentiable JPEG, bit-exact with libjpeg-turbo.", formatter_class=DefaultsFormatter)
    top.add_argument("--version", action="version", version=f"diffjpeg {__version__}")
    commands = top.add_subparsers(dest="command", required=True, metavar="command")

    def command(name: str, **kwargs):
        return commands.add_parser(name, formatter_class=DefaultsFormatter, **kwargs)

    p = command("demo", help="the bundled photo through diffjpeg and Pillow, a quality recovery, a figure",
                description="Compress the bundled photo (scikit-image's chelsea, CC0) at a few qualities with "
                            "diffjpeg's exact codec and with Pillow, check every pixel, recover the quality of "
                            "Pillow's JPEGs from their pixels by gradient descent, print a table and write a figure.")
    p.add_argument("--image", help="use this image instead of the bundled photo (as 'diffjpeg compare IMAGE')")
    _comparison_options(p, "diffjpeg_demo.png")

    p = command("compare", help="the demo's table and figure for your image",
                description="The demo's table and figure for your image: diffjpeg's exact codec beside Pillow at "
                            "the given qualities, the forward passes' fidelity over the quality range, and the "
                            "quality recovery (on a centre crop of at most 256x256).")
    p.add_argument("input", help="any image Pillow opens")
    _comparison_options(p, "diffjpeg_compare.png")

    p = command("compress", help="write a real JPEG with diffjpeg's encoder",
                description="Encode an image with diffjpeg.encode and write it with diffjpeg.write; report its "
                            "size, its PSNR against the input, and whether its decoded pixels equal those of "
                            "the JPEG Pillow writes with the same settings. With --optimize-rd, "
                            "diffjpeg.encode_rdo chooses the quantized values (an ordinary baseline or "
                            "progressive file, fewer bytes for the same PSNR), and the report gives the size "
                            "of Pillow's file (IJG tables) of at least the same PSNR.")
    p.add_argument("input", help="any image Pillow opens (RGB or grayscale; other modes are converted)")
    how = p.add_mutually_exclusive_group(required=True)
    how.add_argument("-q", "--quality", type=quality, help="quality, 0..100 (libjpeg's scale; 0 acts as 1)")
    how.add_argument("--qtables", metavar="FILE", help="quantization tables written by diffjpeg optimize-tables (.json or .pt), used as they are")
    p.add_argument("-o", "--output", required=True, help="the JPEG file to write (.jpg, .jpeg, .jpe or .jfif); - writes it to stdout")
    p.add_argument("--subsampling", choices=SUBSAMPLINGS, default="4:2:0", help="chroma subsampling (ignored for grayscale)")
    p.add_argument("--optimize", action="store_true", help="optimized Huffman tables (Pillow's optimize=True)")
    p.add_argument("--progressive", action="store_true", help="a progressive file (libjpeg's default scan script)")
    p.add_argument("--optimize-rd", action="store_true",
                   help="rate-distortion optimized values (diffjpeg.encode_rdo): the fewest bits + lambda * squared error, "
                        "with the learned tables scaled by -q (or --qtables); implies --optimize")
    p.add_argument("--lambda", dest="lam", metavar="LAMBDA", type=_positive_float, default=None,
                   help="with --optimize-rd: bits per unit of squared error, larger keeps more detail (default: from the tables)")
    p.add_argument("--effort", type=_count("effort", min(EFFORTS), max(EFFORTS)), default=None,
                   help=f"with --optimize-rd: passes of value choice and Huffman table rebuilding, "
                        f"{min(EFFORTS)}..{max(EFFORTS)} (default: {DEFAULT_EFFORT})")
    _threads(p, why="one thread encodes as fast as two: the time goes to Huffman coding")

    _optimize_tables_options(command)

    p = command("bench", help="run the benchmark suite (fidelity, speed, memory, gradients; bench extra)",
                description="The benchmark suite: fidelity against Pillow and OpenCV, speed and memory beside "
                            "kornia, gradient usefulness; prints each section as it finishes and writes report.md, "
                            "results.json and PNG plots. Needs the bench extra: pip install \"diffjpeg[bench]\".")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results"), help="folder for report.md and the plots")
    p.add_argument("--quick", action="store_true", help="tiny settings, for a smoke test (numbers not meaningful)")
    p.add_argument("--threads", type=_count("threads", 1, 1024), default=None, metavar="N",
                   help=f"CPU threads for torch (default: torch's own, {torch.get_num_threads()} here: the speeds are reported for it)")
    return top


def _optimize_tables_options(command) -> None:
    from ..bitstream.huffman import HUFFMAN
    from ..core.modes import MODES
    from ..stages.rounding import ROUNDINGS
    from ..training.losses import DISTORTIONS
    from .qtables.learn import DEFAULT_LAMBDA, DEFAULT_MODE, DEFAULT_ROUNDING

    p = command("optimize-tables", help="learn quantization tables for a folder of images (torchrun for several processes)",
                description="Learn JPEG quantization tables (luma, chroma) for the images in DIR, minimizing "
                            "bits per pixel + lambda * distortion (diffjpeg.RateDistortionLoss). The tables file it "
                            "writes is what diffjpeg compress --qtables reads. Runs under torchrun for several "
                            "processes: torchrun --nproc_per_node N -m diffjpeg optimize-tables DIR ...")
    p.add_argument("dir", metavar="DIR", help="folder of images (png, jpg, bmp, tif, ...); all are used as RGB")
    p.add_argument("--lambda", dest="lam", metavar="LAMBDA", type=_positive_float, default=DEFAULT_LAMBDA,
                   help="weight of the distortion (MSE on 0..255, or 1-SSIM); larger = higher quality")
    p.add_argument("--steps", type=_positive_int, default=200, help="optimizer steps")
    p.add_argument("--batch-size", type=_positive_int, default=2, help="random crops per step, over all processes")
    p.add_argument("--crop", type=_crop, default=256, help="crop side in pixels; 0 = whole images")
    p.add_argument("--lr", type=_positive_float, default=0.05, help="Adam step size on the log tables")
    p.add_argument("--init", type=_init_quality, default=50, help="start from the IJG tables at this quality")
    p.add_argument("--subsampling", choices=SUBSAMPLINGS, default="4:2:0", help="chroma subsampling of the files the tables are for")
    p.add_argument("--mode", "--forward", dest="mode", choices=MODES, default=DEFAULT_MODE,
                   help="forward pass of the codec while learning (--forward is the old spelling)")
    p.add_argument("--rounding", choices=ROUNDINGS, default=DEFAULT_ROUNDING, help="the quantizer's rounding surrogate for the gradients")
    p.add_argument("--huffman", choices=HUFFMAN, default="optimized", help="the Huffman tables the rate estimate assumes")
    p.add_argument("--distortion", choices=DISTORTIONS, default="mse", help="mse (on 0..255) or ssim (1-SSIM, needs kornia)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random crops (the same on every process)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1, mps ... (default: cuda:LOCAL_RANK under torchrun with NCCL, else cpu)")
    p.add_argument("--out", type=_tables_file, default=Path("tables.json"), help="output tables, .json or .pt; - writes JSON to stdout")
    p.add_argument("--checkpoint", default=None, metavar="PATH", help="write a checkpoint here periodically (default: none)")
    p.add_argument("--checkpoint-every", type=_positive_int, default=50, help="steps between checkpoints")
    p.add_argument("--resume", action="store_true", help="continue from --checkpoint if it exists")
    p.add_argument("--quiet", action="store_true", help="no progress report")
    _threads(p)


HANDLERS = {"demo": demo, "compare": compare, "compress": compress, "optimize-tables": optimize_tables, "bench": bench}


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return text if len(text) <= 300 else text[:297] + "..."


def _out_of_memory(e: BaseException) -> bool:
    import torch

    return isinstance(e, (MemoryError, torch.OutOfMemoryError)) or (
        isinstance(e, RuntimeError) and ("can't allocate memory" in str(e) or "out of memory" in str(e)))


def main(argv=None) -> int:
    """Run the command line; returns the exit status (argparse exits with 2 on bad arguments)."""
    import warnings

    import torch
    from PIL import Image

    top = parser()
    args, rest = top.parse_known_args(argv)
    if rest:
        top.error(f"{args.command}: unrecognized arguments: {' '.join(rest)}")
    threads = torch.get_num_threads()
    try:
        with warnings.catch_warnings():
            # load_image refuses such images itself, in one line, before reading them
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            if args.threads is not None:
                torch.set_num_threads(args.threads)
            return HANDLERS[args.command](args)
    except UsageError as e:
        print(f"diffjpeg: error: {args.command}: {e} (see diffjpeg {args.command} --help)", file=sys.stderr)
        return 2
    except (CommandError, ImageError) as e:
        print(f"diffjpeg: error: {_one_line(e)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        checkpoint = getattr(args, "checkpoint", None)
        print("diffjpeg: interrupted" + (f"; resume with --resume --checkpoint {checkpoint}" if checkpoint else ""), file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader of stdout went away (| head): stop quietly
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())  # so that Python's exit does not flush into the closed pipe
        except (OSError, ValueError, AttributeError):
            pass
        return 1
    except Exception as e:
        if _out_of_memory(e):
            print(f"diffjpeg: error: {args.command}: out of memory (is the image very large? try a smaller one)", file=sys.stderr)
        else:
            print(f"diffjpeg: error: {args.command} failed unexpectedly: {type(e).__name__}: {_one_line(e)} "
                  "(please report it, with the command)", file=sys.stderr)
        return 1
    finally:
        torch.set_num_threads(threads)


if __name__ == "__main__":
    sys.exit(main())
