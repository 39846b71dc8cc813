"""The backends: compiled forms of what the stages define, same values bit for bit.

``cpu`` (the switch, the thread pool, the real-valued stages' one-pass
loops, which fill :mod:`diffjpeg.core.dispatch`'s slots), ``exact`` (the
exact codec's encode and decode in one compiled pass per strip), and the C
sources: ``_native.c``, ``_sampling.c``, ``_rounding.c``, ``_dct.c``,
``_color.c`` (sharing ``_loops.h``), ``_lossless.c``, ``_trellis.c`` and
``_libjpeg.c``; ``gpu`` (Triton kernels for CUDA tensors: the exact codec
in ``gpu_encoder`` and ``gpu_decoder``, the real-valued stages' slots in
``gpu_stages``, the kernel modules imported with Triton on first use). Each is
optional: without a C compiler or Triton the tensor forms run. Imports the
stages and the core.
"""
from . import cpu, exact, gpu, gpu_stages  # cpu, gpu and gpu_stages fill the stages' kernel slots (core.dispatch) as they are imported

__all__ = ["cpu", "exact", "gpu", "gpu_stages"]
