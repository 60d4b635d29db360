"""Relevance mass accuracy (Arras, Osman & Samek 2022): the map's share inside the boxes."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..models import Classifier
from ..targets import Target
from ._common import Boxes, boxes_masks, flat, prepare
from ._registry import register_metric

__all__ = ["relevance_mass_accuracy"]


@register_metric(
    "relevance_mass_accuracy", "localisation",
    "sum of the map inside the boxes / sum of the map",
    "Arras, Osman & Samek 2022, https://arxiv.org/abs/2003.07258",
    higher_is_better=True, needs=("boxes",),
)
def relevance_mass_accuracy(model: Classifier | nn.Module, images: Tensor, maps: Tensor,
                            target: Target = None, *, boxes: Boxes = None, abs: bool = False,
                            normalise: bool = True) -> Tensor:
    """``sum(a * s) / sum(a)`` per photo, ``Tensor[B]`` (Quantus ``RelevanceMassAccuracy``;
    signed maps are summed with their signs, as there); NaN without a box pixel.

    Args:
        model, target: unused.
        images: ``Tensor[B, C, H, W]``; maps: ``Tensor[B, h, w]``.
        boxes: per image its boxes in the images' pixels, or masks.
        abs, normalise: Quantus's defaults.
    """
    a = flat(prepare(images, maps, abs=abs, normalise=normalise))
    s = flat(boxes_masks(boxes, images, "relevance_mass_accuracy"))
    r = (a * s).sum(dim=1) / a.sum(dim=1)
    return torch.where(s.any(dim=1), r, torch.full_like(r, float("nan")))
