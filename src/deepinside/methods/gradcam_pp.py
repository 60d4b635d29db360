"""Grad-CAM++ (Chattopadhyay et al. 2018)."""

from __future__ import annotations

import torch
from torch import Tensor

from .cam import LayerCapture, cam_method

__all__ = ["gradcam_pp"]


def _weights(cap: LayerCapture) -> Tensor:
    a, g = cap.activations, cap.gradients
    denom = 2 + g * a.sum(dim=(2, 3), keepdim=True)
    ok = (g != 0) & (denom != 0)
    alpha = torch.where(ok, 1 / torch.where(ok, denom, torch.ones_like(denom)), 0.0)
    return (alpha * g.clamp(min=0)).sum(dim=(2, 3), keepdim=True)


gradcam_pp = cam_method(
    "gradcam_pp",
    "Grad-CAM++: maps weighted by positive gradients with per-pixel higher-order weights",
    "Chattopadhyay et al. 2018, https://arxiv.org/abs/1710.11063",
    _weights,
    """Grad-CAM++ for a batch, with the closed form of the paper's eq. 19 (exponential score).

    ``a_kij = g^2 / (2 g^2 + sum_ab A_kab g^3) = 1 / (2 + g sum_ab A_kab)`` where ``g != 0``
    (else 0), ``w_k = sum_ij a_kij relu(g_kij)``, ``map = relu(sum_k w_k A_k)``, with
    ``g = dS_c/dA``. pytorch-grad-cam adds 1e-6 to the first form's denominator, which
    dominates when gradients are small (below about 1e-3, as on EfficientNet-Lite); the
    second form needs no such constant, and agrees with it where the constant is negligible.
    """,
    order=90, report="full",
)
