"""Deletion (Petsiuk, Das & Saenko 2018, RISE): the probability as relevant pixels go."""

from __future__ import annotations

from torch import Tensor, nn

from ..models import Classifier
from ..targets import Target
from ._common import Boxes, prepare
from ._registry import register_metric

__all__ = ["curve_auc", "deletion"]


@register_metric(
    "deletion", "faithfulness",
    "area under the target's probability as the most relevant pixels are replaced first",
    "Petsiuk, Das & Saenko 2018, https://arxiv.org/abs/1806.07421",
    higher_is_better=False, cost="moderate",
)
def deletion(model: Classifier | nn.Module, images: Tensor, maps: Tensor,
             target: Target = None, *, boxes: Boxes = None, steps: int = 16,
             baseline: str | float | Tensor | None = None, batch_size: int | None = 64,
             fast: bool = True) -> Tensor:
    """Deletion AUC per photo, ``Tensor[B]``: :func:`deepinside.deletion_insertion`'s
    (deletion to each image's mean colour by default). Not in Quantus (its
    ``PixelFlipping`` is the same idea with other defaults).

    Args:
        steps, baseline, batch_size, fast: see :func:`deepinside.deletion_insertion`.
    """
    return curve_auc("deletion", model, images, maps, target, steps=steps, baseline=baseline,
                     batch_size=batch_size, fast=fast)


def curve_auc(mode: str, model: Classifier | nn.Module, images: Tensor, maps: Tensor,
              target: Target, **options) -> Tensor:
    """``Tensor[B]``: the area under the ``mode`` (deletion / insertion) curve."""
    from .perturbation import deletion_insertion

    curves = deletion_insertion(model, images, prepare(images, maps), target, modes=(mode,),
                                **options)
    return getattr(curves, f"{mode}_auc").double()
