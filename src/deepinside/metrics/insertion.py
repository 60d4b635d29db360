"""Insertion (Petsiuk, Das & Saenko 2018, RISE): the probability as relevant pixels appear."""

from __future__ import annotations

from torch import Tensor, nn

from ..models import Classifier
from ..targets import Target
from ._common import Boxes
from ._registry import register_metric
from .deletion import curve_auc

__all__ = ["insertion"]


@register_metric(
    "insertion", "faithfulness",
    "area under the target's probability as the most relevant pixels are revealed first on "
    "a blurred photo",
    "Petsiuk, Das & Saenko 2018, https://arxiv.org/abs/1806.07421",
    higher_is_better=True, cost="moderate",
)
def insertion(model: Classifier | nn.Module, images: Tensor, maps: Tensor,
              target: Target = None, *, boxes: Boxes = None, steps: int = 16,
              baseline: str | float | Tensor | None = None, batch_size: int | None = 64,
              fast: bool = True) -> Tensor:
    """Insertion AUC per photo, ``Tensor[B]``: :func:`deepinside.deletion_insertion`'s
    (into a blurred copy by default). Not in Quantus.

    Args:
        steps, baseline, batch_size, fast: see :func:`deepinside.deletion_insertion`.
    """
    return curve_auc("insertion", model, images, maps, target, steps=steps,
                     baseline=baseline, batch_size=batch_size, fast=fast)
