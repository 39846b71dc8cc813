"""The backends: compiled forms of what the stages define, same values bit for bit.

``cpu`` (the switch, the thread pool, the real-valued stages' one-pass
loops, which fill :mod:`diffjpeg.core.dispatch`'s slots), ``exact`` (the
exact codec's encode and decode in one compiled pass per strip), and the C
sources: ``_native.c``, ``_sampling.c``, ``_rounding.c``, ``_dct.c``,
``_color.c`` (sharing ``_loops.h``), ``_lossless.c``, ``_trellis.c`` and
``_libjpeg.c``. Each is optional: without a C compiler the tensor forms run.
Imports the stages and the core; the GPU kernels of the future belong here.
"""
from . import cpu, exact  # cpu fills the stages' kernel slots (core.dispatch) as it is imported

__all__ = ["cpu", "exact"]
