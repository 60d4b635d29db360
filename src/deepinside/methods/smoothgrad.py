"""SmoothGrad: average a map over noisy copies of the input (Smilkov et al. 2017)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from ..models import Classifier
from ..ops import Reduce, reduce_channels
from ..targets import Target, take
from ._common import accepts, sample_sum, targets_and_logits
from ._registry import get_method, register_method

__all__ = ["smoothgrad"]


@register_method(
    "smoothgrad",
    "SmoothGrad: a gradient method averaged over Gaussian-noised copies of the input",
    "Smilkov et al. 2017, https://arxiv.org/abs/1706.03825",
    cost="moderate", order=40, report="full",
)
def smoothgrad(
    model: Classifier | nn.Module,
    images: Tensor,
    target: Target = None,
    *,
    base: str = "gradient",
    samples: int = 16,
    noise: float = 0.15,
    squared: bool = False,
    reduce: Reduce = "max_abs",
    batch_size: int | None = 64,
    seed: int = 0,
    fast: bool = True,
    **base_options: Any,
) -> Tensor:
    """``1/n sum_i A(x + e_i)`` with ``e_i ~ N(0, (noise * (max x - min x))^2)``, per image.

    The noisy copies of all images go through the base method together, ``batch_size`` at a
    time. The target is resolved on the clean images. Each image sees the same ``samples``
    noise draws (scaled by its own range), so the result does not depend on the rest of the
    batch.

    Args:
        model: a :class:`Classifier` or an ``nn.Module`` returning logits ``Tensor[B, K]``.
        images: ``Tensor[B, C, H, W]`` in the model's input space.
        target: ``None`` (top-1 of the clean image), an ``int``, or a sequence / ``Tensor[B]``.
        base: the registered method to smooth (``gradient``, ``gradient_x_input``,
            ``guided_backprop``, ``deconvnet``, ``integrated_gradients``, a CAM, ...). Methods
            with a ``reduce`` option are averaged per channel, before ``reduce``.
        samples: number of noisy copies per image.
        noise: standard deviation as a fraction of each image's value range (paper: 0.1-0.2).
        squared: average the squared attributions (SmoothGrad-Squared).
        reduce: channel reduction after averaging.
        batch_size: noisy images per call of the base method (None: all at once).
        seed: seed of the noise (a private generator; the global one is untouched).
        fast: passed to the base method.
        **base_options: further options of the base method.

    Returns:
        ``Tensor[B, H, W]`` (``Tensor[B, C, H, W]`` with ``reduce="none"`` and a channel-wise base).
    """
    if samples < 1:
        raise ValueError("samples must be at least 1")
    fn = get_method(base)
    if fn is smoothgrad:
        raise ValueError("smoothgrad cannot smooth itself")
    t, _ = targets_and_logits(model, images, target, fast)
    x = images.detach()
    b = x.shape[0]
    gen = torch.Generator().manual_seed(seed)
    eps = torch.randn((samples, *x.shape[1:]), generator=gen, dtype=torch.float32)
    eps = eps.to(device=x.device, dtype=x.dtype)
    span = (x.amax(dim=(1, 2, 3)) - x.amin(dim=(1, 2, 3))) * noise  # Tensor[B]
    channelwise = accepts(fn, "reduce")
    opts = dict(base_options)
    if channelwise:
        opts["reduce"] = "none"
    if accepts(fn, "fast"):
        opts["fast"] = fast

    def draw(bi: Tensor, si: Tensor) -> Tensor:  # image bi, noise draw si
        noisy = x[bi] + eps[si] * span[bi].view(-1, 1, 1, 1)
        a = fn(model, noisy, take(t, bi), **opts).detach()
        return a * a if squared else a

    mean = sample_sum(b, samples, batch_size, x.device, draw) / samples
    return reduce_channels(mean, reduce) if channelwise and mean.dim() == 4 else mean
