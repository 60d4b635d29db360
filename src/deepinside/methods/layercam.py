"""Layer-CAM (Jiang et al. 2021)."""

from __future__ import annotations

from torch import Tensor

from .cam import LayerCapture, cam_method

__all__ = ["layercam"]


def _weights(cap: LayerCapture) -> Tensor:
    return cap.gradients.clamp(min=0)


layercam = cam_method(
    "layercam",
    "Layer-CAM: each activation weighted by its own positive gradient, summed, rectified",
    "Jiang et al. 2021, IEEE TIP, https://ieeexplore.ieee.org/document/9462463",
    _weights,
    """``relu(sum_k relu(dS_c/dA_k) * A_k)``, per pixel weights, for a batch.

    Unlike Grad-CAM's one weight per channel, each location ``(i, j)`` of channel ``k`` keeps
    its own weight ``relu(dS_c/dA_kij)`` (the paper's eq. 4-5), which gives finer maps in
    shallow layers.
    """,
    order=100,
)
