"""The loop the robustness metrics share: noisy copies of the photos, their maps, a distance."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor, nn

from ..models import Classifier
from ..targets import Target
from ._common import MethodArg, class_targets, explainer, flat, normalise_by_max, prepare

__all__ = ["noisy_map_distances", "relative_change"]


def noisy_map_distances(
    name: str,
    model: Classifier | nn.Module,
    images: Tensor,
    maps: Tensor,
    target: Target,
    *,
    noise: Callable[[np.random.RandomState, tuple[int, int]], np.ndarray],
    distance: Callable[[Tensor, Tensor, Tensor, Tensor], Tensor],
    nr_samples: int,
    method: MethodArg,
    method_options: dict | None,
    abs: bool,
    normalise: bool,
    seed: int,
    fast: bool,
) -> Tensor:
    """``Tensor[B, nr_samples]``: ``distance(a, a', x, x')`` for each noisy copy ``x'``.

    ``noise(rs, (B, C * H * W))`` draws the additive noise of one sample (float64, as
    Quantus's perturbation functions draw it); ``a'`` is ``method``'s map of ``x'`` for the
    same targets, normalised and made absolute as ``a`` is.
    """
    if nr_samples < 1:
        raise ValueError(f"{name}: nr_samples must be at least 1")
    explain = explainer(method, name, method_options, fast)
    t = class_targets(model, images, target, fast)
    x = images.detach()
    b = x.shape[0]
    a = flat(prepare(images, maps, abs=abs, normalise=normalise))
    xf = x.reshape(b, -1).double()
    rs = np.random.RandomState(seed)
    out = torch.empty((b, nr_samples), dtype=torch.float64, device=x.device)
    for s in range(nr_samples):
        d = torch.as_tensor(noise(rs, tuple(xf.shape)), device=x.device)
        xp = (xf + d).to(x.dtype)
        ap = explain(model, xp.view_as(x), t)
        if normalise:
            ap = normalise_by_max(ap)
        if abs:
            ap = ap.abs()
        out[:, s] = distance(a, flat(ap), xf, xp.reshape(b, -1).double())
    return out


def relative_change(a: Tensor, ap: Tensor, _x: Tensor, _xp: Tensor) -> Tensor:
    """``||a - a'|| / ||a||`` (Quantus's ``difference`` and ``fro_norm``s)."""
    return (a - ap).norm(dim=1) / a.norm(dim=1)
