"""XGrad-CAM (Fu et al. 2020)."""

from __future__ import annotations

import torch
from torch import Tensor

from .cam import LayerCapture, cam_method

__all__ = ["xgradcam"]


def _weights(cap: LayerCapture) -> Tensor:
    a = cap.activations
    total = a.sum(dim=(2, 3), keepdim=True)
    ok = total != 0
    share = a / torch.where(ok, total, torch.ones_like(total))
    return torch.where(ok, (share * cap.gradients).sum(dim=(2, 3), keepdim=True), 0.0)


xgradcam = cam_method(
    "xgradcam",
    "XGrad-CAM: maps weighted by their gradients averaged with the activations as weights",
    "Fu et al. 2020, https://arxiv.org/abs/2008.02312",
    _weights,
    """``relu(sum_k w_k A_k)`` with ``w_k = sum_ij A_kij / sum_ab A_kab * dS_c/dA_kij``.

    The weights of the paper's eq. 12 (chosen to satisfy its sensitivity and conservation
    axioms); a channel whose activations sum to 0 gets weight 0. pytorch-grad-cam adds 1e-7
    to the denominator instead, which differs only where the sum is that small.
    """,
    order=120,
)
