"""XGrad-CAM (Fu et al. 2020)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..models import Classifier
from ..targets import Target
from . import register_method
from .cam import Layer, LayerCapture, weighted_cam

__all__ = ["xgradcam"]


@register_method(
    "xgradcam",
    "XGrad-CAM: maps weighted by their gradients averaged with the activations as weights",
    "Fu et al. 2020, https://arxiv.org/abs/2008.02312",
)
def xgradcam(
    model: Classifier | nn.Module,
    images: Tensor,
    target: Target = None,
    *,
    layer: Layer = None,
    relu: bool = True,
    upsample_to_input: bool = True,
    fast: bool = True,
) -> Tensor:
    """``relu(sum_k w_k A_k)`` with ``w_k = sum_ij A_kij / sum_ab A_kab * dS_c/dA_kij``.

    The weights of the paper's eq. 12 (chosen to satisfy its sensitivity and conservation
    axioms); a channel whose activations sum to 0 gets weight 0. pytorch-grad-cam adds 1e-7
    to the denominator instead, which differs only where the sum is that small.

    Args:
        model: a :class:`Classifier` or an ``nn.Module`` returning logits ``Tensor[B, K]``.
        images: ``Tensor[B, C, H, W]``.
        target: ``None`` (top-1), an ``int``, or a sequence / ``Tensor[B]`` of ints.
        layer: ``None`` (the last feature map), a ``named_modules()`` name or pattern, or a
            submodule (see :func:`deepinside.layers.find_layer`).
        relu: rectify the weighted sum (the paper).
        upsample_to_input: resize bilinearly to ``H, W``; ``False`` keeps the layer's ``h, w``.
        fast: use the batch-norm-folded private copy when the layer's output is the same there.

    Returns:
        ``Tensor[B, H, W]`` (``Tensor[B, h, w]`` without upsampling), not normalised.
    """
    return weighted_cam(model, images, target, _weights, layer=layer, relu=relu,
                        upsample_to_input=upsample_to_input, fast=fast)


def _weights(cap: LayerCapture) -> Tensor:
    a = cap.activations
    total = a.sum(dim=(2, 3), keepdim=True)
    ok = total != 0
    share = a / torch.where(ok, total, torch.ones_like(total))
    return torch.where(ok, (share * cap.gradients).sum(dim=(2, 3), keepdim=True), 0.0)
