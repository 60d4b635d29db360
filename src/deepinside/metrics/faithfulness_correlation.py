"""Faithfulness correlation (Bhatt, Weller & Moura 2020)."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from ..methods._common import chunks
from ..models import Classifier
from ..targets import Target
from ._common import Boxes, pearson, per_feature, predict
from ._registry import register_metric

__all__ = ["faithfulness_correlation"]


@register_metric(
    "faithfulness_correlation", "faithfulness",
    "Pearson correlation, over random feature subsets, of the map's sum on the subset and "
    "the logit drop when the subset is removed",
    "Bhatt, Weller & Moura 2020, https://arxiv.org/abs/2005.00631",
    higher_is_better=True, cost="moderate",
)
def faithfulness_correlation(model: Classifier | nn.Module, images: Tensor, maps: Tensor,
                             target: Target = None, *, boxes: Boxes = None, nr_runs: int = 100,
                             subset_size: int = 224, abs: bool = False, normalise: bool = True,
                             seed: int = 0, batch_size: int | None = 64,
                             fast: bool = True) -> Tensor:
    """Per photo, ``Tensor[B]`` (Quantus ``FaithfulnessCorrelation`` with its defaults).

    ``nr_runs`` times: ``subset_size`` features drawn at random without replacement (a feature
    is one colour value of one pixel: the map is repeated over the channels, as Quantus
    does), set to the image's darkest value (Quantus's ``"black"`` baseline: the minimum of
    the image); the logit of the target drops by ``y - y'``. The score is Pearson's ``r``
    between the drops and the map's sums over the subsets (NaN if either is constant).

    Args:
        model: a :class:`Classifier` or an ``nn.Module`` returning logits.
        images: ``Tensor[B, C, H, W]``; maps: ``Tensor[B, h, w]``.
        target: the explained classes (``None``: top-1).
        boxes: unused.
        nr_runs, subset_size, abs, normalise: Quantus's defaults.
        seed: the draws come from ``numpy.random.RandomState(seed)`` in Quantus's order.
        batch_size: perturbed images per forward pass.
        fast: the engine's batch-norm-folded copy.
    """
    t, x, a = per_feature(model, images, maps, target, abs=abs, normalise=normalise, fast=fast)
    b, c, h, w = x.shape
    n = a.shape[1]
    if not 0 < subset_size < n:
        raise ValueError(f"faithfulness_correlation: subset_size must be between 1 and {n - 1}"
                         f", got {subset_size}")
    rs = np.random.RandomState(seed)
    idx = np.empty((nr_runs, b, subset_size), dtype=np.int64)
    for r in range(nr_runs):
        for i in range(b):
            idx[r, i] = rs.choice(n, subset_size, replace=False)
        rs.uniform(0.0, 1.0, b)  # Quantus draws a "uniform" baseline it does not use
    ix = torch.as_tensor(idx, device=x.device)
    xf = x.reshape(b, -1)
    black = xf.amin(dim=1)
    y = predict(model, x, fast=fast, batch_size=batch_size)[torch.arange(b), t]
    drops = torch.empty((b, nr_runs), dtype=torch.float64, device=x.device)
    total = nr_runs * b  # flat index j -> run j // b, image j % b
    for sl in chunks(total, batch_size):
        j = torch.arange(sl.start, sl.stop, device=x.device)
        ri, bi = j // b, j % b
        xp = xf[bi].clone()
        xp.scatter_(1, ix[ri, bi], black[bi, None].expand(-1, subset_size).to(xp.dtype))
        yp = predict(model, xp.view(-1, c, h, w), fast=fast, batch_size=None)
        drops[bi, ri] = y[bi] - yp[torch.arange(len(j)), t[bi]]
    sums = a.gather(1, ix.permute(1, 0, 2).reshape(b, -1)).view(b, nr_runs, subset_size)
    return pearson(sums.sum(dim=2), drops)
