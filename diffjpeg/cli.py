"""The ``diffjpeg`` command.

Subcommands: ``demo`` (the bundled photo through the exact codec beside
Pillow, a gradient-based quality recovery, a figure), ``compare`` (the same
for your image), ``compress`` (write a real JPEG with diffjpeg's encoder),
``optimize-tables`` (``diffjpeg.tables``) and ``bench`` (the benchmark suite).
Mistakes in the arguments or files give one line on stderr and exit status 2
(arguments) or 1 (files), not a traceback.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

SUBSAMPLINGS = ("4:4:4", "4:2:2", "4:2:0")
FORWARDED = {"bench": ("benchmark", "run the benchmark suite (fidelity, speed, memory, gradients)"),
             "optimize-tables": ("tables", "learn quantization tables (diffjpeg.tables)")}


class CommandError(Exception):
    """A mistake the user can fix; printed as one line."""


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors: ``diffjpeg: error: ...``."""

    def error(self, message):
        command = self.prog.split(" ", 1)[1] + ": " if " " in self.prog else ""
        self.exit(2, f"diffjpeg: error: {command}{message} (see {self.prog} --help)\n")


# ---------------------------------------------------------------- argument types
def quality(text: str) -> int:
    """A quality argument: an integer from 0 to 100."""
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or not 0 <= value <= 100:
        raise argparse.ArgumentTypeError(f"quality must be an integer from 0 to 100, got {text!r}")
    return value


def _count(name: str, lowest: int, highest: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or not lowest <= value <= highest:
            raise argparse.ArgumentTypeError(f"{name} must be an integer from {lowest} to {highest}, got {text!r}")
        return value

    return parse


# ---------------------------------------------------------------- files
def load_image(path) -> tuple:
    """Pixels of any image Pillow opens, as JPEG takes them.

    Returns:
        ``(H, W)`` uint8 (grayscale) or ``(H, W, 3)`` uint8 (RGB), and notes on
        what was converted: EXIF orientation applied, transparency composited
        onto white, palette, 1-bit, 16-bit, float, CMYK and other color modes
        converted, first frame of an animation.

    Raises:
        CommandError: missing, unreadable, not an image, or too large for Pillow.
    """
    import numpy as np
    from PIL import Image, ImageOps, UnidentifiedImageError

    notes = []
    try:
        with Image.open(path) as image:
            if getattr(image, "n_frames", 1) > 1:
                notes.append(f"{image.n_frames} frames: the first one is used")
            image.load()
            if image.getexif().get(0x0112, 1) not in (1, None):  # the JPEG written carries no EXIF: bake it in
                image = ImageOps.exif_transpose(image)
                notes.append("EXIF orientation applied")
            mode = image.mode
            if mode == "P":
                image = image.convert("RGBA" if "transparency" in image.info else "RGB")
            elif mode == "PA":
                image = image.convert("RGBA")
            elif mode in ("LA", "La"):
                image = image.convert("RGBA")
            elif mode == "RGBa":
                image = image.convert("RGBA")
            if image.mode == "RGBA":
                notes.append("transparency composited onto white (JPEG has no alpha channel)")
                background = Image.new("RGBA", image.size, (255, 255, 255, 255))
                image = Image.alpha_composite(background, image).convert("L" if mode in ("LA", "La") else "RGB")
            if mode == "1":
                image = image.convert("L")
                notes.append("1-bit image converted to 8-bit grayscale")
            if image.mode in ("RGB", "L"):
                return np.array(image), notes
            if image.mode.startswith("I") or image.mode == "F":
                return _to_8_bit(np.array(image), image.mode, notes), notes
            notes.append(f"{image.mode} converted to RGB")
            return np.array(image.convert("RGB")), notes
    except FileNotFoundError:
        raise CommandError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise CommandError(f"{path} is a folder, not an image") from None
    except PermissionError:
        raise CommandError(f"cannot read {path}: permission denied") from None
    except UnidentifiedImageError:
        raise CommandError(f"{path} is not an image Pillow can read") from None
    except Image.DecompressionBombError as e:
        raise CommandError(f"{path}: {e}") from None
    except (OSError, ValueError, SyntaxError, EOFError) as e:  # truncated or corrupt files
        raise CommandError(f"cannot read {path}: {e}") from None


def _to_8_bit(a, mode: str, notes: list[str]):
    """16- and 32-bit integer or float grayscale to 8 bits: the range its values use."""
    import numpy as np

    a = a.astype(np.float64)
    if mode == "F" and a.size and a.min() >= 0 and a.max() <= 1:
        a, how = a * 255, "float in [0, 1] scaled to 8 bits"
    elif a.size and a.min() >= 0 and a.max() <= 255:
        how = f"{mode} image with values in 0..255 taken as 8-bit"
    elif a.size and a.min() >= 0 and a.max() <= 65535:
        a, how = a / 257, f"{mode} (16-bit) image scaled to 8 bits"
    else:
        low, high = float(a.min()), float(a.max())
        a, how = (a - low) * (255 / max(high - low, 1e-12)), f"{mode} image stretched from {low:g}..{high:g} to 0..255"
    notes.append(how)
    return np.clip(np.rint(a), 0, 255).astype(np.uint8)


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


def _need_matplotlib() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise CommandError("the figure needs matplotlib: pip install \"diffjpeg[demo]\" (or pip install matplotlib)") from None


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

    from . import encode, write
    from .demo import describe, pillow_decode, pillow_jpeg, psnr, to_tensor

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
    from .demo import SAMPLE, run, sample_image

    _need_matplotlib()  # before any work: the figure comes last
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


def _forward(command: str, rest: list[str]) -> int:
    module, _ = FORWARDED[command]
    try:
        target = __import__(f"diffjpeg.{module}", fromlist=["main"])
    except ModuleNotFoundError as e:
        if e.name == f"diffjpeg.{module}":
            raise CommandError(f"{command} needs diffjpeg.{module}, which this installation does not have") from None
        raise CommandError(f"{command} needs the package {e.name!r}, which is not installed") from None
    return target.main(rest)


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
    from . import __version__

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

    for name, (module, text) in FORWARDED.items():
        commands.add_parser(name, help=f"{text}; arguments go to diffjpeg.{module}.main", add_help=False)
    return top


HANDLERS = {"demo": demo, "compare": compare, "compress": compress}


def main(argv=None) -> int:
    """Run the command line; returns the exit status (argparse exits with 2 on bad arguments)."""
    top = parser()
    args, rest = top.parse_known_args(argv)
    try:
        if args.command in FORWARDED:
            return _forward(args.command, rest)
        if rest:
            top.error(f"{args.command}: unrecognized arguments: {' '.join(rest)}")
        return HANDLERS[args.command](args)
    except CommandError as e:
        print(f"diffjpeg: error: {e}", file=sys.stderr)
        return 1
    except MemoryError:
        print("diffjpeg: error: out of memory (is the image very large?)", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("diffjpeg: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
