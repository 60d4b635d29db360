"""Max-sensitivity (Yeh et al. 2019): the largest change of the map under small noise."""

from __future__ import annotations

from torch import Tensor, nn

from ..models import Classifier
from ..targets import Target
from ._common import Boxes, MethodArg
from ._registry import register_metric
from ._robustness import noisy_map_distances, relative_change

__all__ = ["max_sensitivity", "uniform_noise"]


def uniform_noise(lower_bound: float, upper_bound: float | None):
    """Quantus's ``uniform_noise``: U(-lower, lower), or U(lower, upper) with an upper bound."""
    if upper_bound is not None and upper_bound <= lower_bound:
        raise ValueError(f"upper_bound ({upper_bound}) must exceed lower_bound ({lower_bound})")
    lo, hi = (-lower_bound, lower_bound) if upper_bound is None else (lower_bound, upper_bound)
    return lambda rs, shape: rs.uniform(lo, hi, size=shape)


@register_metric(
    "max_sensitivity", "robustness",
    "largest ||map(x') - map(x)|| / ||map(x)|| over noisy copies x' of the photo",
    "Yeh et al. 2019, https://arxiv.org/abs/1901.09392",
    higher_is_better=False, needs=("method",), cost="expensive",
)
def max_sensitivity(model: Classifier | nn.Module, images: Tensor, maps: Tensor,
                    target: Target = None, *, boxes: Boxes = None, method: MethodArg = None,
                    method_options: dict | None = None, nr_samples: int = 10,
                    lower_bound: float = 0.2, upper_bound: float | None = None,
                    abs: bool = False, normalise: bool = False, seed: int = 0,
                    fast: bool = True) -> Tensor:
    """Per photo, ``Tensor[B]`` (Quantus ``MaxSensitivity``).

    ``nr_samples`` copies ``x' = x + u`` with ``u`` uniform in ``[-lower_bound, lower_bound]``
    for every colour value; the method's map of ``x'`` for the same target; the largest
    relative change (Frobenius norms). A map that does not depend on noise that leaves the
    model's gradient unchanged (the gradient of a linear model) scores 0.

    Differs from Quantus's default in ``nr_samples`` only (10, not 200: one map per sample).

    Args:
        model, images, maps, target, abs, normalise: as Quantus (``boxes`` unused).
        method: the method that made ``maps`` (a name or a function), rerun on the copies.
        method_options: its options.
        nr_samples, lower_bound, upper_bound: the noise.
        seed: draws from ``numpy.random.RandomState(seed)`` in Quantus's order.
        fast: the engine's batch-norm-folded copy.
    """
    return noisy_map_distances(
        "max_sensitivity", model, images, maps, target,
        noise=uniform_noise(lower_bound, upper_bound), distance=relative_change,
        nr_samples=nr_samples, method=method, method_options=method_options, abs=abs,
        normalise=normalise, seed=seed, fast=fast).nan_to_num(nan=float("-inf")).amax(dim=1)
