"""AUC (Fawcett 2006): how well the map ranks box pixels above the others."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..models import Classifier
from ..targets import Target
from ._common import Boxes, boxes_masks, flat, prepare, rank
from ._registry import register_metric

__all__ = ["auc"]


@register_metric(
    "auc", "localisation",
    "area under the ROC curve of the map as a score of 'pixel inside a box'",
    "Fawcett 2006, https://doi.org/10.1016/j.patrec.2005.10.010",
    higher_is_better=True, needs=("boxes",),
)
def auc(model: Classifier | nn.Module, images: Tensor, maps: Tensor, target: Target = None,
        *, boxes: Boxes = None, abs: bool = False, normalise: bool = True) -> Tensor:
    """ROC AUC per photo, ``Tensor[B]`` (Quantus ``AUC``: scikit-learn's ``roc_curve`` and
    ``auc``); NaN without a box pixel or without a pixel outside the boxes.

    Computed as the Mann-Whitney statistic with average ranks for ties, which equals the
    trapezoidal area under the ROC curve: ``(sum of the box pixels' ranks - P (P + 1) / 2) /
    (P N)`` for ``P`` pixels inside and ``N`` outside.

    Args:
        model, target: unused.
        images: ``Tensor[B, C, H, W]``; maps: ``Tensor[B, h, w]``.
        boxes: per image its boxes in the images' pixels, or masks.
        abs, normalise: Quantus's defaults.
    """
    a = flat(prepare(images, maps, abs=abs, normalise=normalise))
    s = flat(boxes_masks(boxes, images, "auc"))
    r = rank(a) + 1.0
    p = s.sum(dim=1).double()
    q = s.shape[1] - p
    u = (r * s).sum(dim=1) - p * (p + 1) / 2
    out = u / (p * q).clamp(min=1)
    return torch.where((p > 0) & (q > 0), out, torch.full_like(out, float("nan")))
