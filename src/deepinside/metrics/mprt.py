"""Model parameter randomisation test (Adebayo et al. 2018), deepinside's cascade."""

from __future__ import annotations

from torch import Tensor, nn

from ..models import Classifier
from ..targets import Target
from ._common import Boxes, MethodArg
from ._registry import register_metric

__all__ = ["mprt"]


@register_metric(
    "mprt", "randomisation",
    "Spearman correlation of |map| with |map| of the fully randomised model (cascade)",
    "Adebayo et al. 2018, https://arxiv.org/abs/1810.03292",
    higher_is_better=False, needs=("method",), cost="moderate",
)
def mprt(model: Classifier | nn.Module, images: Tensor, maps: Tensor, target: Target = None,
         *, boxes: Boxes = None, method: MethodArg = None, method_options: dict | None = None,
         seed: int = 0, fast: bool = True) -> Tensor:
    """Per photo, ``Tensor[B]``: :func:`deepinside.randomization_test`'s ``final`` (every
    layer re-initialised from the top by its ``reset_parameters``, on a deep copy).

    Quantus ``MPRT`` reports the correlation after each layer; this is its last value
    (``return_last_correlation=True``), with the same similarity (Spearman of absolute
    maps) but deepinside's re-initialisation, so the numbers are not Quantus's draws.
    """
    from ._common import explainer
    from .perturbation import randomization_test

    explainer(method, "mprt")  # the one "pass method=" message
    opts = dict(method_options or {})
    return randomization_test(model, images, method=method, target=target, points=1, seed=seed,
                              fast=fast, original=maps.detach(), **opts).final.double()
