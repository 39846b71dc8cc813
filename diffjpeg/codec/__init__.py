"""The codec: the stages composed, and real files.

``plan`` (each call's arguments checked and resolved once, its backend
chosen), ``pipeline`` (``encode``, ``decode``, ``jpeg``, the ``nn.Module`` forms),
``strips`` (large images in strips of MCU rows), ``files`` (``read``,
``write``, ``read_image``), ``lossless`` (lossless files to pixels; jdlossls.c)
and ``rdo`` (rate-distortion optimized encoding). Imports every layer below.
"""
