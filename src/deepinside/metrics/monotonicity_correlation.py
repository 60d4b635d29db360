"""Monotonicity correlation (Nguyen & Martinez 2020)."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor, nn

from ..methods._common import chunks
from ..models import Classifier
from ..targets import Target
from ._common import Boxes, per_feature, predict, spearman_rows
from ._registry import register_metric

__all__ = ["monotonicity_correlation"]


@register_metric(
    "monotonicity_correlation", "faithfulness",
    "Spearman correlation, over groups of features from least to most relevant, of the "
    "map's sum on the group and the variance of the probability when the group is noised",
    "Nguyen & Martinez 2020, https://arxiv.org/abs/2007.07584",
    higher_is_better=True, cost="expensive",
)
def monotonicity_correlation(model: Classifier | nn.Module, images: Tensor, maps: Tensor,
                             target: Target = None, *, boxes: Boxes = None,
                             nr_samples: int = 8, features_in_step: int | None = None,
                             steps: int = 32, eps: float = 1e-5, abs: bool = True,
                             normalise: bool = True, seed: int = 0,
                             batch_size: int | None = 64, fast: bool = True) -> Tensor:
    """Per photo, ``Tensor[B]`` (Quantus ``MonotonicityCorrelation``).

    The features (colour values; the map repeated over the channels) are sorted by the map,
    least relevant first, and cut into groups of ``features_in_step``; each group is set
    ``nr_samples`` times to a value drawn uniformly in [0, 1] (one per image and sample,
    Quantus's ``"uniform"`` baseline) and the squared change of the target's softmax
    probability, divided by the probability squared (when it is at least ``eps``), is
    averaged. The score is Spearman's rho between the groups' map sums and these variances.

    Differs from Quantus's defaults (``nr_samples=100``, ``features_in_step=1``: 100 forward
    passes per colour value, 15 million for one 224 x 224 photo) in cost only: by default
    ``steps`` groups of whole pixels (``features_in_step = C * ceil(H * W / steps)``) and 8
    samples, 256 forward passes per photo. With the same ``features_in_step`` and
    ``nr_samples`` it computes what Quantus computes.

    Args:
        model, images, maps, target, boxes, abs, normalise, eps: as Quantus
            (``boxes`` unused).
        nr_samples: draws per group.
        features_in_step: features per group (a multiple of the channels keeps whole pixels);
            ``None``: from ``steps``.
        steps: the number of groups when ``features_in_step`` is ``None``.
        seed: the draws come from ``numpy.random.RandomState(seed)`` in Quantus's order.
        batch_size: perturbed images per forward pass.
        fast: the engine's batch-norm-folded copy.
    """
    t, x, a = per_feature(model, images, maps, target, abs=abs, normalise=normalise, fast=fast)
    b, c, h, w = x.shape
    n = a.shape[1]
    step = features_in_step if features_in_step is not None else c * math.ceil(h * w / steps)
    if step < 1:
        raise ValueError("features_in_step must be at least 1")
    k = math.ceil(n / step)
    rs = np.random.RandomState(seed)
    values = torch.as_tensor(np.stack([rs.uniform(0.0, 1.0, b) for _ in range(k * nr_samples)]),
                             device=x.device).view(k, nr_samples, b)
    order = a.argsort(dim=1, stable=True)
    xf = x.reshape(b, -1)
    y = predict(model, x, softmax=True, fast=fast, batch_size=batch_size)[torch.arange(b), t]
    inv = torch.where(y.abs() >= eps, 1.0 / y.abs().clamp(min=1e-300), torch.ones_like(y)) ** 2
    sq = torch.zeros((b, k), dtype=torch.float64, device=x.device)
    total = k * nr_samples * b  # flat index j -> group j // (S B), sample (j // B) % S, image
    pos = torch.arange(n, device=x.device)
    for sl in chunks(total, batch_size):
        j = torch.arange(sl.start, sl.stop, device=x.device)
        gi, si, bi = j // (nr_samples * b), (j // b) % nr_samples, j % b
        group = (pos[None] >= gi[:, None] * step) & (pos[None] < (gi[:, None] + 1) * step)
        chosen = torch.zeros_like(group).scatter_(1, order[bi], group)
        xp = torch.where(chosen, values[gi, si, bi][:, None].to(xf.dtype), xf[bi])
        yp = predict(model, xp.view(-1, c, h, w), softmax=True, fast=fast, batch_size=None)
        d = (yp[torch.arange(len(j)), t[bi]] - y[bi]) ** 2
        sq.index_put_((bi, gi), d, accumulate=True)
    variances = sq / nr_samples * inv[:, None]
    sorted_a = a.gather(1, order)
    pad = k * step - n
    if pad:
        sorted_a = torch.cat([sorted_a, sorted_a.new_zeros((b, pad))], dim=1)
    atts = sorted_a.view(b, k, step).sum(dim=2)
    return spearman_rows(atts, variances)
