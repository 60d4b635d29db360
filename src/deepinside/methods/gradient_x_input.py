"""Gradient times input (Shrikumar et al. 2016, https://arxiv.org/abs/1605.01713)."""

from __future__ import annotations

from torch import Tensor, nn

from ..engine import input_gradient
from ..models import Classifier
from ..ops import Reduce, reduce_channels
from ..targets import Target
from ._registry import register_method

__all__ = ["gradient_x_input"]


@register_method(
    "gradient_x_input",
    "the input times its gradient, x * dS_c/dx (first-order Taylor contribution)",
    "Shrikumar et al. 2016, https://arxiv.org/abs/1605.01713",
    signed=True, order=30, report="full",
)
def gradient_x_input(
    model: Classifier | nn.Module,
    images: Tensor,
    target: Target = None,
    *,
    reduce: Reduce = "sum_abs",
    fast: bool = True,
) -> Tensor:
    """``x * dS_c/dx`` for a batch, one forward and one backward pass.

    Args:
        model: a :class:`Classifier` or an ``nn.Module`` returning logits ``Tensor[B, K]``.
        images: ``Tensor[B, C, H, W]`` in the model's input space (the product is taken there).
        target: ``None`` (top-1), an ``int``, or a sequence / ``Tensor[B]`` of ints.
        reduce: channel reduction (see :func:`deepinside.saliency.reduce_channels`).
        fast: use the batch-norm-folded private copy (see :func:`deepinside.engine.input_gradient`).

    Returns:
        ``Tensor[B, H, W]`` (``Tensor[B, C, H, W]`` with ``reduce="none"``).
    """
    grad, _, _ = input_gradient(model, images, target, fast=fast)
    return reduce_channels(grad * images.detach(), reduce)
