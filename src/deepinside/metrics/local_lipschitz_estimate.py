"""Local Lipschitz estimate (Alvarez-Melis & Jaakkola 2018)."""

from __future__ import annotations

from torch import Tensor, nn

from ..models import Classifier
from ..targets import Target
from ._common import Boxes, MethodArg
from ._registry import register_metric
from ._robustness import noisy_map_distances

__all__ = ["local_lipschitz_estimate"]


def _lipschitz(a: Tensor, ap: Tensor, x: Tensor, xp: Tensor) -> Tensor:
    return (a - ap).norm(dim=1) / ((x - xp).norm(dim=1) + 1e-10)


@register_metric(
    "local_lipschitz_estimate", "robustness",
    "largest ||map(x) - map(x')|| / ||x - x'|| over Gaussian-noised copies x'",
    "Alvarez-Melis & Jaakkola 2018, https://arxiv.org/abs/1806.08049",
    higher_is_better=False, needs=("method",), cost="expensive",
)
def local_lipschitz_estimate(model: Classifier | nn.Module, images: Tensor, maps: Tensor,
                             target: Target = None, *, boxes: Boxes = None,
                             method: MethodArg = None, method_options: dict | None = None,
                             nr_samples: int = 10, perturb_mean: float = 0.0,
                             perturb_std: float = 0.1, abs: bool = False,
                             normalise: bool = True, seed: int = 0,
                             fast: bool = True) -> Tensor:
    """Per photo, ``Tensor[B]`` (Quantus ``LocalLipschitzEstimate``): noise
    ``N(perturb_mean, perturb_std^2)`` on every colour value, maps normalised by their
    maximum, Euclidean distances. Differs from Quantus's default in ``nr_samples`` only
    (10, not 200).

    Args:
        as :func:`~deepinside.metrics.max_sensitivity.max_sensitivity`.
    """
    return noisy_map_distances(
        "local_lipschitz_estimate", model, images, maps, target,
        noise=lambda rs, shape: rs.normal(perturb_mean, perturb_std, size=shape),
        distance=_lipschitz, nr_samples=nr_samples, method=method,
        method_options=method_options, abs=abs, normalise=normalise, seed=seed,
        fast=fast).nan_to_num(nan=float("-inf")).amax(dim=1)
