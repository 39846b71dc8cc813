"""Image geometry: sampling factors, component sizes, blocks and MCUs.

The one home of the sizes libjpeg derives from a frame's dimensions and
sampling factors (jdmaster.c, jcmaster.c, jdinput.c), used by the codec,
the files, the entropy coder and the rate. Facts relied on:

* Sampling factors are 1..4 (T.81 B.2.2). With more than one component,
  libjpeg upsamples by integer ratios only (each factor divides the largest),
  and an interleaved MCU holds at most 10 blocks (``sum h v <= 10``).
* A component's downsampled size is ``ceil(size * factor / max_factor)``; its
  block counts round that up to multiples of 8. An interleaved scan codes
  ``ceil(height / (8 v_max)) x ceil(width / (8 h_max))`` MCUs, each holding
  ``v x h`` blocks of every component; blocks past a component's own count
  are MCU padding. A one-component scan is coded block by block, no MCUs.
* The encoder (jcprepct.c) pads rows to a multiple of ``v_max`` by repeating
  the last full-resolution row; jcsample.c pads columns to the block width
  times the ratio.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

import torch

# Luma sampling factors (h, v) per chroma subsampling; chroma components are 1x1.
Subsampling = Literal["4:4:4", "4:2:2", "4:2:0"]  # the names of SUBSAMPLINGS, for annotations
SUBSAMPLINGS = {"4:4:4": (1, 1), "4:2:2": (2, 1), "4:2:0": (2, 2)}
# Pillow's (and so torchvision's) numbers for them: Image.save(subsampling=...)
PILLOW_SUBSAMPLING = {"4:4:4": 0, "4:2:2": 1, "4:2:0": 2}
PillowSubsampling = Literal[0, 1, 2]  # its values, accepted beside the names (check.check_subsampling)


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


def component_geometry(size: tuple[int, int], factors: tuple[int, int], max_factors: tuple[int, int]) -> ComponentGeometry:
    """:class:`ComponentGeometry` of a component of an image of ``size`` (H, W).

    Example:
        >>> component_geometry((17, 33), (1, 1), (2, 2)).blocks
        (2, 3)
    """
    height, width = size
    h, v = factors
    h_max, v_max = max_factors
    down = (math.ceil(height * v / v_max), math.ceil(width * h / h_max))
    blocks = (math.ceil(down[0] / 8), math.ceil(down[1] / 8))
    scale = (h_max // h, v_max // v)
    padded = (math.ceil(height / v_max) * v_max, blocks[1] * 8 * scale[0])
    return ComponentGeometry(factors, scale, down, blocks, padded)


def max_factors(sampling) -> tuple[int, int]:
    """``(h_max, v_max)`` over the components' ``(h, v)`` factors."""
    return max(h for h, _ in sampling), max(v for _, v in sampling)


def geometries(size: tuple[int, int], sampling) -> list[ComponentGeometry]:
    """The geometry of each component, in order."""
    size, sampling = (int(size[0]), int(size[1])), tuple((int(h), int(v)) for h, v in sampling)
    if torch.compiler.is_compiling():  # traced: computed afresh (dynamo would trace through the cache anyway)
        return list(_geometries.__wrapped__(size, sampling))
    return list(_geometries(size, sampling))


@lru_cache(maxsize=256)
def _geometries(size: tuple[int, int], sampling: tuple[tuple[int, int], ...]) -> tuple[ComponentGeometry, ...]:
    # every read and decode asks again for the same few sizes; the answers are frozen
    largest = max_factors(sampling)
    return tuple(component_geometry(size, f, largest) for f in sampling)


def block_count(size: tuple[int, int], sampling) -> int:
    """Blocks of all components together, without MCU padding."""
    return sum(g.blocks[0] * g.blocks[1] for g in geometries(size, sampling))


def mcu_counts(size: tuple[int, int], sampling) -> tuple[int, int] | None:
    """``(MCU rows, MCU columns)`` of the interleaved scan of these
    components, ``None`` for one component (coded block by block).

    Example:
        >>> mcu_counts((17, 33), ((2, 2), (1, 1), (1, 1)))
        (2, 3)
    """
    if len(sampling) == 1:
        return None
    h_max, v_max = max_factors(sampling)
    return math.ceil(size[0] / (8 * v_max)), math.ceil(size[1] / (8 * h_max))


def sampling_problem(sampling) -> str | None:
    """Why libjpeg would refuse these ``(h, v)`` sampling factors, or ``None``."""
    for h, v in sampling:
        if not (1 <= h <= 4 and 1 <= v <= 4):
            return f"sampling factors {list(sampling)} must be in 1..4"
    if len(sampling) > 1:
        h_max, v_max = max_factors(sampling)
        if any(h_max % h or v_max % v for h, v in sampling):
            return f"sampling factors {list(sampling)} need fractional upsampling, which libjpeg does not do"
        if sum(h * v for h, v in sampling) > 10:
            return f"sampling factors {list(sampling)} put more than 10 blocks in an MCU, which JPEG forbids"
    return None


def subsampling_factors(subsampling: Subsampling, components: int = 3) -> tuple[tuple[int, int], ...]:
    """Sampling factors ``(h, v)`` per component for a subsampling name; a
    fourth component (K) is sampled as the first, as libjpeg's YCCK.

    Example:
        >>> subsampling_factors("4:2:0")
        ((2, 2), (1, 1), (1, 1))
    """
    if not isinstance(subsampling, str) or subsampling not in SUBSAMPLINGS:
        raise ValueError(f"subsampling must be one of {tuple(SUBSAMPLINGS)}, got {subsampling!r}")
    luma = SUBSAMPLINGS[subsampling]
    if components == 1:
        return ((1, 1),)
    return (luma, (1, 1), (1, 1), luma)[:components]
