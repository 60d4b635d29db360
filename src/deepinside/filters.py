"""Image filters on tensors: the Gaussian blur, with one sigma or one per image (maps on NumPy
arrays use OpenCV's)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["blur_each", "gaussian_blur"]


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


def blur_each(x: Tensor, sigma: Tensor) -> Tensor:
    """Separable Gaussian blur with a sigma per image (zero padding), differentiable.

    Args:
        x: ``Tensor[B, C, H, W]``.
        sigma: ``Tensor[B]`` in pixels; images with sigma below 0.05 are returned unchanged.

    Returns:
        ``Tensor[B, C, H, W]``.
    """
    b, c, h, w = x.shape
    sigma = sigma.to(device=x.device, dtype=x.dtype)
    if float(sigma.max()) < 0.05:
        return x
    r = max(1, min(int(3.0 * float(sigma.max()) + 0.5), h - 1, w - 1))
    ax = torch.arange(-r, r + 1, device=x.device, dtype=x.dtype)
    k = torch.exp(-0.5 * (ax[None, :] / sigma.clamp(min=0.05)[:, None]) ** 2)  # [B, 2r + 1]
    k = (k / k.sum(1, keepdim=True)).repeat_interleave(c, 0)  # one kernel per image channel
    y = F.conv2d(x.reshape(1, b * c, h, w), k.view(b * c, 1, 1, -1), padding=(0, r),
                 groups=b * c)
    y = F.conv2d(y, k.view(b * c, 1, -1, 1), padding=(r, 0), groups=b * c)
    keep = (sigma < 0.05).view(b, 1, 1, 1)
    return torch.where(keep, x, y.view(b, c, h, w))
