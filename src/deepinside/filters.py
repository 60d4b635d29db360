"""Image filters on tensors: the Gaussian blur, with one sigma or one per image (maps on NumPy
arrays use OpenCV's)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["blur_each", "gaussian_blur"]


WIDE = 31  # kernels at least this long are applied as two matrix products (see gaussian_blur)


def gaussian_blur(images: Tensor, sigma: float) -> Tensor:
    """Separable Gaussian blur of ``Tensor[B, C, H, W]`` (reflect padding), same shape.

    The kernel has radius ``round(3 sigma)`` (at least 1, at most the image's side minus one,
    as reflect padding needs); ``sigma <= 0`` returns a copy. Differentiable. A kernel of
    :data:`WIDE` taps or more on an image of at most 64 kernel lengths a side is applied as
    ``M_H @ x @ M_W^T`` (the same padded convolution written as matrices, equal up to float
    rounding): a depthwise convolution with a wide kernel is slow on CPU (a 224 x 224 photo
    with sigma 22.4: 16 ms as a convolution, 1.6 ms as matrices, one thread).
    """
    if sigma <= 0:
        return images.clone()
    r = max(1, int(3.0 * sigma + 0.5))
    r = min(r, images.shape[-1] - 1, images.shape[-2] - 1)
    ax = torch.arange(-r, r + 1, device=images.device, dtype=images.dtype)
    k = torch.exp(-0.5 * (ax / sigma) ** 2)
    k = k / k.sum()
    h, w = images.shape[-2:]
    if 2 * r + 1 >= WIDE and max(h, w) <= 64 * (2 * r + 1):
        return _reflect_matrix(h, k) @ images @ _reflect_matrix(w, k).T
    c = images.shape[1]
    x = F.pad(images, (r, r, 0, 0), mode="reflect")
    x = F.conv2d(x, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    x = F.pad(x, (0, 0, r, r), mode="reflect")
    return F.conv2d(x, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def _reflect_matrix(n: int, k: Tensor) -> Tensor:
    """``Tensor[n, n]`` ``M`` with ``M @ v`` = ``v`` (length ``n``) correlated with the odd
    kernel ``k`` under reflect padding (the edge not repeated, as ``F.pad(mode="reflect")``)."""
    r = (k.numel() - 1) // 2
    i = (torch.arange(n, device=k.device)[:, None]
         + torch.arange(-r, r + 1, device=k.device)[None, :])  # [n, 2r + 1], padded positions
    j = torch.where(i < 0, -i, torch.where(i > n - 1, 2 * (n - 1) - i, i))
    return torch.zeros(n, n, device=k.device, dtype=k.dtype).scatter_add_(
        1, j, k.expand(n, -1).contiguous())


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
