"""Block smoothing: libjpeg's estimate of what a progressive file's scans left out.

A progressive file may end before its scans have coded every coefficient to
full precision (a truncated download; a custom scan script). libjpeg then
estimates the lowest unknown AC coefficients (and, when no AC data arrived
at all, smooths the DC too) from the DC values of each block's neighbours
before its inverse DCT: "block smoothing", ``do_block_smoothing``, on by
default (Pillow never turns it off). :func:`smooth` is that step, applied to
the quantized coefficients in :func:`diffjpeg.decode`, so that one
implementation serves the compiled kernel and the tensor stages; a file's
progression state (:class:`diffjpeg.Progression`) is set by
:func:`diffjpeg.read` from libjpeg's own state (the compiled reader), or
from its scan headers (:func:`progression_bits`, the jpeglib fallback).

Facts relied on (libjpeg-turbo 3.2's jdcoefct.c ``smoothing_ok`` and
``decompress_smooth_data``, the 5x5 form of 2.1 with the edge fixes of 3.0.1;
jdphuff.c/jdarith.c ``start_pass`` for the state):

* ``coef_bits[c][k]``, per component ``c`` and zigzag index ``k``, starts at
  -1 (never coded); each scan sets it to its ``Al`` for ``k`` in ``Ss..Se``
  and each of its components, at the scan's start. 0 means known exactly.
* Smoothing applies to progressive files only, when every component's table
  is nonzero at the DC and zigzag 1..9, every component's DC was coded
  (``coef_bits[c][0] >= 0``), and some component has a ``coef_bits[c][k] != 0``
  for some ``k`` in 1..9.
* Per component: if zigzag 1..9 were all never coded ("DC interpolation"),
  zigzag 1..9 and the DC are estimated with a Gaussian-like 5x5 kernel on the
  DC values; else zigzag 1..5 only, with T.81 K.8's formulas widened to 5x5.
  An AC estimate replaces a coefficient only if it is not known exactly
  (``coef_bits != 0``) and is 0; the interpolated DC always replaces it.
* Integer form: ``num = Q00 * sum(w * DC)``, ``pred = (Qk*128 + |num|) //
  (Qk*256)``, clamped to ``2**Al - 1`` when ``Al = coef_bits > 0``, given the
  sign of ``num``, stored as a 16-bit JCOEF (two's complement wrap).
  ``Q00``/``Qk`` are the component's table entries at the DC and at the
  estimated position. Estimates read the neighbours' unmodified DC values.
* The window's columns are clamped to the component's blocks. Its rows are
  clamped too, with libjpeg-turbo's bookkeeping per iMCU row (``v`` block rows
  of a component with vertical factor ``v``, fewer in the last one): when the
  last iMCU row holds fewer than ``v`` block rows, the rows two above and two
  below are judged by a row number that counts the last iMCU row's rows
  only; so with one block row there, the second-to-last block row reads the
  MCU padding row under the last one (an interleaved DC scan codes it), and
  with two iMCU rows the last block row reads the row above it twice.
  :func:`window_rows` reproduces it by running that bookkeeping.
* After a scan that ran out of data, libjpeg uses, for the iMCU rows after
  ``last_good_iMCU_row`` (the last one whose MCUs the entropy decoder began
  with data left, jdcoefct.c ``consume_data``), each component's state from
  before its last scan (``coef_bits[num_components + c]``, zigzag 1..9,
  latched by ``smoothing_ok``; all -1 after a single scan); whether to
  smooth at all still follows the final state. :func:`smooth` does the same
  when :class:`diffjpeg.Progression` gives both (the compiled reader takes
  them from libjpeg), else uses the final state everywhere.

libjpeg-turbo 2.1 to 3.0.0 (OpenCV builds bundle some of them) differ at
edges: images two blocks wide, and vertically subsampled components.
"""
from __future__ import annotations

from functools import lru_cache

import torch
from torch import Tensor

from ..core.check import check_device, check_finite
from ..core.geometry import ComponentGeometry, max_factors
from ..core.scan import ZIGZAG
from .rounding import exact_value

SAVED_COEFS = 10  # the DC and zigzag 1..9: all that smoothing reads or writes


def _grid(*rows: tuple[int, ...]) -> tuple[int, ...]:
    """25 weights from 5 rows (window rows -2..2 top to bottom, columns -2..2)."""
    return tuple(w for row in rows for w in row)


_Z = (0, 0, 0, 0, 0)
# DC interpolation: weights per zigzag index 1..9, then 0 (the DC itself)
INTERPOLATION = {
    1: _grid((-1, -1, 0, 1, 1), (-3, 13, 0, -13, 3), (-3, 38, 0, -38, 3), (-3, 13, 0, -13, 3), (-1, -1, 0, 1, 1)),
    2: _grid((-1, -3, -3, -3, -1), (-1, 13, 38, 13, -1), _Z, (1, -13, -38, -13, 1), (1, 3, 3, 3, 1)),
    3: _grid((0, 0, 1, 0, 0), (0, 2, 7, 2, 0), (0, -5, -14, -5, 0), (0, 2, 7, 2, 0), (0, 0, 1, 0, 0)),
    4: _grid((-1, 0, 0, 0, 1), (0, 9, 0, -9, 0), _Z, (0, -9, 0, 9, 0), (1, 0, 0, 0, -1)),
    5: _grid(_Z, (0, 2, -5, 2, 0), (1, 7, -14, 7, 1), (0, 2, -5, 2, 0), _Z),
    6: _grid(_Z, (0, 1, 0, -1, 0), (0, 2, 0, -2, 0), (0, 1, 0, -1, 0), _Z),
    7: _grid(_Z, (0, 1, -3, 1, 0), _Z, (0, -1, 3, -1, 0), _Z),
    8: _grid(_Z, (0, 1, 0, -1, 0), (0, -3, 0, 3, 0), (0, 1, 0, -1, 0), _Z),
    9: _grid(_Z, (0, 1, 2, 1, 0), _Z, (0, -1, -2, -1, 0), _Z),
    0: _grid((-2, -6, -8, -6, -2), (-6, 6, 42, 6, -6), (-8, 42, 152, 42, -8), (-6, 6, 42, 6, -6), (-2, -6, -8, -6, -2)),
}  # fmt: skip
# once some AC data arrived: zigzag 1..5 only
ESTIMATION = {
    1: _grid(_Z, _Z, (-7, 50, 0, -50, 7), _Z, _Z),
    2: _grid((0, 0, -7, 0, 0), (0, 0, 50, 0, 0), _Z, (0, 0, -50, 0, 0), (0, 0, 7, 0, 0)),
    3: _grid((0, 0, -1, 0, 0), (0, 0, 13, 0, 0), (0, 0, -24, 0, 0), (0, 0, 13, 0, 0), (0, 0, -1, 0, 0)),
    4: _grid((0, -1, 0, 1, 0), (-1, 10, 0, -10, 1), _Z, (1, -10, 0, 10, -1), (0, 1, 0, -1, 0)),
    5: _grid(_Z, _Z, (-1, 13, -24, 13, -1), _Z, _Z),
}  # fmt: skip


def progression_bits(scans, component_ids) -> tuple[tuple[int, ...], ...]:
    """libjpeg's ``coef_bits`` after the last of ``scans``: per component (in
    frame order), 64 ints by zigzag index.

    Args:
        scans: objects with ``component_ids``, ``ss``, ``se``, ``al``
            (:class:`diffjpeg.bitstream.markers.Scan`).
        component_ids: the frame's component ids, in order.

    Example:
        >>> from types import SimpleNamespace as S
        >>> bits = progression_bits([S(component_ids=(1,), ss=0, se=0, al=1), S(component_ids=(1,), ss=1, se=5, al=2)], (1,))
        >>> bits[0][:8]
        (1, 2, 2, 2, 2, 2, -1, -1)
    """
    index = {cid: i for i, cid in enumerate(component_ids)}
    bits = [[-1] * 64 for _ in component_ids]
    for scan in scans:
        for cid in scan.component_ids:
            bits[index[cid]][scan.ss : scan.se + 1] = [scan.al] * (scan.se - scan.ss + 1)
    return tuple(tuple(b) for b in bits)


def applies(bits) -> bool:
    """smoothing_ok's test on the state (the tables are checked per image)."""
    return all(b[0] >= 0 for b in bits) and any(k != 0 for b in bits for k in b[1:SAVED_COEFS])


@lru_cache(maxsize=256)
def window_rows(rows: int, v: int, imcu_rows: int) -> tuple[tuple[int, ...], ...]:
    """For each of a component's block rows, the rows libjpeg reads as rows
    -2..2 of its window (``rows`` itself: the MCU padding row under the last).

    Args:
        rows: the component's block rows.
        v: its vertical sampling factor.
        imcu_rows: the image's iMCU rows, ``ceil(height / (8 v_max))``.

    Example:
        >>> window_rows(3, 2, 2)  # 4:2:0 luma of a 17..24-row image
        ((0, 0, 0, 1, 2), (0, 0, 1, 2, 3), (1, 1, 2, 2, 2))
    """
    out = []
    for m in range(imcu_rows):
        block_rows = v if m < imcu_rows - 1 else (rows % v or v)
        image_rows = block_rows * imcu_rows  # decompress_smooth_data's count
        for b in range(block_rows):
            r, counted = m * v + b, m * block_rows + b
            prev = r - 1 if counted > 0 else r
            prev2 = r - 2 if counted > 1 else prev
            nxt = r + 1 if counted < image_rows - 1 else r
            nxt2 = r + 2 if counted < image_rows - 2 else nxt
            out.append((prev2, prev, r, nxt, nxt2))
    return tuple(out)


def _window_dc(dc: Tensor, padding: Tensor, geometry: ComponentGeometry, imcu_rows: int) -> Tensor:
    """``(B, rows, cols, 25)``: each block's 5x5 window of DC values (``dc`` ``(B, rows, cols)``)."""
    rows, cols = dc.shape[-2:]
    extended = torch.cat([dc, padding.unsqueeze(1)], 1)
    row_index = torch.tensor(window_rows(rows, geometry.factors[1], imcu_rows), device=dc.device)
    col_index = (torch.arange(cols, device=dc.device)[:, None] + torch.arange(-2, 3, device=dc.device)).clamp_(0, cols - 1)
    window = extended[:, row_index[:, None, :, None], col_index[None, :, None, :]]  # (B, rows, cols, 5, 5)
    return window.reshape(*dc.shape, 25)


def encoder_padding(dc: Tensor, factors: tuple[int, int], interleaved: bool) -> Tensor:
    """The DC of the MCU padding row under a component's last block row as
    libjpeg's encoders write it (jccoefct.c, jctrans.c): each MCU's padding
    blocks repeat the DC of the MCU's last block above them (the last real
    column's beyond the image); 0 when the DC scans are not interleaved
    (one component), as nothing codes it. ``dc``: ``(B, rows, cols)``."""
    if not interleaved:
        return torch.zeros_like(dc[:, -1])
    cols, h = dc.shape[-1], factors[0]
    source = ((torch.arange(cols, device=dc.device) // h) * h + h - 1).clamp_(max=cols - 1)
    return dc[:, -1, source]


def _predict(num: Tensor, q: Tensor, limit: Tensor) -> Tensor:
    """libjpeg's rounded ``num / (q * 256)`` (integers), its magnitude at most
    ``limit`` (``2**Al - 1``), stored as a JCOEF (int16, wrapping)."""
    pred = torch.minimum((q * 128 + num.abs()).div(q * 256, rounding_mode="floor"), limit)
    pred = torch.where(num < 0, -pred, pred)
    return (pred + 32768).remainder_(65536).sub_(32768)


def _plan(bits) -> list[tuple[int, tuple[int, ...], int]]:
    """``(zigzag index, weights, Al)`` of each coefficient smoothing may set in a
    component with this state; index 0 (the DC) when it interpolates."""
    if all(b == -1 for b in bits[1:SAVED_COEFS]):
        return [(k, w, bits[k] if k else 0) for k, w in INTERPOLATION.items()]
    return [(k, w, bits[k]) for k, w in ESTIMATION.items() if bits[k] != 0]


def _weighted_sums(window: Tensor, weights: Tensor) -> Tensor:
    """``window @ weights`` ``(..., 25) x (25, targets)``, exact for integers:
    a matrix product in int64 on the CPU; elsewhere (no integer matrix
    product on CUDA or MPS, and no float64 on MPS) 25 int64 multiply-adds,
    with the same values: 25 DCs of 16 bits times weights under 160 sum to
    less than 2**30."""
    if window.is_floating_point() or window.device.type == "cpu":
        return window @ weights.to(window.dtype)
    return tap_sums(window, weights)


def tap_sums(window: Tensor, weights: Tensor) -> Tensor:
    """``window @ weights`` by elementwise multiply-adds, tap by tap."""
    total = window[..., :1] * weights[0]
    for t in range(1, weights.shape[0]):
        total = total + window[..., t : t + 1] * weights[t]
    return total


def _estimated(flat: Tensor, q: Tensor, plan, window, usable: Tensor, integer: bool, exact: bool) -> Tensor:
    """``flat`` ``(B, rows, cols, 64)`` with the estimates of ``plan`` where they
    apply: ``integer``: libjpeg's (DCs and ``q`` rounded), else
    ``Q00 * sum(w * DC) / (Qk * 256)``; ``exact``: for the exact mode (zeros
    tested on rounded values; the real-valued twin's clamp straight-through);
    ``q``: ``(B, 10)`` the DC and zigzag 1..9 table entries."""
    count, device = q.shape[0], q.device
    indices = [k for k, _, _ in plan]
    positions = [ZIGZAG[k] for k in indices]
    weights = torch.tensor([w for _, w, _ in plan], device=device).T  # (25, targets)
    dc = flat[..., 0]
    if integer:
        dc, q = torch.round(dc.detach()).to(torch.int64), torch.round(q.detach()).to(torch.int64)
    sums = _weighted_sums(window(dc), weights)  # (B, rows, cols, targets)
    num = q[:, :1].reshape(count, 1, 1, 1) * sums
    qk = q[:, indices].reshape(count, 1, 1, -1)
    limits = [(1 << al) - 1 if al > 0 else 1 << 62 for _, _, al in plan]
    if integer:
        pred = _predict(num, qk, torch.tensor(limits, device=device)).to(flat.dtype)
    else:
        pred = num / (qk * 256)
        if not exact:
            bound = torch.tensor(limits, dtype=pred.dtype, device=device)
            pred = torch.maximum(torch.minimum(pred, bound), -bound)
    # AC estimates replace only zeros; the interpolated DC replaces the DC
    current = flat[..., positions]
    tested = torch.round(current.detach()) if exact else current.detach()
    replace = usable.unsqueeze(-1) & ((tested == 0) | torch.tensor([k == 0 for k in indices], device=device))
    new = flat.detach().clone() if integer else flat.clone()
    new[..., positions] = torch.where(replace, pred, current)
    return new


def _padding(padding: Tensor | None, count: int, cols: int, ci: int, device) -> Tensor | None:
    """A component's padding row DCs ``(B, cols)``, checked, or ``None``."""
    if padding is None:
        return None
    name = f"coefficients.progression.padding_dc[{ci}]"
    check_device(name, padding, device)
    check_finite(name, padding)
    if padding.shape[-1:] != (cols,) or padding.numel() != count * cols:
        raise ValueError(f"{name} has shape {tuple(padding.shape)}; expected the batch shape and ({cols},), one DC per block column")
    return padding.reshape(count, cols)


def smooth(
    components: list[Tensor],
    tables: Tensor,
    progression,
    geometries: list[ComponentGeometry],
    size: tuple[int, int],
    mode: str,
) -> list[Tensor]:
    """The coefficients libjpeg's inverse DCT sees: ``components`` with block
    smoothing applied where ``progression`` says the file left them incomplete.

    Args:
        components: ``(B, rows, cols, 8, 8)`` quantized blocks per component.
        tables: ``(B, C, 8, 8)`` each component's table, natural order.
        progression: :class:`diffjpeg.Progression`, or ``None`` (complete:
            ``components`` come back as they are).
        geometries: each component's geometry; ``size``: ``(H, W)``.
        mode: ``"exact"`` and ``"float"``: libjpeg's integer estimates
            (coefficients and tables rounded first), backward the gradient of
            the real-valued estimates ``Q00 * sum(w * DC) / (Qk * 256)`` at the
            same input (the clamp straight-through); ``"soft"``: those
            real-valued estimates forward too, clamped where libjpeg clamps,
            with their true gradient. Which coefficients are replaced depends
            on the values (those equal to 0), not differentiably.
    """
    if progression is None or not applies(progression.bits):
        return components
    count = tables.shape[0]
    q_all = tables.flatten(-2)[..., list(ZIGZAG[:SAVED_COEFS])]  # (B, C, 10)
    zero = torch.round(q_all.detach()) == 0
    usable = ~zero.flatten(1).any(1).reshape(count, 1, 1)  # smoothing_ok's table test
    q_all = torch.where(zero, torch.ones_like(q_all), q_all)  # no division by 0 in images left alone
    imcu_rows = -(-size[0] // (8 * max_factors([g.factors for g in geometries])[1]))
    interleaved = len(components) > 1
    out = []
    for ci, (blocks, geometry) in enumerate(zip(components, geometries)):
        plans = [_plan(progression.bits[ci])]
        late = _late_rows(progression, blocks.shape[1], geometry.factors[1], blocks.device)
        if late is not None:  # the rows after the last good one: the earlier state
            plans.append(_plan(progression.previous[ci]))
        if not any(plans):
            out.append(blocks)
            continue
        padding = _padding(progression.padding_dc[ci], count, blocks.shape[2], ci, blocks.device)

        def window(dc: Tensor, padding=padding, geometry=geometry) -> Tensor:
            if padding is None:
                pad = encoder_padding(dc, geometry.factors, interleaved)
            else:
                pad = padding if dc.is_floating_point() else torch.round(padding.detach())
            return _window_dc(dc, pad.to(dc.dtype), geometry, imcu_rows)

        flat, q = blocks.flatten(-2), q_all[:, ci]

        def estimated(integer: bool, exact: bool, flat=flat, q=q, plans=plans, late=late, window=window) -> Tensor:
            results = [_estimated(flat, q, plan, window, usable, integer, exact) if plan else flat for plan in plans]
            if late is None:
                return results[0]
            return torch.where(late.reshape(-1, 1, 1), results[1], results[0])

        if mode == "soft":
            result = estimated(integer=False, exact=False)
        else:
            result = exact_value(estimated(integer=True, exact=True), flat, lambda estimated=estimated: estimated(integer=False, exact=True), q)
        out.append(result.reshape(blocks.shape))
    return out


def _late_rows(progression, rows: int, v: int, device) -> Tensor | None:
    """Which of a component's ``rows`` block rows lie in iMCU rows (``v``
    block rows each) after ``progression.last_good_imcu_row``; ``None`` if
    none do or the file's earlier state is not known."""
    last_good = progression.last_good_imcu_row
    if progression.previous is None or last_good is None or (rows - 1) // v <= last_good:
        return None
    return torch.arange(rows, device=device) // v > last_good
