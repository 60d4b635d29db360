"""Complexity: the entropy of the map's share per pixel (Bhatt, Weller & Moura 2020)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..models import Classifier
from ..targets import Target
from ._common import Boxes, flat, prepare
from ._registry import register_metric

__all__ = ["complexity"]


@register_metric(
    "complexity", "complexity",
    "entropy of |map| / sum |map|: low when few pixels hold the relevance",
    "Bhatt, Weller & Moura 2020, https://arxiv.org/abs/2005.00631",
    higher_is_better=False,
)
def complexity(model: Classifier | nn.Module, images: Tensor, maps: Tensor,
               target: Target = None, *, boxes: Boxes = None, abs: bool = True,
               normalise: bool = True) -> Tensor:
    """Entropy of each map's distribution over pixels, ``Tensor[B]`` (Quantus ``Complexity``).

    ``p = |a| / sum |a|``; ``-sum p log(p + 1e-12)`` (natural log; ``log n`` for a uniform
    map of ``n`` pixels, 0 for a one-hot map).

    Args:
        model, target, boxes: unused.
        images: ``Tensor[B, C, H, W]``; maps: ``Tensor[B, h, w]``.
        abs, normalise: Quantus's defaults (normalised per photo, not per batch).
    """
    a = flat(prepare(images, maps, abs=abs, normalise=normalise))
    p = a / a.abs().sum(dim=1, keepdim=True)
    return -(p * torch.log(p + 1e-12)).sum(dim=1)
