"""Deprecated alias of :mod:`diffjpeg.tools.bench`; removed in the next release.

The old names, with their old meanings: ``pillow_jpeg`` and ``opencv_jpeg``
return decoded pixels, ``to_tensor``/``to_array`` convert floats in [0, 1].
"""
import sys
import warnings

from .tools.bench.machine import machine  # noqa: F401
from .tools.bench.methods import COMPILED, TENSOR_STAGES, kornia_jpeg, methods, ours, photos, tensor_stages  # noqa: F401
from .tools.bench.methods import float_tensor as to_tensor  # noqa: F401
from .tools.bench.methods import uint8_array as to_array  # noqa: F401
from .tools.bench.report import markdown_table  # noqa: F401
from .tools.bench.suite import (  # noqa: F401
    PHOTOS,
    QUALITIES,
    attack_through_jpeg,
    digits_classifier,
    fidelity,
    large_photo,
    large_photo_times,
    peak_memory_cpu,
    peak_memory_cuda,
    pillow_throughput,
    pre_editing,
    quality_recovery,
    real_jpeg_batch,
    run,
    throughput,
)
from .tools.reference import SUBSAMPLING_PIL  # noqa: F401
from .tools.reference import opencv_roundtrip as opencv_jpeg  # noqa: F401
from .tools.reference import pillow_roundtrip as pillow_jpeg  # noqa: F401

warnings.warn("diffjpeg.benchmark is deprecated: use diffjpeg.tools.bench (the command: diffjpeg bench)",
              DeprecationWarning, stacklevel=2)


def main(argv=None) -> int:
    """``diffjpeg bench [...]``."""
    from .tools.cli import main as cli_main

    return cli_main(["bench", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
