"""Guided backpropagation (Springenberg et al. 2014)."""

from __future__ import annotations

from torch import Tensor, nn

from ..models import Classifier
from ..saliency import Reduce
from ..targets import Target
from ._registry import register_method
from .relu_rules import rule_map

__all__ = ["guided_backprop"]


@register_method(
    "guided_backprop",
    "guided backprop: ReLUs pass the gradient where both input and signal are positive",
    "Springenberg et al. 2014, https://arxiv.org/abs/1412.6806",
    order=20, report="quick",
)
def guided_backprop(
    model: Classifier | nn.Module,
    images: Tensor,
    target: Target = None,
    *,
    reduce: Reduce = "max_abs",
    fast: bool = True,
) -> Tensor:
    """Guided backpropagation of the class score, for a batch.

    Each rectifier (ReLU, ReLU6, Hardtanh; modules, functions, in place) passes
    ``R * (lo < x < hi) * (R > 0)``: the gradient's mask and the deconvnet's together.

    Args:
        model: a :class:`Classifier` or an ``nn.Module`` returning logits ``Tensor[B, K]``.
        images: ``Tensor[B, C, H, W]`` in the model's input space.
        target: ``None`` (top-1), an ``int``, or a sequence / ``Tensor[B]`` of ints.
        reduce: channel reduction; ``"max_abs"`` by default.
        fast: use the batch-norm-folded private copy (see :func:`input_gradient`).

    Returns:
        ``Tensor[B, H, W]`` (``Tensor[B, C, H, W]`` with ``reduce="none"``).
    """
    return rule_map("guided", model, images, target, reduce=reduce, fast=fast)
