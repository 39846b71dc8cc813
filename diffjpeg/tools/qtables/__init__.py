"""Learned quantization tables (``diffjpeg optimize-tables``), split by job.

=============  ==============================================================
``learn``      the learning loop: QTableParameters, learn_qtables,
               checkpoints, torchrun
``files``      tables in and out: .json/.pt files, Pillow's ``qtables=``,
               libjpeg's quality scaling
``evaluate``   real files written and read by Pillow; PCHIP and BD-rate
=============  ==============================================================

The objective is the core's :class:`diffjpeg.RateDistortionLoss`; images are
read by :mod:`diffjpeg.tools.images`.

Example:
    >>> from diffjpeg.tools import qtables
    >>> t = qtables.learn_qtables(torch.rand(1, 3, 32, 32), steps=1, crop=16)
    >>> len(qtables.pillow_qtables(t)[0])
    64
"""
from ..images import IMAGE_SUFFIXES, ImageSet, image_paths
from .evaluate import QUALITIES, bd_rate, curve_bd_rate, evaluate_qtables, ijg_curve, scaled_curve, score_files, slope_lambdas
from .files import check_qtables, load_qtables, pillow_qtables, save_qtables, scaled_qtables
from .learn import (
    CHECKPOINT_FORMAT,
    DEFAULT_LAMBDA,
    DEFAULT_MODE,
    DEFAULT_ROUNDING,
    QTableParameters,
    encode_and_score,
    join_process_group,
    learn_qtables,
    load_checkpoint,
    rank_and_world,
)

__all__ = [
    "CHECKPOINT_FORMAT", "DEFAULT_MODE", "DEFAULT_LAMBDA", "DEFAULT_ROUNDING", "IMAGE_SUFFIXES", "ImageSet",
    "QTableParameters", "QUALITIES", "bd_rate", "curve_bd_rate", "check_qtables", "encode_and_score", "evaluate_qtables", "ijg_curve", "image_paths",
    "join_process_group", "learn_qtables", "load_checkpoint", "load_qtables", "pillow_qtables", "rank_and_world",
    "save_qtables", "scaled_curve", "scaled_qtables", "score_files", "slope_lambdas",
]
