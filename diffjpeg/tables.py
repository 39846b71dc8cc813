"""Deprecated alias of :mod:`diffjpeg.tools.qtables` (the objective: :class:`diffjpeg.RateDistortionLoss`);
removed in the next release. ``torchrun -m diffjpeg optimize-tables`` replaces ``-m diffjpeg.tables``.
"""
import sys
import warnings

from .losses import DISTORTIONS, RateDistortionLoss
from .tools.qtables import (  # noqa: F401
    CHECKPOINT_FORMAT,
    DEFAULT_LAMBDA,
    DEFAULT_MODE,
    DEFAULT_ROUNDING,
    IMAGE_SUFFIXES,
    ImageSet,
    QTableParameters,
    bd_rate,
    encode_and_score,
    evaluate_qtables,
    image_paths,
    learn_qtables,
    load_checkpoint,
    load_qtables,
    pillow_qtables,
    save_qtables,
    scaled_qtables,
)

warnings.warn("diffjpeg.tables is deprecated: use diffjpeg.tools.qtables and diffjpeg.RateDistortionLoss "
              "(the command: diffjpeg optimize-tables)", DeprecationWarning, stacklevel=2)


DEFAULT_FORWARD = DEFAULT_MODE


def objective_terms(x, tables, subsampling="4:2:0", forward=DEFAULT_MODE, rounding=DEFAULT_ROUNDING,
                    huffman="optimized", distortion="mse"):
    """``(bits, distortion)`` of one image under ``tables`` (now :class:`diffjpeg.RateDistortionLoss`)."""
    criterion = RateDistortionLoss(DEFAULT_LAMBDA, distortion, huffman)
    r = encode_and_score(x, tables, criterion, subsampling=subsampling, mode=forward, rounding=rounding)
    return r.bits, r.distortion


def main(argv=None) -> int:
    """``diffjpeg optimize-tables DIR [...]``; returns the exit status (also for argument mistakes, as before)."""
    from .tools.cli import main as cli_main

    try:
        return cli_main(["optimize-tables", *(sys.argv[1:] if argv is None else argv)])
    except SystemExit as e:  # argparse's --help and mistakes
        return e.code if isinstance(e.code, int) else 0 if e.code is None else 2


if __name__ == "__main__":  # torchrun -m diffjpeg.tables DIR ...
    sys.exit(main())
