"""Completeness (Sundararajan et al. 2017): does the map sum to the change of the logit?"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..models import Classifier
from ..targets import Target
from ._common import Boxes, class_targets, flat, predict, prepare
from ._registry import register_metric

__all__ = ["completeness"]


@register_metric(
    "completeness", "axiomatic",
    "|sum of the map - (logit(x) - logit(baseline))|",
    "Sundararajan, Taly & Yan 2017, https://arxiv.org/abs/1703.01365",
    higher_is_better=False,
)
def completeness(model: Classifier | nn.Module, images: Tensor, maps: Tensor,
                 target: Target = None, *, boxes: Boxes = None,
                 baseline: str | float | Tensor = "black", abs: bool = False,
                 normalise: bool = False, tolerance: float | None = None,
                 fast: bool = True) -> Tensor:
    """The completeness residual per photo, ``Tensor[B]`` (in logits; 0 for a complete map).

    Quantus ``Completeness`` returns whether the sum equals the logit difference exactly
    (a float equality that almost never holds), and normalises the map by its maximum first
    (which breaks the equality for any map): here the residual is returned and the map is
    not normalised by default. ``tolerance=0`` with ``normalise=True`` gives Quantus's
    answer as 1 / 0 (``residual <= tolerance``).

    Args:
        model, images, maps, target, abs, normalise: as Quantus (``boxes`` unused).
        baseline: the reference input: ``"black"`` (each image's smallest value, Quantus's
            default), ``"zero"``, a number, or a tensor broadcastable to the images.
        tolerance: return ``residual <= tolerance`` as 1 / 0 instead of the residual.
        fast: the engine's batch-norm-folded copy.
    """
    t = class_targets(model, images, target, fast)
    x = images.detach()
    b = x.shape[0]
    if isinstance(baseline, str) and baseline == "black":
        ref = x.reshape(b, -1).amin(dim=1).view(-1, 1, 1, 1).expand_as(x)
    else:
        from ..methods._common import baseline_images

        ref = baseline_images(model, x, baseline)
    a = flat(prepare(images, maps, abs=abs, normalise=normalise))
    y = predict(model, torch.cat([x, ref.to(x.dtype)]), fast=fast)
    i = torch.arange(b, device=x.device)
    residual = (a.sum(dim=1) - (y[i, t] - y[b + i, t])).abs()
    return residual if tolerance is None else (residual <= tolerance).double()
