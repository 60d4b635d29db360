"""Image filters on tensors: the one Gaussian blur (maps on NumPy arrays use OpenCV's)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["gaussian_blur"]


def gaussian_blur(images: Tensor, sigma: float) -> Tensor:
    """Separable Gaussian blur of ``Tensor[B, C, H, W]`` (reflect padding), same shape.

    The kernel has radius ``round(3 sigma)`` (at least 1, at most the image's side minus one,
    as reflect padding needs); ``sigma <= 0`` returns a copy. Differentiable.
    """
    if sigma <= 0:
        return images.clone()
    r = max(1, int(3.0 * sigma + 0.5))
    r = min(r, images.shape[-1] - 1, images.shape[-2] - 1)
    ax = torch.arange(-r, r + 1, device=images.device, dtype=images.dtype)
    k = torch.exp(-0.5 * (ax / sigma) ** 2)
    k = k / k.sum()
    c = images.shape[1]
    x = F.pad(images, (r, r, 0, 0), mode="reflect")
    x = F.conv2d(x, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    x = F.pad(x, (0, 0, r, r), mode="reflect")
    return F.conv2d(x, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)
