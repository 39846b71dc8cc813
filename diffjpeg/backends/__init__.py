"""The backends: compiled forms of what the stages define, same values bit for bit.

``cpu`` (the switch, the thread pool, the real-valued stages' one-pass
loops, which fill :mod:`diffjpeg.core.dispatch`'s slots), ``exact`` (the
exact codec's encode and decode in one compiled pass per strip), and the C
sources: ``_native.c``, ``_sampling.c``, ``_rounding.c``, ``_dct.c``,
``_color.c`` (sharing ``_loops.h``), ``_lossless.c``, ``_trellis.c`` and
``_libjpeg.c``; ``gpu`` (Triton kernels for CUDA tensors, the kernels
themselves in ``gpu_kernels``, imported with Triton on first use). Each is
optional: without a C compiler or Triton the tensor forms run. Imports the
stages and the core.
"""
from . import cpu, exact, gpu  # cpu and gpu fill the stages' kernel slots (core.dispatch) as they are imported

__all__ = ["cpu", "exact", "gpu"]
