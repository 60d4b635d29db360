"""Grad-CAM (Selvaraju et al. 2017)."""

from __future__ import annotations

from torch import Tensor

from .cam import LayerCapture, cam_method

__all__ = ["gradcam"]


def _weights(cap: LayerCapture) -> Tensor:
    return cap.gradients.mean(dim=(2, 3), keepdim=True)


gradcam = cam_method(
    "gradcam",
    "Grad-CAM: a layer's maps weighted by their average gradient, rectified, upsampled",
    "Selvaraju et al. 2017, https://arxiv.org/abs/1610.02391",
    _weights,
    """``relu(sum_k w_k A_k)`` with ``w_k`` the spatial mean of ``dS_c/dA_k``, for a batch.
    """,
    order=80, report="quick",
)
