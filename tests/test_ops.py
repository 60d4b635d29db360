"""deepinside.ops: tensor operations on maps."""

from __future__ import annotations

import pytest
import torch

from deepinside.ops import reduce_channels, resize_maps


def test_reduce_channels_by_hand():
    a = torch.tensor([[[[1.0]], [[-3.0]], [[2.0]]]])  # Tensor[1, 3, 1, 1]
    assert reduce_channels(a).item() == 3.0  # the paper's max over channels of |w|
    assert reduce_channels(a, "sum_abs").item() == 6.0
    assert reduce_channels(a, "sum").item() == 0.0
    assert reduce_channels(a, "none") is a
    with pytest.raises(ValueError, match="max_abs"):
        reduce_channels(a, "mean")


def test_resize_maps_keeps_a_map_of_the_size_and_resizes_bilinearly():
    m = torch.rand(2, 4, 6)
    assert resize_maps(m, (4, 6)) is m
    up = resize_maps(torch.ones(2, 4, 6) * torch.arange(2.0)[:, None, None], (8, 12))
    assert up.shape == (2, 8, 12)
    torch.testing.assert_close(up[1], torch.ones(8, 12))  # a constant stays constant
