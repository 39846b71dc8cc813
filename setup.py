"""The compiled exact-codec kernel (diffjpeg/_native.c).

Optional: without a C compiler the install goes on and diffjpeg runs its
pure-PyTorch path, with the same results (diffjpeg.native.available() says
which is in use). Everything else is declared in pyproject.toml.
"""
import sys

from setuptools import Extension, setup

flags = [] if sys.platform == "win32" else ["-O3"]
setup(ext_modules=[Extension("diffjpeg._native", ["diffjpeg/_native.c"], extra_compile_args=flags, optional=True)])
