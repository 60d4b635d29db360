"""Layer-CAM (Jiang et al. 2021)."""

from __future__ import annotations

from torch import Tensor, nn

from ..models import Classifier
from ..targets import Target
from . import register_method
from .cam import Layer, LayerCapture, weighted_cam

__all__ = ["layercam"]


@register_method(
    "layercam",
    "Layer-CAM: each activation weighted by its own positive gradient, summed, rectified",
    "Jiang et al. 2021, IEEE TIP, https://ieeexplore.ieee.org/document/9462463",
)
def layercam(
    model: Classifier | nn.Module,
    images: Tensor,
    target: Target = None,
    *,
    layer: Layer = None,
    relu: bool = True,
    upsample_to_input: bool = True,
    fast: bool = True,
) -> Tensor:
    """``relu(sum_k relu(dS_c/dA_k) * A_k)``, per pixel weights, for a batch.

    Unlike Grad-CAM's one weight per channel, each location ``(i, j)`` of channel ``k`` keeps
    its own weight ``relu(dS_c/dA_kij)`` (the paper's eq. 4-5), which gives finer maps in
    shallow layers.

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
    return cap.gradients.clamp(min=0)
