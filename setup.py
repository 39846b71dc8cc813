"""The compiled exact-codec kernel (diffjpeg/_native.c).

Optional: it needs GCC or Clang (it uses their vector extensions). Without
one the install goes on and diffjpeg runs its tensor stages, with the same
results (diffjpeg.native.available() says which runs). Everything else is
declared in pyproject.toml.
"""
import sys

from setuptools import Extension, setup

flags = [] if sys.platform == "win32" else ["-O3"]
setup(ext_modules=[Extension("diffjpeg._native", ["diffjpeg/_native.c"], extra_compile_args=flags, optional=True)])
