"""ROAD: remove and debias, with noisy linear imputation (Rong et al. 2022)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from scipy.sparse import csc_matrix
from scipy.sparse.linalg import spsolve
from torch import Tensor, nn

from ..models import Classifier
from ..targets import Target
from ._common import Boxes, class_targets, flat, predict, prepare
from ._registry import register_metric

__all__ = ["noisy_linear_imputation", "road", "road_curve"]

# neighbour offset (row, column) -> weight of the imputation (Rong et al. 2022, section 4)
_NEIGHBOURS = (((1, 1), 1 / 12), ((0, 1), 1 / 6), ((-1, 1), 1 / 12), ((1, -1), 1 / 12),
               ((0, -1), 1 / 6), ((-1, -1), 1 / 12), ((1, 0), 1 / 6), ((-1, 0), 1 / 6))

DEFAULT_PERCENTAGES = tuple(range(5, 100, 10))


def noisy_linear_imputation(image: np.ndarray, indices: np.ndarray, noise: float = 0.01,
                            rs: np.random.RandomState | None = None) -> np.ndarray:
    """``image`` (C, H, W) with the pixels ``indices`` (flat, row-major) imputed.

    Each removed pixel becomes the weighted mean of its eight neighbours (1/6 for the four
    direct ones, 1/12 for the diagonal ones; neighbours that are themselves removed are
    unknowns of the same sparse linear system), plus Gaussian noise of std ``noise`` drawn
    from ``rs`` (Quantus's ``noisy_linear_imputation``, vectorised).
    """
    c, h, w = image.shape
    ind = np.asarray(indices, dtype=np.int64)
    k = len(ind)
    out = np.array(image, dtype=np.float64, copy=True).reshape(c, -1)
    if k == 0:
        return out.reshape(c, h, w)
    known = np.ones(h * w, dtype=bool)
    known[ind] = False
    var = np.zeros(h * w, dtype=np.int64)
    var[ind] = np.arange(k)
    rows_a, cols_a, vals_a = [np.arange(k)], [np.arange(k)], []
    rhs = np.zeros((k, c))
    total = np.ones(k)
    rows, cols = ind // w, ind % w
    for (dr, dc), weight in _NEIGHBOURS:
        r, q = rows + dr, cols + dc
        valid = (r >= 0) & (q >= 0) & (r < h) & (q < w)
        nb = (ind + dr * w + dc)[valid]
        ids = np.flatnonzero(valid)
        inside = known[nb]
        rhs[ids[inside]] -= weight * out[:, nb[inside]].T
        rows_a.append(ids[~inside])
        cols_a.append(var[nb[~inside]])
        vals_a.append(np.full(int((~inside).sum()), weight))
        total[~valid] -= weight
    a = csc_matrix((np.concatenate([-total, *vals_a]),
                    (np.concatenate(rows_a), np.concatenate(cols_a))), shape=(k, k))
    res = np.asarray(spsolve(a, rhs)).reshape(k, c).T
    draw = (rs or np.random).randn(*res.shape) if c > 1 else (rs or np.random).randn(k)
    out[:, ind] = res + noise * draw.reshape(res.shape)
    return out.reshape(c, h, w)


def road_curve(model: Classifier | nn.Module, images: Tensor, maps: Tensor,
               target: Target = None, *, percentages: Sequence[float] = DEFAULT_PERCENTAGES,
               noise: float = 0.01, abs: bool = False, normalise: bool = True, seed: int = 0,
               batch_size: int | None = 64, fast: bool = True) -> Tensor:
    """``Tensor[B, P]``: 1 where the photo, its ``p`` % most relevant pixels imputed, is still
    classified as the target (most relevant first, MoRF), for each ``p`` of ``percentages``."""
    t = class_targets(model, images, target, fast)
    x = images.detach()
    b, c, h, w = x.shape
    a = flat(prepare(images, maps, abs=abs, normalise=normalise))
    order = a.argsort(dim=1, descending=True, stable=True).cpu().numpy()
    xs = x.double().cpu().numpy()
    rs = np.random.RandomState(seed)
    out = torch.empty((b, len(percentages)), dtype=torch.float64, device=x.device)
    for pi, p in enumerate(percentages):
        k = int(h * w * p / 100)
        imputed = np.stack([noisy_linear_imputation(xs[i], order[i, :k], noise, rs)
                            for i in range(b)])
        xp = torch.as_tensor(imputed, device=x.device).to(x.dtype)
        pred = predict(model, xp, fast=fast, batch_size=batch_size).argmax(dim=1)
        out[:, pi] = (pred == t).double()
    return out


@register_metric(
    "road", "faithfulness",
    "share of the percentages of most relevant pixels, imputed from their neighbours, "
    "after which the photo is still classified as the target (MoRF)",
    "Rong et al. 2022, https://arxiv.org/abs/2202.00449",
    higher_is_better=False, cost="expensive",
)
def road(model: Classifier | nn.Module, images: Tensor, maps: Tensor, target: Target = None,
         *, boxes: Boxes = None, percentages: Sequence[float] = DEFAULT_PERCENTAGES,
         noise: float = 0.01, abs: bool = False, normalise: bool = True, seed: int = 0,
         batch_size: int | None = 64, fast: bool = True) -> Tensor:
    """The mean of :func:`road_curve` over the percentages, ``Tensor[B]`` (lower is better:
    removing the relevant pixels should change the class early).

    Quantus ``ROAD`` returns, per percentage, the accuracy over the batch; the mean of this
    metric over photos is the mean of those accuracies. Differences: (1) the map ranks
    pixels and all colour values of a pixel are imputed together, as in the paper (Quantus
    ranks colour values and fails on RGB images with one-channel maps: its indices overrun
    the pixels); (2) ten percentages 5, 15, ..., 95 by default instead of Quantus's 50
    (1, 3, ..., 99): each is one sparse solve per photo. Noise draws come from
    ``numpy.random.RandomState(seed)`` in Quantus's order (percentage, then photo).

    Args:
        model, images, maps, target, boxes, noise, abs, normalise: as Quantus
            (``boxes`` unused).
        percentages: how much of the photo is imputed, in % of its pixels.
        seed, batch_size, fast: the draws; images per forward pass; the folded copy.
    """
    return road_curve(model, images, maps, target, percentages=percentages, noise=noise,
                      abs=abs, normalise=normalise, seed=seed, batch_size=batch_size,
                      fast=fast).mean(dim=1)
