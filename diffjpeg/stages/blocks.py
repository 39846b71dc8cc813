"""Edge padding and 8x8 block splitting (libjpeg's jcprepct.c / jdmainct.c roles).

libjpeg pads by replicating edge samples, never by zeros or mirroring; which
samples it replicates, and at what resolution, is decided in the codec
(:mod:`diffjpeg.codec.pipeline`), see ``component_geometry``.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn


def replicate_edges(plane: Tensor, height: int, width: int) -> Tensor:
    """Grow ``plane`` to ``(height, width)`` by repeating its last row and column.

    Args:
        plane: ``(..., h, w)`` tensor with ``1 <= h <= height``, ``1 <= w <= width``.
        height, width: target size.

    Returns:
        ``(..., height, width)`` tensor, same dtype and device; the top-left
        ``h x w`` is ``plane``.

    Example:
        >>> replicate_edges(torch.tensor([[1.0, 2.0]]), 2, 3)
        tensor([[1., 2., 2.],
                [1., 2., 2.]])
    """
    h, w = plane.shape[-2:]
    if h != height:
        rows = torch.arange(height, device=plane.device).clamp_(max=h - 1)
        plane = plane.index_select(-2, rows)
    if w != width:
        cols = torch.arange(width, device=plane.device).clamp_(max=w - 1)
        plane = plane.index_select(-1, cols)
    return plane


def replicate_edges_adjoint(grad: Tensor, h: int, w: int) -> Tensor:
    """The transpose of :func:`replicate_edges` from ``(h, w)``: each
    replicated sample's gradient added onto the edge sample it copies.

    The very operations of autograd's backward of :func:`replicate_edges`
    (index_select's: zeros, then ``index_add_``), so the result is the same
    bit for bit.

    Example:
        >>> replicate_edges_adjoint(torch.ones(2, 3), 1, 2)
        tensor([[2., 4.]])
    """
    height, width = grad.shape[-2:]
    if w != width:
        cols = torch.arange(width, device=grad.device).clamp_(max=w - 1)
        grad = grad.new_zeros(grad.shape[:-1] + (w,)).index_add_(grad.dim() - 1, cols, grad)
    if h != height:
        rows = torch.arange(height, device=grad.device).clamp_(max=h - 1)
        grad = grad.new_zeros(grad.shape[:-2] + (h, grad.shape[-1])).index_add_(grad.dim() - 2, rows, grad)
    return grad


def split_blocks(plane: Tensor) -> Tensor:
    """Cut ``(..., H, W)`` with H, W multiples of 8 into ``(..., H/8, W/8, 8, 8)`` blocks.

    Example:
        >>> split_blocks(torch.zeros(2, 16, 24)).shape
        torch.Size([2, 2, 3, 8, 8])
    """
    *lead, h, w = plane.shape
    if h % 8 or w % 8:
        raise ValueError(f"plane height and width must be multiples of 8, got {h}x{w}")
    return plane.reshape(*lead, h // 8, 8, w // 8, 8).transpose(-3, -2)


def merge_blocks(blocks: Tensor, *, out: Tensor | None = None) -> Tensor:
    """Inverse of :func:`split_blocks`: ``(..., by, bx, 8, 8)`` to ``(..., 8 by, 8 bx)``.

    ``out``: a tensor of that shape (any strides, a view of a larger one say)
    to write the plane into; it is returned.

    Example:
        >>> merge_blocks(torch.zeros(2, 2, 3, 8, 8)).shape
        torch.Size([2, 16, 24])
    """
    *lead, by, bx, _, _ = blocks.shape
    if out is None:
        return blocks.transpose(-3, -2).reshape(*lead, by * 8, bx * 8)
    out.view(*lead, by, 8, bx, 8).copy_(blocks.transpose(-3, -2))
    return out


class SplitBlocks(nn.Module):
    """Module form of :func:`split_blocks`.

    Example:
        >>> SplitBlocks()(torch.zeros(1, 8, 8)).shape
        torch.Size([1, 1, 1, 8, 8])
    """

    def forward(self, plane: Tensor) -> Tensor:
        return split_blocks(plane)


class MergeBlocks(nn.Module):
    """Module form of :func:`merge_blocks`.

    Example:
        >>> MergeBlocks()(torch.zeros(1, 1, 1, 8, 8)).shape
        torch.Size([1, 8, 8])
    """

    def forward(self, blocks: Tensor) -> Tensor:
        return merge_blocks(blocks)
