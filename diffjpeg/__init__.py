"""diffjpeg: JPEG as a differentiable PyTorch layer, bit-exact with libjpeg-turbo.

The package in layers, each importing only those below it (the docs'
Architecture page has the diagram and every module; ``tests/test_layers.py``
holds the rule):

=================  ===========================================================
layer              modules
=================  ===========================================================
``tools``          the applications: ``cli`` (the ``diffjpeg`` command),
                   ``demo``, ``images``, ``qtables``, ``bench``; not imported here
``diffjpeg``       this file: the public API
``training``       ``augment`` (RandomJPEG), ``losses`` (RateDistortionLoss)
``codec``          ``plan``, ``pipeline`` (encode, decode, jpeg, DiffJPEG), ``strips``,
                   ``files``, ``lossless``, ``rdo``
``backends``       ``cpu`` (compiled stage loops, the switch), ``exact``
                   (the exact codec compiled), the C sources
``stages``         ``color``, ``sampling``, ``blocks``, ``dct``, ``quality``,
                   ``quantize``, ``rounding``, ``smoothing``
``bitstream``      ``markers``, ``huffman``, ``sequential``, ``progressive``,
                   ``rate_model``
``core``           ``geometry``, ``precision``, ``check``, ``modes``, ``colorspace``,
                   ``scan``, ``coefficients``, ``dispatch``
=================  ===========================================================

The pipeline's functions and modules (``jpeg``, ``encode``, ``decode``,
``DiffJPEG``, ``RandomJPEG``, ...) take the image and ``quality`` by position
and everything else by name: ``mode=`` (``"exact"``, ``"float"``, ``"soft"``)
chooses the forward pass, ``rounding=`` the quantizer's surrogate (a name or
a :class:`diffjpeg.stages.rounding.Rounding`).
"""
from . import backends, bitstream, codec, core, stages, training
from .bitstream.huffman import bits
from .bitstream.markers import JPEGError
from .bitstream.rate_model import Rate, rate
from .codec.files import read, read_batch, read_image, write
from .codec.pipeline import DiffJPEG, JPEGDecoder, JPEGEncoder, decode, encode, jpeg
from .codec.rdo import encode_rdo
from .core.coefficients import Coefficients, Progression
from .stages.quality import quality_tables, standard_tables
from .stages.rounding import ROUNDINGS, Rounding, soft_round
from .training.augment import RandomJPEG, RandomJPEGParams, random_jpeg
from .training.losses import RateDistortion, RateDistortionLoss

__all__ = [
    "Coefficients",
    "DiffJPEG",
    "JPEGDecoder",
    "JPEGEncoder",
    "JPEGError",
    "Progression",
    "ROUNDINGS",
    "RandomJPEG",
    "RandomJPEGParams",
    "Rate",
    "RateDistortion",
    "RateDistortionLoss",
    "Rounding",
    "bits",
    "decode",
    "encode",
    "encode_rdo",
    "jpeg",
    "quality_tables",
    "random_jpeg",
    "rate",
    "read",
    "read_batch",
    "read_image",
    "soft_round",
    "standard_tables",
    "write",
]
__version__ = "0.2.0.dev0"
