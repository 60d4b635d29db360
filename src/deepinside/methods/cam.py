"""What the CAM family shares: a layer's activations weighted per channel, summed, upsampled.

The engine captures the layer (:func:`deepinside.engine.capture_layer`: one forward pass, a
backward pass down to the layer only); each method supplies one function, the channel weights
(pytorch-grad-cam's ``BaseCAM.get_cam_weights``), and :func:`weighted_cam` does the rest.
Layers are chosen by :mod:`deepinside.layers`.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor, nn

from ..engine import LayerCapture, capture_layer
from ..images import resize_maps
from ..layers import Layer, default_layer, find_layer
from ..models import Classifier
from ..targets import Target

__all__ = ["Layer", "LayerCapture", "capture_layer", "default_layer", "find_layer", "weighted_cam"]


def weighted_cam(
    model: Classifier | nn.Module,
    images: Tensor,
    target: Target,
    weights: Callable[[LayerCapture], Tensor],
    *,
    layer: Layer = None,
    relu: bool = True,
    upsample_to_input: bool = True,
    fast: bool = True,
) -> Tensor:
    """``sum_k w_k A_k`` over a layer's channels, rectified and upsampled, for a batch.

    Args:
        model: a :class:`Classifier` or an ``nn.Module`` returning logits ``Tensor[B, K]``.
        images: ``Tensor[B, C, H, W]``.
        target: one class per image (see :mod:`deepinside.targets`).
        weights: ``f(capture) -> Tensor[B, C, 1, 1]`` (or ``Tensor[B, C, h, w]``), the weights.
        layer: ``None`` (the last feature map), a ``named_modules()`` name or pattern, or a
            submodule (see :func:`deepinside.layers.find_layer`).
        relu: rectify the weighted sum.
        upsample_to_input: resize bilinearly to ``H, W``; ``False`` keeps the layer's ``h, w``.
        fast: use the batch-norm-folded private copy when the layer's output is the same there.

    Returns:
        ``Tensor[B, H, W]`` (``Tensor[B, h, w]`` without upsampling), not normalised.
    """
    cap = capture_layer(model, images, target, layer=layer, fast=fast)
    cam = (weights(cap) * cap.activations).sum(dim=1)
    if relu:
        cam = cam.clamp(min=0)
    return resize_maps(cam, tuple(images.shape[-2:])) if upsample_to_input else cam
