"""Image quality measures the tools report: PSNR."""
from __future__ import annotations

import math

import numpy as np


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB between two uint8 arrays; ``inf`` when identical.

    Example:
        >>> psnr(np.zeros((2, 2), np.uint8), np.full((2, 2), 255, np.uint8))
        0.0
    """
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)
