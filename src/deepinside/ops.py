"""Tensor operations on maps that every layer of the package may use (no model, no photo)."""

from __future__ import annotations

from typing import Literal

import torch.nn.functional as F
from torch import Tensor

__all__ = ["Reduce", "reduce_channels", "resize_maps"]

Reduce = Literal["max_abs", "sum_abs", "sum", "none"]


def reduce_channels(attr: Tensor, reduce: Reduce = "max_abs") -> Tensor:
    """Reduce ``Tensor[..., C, H, W]`` over its channel dimension (``-3``).

    Args:
        reduce: ``"max_abs"`` (the paper: max over channels of the absolute value),
            ``"sum_abs"``, ``"sum"``, or ``"none"`` (keep the channels).
    """
    if reduce == "max_abs":
        return attr.abs().amax(dim=-3)
    if reduce == "sum_abs":
        return attr.abs().sum(dim=-3)
    if reduce == "sum":
        return attr.sum(dim=-3)
    if reduce == "none":
        return attr
    raise ValueError(f"reduce must be 'max_abs', 'sum_abs', 'sum' or 'none', got {reduce!r}")



def resize_maps(maps: Tensor, size: tuple[int, int]) -> Tensor:
    """Resize maps ``Tensor[B, h, w]`` to ``size`` = (H, W) bilinearly -> ``Tensor[B, H, W]``."""
    if tuple(maps.shape[-2:]) == tuple(size):
        return maps
    return F.interpolate(maps[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]
