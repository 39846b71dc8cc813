"""Deprecated alias of :mod:`diffjpeg.tools.demo` and its helpers' new homes; removed in the next release."""
import warnings

from .tools.demo import (  # noqa: F401
    SHOWN,
    SWEEP,
    Recovery,
    Row,
    centre_crop,
    codec_rows,
    describe,
    draw,
    fidelity_sweep,
    format_recovery,
    format_rows,
    recover_quality,
    run,
)
from .tools.images import SAMPLE, sample_image, to_array, to_tensor  # noqa: F401
from .tools.metrics import psnr  # noqa: F401
from .tools.reference import SUBSAMPLING_PIL, pillow_decode, pillow_jpeg  # noqa: F401

warnings.warn("diffjpeg.demo is deprecated: use diffjpeg.tools.demo (psnr: diffjpeg.tools.metrics, images: "
              "diffjpeg.tools.images, Pillow: diffjpeg.tools.reference)", DeprecationWarning, stacklevel=2)
