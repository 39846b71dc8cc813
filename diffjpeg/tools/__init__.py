"""The applications built on the codec; ``import diffjpeg`` imports none of them.

================  ============================================================
``cli``           the ``diffjpeg`` command: one parser for every subcommand
``demo``          ``diffjpeg demo`` and ``compare``: tables, recovery, figure
``images``        the one image loader; photos; image sets
``metrics``       PSNR
``progress``      a tqdm bar on a terminal, plain lines in logs
``reference``     the real codecs compared with: Pillow, OpenCV
``qtables``       learned quantization tables (``diffjpeg optimize-tables``)
``bench``         the benchmark suite (``diffjpeg bench``) and its helpers
================  ============================================================
"""
