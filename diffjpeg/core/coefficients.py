"""The JPEG domain: what travels from the encoder to the decoder.

Its sizes (component geometry, sampling rules, blocks, MCUs) live in
:mod:`diffjpeg.core.geometry`; what its components mean (grayscale, YCbCr, RGB,
CMYK, YCCK) in :mod:`diffjpeg.core.colorspace`.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import Tensor

from .colorspace import TABLE_SLOTS, ColorSpace, check_color_space, default_color_space
from .geometry import (
    SUBSAMPLINGS,
    ComponentGeometry,
    Subsampling,
    geometries,
    max_factors,
    sampling_problem,
    subsampling_factors,
)


@dataclass(frozen=True)
class Progression:
    """How far a progressive file's scans took each coefficient, for decoding.

    :func:`diffjpeg.read` sets it on a progressive file whose scans leave
    some coefficient not known exactly (a truncated download, a custom scan
    script); :func:`diffjpeg.decode` then estimates the lowest missing ones as
    libjpeg does (block smoothing, :mod:`diffjpeg.stages.smoothing`).

    Attributes:
        bits: per component, 64 ints by zigzag index: libjpeg's ``coef_bits``
            after the last scan: -1 never coded, 0 known exactly, ``Al > 0``
            the bits below ``Al`` never arrived.
        padding_dc: per component, the DC values of the MCU padding block row
            under its last block row (coded by interleaved DC scans; smoothing
            reads it in one case), ``(*batch, cols)``; ``None`` where the
            component has no such row or it is not known (then the value
            libjpeg's encoders write is assumed).
        previous: per component, 64 ints as ``bits``: the state before the
            component's last scan (libjpeg keeps zigzag 0..9 of it; -1 for
            the rest, and for all of it after a single scan); ``None``: not
            known (``bits`` then serve every row).
        last_good_imcu_row: the last iMCU row whose data the last scan that
            ran out of it still had (libjpeg's ``last_good_iMCU_row``): rows
            after it are smoothed with ``previous``; ``None`` for every row
            good.

    Example:
        >>> p = Progression(((0, 2, 2, 2, 2, 2) + (-1,) * 58,), (None,))
        >>> p.complete
        False
        >>> p  # of the 64 coefficients per block, by component
        Progression(exact=(1,), partial=(5,), missing=(58,))
    """

    bits: tuple[tuple[int, ...], ...]
    padding_dc: tuple[Tensor | None, ...]
    previous: tuple[tuple[int, ...], ...] | None = None
    last_good_imcu_row: int | None = None

    def __post_init__(self):
        bits = tuple(tuple(int(b) for b in row) for row in self.bits)
        if not bits or any(len(row) != 64 or any(not -1 <= b <= 13 for b in row) for row in bits):
            raise ValueError("Progression.bits must give 64 values in -1..13 (zigzag order) for each component")
        if self.previous is not None:
            previous = tuple(tuple(int(b) for b in row) for row in self.previous)
            if len(previous) != len(bits) or any(len(row) != 64 or any(not -1 <= b <= 13 for b in row) for row in previous):
                raise ValueError("Progression.previous must give 64 values in -1..13 (zigzag order) for each component")
            object.__setattr__(self, "previous", previous)
        row = self.last_good_imcu_row
        if row is not None and (isinstance(row, bool) or not isinstance(row, int) or row < 0):
            raise ValueError(f"Progression.last_good_imcu_row must be a non-negative int or None, got {row!r}")
        padding = tuple(self.padding_dc)
        if len(padding) != len(bits) or any(p is not None and not isinstance(p, Tensor) for p in padding):
            raise ValueError(f"Progression.padding_dc must give a tensor or None for each of the {len(bits)} components")
        object.__setattr__(self, "bits", bits)
        object.__setattr__(self, "padding_dc", padding)

    def __repr__(self) -> str:
        # per component, how many of the 64 coefficients are known exactly,
        # in part (low bits missing) or not at all, instead of 64-tuples
        def count(test):
            return tuple(sum(1 for b in row if test(b)) for row in self.bits)

        row = "" if self.last_good_imcu_row is None else f", last_good_imcu_row={self.last_good_imcu_row}"
        return (
            f"Progression(exact={count(lambda b: b == 0)}, partial={count(lambda b: b > 0)}, "
            f"missing={count(lambda b: b < 0)}{row})"
        )

    @property
    def complete(self) -> bool:
        """Whether every coefficient of every component is known exactly."""
        return all(b == 0 for row in self.bits for b in row)

    @property
    def state(self) -> tuple:
        """Everything but the padding DCs: what two files must share to be
        decoded as one batch."""
        return self.bits, self.previous, self.last_good_imcu_row

    def _with_padding(self, padding_dc) -> "Progression":
        return Progression(self.bits, padding_dc, self.previous, self.last_good_imcu_row)

    def _map(self, fn) -> "Progression":
        return self._with_padding(tuple(None if p is None else fn(p) for p in self.padding_dc))


@dataclass
class Coefficients:
    """Quantized DCT blocks of each component, with what is needed to decode them.

    Attributes:
        y: luma blocks ``(*batch, rows, cols, 8, 8)``, natural order within a block.
        cb: blue-difference chroma blocks, same layout, ``None`` for grayscale.
        cr: red-difference chroma blocks, as ``cb``.
        qtables: ``(*batch, T, 8, 8)`` quantization tables, natural order; the
            encoder writes ``T = 2`` (luma, chroma).
        sampling: sampling factors ``(h, v)`` of each component, as in the
            frame header: ``((2, 2), (1, 1), (1, 1))`` is 4:2:0. A subsampling
            name (``"4:4:4"``, ``"4:2:2"``, ``"4:2:0"``) is accepted too (with
            four components the fourth is sampled as the first).
        size: ``(height, width)`` of the image; required.
        qtable_index: which of ``qtables`` each component uses (JPEG's Tq);
            default libjpeg's for the color space: ``(0, 1, 1)`` for YCbCr,
            ``(0,)`` for grayscale, all 0 for RGB and CMYK, ``(0, 1, 1, 0)``
            for YCCK.
        k: the fourth component of a CMYK or YCCK file, ``None`` otherwise.
        color_space: what the components are: ``"grayscale"``, ``"YCbCr"``,
            ``"RGB"``, ``"CMYK"`` or ``"YCCK"``; default from their number
            (1: grayscale, 3: YCbCr, 4: CMYK). The fields keep their names
            whatever the space: ``y, cb, cr, k`` are the file's components
            in frame order (R, G, B in ``y, cb, cr`` for RGB; C, M, Y, K for
            CMYK; Y, Cb, Cr, K for YCCK), as stored, which for CMYK and YCCK
            files is Adobe's inverted form (see :func:`diffjpeg.decode`).
        progression: :class:`Progression` of a progressive file read with
            coefficients left incomplete, which :func:`diffjpeg.decode`
            smooths as libjpeg does; ``None`` (default): every coefficient
            is as given (``encode`` and every complete file).

    Values are float tensors (integer-valued except from the soft encoder) that
    may carry gradients. ``rows, cols`` are each component's own block counts
    (``ceil`` of its downsampled size / 8), without libjpeg's MCU padding.

    Example:
        >>> import diffjpeg
        >>> c = diffjpeg.encode(torch.rand(2, 3, 20, 30), quality=50)
        >>> c.y.shape, c.cb.shape, c.size, c.subsampling
        (torch.Size([2, 3, 4, 8, 8]), torch.Size([2, 2, 2, 8, 8]), (20, 30), '4:2:0')
        >>> c  # shapes, not values
        Coefficients(batch=(2,), size=(20, 30), color_space='YCbCr', sampling='4:2:0', dtype=torch.float32, device=cpu,
                     y=(2, 3, 4, 8, 8), cb=(2, 2, 2, 8, 8), cr=(2, 2, 2, 8, 8), qtables=(2, 2, 8, 8), qtable_index=(0, 1, 1))
        >>> c[1].batch_shape, c[:1].batch_shape
        (torch.Size([]), torch.Size([1]))
    """

    y: Tensor
    cb: Tensor | None
    cr: Tensor | None
    qtables: Tensor
    sampling: tuple[tuple[int, int], ...] | Subsampling = "4:2:0"
    size: tuple[int, int] | None = None
    qtable_index: tuple[int, ...] | None = None
    k: Tensor | None = None
    color_space: ColorSpace | None = None
    progression: Progression | None = None

    def __post_init__(self):
        if self.size is None:
            raise TypeError("Coefficients needs size=(height, width): the block counts do not determine the image size")
        if (self.cb is None) != (self.cr is None) or (self.k is not None and self.cb is None):
            present = [name for name in ("cb", "cr", "k") if getattr(self, name) is not None]
            raise ValueError(f"components must be y; y, cb, cr; or y, cb, cr, k; got y and {present}")
        count = 1 if self.cb is None else 3 if self.k is None else 4
        self.color_space = default_color_space(count) if self.color_space is None else check_color_space(self.color_space, count)
        if isinstance(self.sampling, str):
            self.sampling = subsampling_factors(self.sampling, count)
        self.sampling = tuple((int(h), int(v)) for h, v in self.sampling)
        if len(self.sampling) != count:
            raise ValueError(f"sampling must give (h, v) for each of the {count} components, got {self.sampling}")
        problem = sampling_problem(self.sampling)
        if problem:
            raise ValueError(problem)
        if self.qtable_index is None:
            self.qtable_index = TABLE_SLOTS[self.color_space]
        self.qtable_index = tuple(int(i) for i in self.qtable_index)
        tables = self.qtables.shape[-3] if self.qtables.dim() >= 3 else 0
        if len(self.qtable_index) != count or any(not 0 <= i < tables for i in self.qtable_index):
            raise ValueError(
                f"qtable_index must give a table in 0..{tables - 1} for each of the {count} components, got {self.qtable_index}"
            )
        self.size = (int(self.size[0]), int(self.size[1]))
        if self.progression is not None:
            if not isinstance(self.progression, Progression):
                raise TypeError(f"progression must be a diffjpeg.Progression or None, got {type(self.progression).__name__}")
            if len(self.progression.bits) != count:
                raise ValueError(f"progression describes {len(self.progression.bits)} components, the coefficients have {count}")

    @property
    def components(self) -> list[Tensor]:
        """``[y]``, ``[y, cb, cr]`` or ``[y, cb, cr, k]``: the file's components in order."""
        return [t for t in (self.y, self.cb, self.cr, self.k) if t is not None]

    @property
    def is_grayscale(self) -> bool:
        return self.cb is None

    @property
    def subsampling(self) -> str | None:
        """``"4:4:4"``, ``"4:2:2"`` or ``"4:2:0"``; ``None`` for other sampling factors."""
        if self.is_grayscale:
            return "4:4:4"
        for name in SUBSAMPLINGS:
            if self.sampling == subsampling_factors(name, len(self.sampling)):
                return name
        return None

    @property
    def max_factors(self) -> tuple[int, int]:
        """``(h_max, v_max)`` over the components."""
        return max_factors(self.sampling)

    @property
    def batch_shape(self) -> torch.Size:
        return self.qtables.shape[:-3]

    def geometries(self) -> list[ComponentGeometry]:
        """Geometry of each component, luma first."""
        return geometries(self.size, self.sampling)

    def component_qtables(self) -> Tensor:
        """``(*batch, C, 8, 8)``: the table of each component."""
        return self.qtables[..., list(self.qtable_index), :, :]

    @property
    def device(self) -> torch.device:
        return self.y.device

    @property
    def dtype(self) -> torch.dtype:
        return self.y.dtype

    def __repr__(self) -> str:
        # shapes, not values: a batch of photos holds millions of coefficients
        if self.subsampling is not None:
            sampling = repr(self.subsampling)
        else:  # libjpeg's notation (cjpeg -sample)
            sampling = repr(",".join(f"{h}x{v}" for h, v in self.sampling))
        shapes = ", ".join(f"{name}={tuple(t.shape)}" for name, t in zip(("y", "cb", "cr", "k"), self.components))
        grad = any(t.requires_grad for t in (*self.components, self.qtables))
        return (
            f"Coefficients(batch={tuple(self.batch_shape)}, size={self.size}, color_space={self.color_space!r}, "
            f"sampling={sampling}, dtype={self.dtype}, device={self.device}{', requires_grad=True' if grad else ''},\n"
            f"             {shapes}, qtables={tuple(self.qtables.shape)}, qtable_index={self.qtable_index}"
            f"{'' if self.progression is None else f', progression={self.progression!r}'})"
        )

    def __getitem__(self, index) -> "Coefficients":
        """Index the batch dimensions only (ints and slices), as a tensor's leading dimensions.

        Example:
            >>> import diffjpeg
            >>> diffjpeg.encode(torch.rand(4, 1, 8, 8))[::2].y.shape
            torch.Size([2, 1, 1, 8, 8])
        """
        parts = index if isinstance(index, tuple) else (index,)
        batch = len(self.batch_shape)
        if len(parts) > batch or not all(isinstance(p, (int, slice)) and not isinstance(p, bool) for p in parts):
            raise IndexError(f"Coefficients index the {batch} batch dimension(s) {tuple(self.batch_shape)} with ints and slices, got {index!r}")
        return self._map(lambda t: t[parts])

    def _map(self, fn) -> "Coefficients":
        opt = lambda t: None if t is None else fn(t)  # noqa: E731
        progression = None if self.progression is None else self.progression._map(fn)
        return replace(self, y=fn(self.y), cb=opt(self.cb), cr=opt(self.cr), k=opt(self.k), qtables=fn(self.qtables),
                       progression=progression)

    def to(self, *args, **kwargs) -> "Coefficients":
        """Move or cast every tensor, as ``Tensor.to``."""
        return self._map(lambda t: t.to(*args, **kwargs))

    def detach(self) -> "Coefficients":
        """A copy whose tensors carry no gradient history."""
        return self._map(Tensor.detach)
