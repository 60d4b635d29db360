"""Attribution localisation (Kohlbrenner et al. 2020): the positive map's share in the box."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..models import Classifier
from ..targets import Target
from ._common import Boxes, boxes_masks, flat, prepare
from ._registry import register_metric

__all__ = ["attribution_localisation"]


@register_metric(
    "attribution_localisation", "localisation",
    "share of |map| inside the boxes (optionally weighted by the boxes' size)",
    "Kohlbrenner et al. 2020, https://arxiv.org/abs/1910.09840",
    higher_is_better=True, needs=("boxes",),
)
def attribution_localisation(model: Classifier | nn.Module, images: Tensor, maps: Tensor,
                             target: Target = None, *, boxes: Boxes = None,
                             weighted: bool = False, positive_attributions: bool = False,
                             abs: bool = True, normalise: bool = True) -> Tensor:
    """``inside / (total + 1e-9)`` per photo, ``Tensor[B]`` (Quantus
    ``AttributionLocalisation``); NaN without a box pixel or for a ratio above 1.

    Args:
        model, target: unused.
        images: ``Tensor[B, C, H, W]``; maps: ``Tensor[B, h, w]``.
        boxes: per image its boxes in the images' pixels, or masks.
        weighted: multiply by the boxes' share of the image. (Quantus divides by the size
            of ``x_batch[2:]``, the batch from its third image on, which looks like a slip for
            the image size; here it is the image's pixel count.)
        positive_attributions: clip negative values to 0 first.
        abs, normalise: Quantus's defaults.
    """
    a = flat(prepare(images, maps, abs=abs, normalise=normalise))
    if positive_attributions:
        a = a.clamp(min=0)
    s = flat(boxes_masks(boxes, images, "attribution_localisation"))
    r = (a * s).sum(dim=1) / (a.sum(dim=1) + 1e-9)
    if weighted:
        r = r * s.sum(dim=1) / s.shape[1]
    bad = ~s.any(dim=1) | (r > 1)
    return torch.where(bad, torch.full_like(r, float("nan")), r)
