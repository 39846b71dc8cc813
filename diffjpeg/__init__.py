"""diffjpeg: JPEG as a differentiable PyTorch layer, bit-exact with libjpeg-turbo.

Stages, one module each, in pipeline order:

=================  =====================================  ======================
module             stage                                  libjpeg-turbo source
=================  =====================================  ======================
``color``          RGB <-> YCbCr, YCCK -> CMYK, pixels    jccolor.c, jdcolor.c
``colorspace``     files' color spaces: told and marked   jdapimin.c, jcparam.c
``sampling``       chroma down- and upsampling            jcsample.c, jdsample.c
``blocks``         edge padding, 8x8 blocks               jcprepct.c, jdmainct.c
``dct``            level shift, DCT and IDCT              jfdctint.c, jidctint.c
``quality``        quality-scaled quantization tables     jcparam.c
``quantize``       quantization and dequantization        jcdctmgr.c
``rounding``       surrogate gradients
``precision``      dtypes and autocast: what stages compute in
``check``          input checks, in one place
``geometry``       sampling rules, sizes, blocks, MCUs     jdmaster.c
``codec``          the composed pipeline: encode, decode, jpeg, DiffJPEG
``native``         the exact codec's values, compiled (_native.c)
``scan``           zigzag and MCU order, padding DC       jccoefct.c
``huffman``        entropy coding, exact bit counts       jchuff.c
``rate``           differentiable estimate of the bits
``losses``         RateDistortionLoss: rate + lambda * distortion
``markers``        file structure checks, JPEGError       jdmarker.c
``files``          read and write real .jpg files         (reads: libjpeg, _libjpeg.c)
``sequential``     sequential files for ``write``         jcmarker.c
``progressive``    progressive scans for ``write``        jcphuff.c, jcparam.c
``augment``        random JPEG augmentation: RandomJPEG
=================  =====================================  ======================

The applications live in ``diffjpeg.tools`` and are not imported here:
``tools.cli`` (the ``diffjpeg`` command), ``tools.demo`` (demo and compare),
``tools.images`` (the image loader), ``tools.qtables`` (learned quantization
tables, ``diffjpeg optimize-tables``), ``tools.bench`` (``diffjpeg bench``).
"""
from . import blocks, color, colorspace, dct, huffman, markers, quality, quantize, rounding, sampling
from . import rate as _rate_module
from .augment import RandomJPEG, RandomJPEGParams, random_jpeg
from .codec import DiffJPEG, JPEGDecoder, JPEGEncoder, decode, encode, jpeg
from .coefficients import Coefficients
from .files import read, read_batch, write
from .huffman import bits
from .losses import RateDistortion, RateDistortionLoss
from .markers import JPEGError
from .quality import quality_tables, standard_tables
from .rate import Rate, rate
from .rounding import ROUNDINGS, soft_round

__all__ = [
    "Coefficients",
    "DiffJPEG",
    "JPEGDecoder",
    "JPEGEncoder",
    "JPEGError",
    "ROUNDINGS",
    "RandomJPEG",
    "RandomJPEGParams",
    "Rate",
    "RateDistortion",
    "RateDistortionLoss",
    "bits",
    "decode",
    "encode",
    "jpeg",
    "quality_tables",
    "random_jpeg",
    "rate",
    "read",
    "read_batch",
    "soft_round",
    "standard_tables",
    "write",
]
__version__ = "0.1.0"
