"""The stages: one module per libjpeg-turbo stage, its exact integer form
beside its differentiable form, each opening with the facts it relies on.

Encoder order: ``color`` (jccolor.c), ``sampling`` (jcsample.c),
``blocks`` (jcprepct.c), ``dct`` (jfdctint.c), ``quality`` (jcparam.c),
``quantize`` (jcdctmgr.c) with ``rounding``'s surrogate gradients; the
decoder runs them back (jidctint.c, jdsample.c, jdcolor.c), ``dctmgr``
(jcdctmgr.c, jddctmgr.c) runs a block's DCT, quantizer and inverse DCT
together for :func:`diffjpeg.jpeg`'s float and soft mode, with
``smoothing`` (jdcoefct.c) for progressive files that stop early. Stages
import only :mod:`diffjpeg.core` and each other.
"""
