"""diffjpeg: JPEG as a differentiable PyTorch layer, bit-exact with libjpeg-turbo.

Stages, one module each, in pipeline order:

================  =====================================================  ============================
module            stage                                                  libjpeg-turbo source
================  =====================================================  ============================
``color``         RGB <-> YCbCr, YCCK -> CMYK, pixels                    jccolor.c, jdcolor.c
``colorspace``    files' color spaces: told and marked                   jdapimin.c, jcparam.c
``sampling``      chroma down- and upsampling                            jcsample.c, jdsample.c
``blocks``        edge padding, 8x8 blocks                               jcprepct.c, jdmainct.c
``dct``           level shift, DCT and IDCT                              jfdctint.c, jidctint.c
``quality``       quality-scaled quantization tables                     jcparam.c
``quantize``      quantization and dequantization                        jcdctmgr.c
``smoothing``     block smoothing of incomplete progressive files        jdcoefct.c
``lossless``      lossless (SOF3) files to pixels, for ``read_image``    jdlossls.c, jddiffct.c (3.x)
``rounding``      surrogate gradients
``precision``     dtypes and autocast: what stages compute in
``check``         input checks, in one place
``geometry``      sampling rules, sizes, blocks, MCUs                    jdmaster.c
``coefficients``  Coefficients: quantized blocks, tables, sampling
``codec``         the composed pipeline: encode, decode, jpeg, DiffJPEG
``native``        the exact codec's values, compiled (_native.c)
``strips``        large images in strips of MCU rows, recomputed
``scan``          zigzag and MCU order, padding DC                       jccoefct.c
``huffman``       entropy coding, exact bit counts                       jchuff.c
``rate_model``    differentiable estimate of the bits: ``rate``
``rdo``           rate-distortion optimized encoding: ``encode_rdo``
``losses``        RateDistortionLoss: rate + lambda * distortion
``markers``       file structure checks, JPEGError                       jdmarker.c
``files``         read and write real .jpg files                         (reads: libjpeg, _libjpeg.c)
``sequential``    sequential files for ``write``                         jcmarker.c
``progressive``   progressive scans for ``write``                        jcphuff.c, jcparam.c
``augment``       random JPEG augmentation: RandomJPEG
================  =====================================================  ============================

The pipeline's functions and modules (``jpeg``, ``encode``, ``decode``,
``DiffJPEG``, ``RandomJPEG``, ...) take the image and ``quality`` by position
and everything else by name: ``mode=`` (``"exact"``, ``"float"``, ``"soft"``)
chooses the forward pass, ``rounding=`` the quantizer's surrogate (a name or
a :class:`rounding.Rounding`).

The applications live in ``diffjpeg.tools`` and are not imported here:
``tools.cli`` (the ``diffjpeg`` command), ``tools.demo`` (demo and compare),
``tools.images`` (the image loader), ``tools.qtables`` (learned quantization
tables, ``diffjpeg optimize-tables``), ``tools.bench`` (``diffjpeg bench``).
"""
from . import blocks, color, colorspace, dct, huffman, markers, quality, quantize, rate_model, rounding, sampling, smoothing
from .augment import RandomJPEG, RandomJPEGParams, random_jpeg
from .codec import DiffJPEG, JPEGDecoder, JPEGEncoder, decode, encode, jpeg
from .coefficients import Coefficients, Progression
from .files import read, read_batch, read_image, write
from .huffman import bits
from .losses import RateDistortion, RateDistortionLoss
from .markers import JPEGError
from .quality import quality_tables, standard_tables
from .rate_model import Rate, rate
from .rdo import encode_rdo
from .rounding import ROUNDINGS, Rounding, soft_round

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
