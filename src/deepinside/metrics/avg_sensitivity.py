"""Avg-sensitivity (Yeh et al. 2019): the mean change of the map under small noise."""

from __future__ import annotations

from torch import Tensor, nn

from ..models import Classifier
from ..targets import Target
from ._common import Boxes, MethodArg
from ._registry import register_metric
from ._robustness import noisy_map_distances, relative_change
from .max_sensitivity import uniform_noise

__all__ = ["avg_sensitivity"]


@register_metric(
    "avg_sensitivity", "robustness",
    "mean ||map(x') - map(x)|| / ||map(x)|| over noisy copies x' of the photo",
    "Yeh et al. 2019, https://arxiv.org/abs/1901.09392",
    higher_is_better=False, needs=("method",), cost="expensive",
)
def avg_sensitivity(model: Classifier | nn.Module, images: Tensor, maps: Tensor,
                    target: Target = None, *, boxes: Boxes = None, method: MethodArg = None,
                    method_options: dict | None = None, nr_samples: int = 10,
                    lower_bound: float = 0.2, upper_bound: float | None = None,
                    abs: bool = False, normalise: bool = False, seed: int = 0,
                    fast: bool = True) -> Tensor:
    """Per photo, ``Tensor[B]`` (Quantus ``AvgSensitivity``): as
    :func:`~deepinside.metrics.max_sensitivity.max_sensitivity` with the mean for the maximum.
    Differs from Quantus's default in ``nr_samples`` only (10, not 200).
    """
    return noisy_map_distances(
        "avg_sensitivity", model, images, maps, target,
        noise=uniform_noise(lower_bound, upper_bound), distance=relative_change,
        nr_samples=nr_samples, method=method, method_options=method_options, abs=abs,
        normalise=normalise, seed=seed, fast=fast).nanmean(dim=1)
