"""Transformation robustness: random transforms of the image at every step, and penalties.

Olah et al. 2017 (https://distill.pub/2017/feature-visualization/, "transformation
robustness"): an image that still excites the unit after random jitter, scaling and rotation
shows the unit's feature, not a texture that exploits the exact pixel grid.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from ..filters import blur_each, gaussian_blur

__all__ = ["random_transform", "stretch", "total_variation"]


def _uniform(g: torch.Generator, n: int, lo: float, hi: float) -> Tensor:
    return torch.rand(n, generator=g) * (hi - lo) + lo


def random_transform(
    x: Tensor,
    g: torch.Generator,
    noise_g: torch.Generator,
    *,
    shift: float = 32 / 224,
    scale: tuple[float, float] = (0.5, 1.5),
    rotate: float = 20.0,
    color_jitter: float = 0.1,
    noise: float = 0.02,
    blur: float = 0.5,
    out_size: tuple[int, int] | None = None,
    antialias: bool = False,
) -> Tensor:
    """Random shift, scale, rotation, colour jitter, blur and noise, drawn per image.

    Everything happens in one ``grid_sample`` (bilinear; grey 0.5 outside the image), so the
    cost is small beside the network. Random numbers come from ``g`` (CPU generator, for the
    per-image parameters) and ``noise_g`` (a generator on ``x``'s device, for the noise).

    Args:
        x: ``Tensor[B, 3, H, W]`` in [0, 1].
        shift: largest shift, a fraction of the image's side (32 / 224: 32 px at 224 px).
        scale: range of the zoom factor.
        rotate: largest rotation in degrees.
        color_jitter: largest per-channel relative gain change and offset.
        noise: standard deviation of added Gaussian noise.
        blur: largest weight of a 3x3-ish Gaussian blur mixed into each image.
        out_size: (H', W') of the result (default: the input's); the same transform, sampled
            on a coarser or finer grid (an octave's network input).
        antialias: low-pass each image before sampling it more coarsely than its pixels (a
            zoom out, or a smaller ``out_size``): a Gaussian of sigma ``(d - 1) / 2`` for a
            sampling step of ``d`` pixels (scikit-image's ``rescale`` rule). Without it,
            bilinear sampling of a shrunk copy aliases: the network reads a sparse lattice of
            pixels, and the ascent writes fine speckle onto that lattice.

    Note:
        Lucid's transforms (pad, jitter, scale, rotate) resample without a low-pass, as
        Lucent's ``random_scale`` does; at their mild zooms (0.9-1.1) it matters little.

    Returns:
        ``Tensor[B, 3, H', W']``, differentiable with respect to ``x``.
    """
    b, c, h, w = x.shape
    oh, ow = out_size if out_size is not None else (h, w)
    dev, dt = x.device, x.dtype
    s = torch.exp(_uniform(g, b, math.log(scale[0]), math.log(scale[1])))
    a = _uniform(g, b, -rotate, rotate) * (math.pi / 180)
    tx = _uniform(g, b, -shift, shift) * 2.0  # affine_grid's coordinates span [-1, 1]
    ty = _uniform(g, b, -shift, shift) * 2.0
    gain = 1 + _uniform(g, b * c, -color_jitter, color_jitter).view(b, c, 1, 1)
    offset = _uniform(g, b * c, -color_jitter, color_jitter).view(b, c, 1, 1)
    mix = _uniform(g, b, 0.0, blur).view(b, 1, 1, 1)
    cos, sin = torch.cos(a) / s, torch.sin(a) / s
    theta = torch.stack(
        [torch.stack([cos, -sin * h / w, tx], 1), torch.stack([sin * w / h, cos, ty], 1)], 1
    ).to(device=dev, dtype=dt)
    grid = F.affine_grid(theta, [b, c, oh, ow], align_corners=False)
    if antialias:
        step = torch.maximum(h / oh / s, w / ow / s)  # input pixels per output pixel
        x = blur_each(x - 0.5, ((step - 1) / 2).clamp(min=0)) + 0.5
    y = F.grid_sample(x - 0.5, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    y = y + 0.5
    if blur > 0:
        mix = mix.to(device=dev, dtype=dt)
        y = torch.lerp(y, gaussian_blur(y, 1.0), mix)
    y = (y - 0.5) * gain.to(device=dev, dtype=dt) + 0.5 + offset.to(device=dev, dtype=dt)
    if noise > 0:
        y = y + noise * torch.randn(y.shape, generator=noise_g, device=dev, dtype=dt)
    return y


def total_variation(x: Tensor) -> Tensor:
    """Mean absolute difference of neighbouring pixels, per image: ``Tensor[N]``."""
    dh = (x[..., 1:, :] - x[..., :-1, :]).abs().mean(dim=(1, 2, 3))
    dw = (x[..., :, 1:] - x[..., :, :-1]).abs().mean(dim=(1, 2, 3))
    return dh + dw


def stretch(images: Tensor, percentile: float = 0.5) -> Tensor:
    """Per-image contrast stretch to [0, 1] for display (the paper's "rescale").

    Args:
        images: ``Tensor[N, 3, H, W]``.
        percentile: the low/high percentiles mapped to 0 and 1.
    """
    flat = images.reshape(images.shape[0], -1).float()
    lo = torch.quantile(flat, percentile / 100, dim=1).view(-1, 1, 1, 1)
    hi = torch.quantile(flat, 1 - percentile / 100, dim=1).view(-1, 1, 1, 1)
    return ((images - lo) / (hi - lo).clamp(min=1e-8)).clamp(0, 1).to(images.dtype)
