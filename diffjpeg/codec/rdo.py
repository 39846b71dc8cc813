"""Rate-distortion optimized encoding: the quantized values that cost the fewest bits for their error.

:func:`encode_rdo` writes ordinary baseline (or progressive) JPEG files, read
by every decoder, whose quantized DCT coefficients are chosen to minimize

    J = bits + lambda * D

instead of being rounded one by one: a coefficient whose nonzero value costs
more bits than the error it saves becomes 0 (or a smaller value, in a
cheaper size category), and a DC value moves to the neighbour that makes the
next difference cheaper. ``bits`` is the length of the entropy-coded scan with
the Huffman tables built for these very values (libjpeg's
``optimize_coding``), ``D`` the squared error of the decoded image.

Facts relied on:

* JPEG's DCT is orthonormal, so within a component the squared error of the
  decoded samples equals the squared error of the dequantized coefficients
  against the real DCT of the encoder's samples (up to the 8-bit roundings
  of the integer inverse DCT and the color conversion): D is computed in the
  coefficient domain, exactly for every choice, with no decode.
* The RGB error a component's error makes follows from the decoder's color
  matrix and upsampler, both linear: a Y error reaches R, G and B alike, a
  Cb error ``0.344`` and ``1.772`` of it, a Cr error ``1.402`` and ``0.714``;
  a subsampled chroma coefficient's error is spread by the fancy upsampler
  (a triangle filter) over more pixels, with less energy at high
  frequencies. :func:`distortion_weights` computes the weight of each
  component's coefficients from these (the upsampler's real filter applied to
  each DCT basis function), so that D is the RGB squared error / 3 that PSNR
  measures.
* A baseline scan codes each block's AC values as (run, size) Huffman symbols,
  one ZRL per 16 zeros of a run, and an EOB after the last nonzero value
  unless it is at zigzag position 63; each value adds ``size`` extra bits
  (:mod:`diffjpeg.bitstream.huffman`). The bits of a block's AC given the code lengths
  therefore depend only on the positions and size categories of its nonzero
  values, and the choice is exact dynamic programming over zigzag positions
  (the state: where the last nonzero value is), as mozjpeg's trellis
  quantization does, here with the code lengths of the optimized Huffman
  tables themselves rather than fixed ones. At a position only the value of
  each size category nearest the coefficient can be optimal (its bits depend
  on the size alone).
* DC values are coded as differences along each component's blocks in coding
  order (:mod:`diffjpeg.core.scan`; MCU padding blocks repeat the previous DC and
  depend on no choice): a Viterbi pass over the chain, the floor or ceiling
  of each coefficient / step.
* The Huffman tables are built from the values' symbol counts, and the best
  values depend on the tables' code lengths: each pass re-optimizes the
  values with the previous pass's tables (symbols unused so far cost one bit
  more than the longest code), then rebuilds the tables. Each pass's J is
  then at most the previous one's, up to the few symbols given a guessed
  cost; the encoder keeps the best pass, plain rounding included, by the J
  of its own optimal tables (bits exact but for the stuffed ``00`` bytes and
  the final padding, about 0.4% of the scan).

The tables: by default the project's learned tables (:data:`LEARNED_TABLES`,
``benchmarks/tables.py``), scaled by ``quality`` as libjpeg scales its own;
or any base tables with ``quality``, or tables as given. The default
``lambda`` follows the tables' step size (:func:`default_lambda`), the slope
of a uniform quantizer's rate-distortion curve.

The choices run in C (``diffjpeg/backends/_trellis.c``, built at install beside the
codec's kernel); without a compiler, in numpy, slowly, with the same results.
"""
from __future__ import annotations

import math
from functools import lru_cache
from typing import Callable

import numpy as np
import torch
from torch import Tensor

from ..bitstream.huffman import EOB, MAX_AC_SIZE, MAX_DC_SIZE, ZRL, optimal_table
from ..core.check import check_image, check_subsampling, is_number
from ..core.coefficients import Coefficients
from ..core.geometry import Subsampling, component_geometry, mcu_counts, subsampling_factors
from ..core.scan import ZIGZAG, coding_order
from ..stages.blocks import replicate_edges, split_blocks
from ..stages.color import rgb_to_ycbcr_fixed
from ..stages.dct import fdct
from ..stages.quality import DEFAULT_QUALITY
from ..stages.sampling import downsample_biased, upsample
from .plan import resolve_tables

try:
    from ..backends import _trellis as _kernel
except ImportError:  # built without a C compiler
    _kernel = None

# Learned by benchmarks/tables.py (benchmarks/results/tables.json, run
# "select/exact/sigmoid": bits + lambda * MSE at the lambda of IJG quality 50,
# 4 training photos, 4:2:0); luma, chroma, natural order. Quality 50 uses them
# as they are; other qualities scale them as libjpeg scales the IJG tables.
LEARNED_TABLES = (
    ((20, 23, 22, 20, 19, 18, 18, 17), (24, 22, 20, 19, 18, 17, 17, 18),
     (21, 21, 20, 19, 18, 17, 17, 17), (20, 19, 18, 18, 17, 18, 17, 17),
     (17, 18, 18, 17, 17, 18, 17, 16), (18, 17, 17, 17, 17, 17, 17, 17),
     (16, 16, 17, 17, 17, 16, 15, 15), (17, 17, 18, 17, 17, 16, 16, 13)),
    ((16, 13, 13, 12, 17, 17, 17, 18), (13, 12, 12, 12, 13, 13, 12, 14),
     (11, 12, 12, 13, 12, 11, 11, 12), (12, 13, 15, 12, 11, 11, 12, 13),
     (17, 14, 13, 12, 12, 11, 11, 12), (16, 13, 12, 11, 12, 11, 12, 12),
     (15, 12, 12, 11, 12, 12, 12, 13), (15, 12, 12, 12, 13, 13, 13, 13)),
)  # fmt: skip

# lambda = LAMBDA_SCALE / (geometric mean of the luma steps)^2. A uniform
# quantizer of step q at high rate has D = q^2 / 12 per coefficient and loses
# one bit per halving of q: -dR/dD = 6 / (ln 2 q^2) = 8.7 / q^2. The scale
# itself was chosen by BD-rate on the training photos of benchmarks/tables.py
# (benchmarks/rdo.py).
LAMBDA_SCALE = 8.7
PASSES = {1: 1, 2: 2, 3: 3}  # effort -> passes of value choice and table rebuilding
EFFORTS = tuple(PASSES)
DEFAULT_EFFORT = 2
# color weights: the squared RGB error of a unit error in Y, Cb, Cr (libjpeg's
# jdcolor.c matrix), / 3 so that a Y error weighs 1
COLOR_WEIGHTS = (1.0, (0.34414**2 + 1.772**2) / 3, (1.402**2 + 0.71414**2) / 3)


def compiled() -> bool:
    """Whether the compiled choices (``diffjpeg.backends._trellis``) were built."""
    return _kernel is not None


def learned_tables(dtype=torch.float32, device=None) -> Tensor:
    """:data:`LEARNED_TABLES` as a ``(2, 8, 8)`` tensor (luma, chroma; natural order).

    Example:
        >>> learned_tables()[0, 0, :4]
        tensor([20., 23., 22., 20.])
    """
    return torch.tensor(LEARNED_TABLES, dtype=dtype, device=device)


def default_lambda(tables: Tensor) -> float:
    """The ``lambda`` :func:`encode_rdo` uses with these tables: bits per unit
    of squared error (0..255 scale), :data:`LAMBDA_SCALE` / (geometric mean of
    the luma table)^2.

    Example:
        >>> round(default_lambda(torch.full((2, 8, 8), 10.0)), 4)
        0.087
    """
    luma = tables.detach().double().reshape(-1, 2, 64)[0, 0]
    return LAMBDA_SCALE / float(torch.exp(torch.log(luma).mean())) ** 2


@lru_cache(maxsize=32)
def _upsampling_gains(scale: tuple[int, int]) -> np.ndarray:
    """Energy at full resolution of each unit DCT basis function of a
    subsampled component, through the decoder's upsampler (real filter), in
    the middle of a plane of zeros: ``(64,)`` natural order."""
    if scale == (1, 1):
        return np.ones(64)
    basis = torch.eye(64, dtype=torch.float64).reshape(64, 8, 8)
    dct = fdct(basis + 128.0, "float").reshape(64, 64)  # row k: the DCT of pixel k
    planes = torch.zeros(64, 24, 24, dtype=torch.float64)
    planes[:, 8:16, 8:16] = dct.T.reshape(64, 8, 8)  # column j: basis function j at each pixel (orthonormal)
    up = upsample(planes, scale[0], scale[1], "soft")
    return (up**2).sum((-2, -1)).numpy()


def distortion_weights(subsampling: Subsampling = "4:2:0", channels: int = 3) -> list[np.ndarray]:
    """Per component, the weight of each coefficient's squared error in ``D``
    (the decoded RGB image's squared error summed over pixels / 3, or the
    gray image's), ``(64,)`` float64 in natural order.

    Example:
        >>> w = distortion_weights("4:2:0")
        >>> float(w[0][0]), round(float(w[1][0]), 2), round(float(w[1][63]), 2)
        (1.0, 3.95, 0.33)
    """
    subsampling = check_subsampling(subsampling)
    factors = subsampling_factors(subsampling, channels)
    if channels == 1:
        return [np.ones(64)]
    largest = factors[0]
    return [COLOR_WEIGHTS[ci] * _upsampling_gains((largest[0] // h, largest[1] // v)) for ci, (h, v) in enumerate(factors)]


# ---------------------------------------------------------------- the encoder's samples
def _component_blocks(samples: Tensor, factors) -> list[np.ndarray]:
    """The real DCT ``(rows, cols, 64)`` float64 (natural order) of each
    component of one image's int32 samples ``(C, H, W)``: libjpeg's integer
    color conversion, edge replication and downsampling, then the orthonormal DCT."""
    channels, height, width = samples.shape
    planes = rgb_to_ycbcr_fixed(samples.unsqueeze(0))[0] if channels == 3 else samples
    out = []
    for ci, f in enumerate(factors):
        geo = component_geometry((height, width), f, factors[0])
        plane = replicate_edges(planes[ci], *geo.padded)
        plane = downsample_biased(plane, geo.scale[0], geo.scale[1])
        plane = replicate_edges(plane, geo.blocks[0] * 8, geo.blocks[1] * 8)
        blocks = fdct(split_blocks(plane).to(torch.float64), "float")
        out.append(blocks.reshape(*blocks.shape[:2], 64).numpy())
    return out


def _chain_order(blocks: tuple[int, int], factors, mcus) -> tuple[np.ndarray, int]:
    """Flat indices of a component's real blocks in coding order, and its number of MCU padding blocks."""
    index = torch.arange(blocks[0] * blocks[1]).reshape(blocks)
    ordered, real = coding_order(index, factors, mcus)
    keep = real.flatten()
    return ordered.flatten()[keep].numpy(), int((~keep).sum())


# ---------------------------------------------------------------- symbol counts and costs
def _nbits(x: np.ndarray) -> np.ndarray:
    x = np.abs(x).astype(np.int64)
    out = np.zeros(x.shape, np.int64)
    while bool(x.any()):
        out += x > 0
        x = x >> 1
    return out


def ac_counts(values: np.ndarray) -> np.ndarray:
    """Counts of the 256 AC symbols a baseline scan codes for integer blocks ``(N, 64)`` (natural order).

    Example:
        >>> v = np.zeros((2, 64), np.int32); v[0, 1] = 3; v[0, 63] = -1
        >>> c = ac_counts(v); int(c[0x02]), int(c[0xF0]), int(c[0xD1]), int(c[EOB])
        (1, 3, 1, 1)
    """
    z = values.reshape(-1, 64)[:, list(ZIGZAG[1:])]
    nonzero = z != 0
    positions = np.arange(1, 64)
    marks = np.where(nonzero, positions, 0)
    previous = np.maximum.accumulate(np.concatenate([np.zeros((len(z), 1), np.int64), marks[:, :-1]], 1), axis=1)
    run = (positions - previous - 1)[nonzero]
    symbols = ((run & 15) << 4) | _nbits(z[nonzero])
    counts = np.bincount(symbols, minlength=256).astype(np.int64)
    counts[ZRL] += int((run >> 4).sum())
    counts[EOB] += int((~nonzero[:, -1]).sum())
    return counts


def dc_counts(dc: np.ndarray, padding: int) -> np.ndarray:
    """Counts of the 12 DC size symbols of one component's chain of DC values
    (coding order, real blocks), ``padding`` MCU padding blocks adding size 0."""
    diff = np.diff(dc.astype(np.int64), prepend=0)
    counts = np.bincount(_nbits(diff), minlength=MAX_DC_SIZE + 1).astype(np.int64)
    counts[0] += padding
    return counts


def code_lengths(counts: np.ndarray) -> np.ndarray:
    """Code length (bits) of each symbol in the optimal table for ``counts``
    (libjpeg's); 0 for unused symbols."""
    counts = np.asarray(counts, np.int64)
    full = np.zeros(256, np.int64)
    full[: len(counts)] = counts
    lengths, _ = optimal_table(full).code_lengths_and_codes()
    return lengths[: len(counts)]


def _costs(counts: np.ndarray) -> np.ndarray:
    """Bits of each symbol's code for the next pass: the optimal table's
    lengths, one bit more than the longest for symbols it leaves out."""
    if counts.sum() == 0:
        return np.full(len(counts), 8.0)
    lengths = code_lengths(counts).astype(np.float64)
    lengths[lengths == 0] = lengths.max() + 1
    return lengths


def _scan_bits(tables: dict) -> int:
    """Bits of a scan from its symbol counts per Huffman table: codes of the
    optimal tables, extra bits, the padding to a byte; not the stuffed bytes."""
    total = 0
    for (kind, _), counts in tables.items():
        if counts.sum() == 0:
            continue
        sizes = np.arange(len(counts)) & 15 if kind == "ac" else np.arange(len(counts))
        total += int((counts * (code_lengths(counts) + sizes)).sum())
    return (total + 7) // 8 * 8


# ---------------------------------------------------------------- the choices, numpy (the C kernel's twin)
def _ac_trellis_numpy(coef: np.ndarray, table: np.ndarray, weight: np.ndarray, cost: np.ndarray, out: np.ndarray, counts: np.ndarray) -> None:
    """:func:`diffjpeg.backends._trellis.ac` in numpy: the same costs, in the same order of operations."""
    zz = np.array(ZIGZAG)
    sizes = np.arange(1, MAX_AC_SIZE + 1)
    for start in range(0, len(coef), 1024):
        c = coef[start:start + 1024][:, zz]
        n = len(c)
        q, w = table[zz], weight[zz]
        sign = np.where(c < 0, -1, 1)
        a = np.abs(c)
        r = np.minimum(np.floor(a / q + 0.5), 1023).astype(np.int64)
        z = np.zeros((n, 64))
        z[:, 1:] = np.cumsum(w[1:] * a[:, 1:] * a[:, 1:], axis=1)  # sequential sums, as the C loop adds
        best = np.full((n, 64), np.inf)
        best[:, 0] = 0.0
        prev = np.zeros((n, 64), np.int64)
        val = np.zeros((n, 64), np.int64)
        for i in range(1, 64):
            top = _nbits(r[:, i])
            active = top > 0
            if not active.any():
                continue
            v = np.where(sizes < top[:, None], (1 << sizes) - 1, r[:, i:i + 1])  # (n, S)
            e = a[:, i:i + 1] - v * q[i]
            d = w[i] * e * e
            j = np.arange(i)
            run = i - 1 - j
            base = best[:, :i] + (z[:, i - 1:i] - z[:, :i]) + (run >> 4) * cost[ZRL]  # (n, i)
            total = base[:, None, :] + cost[((run & 15) << 4)[None, :] | sizes[:, None]][None] + sizes[None, :, None] + d[:, :, None]
            total[~(sizes[None, :] <= top[:, None])] = np.inf
            flat = total.reshape(n, -1)
            pick = np.argmin(flat, axis=1)  # the first minimum: smaller size, then earlier predecessor
            found = flat[np.arange(n), pick]
            best[:, i] = np.where(active, found, np.inf)
            prev[:, i] = pick % i
            val[:, i] = v[np.arange(n), pick // i]
        e = np.arange(64)
        ends = best + (z[:, 63:64] - z) + np.where(e < 63, cost[EOB], 0.0)
        last = np.argmin(ends, axis=1)
        values = np.zeros((n, 64), np.int64)
        position = last.copy()
        rows = np.arange(n)
        while True:
            live = position > 0
            if not live.any():
                break
            at = position[live]
            values[rows[live], at] = (sign * val)[rows[live], at]
            position[live] = prev[rows[live], at]
        block = out[start:start + n]
        dc = block[:, 0].copy()
        block[:, zz] = values
        block[:, 0] = dc
        counts += ac_counts(block)


def _dc_trellis_numpy(coef: np.ndarray, q: float, w: float, cost: np.ndarray, out: np.ndarray, counts: np.ndarray) -> None:
    """:func:`diffjpeg.backends._trellis.dc` in Python: the same Viterbi pass, the same order of operations."""
    n = len(coef)
    cost = [float(x) for x in cost]
    prev_cost, prev_value = [0.0, math.inf], [0, 0]
    source = np.zeros((n, 2), np.int64)
    values = np.zeros((n, 2), np.int64)
    for k in range(n):
        low = math.floor(float(coef[k]) / q)
        now = [0.0, 0.0]
        for m in range(2):
            v = min(max(low + m, -1024), 1023)
            e = float(coef[k]) - v * q
            d = w * e * e
            b, bp = math.inf, 0
            for p in range(2):
                s = abs(v - prev_value[p]).bit_length()
                total = prev_cost[p] + cost[s] + s + d
                if total < b:
                    b, bp = total, p
            now[m], source[k, m], values[k, m] = b, bp, v
        prev_cost, prev_value = now, [int(values[k, 0]), int(values[k, 1])]
    m = 1 if prev_cost[1] < prev_cost[0] else 0
    for k in range(n - 1, -1, -1):
        out[k] = values[k, m]
        m = source[k, m]
    counts += dc_counts(out, 0)


def _choose_ac(coef, table, weight, cost, out, counts, compiled_: bool) -> None:
    if compiled_:
        _kernel.ac(coef, table, weight, cost, out, counts)
    else:
        _ac_trellis_numpy(coef, table, weight, cost, out, counts)


def _choose_dc(coef, q, w, cost, out, counts, compiled_: bool) -> None:
    if compiled_:
        _kernel.dc(coef, q, w, cost, out, counts)
    else:
        _dc_trellis_numpy(coef, q, w, cost, out, counts)


# ---------------------------------------------------------------- one image
def _rounded(coef: np.ndarray, table: np.ndarray) -> np.ndarray:
    a = np.minimum(np.floor(np.abs(coef) / table + 0.5), 1023)
    values = (np.sign(coef) * a).astype(np.int32)
    values[:, 0] = np.clip(np.floor(coef[:, 0] / table[0] + 0.5), -1024, 1023)
    return values


def _optimize_image(samples: Tensor, tables: np.ndarray, weights: list[np.ndarray], factors, passes: int, compiled_: bool,
                    report: Callable[[], None]) -> tuple[list[np.ndarray], dict]:
    """Values ``(rows, cols, 64)`` int32 per component and what was measured,
    for one image; ``weights``: lambda times :func:`distortion_weights`."""
    channels, height, width = samples.shape
    blocks = _component_blocks(samples, factors)
    shapes = [b.shape[:2] for b in blocks]
    coef = [np.ascontiguousarray(b.reshape(-1, 64)) for b in blocks]
    slot = [min(ci, 1) for ci in range(len(coef))]
    steps = [np.ascontiguousarray(tables[s].reshape(64), dtype=np.float64) for s in slot]
    mcus = mcu_counts((height, width), factors)
    chains = [_chain_order(s, f, mcus) for s, f in zip(shapes, factors)]

    def measure(values: list[np.ndarray]) -> tuple[float, dict, float]:
        counts = {}
        for ci, v in enumerate(values):
            ac = counts.setdefault(("ac", slot[ci]), np.zeros(256, np.int64))
            ac += ac_counts(v)
            order, padding = chains[ci]
            dc = counts.setdefault(("dc", slot[ci]), np.zeros(MAX_DC_SIZE + 1, np.int64))
            dc += dc_counts(v[order, 0], padding)
        distortion = sum(float((w * (c - v * q) ** 2).sum()) for c, v, q, w in zip(coef, values, steps, weights))
        bits = _scan_bits(counts)
        return bits + distortion, counts, bits

    values = [_rounded(c, q) for c, q in zip(coef, steps)]
    objective, counts, bits = measure(values)
    history = [{"pass": 0, "objective": objective, "bits": bits}]
    best = (objective, values, 0)
    for step in range(1, passes + 1):
        costs = {key: _costs(c) for key, c in counts.items()}
        chosen = []
        for ci, (c, q, w) in enumerate(zip(coef, steps, weights)):
            out = np.zeros((len(c), 64), np.int32)
            _choose_ac(c, q, w, costs[("ac", slot[ci])], out, np.zeros(256, np.int64), compiled_)
            order, _ = chains[ci]
            dc = np.zeros(len(order), np.int32)
            _choose_dc(np.ascontiguousarray(c[order, 0]), float(q[0]), float(w[0]), costs[("dc", slot[ci])], dc,
                       np.zeros(MAX_DC_SIZE + 1, np.int64), compiled_)
            out[order, 0] = dc
            chosen.append(out)
        objective, counts, bits = measure(chosen)
        history.append({"pass": step, "objective": objective, "bits": bits})
        if objective < best[0]:
            best = (objective, chosen, step)
        report()
    values = [v.reshape(*s, 64) for v, s in zip(best[1], shapes)]
    return values, {"passes": history, "chosen": best[2]}


# ---------------------------------------------------------------- the library function
def encode_rdo(
    image: Tensor,
    quality: float | Tensor | None = None,
    *,
    lmbda: float | None = None,
    qtables: Tensor | None = None,
    subsampling: Subsampling | int = "4:2:0",
    effort: int = DEFAULT_EFFORT,
    progress: Callable[[int, int], None] | None = None,
    compiled: bool | None = None,
) -> Coefficients:
    """Encode images to the quantized coefficients that minimize ``bits + lambda * D``.

    The result is ordinary JPEG data: :func:`diffjpeg.write` turns it into a
    baseline (``optimize=True`` gives the Huffman tables the values were
    chosen for) or progressive file that every decoder reads, and
    :func:`diffjpeg.bits` counts its scan exactly. See the module docstring
    for the model; ``D`` is the squared error of the decoded image on the
    0..255 scale, summed over pixels, averaged over R, G, B.

    Cost: ``effort`` passes over the coefficients after plain rounding, each
    a dynamic program per 8x8 block whose work grows with the block's number
    of nonzero values; on one CPU core (compiled; ``benchmarks/rdo.py``) 0.20 s
    per megapixel at quality 50 and 0.42 s at quality 90 for ``effort=2``
    (0.15 and 0.27 s for 1, 0.26 and 0.55 s for 3); about 7 s per megapixel
    without the compiled kernel (numpy); :func:`diffjpeg.write` takes another
    0.5 to 0.6 s. Memory: about 110 bytes per pixel (a few float64 copies of the
    coefficients). Runs on the CPU (the result is moved to the image's
    device). No gradient: the values are discrete choices (use
    :func:`diffjpeg.encode` and :func:`diffjpeg.rate` to learn through the
    codec).

    Args:
        image: ``(..., C, H, W)``, C = 3 (RGB) or 1 (grayscale), uint8 or
            float in [0, 1] (any float dtype; rounded to 8 bits as
            :func:`diffjpeg.encode` does). Each image is optimized alone.
        quality: 0..100 on libjpeg's scale (number or one-element tensor),
            scaling ``qtables`` (default :data:`LEARNED_TABLES`) as libjpeg
            scales its tables. Default 75 unless ``qtables`` or ``lmbda``
            says otherwise.
        lmbda: bits per unit of squared error, > 0: larger keeps more
            detail. Default :func:`default_lambda` of the tables. Alone (no
            quality, no tables) it also chooses the quality of the learned
            tables whose default lambda is nearest.
        qtables: ``(2, 8, 8)`` tables (luma, chroma; natural order). With
            ``quality`` they are base tables (``diffjpeg.standard_tables()``
            gives the IJG tables); alone they are used as given (1..255).
        subsampling: ``"4:4:4"``, ``"4:2:2"``, ``"4:2:0"`` or Pillow's 0, 1, 2.
        effort: 1, 2 or 3: passes of value choice, each with the Huffman
            tables of the previous pass's values.
        progress: called as ``progress(done, total)`` after each pass.
        compiled: ``None`` uses the C kernel when it was built, ``False``
            forces numpy (the same choices; for tests), ``True`` requires it.

    Returns:
        :class:`Coefficients` with the image's batch shape, float32 integer
        values, the tables used, and the subsampling's sampling factors.

    Example:
        >>> import diffjpeg
        >>> x = torch.rand(3, 32, 48)
        >>> c = encode_rdo(x, quality=75)
        >>> plain = diffjpeg.encode(x, quality=75, qtables=learned_tables())
        >>> bool(diffjpeg.bits(c, "optimized") < diffjpeg.bits(plain, "optimized"))
        True
        >>> data = diffjpeg.write(c, optimize=True)  # a baseline file every decoder reads
    """
    batch, channels, height, width = check_image(image)
    subsampling = check_subsampling(subsampling)
    if isinstance(effort, bool) or not isinstance(effort, int) or effort not in PASSES:
        raise ValueError(f"effort must be one of {EFFORTS}, got {effort!r}")
    if lmbda is not None:
        if isinstance(lmbda, Tensor) and lmbda.numel() == 1:
            lmbda = float(lmbda)
        if not is_number(lmbda) or not math.isfinite(float(lmbda)) or float(lmbda) <= 0:
            raise ValueError(f"lmbda must be a finite number > 0 (bits per unit of squared error), got {lmbda!r}")
        lmbda = float(lmbda)
    if compiled is True and _kernel is None:
        raise ValueError("compiled=True, but diffjpeg.backends._trellis was not built (no C compiler at install time)")
    if compiled is not None and not isinstance(compiled, bool):
        raise TypeError(f"compiled must be None, True or False, got {compiled!r}")
    if progress is not None and not callable(progress):
        raise TypeError(f"progress must be a callable (done, total) or None, got {type(progress).__name__}")
    use_kernel = _kernel is not None if compiled is None else compiled

    cpu = torch.device("cpu")
    if isinstance(quality, Tensor):
        if quality.numel() != 1:
            raise ValueError(f"quality must be one number for encode_rdo, got a tensor of shape {tuple(quality.shape)}")
        quality = quality.detach().to(cpu)
    if qtables is None:
        qtables = learned_tables(torch.float64)
        if quality is None:
            quality = DEFAULT_QUALITY if lmbda is None else _quality_for_lambda(lmbda)
    elif isinstance(qtables, Tensor):
        qtables = qtables.detach().to(cpu)
    tables = resolve_tables(quality, qtables, torch.Size([]), True, torch.float64, cpu)[0]  # checks both
    if lmbda is None:
        lmbda = default_lambda(tables)

    factors = subsampling_factors(subsampling, channels)
    flat = image.detach().reshape(-1, channels, height, width).cpu()
    count = flat.shape[0]
    total, done = count * PASSES[effort], 0

    def report():
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, total)

    per_component = [[] for _ in factors]
    table_array = tables.numpy().reshape(2, 64)
    weights = [np.ascontiguousarray(lmbda * w) for w in distortion_weights(subsampling, channels)]
    for i in range(count):
        x = flat[i]
        samples = x.to(torch.int32) if x.dtype == torch.uint8 else torch.round(x.double().clamp(0, 1) * 255.0).to(torch.int32)
        values, _ = _optimize_image(samples, table_array, weights, factors, PASSES[effort], use_kernel, report)
        for ci, v in enumerate(values):
            per_component[ci].append(torch.from_numpy(v.reshape(*v.shape[:2], 8, 8)).to(torch.float32))
    device = image.device
    components = [torch.stack(p).reshape(batch + p[0].shape).to(device) for p in per_component]
    if channels == 1:
        components += [None, None]
    return Coefficients(y=components[0], cb=components[1], cr=components[2],
                        qtables=tables.to(device=device, dtype=torch.float32).expand(batch + (2, 8, 8)).contiguous(),
                        sampling=factors, size=(height, width))


def _quality_for_lambda(lmbda: float) -> int:
    """The quality of the learned tables whose default lambda is nearest ``lmbda`` (in log)."""
    base = learned_tables(torch.float64)
    qualities = torch.arange(1, 101, dtype=torch.float64)
    from ..stages.quality import quality_tables

    gaps = [abs(math.log(default_lambda(quality_tables(q, base)) / lmbda)) for q in qualities]
    return int(qualities[int(np.argmin(gaps))])

