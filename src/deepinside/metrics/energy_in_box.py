"""Energy in box (Wang et al. 2020, Score-CAM's energy-based pointing game)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..models import Classifier
from ..targets import Target
from ._common import Boxes, boxes_masks, flat, prepare
from ._registry import register_metric

__all__ = ["energy_in_box"]


@register_metric(
    "energy_in_box", "localisation",
    "share of the map's positive part inside the boxes",
    "Wang et al. 2020 (Score-CAM), https://arxiv.org/abs/1910.01279",
    higher_is_better=True, needs=("boxes",),
)
def energy_in_box(model: Classifier | nn.Module, images: Tensor, maps: Tensor,
                  target: Target = None, *, boxes: Boxes = None) -> Tensor:
    """``sum(max(a, 0) * s) / sum(max(a, 0))`` per photo, ``Tensor[B]``: 0 for a map with no
    positive value, NaN without a box pixel. Not in Quantus; the same number as
    :func:`deepinside.boxes.energy_in_boxes` (the localisation study's), batched.

    Args:
        model, target: unused.
        images: ``Tensor[B, C, H, W]``; maps: ``Tensor[B, h, w]``.
        boxes: per image its boxes in the images' pixels, or masks.
    """
    a = flat(prepare(images, maps)).clamp(min=0)
    s = flat(boxes_masks(boxes, images, "energy_in_box"))
    total = a.sum(dim=1)
    r = torch.where(total > 0, (a * s).sum(dim=1) / total.clamp(min=1e-300),
                    torch.zeros_like(total))
    return torch.where(s.any(dim=1), r, torch.full_like(r, float("nan")))
