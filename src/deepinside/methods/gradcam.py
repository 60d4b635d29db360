"""Grad-CAM (Selvaraju et al. 2017)."""

from __future__ import annotations

from torch import Tensor, nn

from ..models import Classifier
from ..targets import Target
from . import register_method
from .cam import Layer, LayerCapture, weighted_cam

__all__ = ["gradcam"]


@register_method(
    "gradcam",
    "Grad-CAM: a layer's maps weighted by their average gradient, rectified, upsampled",
    "Selvaraju et al. 2017, https://arxiv.org/abs/1610.02391",
)
def gradcam(
    model: Classifier | nn.Module,
    images: Tensor,
    target: Target = None,
    *,
    layer: Layer = None,
    relu: bool = True,
    upsample_to_input: bool = True,
    fast: bool = True,
) -> Tensor:
    """``relu(sum_k w_k A_k)`` with ``w_k`` the spatial mean of ``dS_c/dA_k``, for a batch.

    Args:
        model: a :class:`Classifier` or an ``nn.Module`` returning logits ``Tensor[B, K]``.
        images: ``Tensor[B, C, H, W]``.
        target: ``None`` (top-1), an ``int``, or a sequence / ``Tensor[B]`` of ints.
        layer: ``None`` (the last feature map), a ``named_modules()`` name or pattern, or a
            submodule (see :func:`deepinside.layers.find_layer`).
        relu: rectify the weighted sum (the paper); ``False`` keeps negative evidence.
        upsample_to_input: resize bilinearly to ``H, W``; ``False`` keeps the layer's ``h, w``.
        fast: use the batch-norm-folded private copy when the layer's output is the same there.

    Returns:
        ``Tensor[B, H, W]`` (``Tensor[B, h, w]`` without upsampling), not normalised.
    """
    return weighted_cam(model, images, target, _weights, layer=layer, relu=relu,
                        upsample_to_input=upsample_to_input, fast=fast)


def _weights(cap: LayerCapture) -> Tensor:
    return cap.gradients.mean(dim=(2, 3), keepdim=True)
