"""The JPEG domain: what travels from the encoder to the decoder."""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
from torch import Tensor

# Luma sampling factors (h, v) per chroma subsampling; chroma components are 1x1.
SUBSAMPLINGS = {"4:4:4": (1, 1), "4:2:2": (2, 1), "4:2:0": (2, 2)}


@dataclass(frozen=True)
class ComponentGeometry:
    """Sizes libjpeg derives for one component (jdmaster.c / jcmaster.c).

    ``downsampled`` is ``ceil(size * factor / max_factor)``; ``blocks`` is that in
    8x8 blocks, rounded up; ``padded`` is the full-resolution size the encoder
    replicates the image out to before downsampling this component.
    """

    factors: tuple[int, int]  # (h, v) this component's sampling factors
    scale: tuple[int, int]  # (h, v) upsampling ratio to full resolution
    downsampled: tuple[int, int]  # (height, width)
    blocks: tuple[int, int]  # (rows, columns) of 8x8 blocks
    padded: tuple[int, int]  # (height, width) at full resolution


def component_geometry(size: tuple[int, int], factors: tuple[int, int], max_factors: tuple[int, int]):
    """:class:`ComponentGeometry` of a component of an image of ``size`` (H, W)."""
    height, width = size
    h, v = factors
    h_max, v_max = max_factors
    down = (math.ceil(height * v / v_max), math.ceil(width * h / h_max))
    blocks = (math.ceil(down[0] / 8), math.ceil(down[1] / 8))
    scale = (h_max // h, v_max // v)
    # jcprepct.c pads rows to a multiple of v_max by repeating the last full
    # resolution row; jcsample.c pads columns to the block width times the ratio
    padded = (math.ceil(height / v_max) * v_max, blocks[1] * 8 * scale[0])
    return ComponentGeometry(factors, scale, down, blocks, padded)


@dataclass
class Coefficients:
    """Quantized DCT blocks of each component, with what is needed to decode them.

    Attributes:
        y: luma blocks ``(*batch, rows, cols, 8, 8)``, natural order within a block.
        cb, cr: chroma blocks, same layout, ``None`` for grayscale.
        qtables: ``(*batch, 2, 8, 8)`` quantization tables (luma, chroma) the blocks
            were quantized with, natural order.
        subsampling: ``"4:4:4"``, ``"4:2:2"`` or ``"4:2:0"``.
        size: ``(height, width)`` of the image.

    Values are float tensors (integer-valued except from the soft encoder) that
    may carry gradients. ``rows, cols`` are each component's own block counts,
    without libjpeg's MCU padding.

    Example:
        >>> import diffjpeg
        >>> c = diffjpeg.encode(torch.rand(2, 3, 20, 30), quality=50)
        >>> c.y.shape, c.cb.shape, c.size
        (torch.Size([2, 3, 4, 8, 8]), torch.Size([2, 2, 2, 8, 8]), (20, 30))
    """

    y: Tensor
    cb: Tensor | None
    cr: Tensor | None
    qtables: Tensor
    subsampling: str = "4:2:0"
    size: tuple[int, int] = (0, 0)

    @property
    def components(self) -> list[Tensor]:
        """``[y]`` or ``[y, cb, cr]``."""
        return [self.y] if self.cb is None else [self.y, self.cb, self.cr]

    @property
    def is_grayscale(self) -> bool:
        return self.cb is None

    @property
    def batch_shape(self) -> torch.Size:
        return self.qtables.shape[:-3]

    def geometries(self) -> list[ComponentGeometry]:
        """Geometry of each component, luma first."""
        if self.is_grayscale:
            return [component_geometry(self.size, (1, 1), (1, 1))]
        luma = SUBSAMPLINGS[self.subsampling]
        return [component_geometry(self.size, f, luma) for f in (luma, (1, 1), (1, 1))]

    def _map(self, fn) -> "Coefficients":
        opt = lambda t: None if t is None else fn(t)  # noqa: E731
        return replace(self, y=fn(self.y), cb=opt(self.cb), cr=opt(self.cr), qtables=fn(self.qtables))

    def to(self, *args, **kwargs) -> "Coefficients":
        """Move or cast every tensor, as ``Tensor.to``."""
        return self._map(lambda t: t.to(*args, **kwargs))

    def detach(self) -> "Coefficients":
        """A copy whose tensors carry no gradient history."""
        return self._map(Tensor.detach)
