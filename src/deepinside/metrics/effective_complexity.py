"""Effective complexity: how many pixels matter (Nguyen & Martinez 2020)."""

from __future__ import annotations

from torch import Tensor, nn

from ..models import Classifier
from ..targets import Target
from ._common import Boxes, flat, prepare
from ._registry import register_metric

__all__ = ["effective_complexity"]


@register_metric(
    "effective_complexity", "complexity",
    "number of pixels whose |map| / max |map| exceeds eps",
    "Nguyen & Martinez 2020, https://arxiv.org/abs/2007.07584",
    higher_is_better=False,
)
def effective_complexity(model: Classifier | nn.Module, images: Tensor, maps: Tensor,
                         target: Target = None, *, boxes: Boxes = None, eps: float = 1e-5,
                         abs: bool = True, normalise: bool = True) -> Tensor:
    """Count of pixels above ``eps``, ``Tensor[B]`` (Quantus ``EffectiveComplexity``).

    Quantus divides the whole batch by one maximum; here each map by its own, so the count
    does not depend on the other photos of the batch.

    Args:
        model, target, boxes: unused.
        images: ``Tensor[B, C, H, W]``; maps: ``Tensor[B, h, w]``.
        eps: the threshold on the normalised map.
        abs, normalise: Quantus's defaults.
    """
    a = flat(prepare(images, maps, abs=abs, normalise=normalise))
    return (a > eps).sum(dim=1).double()
