"""Non-sensitivity (Nguyen & Martinez 2020): features without relevance should not matter."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ..methods._common import chunks
from ..models import Classifier
from ..targets import Target
from ._common import Boxes, per_feature, predict
from ._registry import register_metric

__all__ = ["non_sensitivity"]


@register_metric(
    "non_sensitivity", "axiomatic",
    "number of feature groups whose removal changes the probability although the map "
    "gives them nothing, or does not although it does",
    "Nguyen & Martinez 2020, https://arxiv.org/abs/2007.07584",
    higher_is_better=False, cost="moderate",
)
def non_sensitivity(model: Classifier | nn.Module, images: Tensor, maps: Tensor,
                    target: Target = None, *, boxes: Boxes = None, eps: float = 1e-5,
                    features_in_step: int | None = None, steps: int = 64, abs: bool = True,
                    normalise: bool = True, batch_size: int | None = 64,
                    fast: bool = True) -> Tensor:
    """Per photo, ``Tensor[B]`` (Quantus ``NonSensitivity``).

    The features (colour values, the map repeated over channels) are taken in raster order
    in groups of ``features_in_step``; each group is set to the image's darkest value
    (Quantus's ``"black"``) and the target's softmax probability compared with the
    original. Counted: the groups where "the probability moved less than ``eps``" and "the
    map is below ``eps`` on the whole group" disagree.

    Differs from Quantus in cost: Quantus's ``features_in_step=1`` (the only value it
    accepts: it compares per-feature flags with per-group results) is one forward pass per
    colour value, 150 528 for a 224 x 224 photo; by default here ``steps`` groups
    (``features_in_step = ceil(C * H * W / steps)``). With ``features_in_step=1`` it counts
    what Quantus counts.

    Args:
        model, images, maps, target, eps, abs, normalise: as Quantus (``boxes`` unused).
        features_in_step: features per group (``None``: from ``steps``).
        steps: the number of groups when ``features_in_step`` is ``None``.
        batch_size, fast: images per forward pass; the engine's folded copy.
    """
    t, x, a = per_feature(model, images, maps, target, abs=abs, normalise=normalise, fast=fast)
    b, c, h, w = x.shape
    n = a.shape[1]
    step = features_in_step or math.ceil(n / steps)
    k = math.ceil(n / step)
    xf = x.reshape(b, -1)
    black = xf.amin(dim=1)
    y = predict(model, x, softmax=True, fast=fast, batch_size=batch_size)[torch.arange(b), t]
    unchanged = torch.empty((b, k), dtype=torch.bool, device=x.device)
    pos = torch.arange(n, device=x.device)
    for sl in chunks(k * b, batch_size):  # flat index j -> group j // b, image j % b
        j = torch.arange(sl.start, sl.stop, device=x.device)
        gi, bi = j // b, j % b
        group = (pos[None] >= gi[:, None] * step) & (pos[None] < (gi[:, None] + 1) * step)
        xp = torch.where(group, black[bi, None], xf[bi])
        yp = predict(model, xp.view(-1, c, h, w), softmax=True, fast=fast, batch_size=None)
        unchanged[bi, gi] = (yp[torch.arange(len(j)), t[bi]] - y[bi]).abs() < eps
    pad = k * step - n
    low = a < eps
    if pad:
        low = torch.cat([low, low.new_ones((b, pad))], dim=1)
    silent = low.view(b, k, step).all(dim=2)
    return (unchanged ^ silent).sum(dim=1).double()
