"""Integrated Gradients (Sundararajan et al. 2017)."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from ..engine import input_gradient
from ..models import Classifier
from ..ops import Reduce, reduce_channels
from ..targets import Target, take
from ._common import baseline_images, sample_sum, targets_and_logits
from ._registry import register_method

__all__ = ["integrated_gradients", "path_points"]


def path_points(steps: int, rule: str = "gausslegendre") -> tuple[np.ndarray, np.ndarray]:
    """Points ``alpha`` in [0, 1] and weights of a quadrature of the path integral.

    Args:
        steps: number of points.
        rule: ``"gausslegendre"`` (as Captum's default), ``"riemann_middle"``,
            ``"riemann_trapezoid"``, ``"riemann_left"`` or ``"riemann_right"``.
    """
    if steps < 1:
        raise ValueError("steps must be at least 1")
    if rule == "gausslegendre":
        nodes, weights = np.polynomial.legendre.leggauss(steps)
        return 0.5 * (nodes + 1.0), 0.5 * weights
    if rule == "riemann_trapezoid":
        if steps < 2:
            raise ValueError("riemann_trapezoid needs at least 2 steps")
        a = np.linspace(0.0, 1.0, steps)
        w = np.full(steps, 1.0 / (steps - 1))
        w[0] = w[-1] = 0.5 / (steps - 1)
        return a, w
    w = np.full(steps, 1.0 / steps)
    if rule == "riemann_middle":
        return (np.arange(steps) + 0.5) / steps, w
    if rule == "riemann_left":
        return np.arange(steps) / steps, w
    if rule == "riemann_right":
        return (np.arange(steps) + 1.0) / steps, w
    raise ValueError(f"unknown quadrature rule {rule!r}")


@register_method(
    "integrated_gradients",
    "Integrated Gradients: (x - x') times the gradient averaged along the path from x' to x",
    "Sundararajan et al. 2017, https://arxiv.org/abs/1703.01365",
    signed=True, cost="moderate", order=50, report="full",
)
def integrated_gradients(
    model: Classifier | nn.Module,
    images: Tensor,
    target: Target = None,
    *,
    baseline: str | float | Tensor = "zero",
    steps: int = 32,
    rule: str = "gausslegendre",
    reduce: Reduce = "sum_abs",
    batch_size: int | None = 64,
    fast: bool = True,
) -> Tensor:
    """``(x - x') * integral_0^1 dS_c/dx (x' + a (x - x')) da`` for a batch.

    All path points of all images go through the network together, ``batch_size`` at a
    time. Completeness: with ``reduce="sum"`` and summed over pixels, the result approaches
    ``S_c(x) - S_c(x')`` as ``steps`` grows.

    Args:
        model: a :class:`Classifier` or an ``nn.Module`` returning logits ``Tensor[B, K]``.
        images: ``Tensor[B, C, H, W]`` in the model's input space.
        target: ``None`` (top-1 of the image), an ``int``, or a sequence / ``Tensor[B]``.
        baseline: the reference x': ``"zero"`` (the input-space zero: mean colour for a
            normalised model; Captum's default), ``"black"``, ``"white"``, ``"mean"``,
            ``"blur"``, a number or a tensor (see :func:`baseline_images`).
        steps: number of points on the path.
        rule: quadrature rule (see :func:`path_points`).
        reduce: channel reduction; ``"sum_abs"`` by default, ``"sum"`` keeps signs.
        batch_size: path points per forward/backward pass (None: all at once).
        fast: use the batch-norm-folded private copy (see :func:`deepinside.engine.input_gradient`).

    Returns:
        ``Tensor[B, H, W]`` (``Tensor[B, C, H, W]`` with ``reduce="none"``).
    """
    t, _ = targets_and_logits(model, images, target, fast)
    x = images.detach()
    ref = baseline_images(model, x, baseline)
    diff = x - ref
    alphas, weights = path_points(steps, rule)
    a = torch.as_tensor(alphas, dtype=x.dtype, device=x.device)
    w = torch.as_tensor(weights, dtype=x.dtype, device=x.device)

    def draw(bi: Tensor, ki: Tensor) -> Tensor:  # image bi, path point ki
        points = ref[bi] + a[ki].view(-1, 1, 1, 1) * diff[bi]
        grad, _, _ = input_gradient(model, points, take(t, bi), fast=fast)
        return grad * w[ki].view(-1, 1, 1, 1)

    total = sample_sum(x.shape[0], steps, batch_size, x.device, draw)
    return reduce_channels(diff * total, reduce)
