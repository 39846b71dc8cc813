"""The forward passes: ``mode=`` of the codec and of every stage.

* ``"exact"``: libjpeg-turbo's integer pipeline, bit for bit; the gradient
  is the rounding surrogate's (straight-through by default).
* ``"float"``: the real-valued stages with the hard rounding in the forward
  pass; the same surrogate gradient.
* ``"soft"``: the real-valued stages with the surrogate in the forward pass
  too, and no 8-bit rounding; its backward is its true gradient.

What each promises numerically is in the docs (``docs/modes.rst``).
"""
from __future__ import annotations

from typing import Literal, get_args

Mode = Literal["exact", "float", "soft"]
MODES: tuple[str, ...] = get_args(Mode)
