"""diffjpeg.stages.blocks: edge replication (libjpeg pads by repeating the last row
and column) against numpy's edge padding, and 8x8 block splitting by hand."""
import numpy as np
import pytest
import torch

from diffjpeg.stages.blocks import merge_blocks, replicate_edges, split_blocks


@pytest.mark.parametrize("size,target", [((1, 1), (8, 8)), ((1, 7), (8, 16)), ((7, 1), (16, 8)), ((5, 9), (8, 16)),
                                         ((8, 8), (8, 8)), ((8, 3), (8, 8)), ((13, 17), (16, 24)), ((3, 5), (3, 40))])
def test_replicate_edges_is_numpy_edge_padding(size, target):
    g = torch.Generator().manual_seed(size[0] * 100 + size[1])
    plane = torch.randint(0, 256, (2, 3) + size, generator=g)
    expected = np.pad(plane.numpy(), [(0, 0), (0, 0), (0, target[0] - size[0]), (0, target[1] - size[1])], mode="edge")
    for dtype in (torch.int32, torch.float32, torch.float64):
        out = replicate_edges(plane.to(dtype), *target)
        assert out.dtype == dtype and out.shape == (2, 3) + target
        assert np.array_equal(out.numpy(), expected.astype(out.numpy().dtype))


def test_replicate_edges_gradient_sums_onto_the_edges():
    x = torch.zeros(3, 2, dtype=torch.float64, requires_grad=True)
    replicate_edges(x, 5, 4).sum().backward()
    # the last row is repeated 3 times and the last column 3 times: the corner 9 times
    assert x.grad.tolist() == [[1.0, 3.0], [1.0, 3.0], [3.0, 9.0]]


def test_split_blocks_by_hand():
    plane = torch.arange(2 * 16 * 24).reshape(2, 16, 24)
    blocks = split_blocks(plane)
    assert blocks.shape == (2, 2, 3, 8, 8)
    for b in range(2):
        for by in range(2):
            for bx in range(3):
                assert torch.equal(blocks[b, by, bx], plane[b, 8 * by : 8 * by + 8, 8 * bx : 8 * bx + 8])


@pytest.mark.parametrize("shape", [(8, 8), (1, 8, 16), (2, 3, 24, 8), (4, 40, 32)])
def test_split_merge_round_trip(shape):
    g = torch.Generator().manual_seed(len(shape))
    plane = torch.rand(shape, generator=g)
    assert torch.equal(merge_blocks(split_blocks(plane)), plane)
    blocks = torch.rand(split_blocks(plane).shape, generator=g)
    assert torch.equal(split_blocks(merge_blocks(blocks)), blocks)


def test_split_blocks_refuses_sizes_not_multiples_of_8():
    with pytest.raises(ValueError, match="multiples of 8"):
        split_blocks(torch.zeros(8, 12))
