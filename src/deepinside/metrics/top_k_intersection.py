"""Top-k intersection (Theiner, Müller-Budack & Ewerth 2021): the k most relevant pixels in
the box."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..models import Classifier
from ..targets import Target
from ._common import Boxes, boxes_masks, flat, prepare
from ._registry import register_metric

__all__ = ["top_k_intersection"]


@register_metric(
    "top_k_intersection", "localisation",
    "share of the k most relevant pixels (k = 1000) inside the boxes",
    "Theiner, Müller-Budack & Ewerth 2021, https://arxiv.org/abs/2104.14995",
    higher_is_better=True, needs=("boxes",),
)
def top_k_intersection(model: Classifier | nn.Module, images: Tensor, maps: Tensor,
                       target: Target = None, *, boxes: Boxes = None, k: int = 1000,
                       concept_influence: bool = False, abs: bool = False,
                       normalise: bool = True) -> Tensor:
    """Per photo, ``Tensor[B]`` (Quantus ``TopKIntersection``); NaN without a box pixel.

    Args:
        model, target: unused.
        images: ``Tensor[B, C, H, W]``; maps: ``Tensor[B, h, w]``.
        boxes: per image its boxes in the images' pixels, or masks.
        k: how many pixels (fewer than the image has).
        concept_influence: divide by the boxes' share of the image (Quantus's option).
        abs, normalise: Quantus's defaults.

    Raises:
        ValueError: ``k`` not below the number of pixels.
    """
    a = flat(prepare(images, maps, abs=abs, normalise=normalise))
    s = flat(boxes_masks(boxes, images, "top_k_intersection"))
    n = a.shape[1]
    if not 0 < k < n:
        raise ValueError(f"top_k_intersection: k must be between 1 and {n - 1} (the pixels), "
                         f"got {k}")
    order = a.argsort(dim=1, descending=True, stable=True)[:, :k]
    r = s.gather(1, order).double().mean(dim=1)
    if concept_influence:
        r = r * n / s.sum(dim=1).clamp(min=1)
    return torch.where(s.any(dim=1), r, torch.full_like(r, float("nan")))
