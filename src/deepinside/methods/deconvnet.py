"""Zeiler & Fergus's deconvnet as a backward rule (Simonyan et al. 2013, section 4)."""

from __future__ import annotations

from torch import Tensor, nn

from ..models import Classifier
from ..saliency import Reduce
from ..targets import Target
from ._registry import register_method
from .relu_rules import rule_map

__all__ = ["deconvnet"]


@register_method(
    "deconvnet",
    "deconvnet reconstruction: backprop with ReLUs passing only positive signals, R*(R>0)",
    "Zeiler & Fergus 2014, https://arxiv.org/abs/1311.2901 (as a gradient: "
    "Simonyan et al. 2013, section 4)",
    order=10, report="full",
)
def deconvnet(
    model: Classifier | nn.Module,
    images: Tensor,
    target: Target = None,
    *,
    reduce: Reduce = "max_abs",
    fast: bool = True,
) -> Tensor:
    """The deconvnet reconstruction of the class score, for a batch.

    The backward pass of the gradient, except that each rectifier (ReLU, ReLU6, Hardtanh, as
    modules, functions or in place) passes ``R * (R > 0)`` instead of ``R * (x > 0)``; max
    pooling uses the forward's switches, as the gradient does (paper, section 4). On a network
    without rectifiers it equals the gradient.

    Args:
        model: a :class:`Classifier` or an ``nn.Module`` returning logits ``Tensor[B, K]``.
        images: ``Tensor[B, C, H, W]`` in the model's input space.
        target: ``None`` (top-1), an ``int``, or a sequence / ``Tensor[B]`` of ints.
        reduce: channel reduction; the paper's ``"max_abs"`` by default.
        fast: use the batch-norm-folded private copy (see :func:`input_gradient`).

    Returns:
        ``Tensor[B, H, W]`` (``Tensor[B, C, H, W]`` with ``reduce="none"``).
    """
    return rule_map("deconvnet", model, images, target, reduce=reduce, fast=fast)
