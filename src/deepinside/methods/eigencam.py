"""Eigen-CAM (Muhammad & Yeasin 2020)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..models import Classifier
from ..targets import Target
from ._registry import register_method
from .cam import Layer, LayerCapture, weighted_cam

__all__ = ["eigencam", "orientation", "principal_projection"]


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
    matrix; pytorch-grad-cam centres, which avoids a map of one sign).

    **The sign.** A singular vector's sign is arbitrary: it is whatever the SVD routine's last
    bits make it, and differs between CPUs, BLAS builds and the fast copy. It is fixed here by
    the rule of Bro, Acar & Kolda (2008), "Resolving the sign ambiguity in the singular value
    decomposition" (J. Chemometrics 22:135, https://doi.org/10.1002/cem.1122): ``v`` is
    oriented so that most of the data's projected mass lies on its positive side, i.e. the map
    ``p = X v`` has ``sum(sign(p) * p**2) > 0``. The larger lobe of the map (the object, whose
    locations project far along the component, against a background that projects little) is
    positive. The rule depends on the map alone, so it is the same for the module and its fast
    copy, for the channels in any order, and on any machine. (An earlier rule, channel loadings
    summing to > 0, is undefined on a LayerNorm output: each location's channels have mean 0,
    so ``v`` is orthogonal to the all-ones vector and its sum is rounding noise.)

    When the two lobes carry the same mass to within 0.1% (``|sum(sign(p) p^2)| <= 1e-3 *
    sum(p^2)``, a map symmetric about zero), the rule is ambiguous, and the tie is broken by the
    location of largest ``|p|``: it is made positive; among locations within 0.1% of that
    largest value, the first in raster order (row by row, top left first) decides.

    Args:
        activations: ``Tensor[B, C, h, w]``.

    Returns:
        ``Tensor[B, h, w]``, ``X_centred @ v`` per image.
    """
    b, c, h, w = activations.shape
    x = activations.nan_to_num(0.0).flatten(2).transpose(1, 2)  # [B, h*w, C]
    x = x - x.mean(dim=1, keepdim=True)
    _, _, vh = torch.linalg.svd(x, full_matrices=False)
    p = (x @ vh[:, 0, :, None])[:, :, 0]  # [B, h*w], the map up to its sign
    return (p * orientation(p)[:, None]).reshape(b, h, w)


def orientation(p: Tensor) -> Tensor:
    """The sign (+1 or -1) that orients each map by the rule of :func:`principal_projection`.

    Args:
        p: ``Tensor[B, N]``, one flattened map per row.

    Returns:
        ``Tensor[B]`` of +1 / -1, in ``p``'s dtype.
    """
    squares = p * p
    mass = (p.sign() * squares).sum(dim=1)  # [B], signed squared mass
    tie = mass.abs() <= 1e-3 * squares.sum(dim=1)
    mag = p.abs()
    near_max = mag >= (1 - 1e-3) * mag.amax(dim=1, keepdim=True)  # [B, N]
    first = near_max.to(torch.uint8).argmax(dim=1)  # first True in raster order
    decider = torch.where(tie, p.gather(1, first[:, None])[:, 0], mass)
    return torch.where(decider < 0, -1.0, 1.0).to(p.dtype)
