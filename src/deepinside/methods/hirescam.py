"""HiResCAM (Draelos & Carin 2020)."""

from __future__ import annotations

from torch import Tensor

from .cam import LayerCapture, cam_method

__all__ = ["hirescam"]


def _weights(cap: LayerCapture) -> Tensor:
    return cap.gradients


hirescam = cam_method(
    "hirescam",
    "HiResCAM: the activations times their gradients, element-wise, summed over channels",
    "Draelos & Carin 2020, https://arxiv.org/abs/2011.08891",
    _weights,
    """``relu(sum_k dS_c/dA_k * A_k)`` (element-wise products), for a batch.

    Grad-CAM averages each channel's gradient over the map before weighting; HiResCAM keeps
    the product at every location, so when the layer is followed by global average pooling
    and a linear layer the (unrectified) map sums to the class score minus the bias: it shows
    exactly where the model looked.
    """,
    order=110,
)
