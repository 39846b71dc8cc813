"""The optional compiled parts.

diffjpeg.backends._native (diffjpeg/backends/_native.c), the exact-codec kernel, needs GCC or
Clang (it uses their vector extensions). Without one the install goes on and
diffjpeg runs its tensor stages, with the same results
(diffjpeg.backends.exact.available() says which runs).

diffjpeg.backends._libjpeg (diffjpeg/backends/_libjpeg.c) reads files through jpeglib's
libjpeg-turbo with each call's own messages, from memory, GIL released.
Without it diffjpeg.read falls back to jpeglib itself (see its docstring for
what that loses).

diffjpeg.backends._sampling (diffjpeg/backends/_sampling.c), plain C, runs the real-valued
chroma sampling stages and their transposes in one pass each, with the
tensor operations' values; its products and sums must not be fused into
FMAs either. Without it diffjpeg.stages.sampling's tensor operations run.
diffjpeg.backends._rounding (diffjpeg/backends/_rounding.c) does the same for the clamp to
8-bit samples (diffjpeg.stages.rounding.clamp_ste); diffjpeg.backends._color
(diffjpeg/backends/_color.c) and diffjpeg.backends._dct (diffjpeg/backends/_dct.c) for the real-valued
color conversion and DCT, each output summed in one fixed order
(diffjpeg.stages.color.color_product, diffjpeg.stages.dct.block_transform).
diffjpeg.backends._quantize (diffjpeg/backends/_quantize.c) runs float and soft
mode's quantizer and every mode's gradient through it, one pass each way,
and jpeg()'s block pass (a block's DCT, quantizer and inverse DCT together);
its division and rounding must not be fused either.

diffjpeg.backends._lossless (diffjpeg/backends/_lossless.c), plain C, decodes lossless JPEG
scans; without it diffjpeg.codec.lossless does the same in Python, slowly.

diffjpeg.backends._trellis (diffjpeg/backends/_trellis.c), plain C, chooses rate-distortion
optimal quantized values for diffjpeg.codec.rdo; without it the same choices come
from numpy, slowly. Its costs must not be fused into FMAs, so that both
make the same choices.

diffjpeg/backends/_loops.h holds what _native, _sampling, _rounding, _color, _dct and _quantize share (which
toolchains also compile their loops for AVX2, a buffer's float kind); diffjpeg/backends/_dct.h one
block's transform, which _dct and _quantize share.
Everything else is declared in pyproject.toml.
"""
import sys

from setuptools import Extension, setup

flags = [] if sys.platform == "win32" else ["-O3"]
exact_float = [] if sys.platform == "win32" else ["-ffp-contract=off"]  # MSVC does not contract by default
# FP exception flags are nobody's concern here: lets GCC vectorize floor (values unchanged)
no_traps = [] if sys.platform == "win32" else ["-fno-trapping-math"]
loops = ["diffjpeg/backends/_loops.h"]  # included by the six below: a change rebuilds them, and the sdist carries it
blocks = loops + ["diffjpeg/backends/_dct.h"]  # one block's transform: the DCT loop's and the block pass's
dl = ["dl"] if sys.platform.startswith("linux") else []  # dlopen is in libdl before glibc 2.34
setup(
    ext_modules=[
        Extension("diffjpeg.backends._native", ["diffjpeg/backends/_native.c"], depends=loops, extra_compile_args=flags, optional=True),
        Extension("diffjpeg.backends._sampling", ["diffjpeg/backends/_sampling.c"], depends=loops, extra_compile_args=flags + exact_float + no_traps, optional=True),
        Extension("diffjpeg.backends._rounding", ["diffjpeg/backends/_rounding.c"], depends=loops, extra_compile_args=flags + exact_float, optional=True),
        Extension("diffjpeg.backends._color", ["diffjpeg/backends/_color.c"], depends=loops, extra_compile_args=flags + exact_float, optional=True),
        Extension("diffjpeg.backends._dct", ["diffjpeg/backends/_dct.c"], depends=blocks, extra_compile_args=flags + exact_float, optional=True),
        Extension("diffjpeg.backends._quantize", ["diffjpeg/backends/_quantize.c"], depends=blocks, extra_compile_args=flags + exact_float + no_traps, optional=True),
        Extension("diffjpeg.backends._lossless", ["diffjpeg/backends/_lossless.c"], extra_compile_args=flags, optional=True),
        Extension("diffjpeg.backends._trellis", ["diffjpeg/backends/_trellis.c"], extra_compile_args=flags + exact_float, optional=True),
        Extension("diffjpeg.backends._libjpeg", ["diffjpeg/backends/_libjpeg.c"], extra_compile_args=flags, libraries=dl, optional=True),
    ]
)
