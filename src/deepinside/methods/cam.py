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

__all__ = ["Layer", "LayerCapture", "cam_method", "capture_layer", "default_layer", "find_layer",
           "weighted_cam"]

_ARGS = """

    Args:
        model: a :class:`Classifier` or an ``nn.Module`` returning logits ``Tensor[B, K]``.
        images: ``Tensor[B, C, H, W]``.
        target: ``None`` (top-1), an ``int``, or a sequence / ``Tensor[B]`` of ints (see
            :mod:`deepinside.targets`).
        layer: ``None`` (the last feature map), a ``named_modules()`` name or pattern, or a
            submodule (see :func:`deepinside.layers.find_layer`).
        relu: rectify the weighted sum (the papers); ``False`` keeps negative evidence.
        upsample_to_input: resize bilinearly to ``H, W``; ``False`` keeps the layer's ``h, w``.
        fast: use the batch-norm-folded private copy when the layer's output is the same there.

    Returns:
        ``Tensor[B, H, W]`` (``Tensor[B, h, w]`` without upsampling), not normalised.
    """


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


def cam_method(
    name: str,
    description: str,
    paper: str,
    weights: Callable[[LayerCapture], Tensor],
    doc: str,
) -> Callable[..., Tensor]:
    """Register the CAM whose channel weights are ``weights(capture)`` under ``name``.

    Returns the method, ``f(model, images, target=None, *, layer=None, relu=True,
    upsample_to_input=True, fast=True) -> Tensor[B, H, W]``, with ``doc`` (what it computes)
    followed by the arguments every such CAM shares.
    """
    from . import register_method

    def method(
        model: Classifier | nn.Module,
        images: Tensor,
        target: Target = None,
        *,
        layer: Layer = None,
        relu: bool = True,
        upsample_to_input: bool = True,
        fast: bool = True,
    ) -> Tensor:
        return weighted_cam(model, images, target, weights, layer=layer, relu=relu,
                            upsample_to_input=upsample_to_input, fast=fast)

    method.__name__ = method.__qualname__ = name
    method.__module__ = weights.__module__  # the method's own module, where its weights are
    method.__doc__ = doc.rstrip() + _ARGS
    return register_method(name, description, paper)(method)
