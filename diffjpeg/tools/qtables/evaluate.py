"""Learned tables scored with real files: Pillow writes and reads them; BD-rate compares the curves.

:func:`bd_rate` is the Bjontegaard delta rate with PCHIP (monotone cubic)
interpolation of log rate against PSNR, written out (no SciPy). The benchmarks'
protocol (``benchmarks/tables.py``, task (d) of ``benchmarks/surrogates.py``):
the IJG anchor at :data:`QUALITIES` (:func:`ijg_curve`), a learned pair of
tables scaled by libjpeg's quality formula over the same qualities
(:func:`scaled_curve`), :func:`curve_bd_rate` between the two, and the
lambda that matches an IJG quality (:func:`slope_lambdas`).
"""
from __future__ import annotations

import numpy as np
import torch  # noqa: F401 - the doctests

from ...core.geometry import SUBSAMPLINGS, Subsampling
from ..images import ImageSet
from ..metrics import psnr
from ..reference import pillow_decode, pillow_jpeg
from .files import pillow_qtables, scaled_qtables

QUALITIES = (30, 40, 50, 60, 70, 80, 90, 95)  # the qualities of the benchmarks' BD-rate curves


def evaluate_qtables(images, qtables=None, quality=None, subsampling: Subsampling = "4:2:0", optimize: bool = True) -> dict:
    """Write each image as a real JPEG file with Pillow, read it back, measure bytes and PSNR.

    Args:
        images: as in :func:`learn_qtables` (whole images are used).
        qtables: ``(2, 8, 8)`` integer tables 1..255, or ``None`` for Pillow's
            own quality scaling of the standard tables (then ``quality`` is needed).
        quality: the IJG quality when ``qtables`` is ``None``.
        subsampling: ``"4:4:4"``, ``"4:2:2"`` or ``"4:2:0"``.
        optimize: Pillow's ``optimize=True`` (optimized Huffman tables).

    Returns:
        dict: ``{"bytes": [...], "psnr": [...], "pixels": [...], "bpp": total bits
        / total pixels, "mean_psnr": mean of the per-image PSNR (dB)}``.

    Example:
        >>> r = evaluate_qtables(torch.rand(1, 3, 16, 16), quality=75)
        >>> r["bytes"][0] > 0 and r["psnr"][0] > 10
        True
    """
    if subsampling not in SUBSAMPLINGS:
        raise ValueError(f"subsampling must be one of {SUBSAMPLINGS}, got {subsampling!r}")
    if qtables is None and quality is None:
        raise ValueError("give qtables or quality")
    tables = None if qtables is None else pillow_qtables(qtables)
    data = images if isinstance(images, ImageSet) else ImageSet(images)
    originals = (data[i].permute(1, 2, 0).numpy() for i in range(len(data)))  # one at a time: large folders
    return score_files((a, pillow_jpeg(a, quality, subsampling, optimize=bool(optimize), qtables=tables)) for a in originals)


def score_files(pairs) -> dict:
    """Bytes and PSNR of JPEG files against their originals, each file decoded by Pillow to RGB.

    Args:
        pairs: ``(original (H, W, 3) uint8, file bytes)`` per image (any iterable).

    Returns:
        the dict of :func:`evaluate_qtables`.
    """
    sizes, psnrs, pixels = [], [], []
    for a, data in pairs:
        sizes.append(len(data))
        psnrs.append(psnr(a, pillow_decode(data, "RGB")))
        pixels.append(a.shape[0] * a.shape[1])
    return {"bytes": sizes, "psnr": psnrs, "pixels": pixels, "bpp": 8 * sum(sizes) / sum(pixels), "mean_psnr": float(np.mean(psnrs))}


def ijg_curve(images, qualities=QUALITIES) -> list[dict]:
    """:func:`evaluate_qtables` of the IJG tables (Pillow's quality scaling) at each quality: the anchor."""
    return [evaluate_qtables(images, quality=q) for q in qualities]


def scaled_curve(images, qtables, qualities=QUALITIES) -> list[dict]:
    """:func:`evaluate_qtables` of base tables scaled by libjpeg's quality formula at each quality.

    Example:
        >>> from diffjpeg import standard_tables
        >>> x = torch.rand(1, 3, 32, 32)
        >>> [r["bytes"] for r in scaled_curve(x, standard_tables(), (50, 75))] == [r["bytes"] for r in ijg_curve(x, (50, 75))]
        True
    """
    return [evaluate_qtables(images, qtables=scaled_qtables(qtables, q)) for q in qualities]


def curve_bd_rate(anchor: list[dict], test: list[dict]) -> float:
    """:func:`bd_rate` (percent) of two curves of :func:`evaluate_qtables` results (total bpp, mean PSNR)."""
    return bd_rate([c["bpp"] for c in anchor], [c["mean_psnr"] for c in anchor], [c["bpp"] for c in test], [c["mean_psnr"] for c in test])


def slope_lambdas(images, wanted, step: int = 3) -> dict[int, float]:
    """The lambda of rate + lambda * MSE that matches each IJG quality in ``wanted``: the slope
    -d(bpp)/d(MSE) of the IJG curve on ``images``, a central difference over ``q - step`` .. ``q + step``
    (MSE on the 0..255 scale, pooled over pixels)."""
    out = {}
    for q in wanted:
        lo, hi = (evaluate_qtables(images, quality=v) for v in (q - step, min(q + step, 100)))
        mse = [float(np.sum(255**2 / 10 ** (np.array(r["psnr"]) / 10) * r["pixels"]) / np.sum(r["pixels"])) for r in (lo, hi)]
        out[q] = float(-(hi["bpp"] - lo["bpp"]) / (mse[1] - mse[0]))
    return out


# ---------------------------------------------------------------- Bjontegaard delta rate
def _pchip_slopes(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Fritsch-Carlson monotone slopes (as SciPy's PchipInterpolator)."""
    h = np.diff(x)
    delta = np.diff(y) / h
    n = len(x)
    d = np.zeros(n)
    if n == 2:
        return np.full(2, delta[0])
    for k in range(1, n - 1):
        if delta[k - 1] * delta[k] > 0:
            w1, w2 = 2 * h[k] + h[k - 1], h[k] + 2 * h[k - 1]
            d[k] = (w1 + w2) / (w1 / delta[k - 1] + w2 / delta[k])

    def end(h0, h1, m0, m1):
        s = ((2 * h0 + h1) * m0 - h0 * m1) / (h0 + h1)
        if np.sign(s) != np.sign(m0):
            return 0.0
        if np.sign(m0) != np.sign(m1) and abs(s) > abs(3 * m0):
            return 3 * m0
        return s

    d[0] = end(h[0], h[1], delta[0], delta[1])
    d[-1] = end(h[-1], h[-2], delta[-1], delta[-2])
    return d


def _pchip_integral(x: np.ndarray, y: np.ndarray, lo: float, hi: float) -> float:
    """Integral over [lo, hi] of the monotone cubic Hermite interpolant through (x, y)."""
    d = _pchip_slopes(x, y)
    total = 0.0
    for k in range(len(x) - 1):
        a, b = max(lo, x[k]), min(hi, x[k + 1])
        if b <= a:
            continue
        h = x[k + 1] - x[k]
        # the cubic on this interval in t = (s - x_k) / h, integrated in closed form from ta to tb
        c0, c1 = y[k], d[k] * h
        c2 = 3 * (y[k + 1] - y[k]) - (2 * d[k] + d[k + 1]) * h
        c3 = 2 * (y[k] - y[k + 1]) + (d[k] + d[k + 1]) * h
        prim = lambda t: c0 * t + c1 * t**2 / 2 + c2 * t**3 / 3 + c3 * t**4 / 4  # noqa: E731
        total += h * (prim((b - x[k]) / h) - prim((a - x[k]) / h))
    return total


def bd_rate(rate_anchor, psnr_anchor, rate_test, psnr_test) -> float:
    """Bjontegaard delta rate (percent) of ``test`` against ``anchor``.

    The average difference of log rate at equal PSNR over the PSNR range both
    curves cover, with log10(rate) interpolated as a piecewise cubic monotone
    (PCHIP) function of PSNR, as in the VCEG/JVET practice; negative means
    ``test`` needs fewer bits. At least two points per curve, PSNRs strictly
    monotone in rate.

    Example:
        >>> round(bd_rate([1, 2, 4, 8], [30, 33, 36, 39], [0.9, 1.8, 3.6, 7.2], [30, 33, 36, 39]), 6)
        -10.0
    """
    curves = []
    for name, r, p in (("anchor", rate_anchor, psnr_anchor), ("test", rate_test, psnr_test)):
        r, p = np.asarray(r, dtype=np.float64), np.asarray(p, dtype=np.float64)
        if r.shape != p.shape or r.ndim != 1 or len(r) < 2:
            raise ValueError(f"{name}: rates and PSNRs must be 1-D of the same length >= 2")
        if not (np.all(np.isfinite(r)) and np.all(np.isfinite(p)) and np.all(r > 0)):
            raise ValueError(f"{name}: rates must be finite and > 0, PSNRs finite")
        order = np.argsort(p)
        p, lr = p[order], np.log10(r[order])
        if np.any(np.diff(p) <= 0):
            raise ValueError(f"{name}: PSNRs must be distinct")
        curves.append((p, lr))
    lo = max(curves[0][0][0], curves[1][0][0])
    hi = min(curves[0][0][-1], curves[1][0][-1])
    if hi <= lo:
        raise ValueError("the two curves' PSNR ranges do not overlap")
    integrals = [_pchip_integral(p, lr, lo, hi) for p, lr in curves]
    return float((10 ** ((integrals[1] - integrals[0]) / (hi - lo)) - 1) * 100)
