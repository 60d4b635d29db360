"""Tensor operations on maps that every layer of the package may use (no model, no photo)."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

__all__ = ["resize_maps"]


def resize_maps(maps: Tensor, size: tuple[int, int]) -> Tensor:
    """Resize maps ``Tensor[B, h, w]`` to ``size`` = (H, W) bilinearly -> ``Tensor[B, H, W]``."""
    if tuple(maps.shape[-2:]) == tuple(size):
        return maps
    return F.interpolate(maps[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]
