"""Eigen-CAM (Muhammad & Yeasin 2020)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..models import Classifier
from ..targets import Target
from ._registry import register_method
from .cam import Layer, LayerCapture, weighted_cam

__all__ = ["eigencam", "principal_projection"]


@register_method(
    "eigencam",
    "Eigen-CAM: a layer's activations projected on their first principal component",
    "Muhammad & Yeasin 2020, https://arxiv.org/abs/2008.00299",
    order=130,
)
def eigencam(
    model: Classifier | nn.Module,
    images: Tensor,
    target: Target = None,
    *,
    layer: Layer = None,
    relu: bool = True,
    upsample_to_input: bool = True,
    fast: bool = True,
) -> Tensor:
    """The first principal component of each image's activations, as a map, for a batch.

    Class-agnostic: ``target`` does not change the map (it is accepted for the common call
    shape). See :func:`principal_projection` for the sign.

    Args:
        model: a :class:`Classifier` or an ``nn.Module`` returning logits ``Tensor[B, K]``.
        images: ``Tensor[B, C, H, W]``.
        target: ignored (any valid target).
        layer: ``None`` (the last feature map), a ``named_modules()`` name or pattern, or a
            submodule (see :func:`deepinside.layers.find_layer`).
        relu: rectify the projection (pytorch-grad-cam does).
        upsample_to_input: resize bilinearly to ``H, W``; ``False`` keeps the layer's ``h, w``.
        fast: use the batch-norm-folded private copy when the layer's output is the same there.

    Returns:
        ``Tensor[B, H, W]`` (``Tensor[B, h, w]`` without upsampling), not normalised.
    """
    return weighted_cam(model, images, target, combine=_projection, layer=layer, relu=relu,
                        upsample_to_input=upsample_to_input, fast=fast)


def _projection(cap: LayerCapture, _weights: None) -> Tensor:
    return principal_projection(cap.activations)


def principal_projection(activations: Tensor) -> Tensor:
    """Each image's locations projected on the first principal component of its channels.

    The activations of one image are a matrix ``X[h*w, C]``; its columns are centred and
    projected on the first right singular vector ``v`` (the paper's eq. 4 uses the uncentred
    matrix; pytorch-grad-cam centres, which avoids a map of one sign). A singular vector's
    sign is arbitrary (NumPy's and PyTorch's may differ); here it is the one whose channel
    loadings sum to a positive number, so the map correlates positively with the sum of the
    (centred) activations: on rectified activations the active object is positive.

    Args:
        activations: ``Tensor[B, C, h, w]``.

    Returns:
        ``Tensor[B, h, w]``, ``X_centred @ v`` per image.
    """
    b, c, h, w = activations.shape
    x = activations.nan_to_num(0.0).flatten(2).transpose(1, 2)  # [B, h*w, C]
    x = x - x.mean(dim=1, keepdim=True)
    _, _, vh = torch.linalg.svd(x, full_matrices=False)
    v = vh[:, 0]  # [B, C]
    v = torch.where(v.sum(dim=1, keepdim=True) < 0, -v, v)
    return (x @ v[:, :, None])[:, :, 0].reshape(b, h, w)
