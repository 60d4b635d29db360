"""Sparseness: the Gini index of the map (Chalasani et al. 2020)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..models import Classifier
from ..targets import Target
from ._common import Boxes, flat, prepare
from ._registry import register_metric

__all__ = ["sparseness"]


@register_metric(
    "sparseness", "complexity",
    "Gini index of |map|: 1 when one pixel holds everything, 0 for a uniform map",
    "Chalasani et al. 2020, https://arxiv.org/abs/1810.06583",
    higher_is_better=True,
)
def sparseness(model: Classifier | nn.Module, images: Tensor, maps: Tensor,
               target: Target = None, *, boxes: Boxes = None, abs: bool = True,
               normalise: bool = True) -> Tensor:
    """Gini index of each map, ``Tensor[B]`` (Quantus ``Sparseness``).

    With ``a`` the map's ``n`` pixels (absolute, divided by the largest, plus ``1e-7``)
    sorted ascending, ``sum_i (2 i - n - 1) a_i / (n sum_i a_i)``, i = 1..n.

    Args:
        model, target, boxes: unused (the map alone is measured).
        images: ``Tensor[B, C, H, W]`` (the maps are resized to their size).
        maps: ``Tensor[B, h, w]``.
        abs, normalise: Quantus's defaults (normalised per photo, not per batch).
    """
    a = flat(prepare(images, maps, abs=abs, normalise=normalise)) + 1e-7
    n = a.shape[1]
    a, _ = a.sort(dim=1)
    i = torch.arange(1, n + 1, dtype=a.dtype, device=a.device)
    return ((2 * i - n - 1) * a).sum(dim=1) / (n * a.sum(dim=1))
