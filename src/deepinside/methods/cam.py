"""What the CAM family shares: a layer's activations weighted per channel, summed, upsampled.

The engine captures the layer (:func:`deepinside.engine.capture_layer`: one forward pass, a
backward pass down to the layer only); each method supplies the channel weights
(pytorch-grad-cam's ``BaseCAM.get_cam_weights``) and, where a weighted sum is not what it
does, how they combine (``get_cam_image``); :func:`weighted_cam` does the rest (rectify,
upsample: :func:`cam_tail`).
Layers are chosen by :mod:`deepinside.layers`.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor, nn

from ..engine import LayerCapture, capture_layer
from ..layers import Layer, find_layer
from ..models import Classifier
from ..ops import resize_maps
from ..targets import Target
from ._registry import register_method

__all__ = ["Combine", "Layer", "LayerCapture", "Weights", "cam_method", "cam_tail",
           "capture_layer", "find_layer", "weighted_cam", "weighted_sum"]

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


Weights = Callable[[LayerCapture], Tensor]
Combine = Callable[[LayerCapture, "Tensor | None"], Tensor]


def weighted_sum(cap: LayerCapture, weights: Tensor | None) -> Tensor:
    """The default combine hook: ``sum_k w_k A_k``, ``Tensor[B, h, w]``."""
    assert weights is not None, "the default combine hook needs weights"
    return (weights * cap.activations).sum(dim=1)


def cam_tail(cam: Tensor, images: Tensor, relu: bool, upsample_to_input: bool) -> Tensor:
    """What every CAM does last: rectify ``Tensor[B, h, w]`` and upsample it to the images'
    ``H, W``."""
    if relu:
        cam = cam.clamp(min=0)
    return resize_maps(cam, tuple(images.shape[-2:])) if upsample_to_input else cam


def weighted_cam(
    model: Classifier | nn.Module,
    images: Tensor,
    target: Target,
    weights: Weights | None = None,
    *,
    combine: Combine | None = None,
    layer: Layer = None,
    relu: bool = True,
    upsample_to_input: bool = True,
    fast: bool = True,
) -> Tensor:
    """A CAM of a batch: capture the layer, weigh it, combine, rectify, upsample.

    pytorch-grad-cam's ``BaseCAM`` split: a method supplies ``weights`` (``get_cam_weights``)
    and, if a weighted sum is not what it does, ``combine`` (``get_cam_image``).

    Args:
        model: a :class:`Classifier` or an ``nn.Module`` returning logits ``Tensor[B, K]``.
        images: ``Tensor[B, C, H, W]``.
        target: one class per image (see :mod:`deepinside.targets`).
        weights: ``f(capture) -> Tensor[B, C, 1, 1]`` (or ``Tensor[B, C, h, w]``), the weights
            (``None``: the combine hook needs none).
        combine: ``f(capture, weights) -> Tensor[B, h, w]``; default :func:`weighted_sum`.
        layer: ``None`` (the last feature map), a ``named_modules()`` name or pattern, or a
            submodule (see :func:`deepinside.layers.find_layer`).
        relu: rectify the combined map.
        upsample_to_input: resize bilinearly to ``H, W``; ``False`` keeps the layer's ``h, w``.
        fast: use the batch-norm-folded private copy when the layer's output is the same there.

    Returns:
        ``Tensor[B, H, W]`` (``Tensor[B, h, w]`` without upsampling), not normalised.
    """
    cap = capture_layer(model, images, target, layer=layer, fast=fast)
    w = weights(cap) if weights is not None else None
    cam = (combine or weighted_sum)(cap, w)
    return cam_tail(cam, images, relu, upsample_to_input)


def cam_method(
    name: str,
    description: str,
    paper: str,
    weights: Weights,
    doc: str,
    **facts: object,
) -> Callable[..., Tensor]:
    """Register the CAM whose channel weights are ``weights(capture)`` under ``name``.

    Returns the method, ``f(model, images, target=None, *, layer=None, relu=True,
    upsample_to_input=True, fast=True) -> Tensor[B, H, W]``, with ``doc`` (what it computes)
    followed by the arguments every such CAM shares. ``facts``: those of
    :func:`~deepinside.methods.register_method` (``order``, ``cost``, ...).
    """

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
    return register_method(name, description, paper, **facts)(method)  # type: ignore[arg-type]
