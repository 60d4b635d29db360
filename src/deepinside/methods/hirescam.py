"""HiResCAM (Draelos & Carin 2020)."""

from __future__ import annotations

from torch import Tensor, nn

from ..models import Classifier
from ..targets import Target
from . import register_method
from .cam import Layer, LayerCapture, weighted_cam

__all__ = ["hirescam"]


@register_method(
    "hirescam",
    "HiResCAM: the activations times their gradients, element-wise, summed over channels",
    "Draelos & Carin 2020, https://arxiv.org/abs/2011.08891",
)
def hirescam(
    model: Classifier | nn.Module,
    images: Tensor,
    target: Target = None,
    *,
    layer: Layer = None,
    relu: bool = True,
    upsample_to_input: bool = True,
    fast: bool = True,
) -> Tensor:
    """``relu(sum_k dS_c/dA_k * A_k)`` (element-wise products), for a batch.

    Grad-CAM averages each channel's gradient over the map before weighting; HiResCAM keeps
    the product at every location, so when the layer is followed by global average pooling
    and a linear layer the (unrectified) map sums to the class score minus the bias: it shows
    exactly where the model looked.

    Args:
        model: a :class:`Classifier` or an ``nn.Module`` returning logits ``Tensor[B, K]``.
        images: ``Tensor[B, C, H, W]``.
        target: ``None`` (top-1), an ``int``, or a sequence / ``Tensor[B]`` of ints.
        layer: ``None`` (the last feature map), a ``named_modules()`` name or pattern, or a
            submodule (see :func:`deepinside.layers.find_layer`).
        relu: rectify the sum (pytorch-grad-cam does); ``False`` keeps negative evidence.
        upsample_to_input: resize bilinearly to ``H, W``; ``False`` keeps the layer's ``h, w``.
        fast: use the batch-norm-folded private copy when the layer's output is the same there.

    Returns:
        ``Tensor[B, H, W]`` (``Tensor[B, h, w]`` without upsampling), not normalised.
    """
    return weighted_cam(model, images, target, _weights, layer=layer, relu=relu,
                        upsample_to_input=upsample_to_input, fast=fast)


def _weights(cap: LayerCapture) -> Tensor:
    return cap.gradients
