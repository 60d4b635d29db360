"""Pointing game (Zhang et al. 2016), as Quantus scores it: the map's maximum inside a box."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..models import Classifier
from ..targets import Target
from ._common import Boxes, boxes_masks, flat, prepare
from ._registry import register_metric

__all__ = ["pointing_game"]


@register_metric(
    "pointing_game", "localisation",
    "1 if a pixel of the map's maximum lies inside a ground-truth box, else 0",
    "Zhang et al. 2016, https://arxiv.org/abs/1608.00507",
    higher_is_better=True, needs=("boxes",),
)
def pointing_game(model: Classifier | nn.Module, images: Tensor, maps: Tensor,
                  target: Target = None, *, boxes: Boxes = None, weighted: bool = False,
                  abs: bool = False, normalise: bool = True) -> Tensor:
    """Hit (1) or miss (0) per photo, ``Tensor[B]``; NaN for a photo without a box pixel.

    Quantus ``PointingGame``: a hit when any pixel equal to the maximum lies in the mask, no
    tolerance. (TorchRay's 15-pixel tolerance is ``evaluate compare``'s ``pointing``.)

    Args:
        model, target: unused.
        images: ``Tensor[B, C, H, W]``; maps: ``Tensor[B, h, w]``.
        boxes: per image its ``(x0, y0, x1, y1)`` boxes in the images' pixels, or masks.
        weighted: a hit scores ``1 - box area / image area`` (Quantus's option).
        abs, normalise: Quantus's defaults.
    """
    a = flat(prepare(images, maps, abs=abs, normalise=normalise))
    s = flat(boxes_masks(boxes, images, "pointing_game"))
    top = a == a.amax(dim=1, keepdim=True)
    hit = (s & top).any(dim=1).double()
    if weighted:
        hit = torch.where(hit > 0, 1 - s.sum(dim=1) / s.shape[1], hit)
    return torch.where(s.any(dim=1), hit, torch.full_like(hit, float("nan")))
