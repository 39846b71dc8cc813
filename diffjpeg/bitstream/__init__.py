"""The bitstream: what a JPEG file holds and what it costs in bits.

``markers`` (file structure, :class:`JPEGError`; jdmarker.c), ``huffman``
(entropy coding, exact bit counts; jchuff.c), ``sequential`` and
``progressive`` (the scans ``write`` emits; jcmarker.c, jcphuff.c) and
``rate_model`` (the differentiable estimate of the bits). Imports only
:mod:`diffjpeg.core`.
"""
