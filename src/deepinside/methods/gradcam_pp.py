"""Grad-CAM++ (Chattopadhyay et al. 2018)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..models import Classifier
from ..targets import Target
from . import register_method
from .cam import Layer, LayerCapture, weighted_cam

__all__ = ["gradcam_pp"]


@register_method(
    "gradcam_pp",
    "Grad-CAM++: maps weighted by positive gradients with per-pixel higher-order weights",
    "Chattopadhyay et al. 2018, https://arxiv.org/abs/1710.11063",
)
def gradcam_pp(
    model: Classifier | nn.Module,
    images: Tensor,
    target: Target = None,
    *,
    layer: Layer = None,
    upsample_to_input: bool = True,
    fast: bool = True,
) -> Tensor:
    """Grad-CAM++ for a batch, with the closed form of the paper's eq. 19 (exponential score).

    ``a_kij = g^2 / (2 g^2 + sum_ab A_kab g^3) = 1 / (2 + g sum_ab A_kab)`` where ``g != 0``
    (else 0), ``w_k = sum_ij a_kij relu(g_kij)``, ``map = relu(sum_k w_k A_k)``, with
    ``g = dS_c/dA``. pytorch-grad-cam adds 1e-6 to the first form's denominator, which
    dominates when gradients are small (below about 1e-3, as on EfficientNet-Lite); the
    second form needs no such constant, and agrees with it where the constant is negligible.

    Args:
        model: a :class:`Classifier` or an ``nn.Module`` returning logits ``Tensor[B, K]``.
        images: ``Tensor[B, C, H, W]``.
        target: ``None`` (top-1), an ``int``, or a sequence / ``Tensor[B]`` of ints.
        layer: ``None`` (the last feature map), a name, a pattern or a submodule.
        upsample_to_input: resize bilinearly to ``H, W``; ``False`` keeps ``h, w``.
        fast: use the batch-norm-folded private copy when the layer's output is the same there.

    Returns:
        ``Tensor[B, H, W]`` (``Tensor[B, h, w]`` without upsampling), not normalised.
    """
    return weighted_cam(model, images, target, _weights, layer=layer,
                        upsample_to_input=upsample_to_input, fast=fast)


def _weights(cap: LayerCapture) -> Tensor:
    a, g = cap.activations, cap.gradients
    denom = 2 + g * a.sum(dim=(2, 3), keepdim=True)
    ok = (g != 0) & (denom != 0)
    alpha = torch.where(ok, 1 / torch.where(ok, denom, torch.ones_like(denom)), 0.0)
    return (alpha * g.clamp(min=0)).sum(dim=(2, 3), keepdim=True)
