"""Relevance rank accuracy (Arras, Osman & Samek 2022): the top-|box| pixels inside the box."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..models import Classifier
from ..targets import Target
from ._common import Boxes, boxes_masks, flat, prepare
from ._registry import register_metric

__all__ = ["relevance_rank_accuracy"]


@register_metric(
    "relevance_rank_accuracy", "localisation",
    "share of the K most relevant pixels inside the boxes, K = the boxes' pixel count",
    "Arras, Osman & Samek 2022, https://arxiv.org/abs/2003.07258",
    higher_is_better=True, needs=("boxes",),
)
def relevance_rank_accuracy(model: Classifier | nn.Module, images: Tensor, maps: Tensor,
                            target: Target = None, *, boxes: Boxes = None, abs: bool = False,
                            normalise: bool = True) -> Tensor:
    """Per photo, ``Tensor[B]`` (Quantus ``RelevanceRankAccuracy``); NaN without a box pixel.

    Ties in the map are ranked in raster order (stable sort; Quantus's ``np.argsort`` leaves
    their order to the sorting algorithm).

    Args:
        model, target: unused.
        images: ``Tensor[B, C, H, W]``; maps: ``Tensor[B, h, w]``.
        boxes: per image its boxes in the images' pixels, or masks.
        abs, normalise: Quantus's defaults.
    """
    a = flat(prepare(images, maps, abs=abs, normalise=normalise))
    s = flat(boxes_masks(boxes, images, "relevance_rank_accuracy"))
    k = s.sum(dim=1)
    order = a.argsort(dim=1, descending=True, stable=True)
    ranked = s.gather(1, order)
    first = torch.arange(a.shape[1], device=a.device)[None] < k[:, None]
    r = (ranked & first).sum(dim=1).double() / k.clamp(min=1)
    return torch.where(k > 0, r, torch.full_like(r, float("nan")))
