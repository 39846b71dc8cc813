"""The benchmark suite (``diffjpeg bench``) and the helpers the scripts in ``benchmarks/`` share.

============  ===============================================================
``suite``     fidelity, speed and memory, gradient usefulness: report.md
``methods``   the differentiable JPEGs compared, by name; photos
``machine``   the machine and versions a report was measured on
``report``    Markdown tables, plots, the best-of-N timer
============  ===============================================================
"""
