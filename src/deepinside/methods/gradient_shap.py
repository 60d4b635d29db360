"""GradientSHAP: expected gradients times (input - reference) (Lundberg & Lee 2017).

As Captum's ``GradientShap``: for ``n`` draws, a reference ``x'`` is drawn from a set of
baselines, Gaussian noise ``e`` is added to the input and a point ``a`` uniform in [0, 1] is
drawn on the segment; the attribution is the mean of ``(x + e - x') * dS_c/dx`` at
``x' + a (x + e - x')``. It approximates SHAP values (an expectation of Integrated Gradients
over references) for a model that is linear between the points.

The draws come from a private generator seeded by ``seed`` and are the same for every image
of the batch (so an image's result does not depend on the rest of the batch). Captum draws
from the global NumPy and torch generators, one set per example: the results agree for the
same draws (tested with Captum's own draws), not for the same seed.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn

from ..engine import input_gradient
from ..models import Classifier
from ..ops import Reduce, reduce_channels
from ..targets import Target, take
from ._common import baseline_images, sample_sum, targets_and_logits
from ._registry import register_method

__all__ = ["ShapDraws", "gradient_shap", "shap_draws"]


class ShapDraws(NamedTuple):
    """The random draws of :func:`gradient_shap`, one row per sample.

    Attributes:
        index: ``Tensor[n]`` of ints, which baseline each sample uses.
        noise: ``Tensor[n, C, H, W]``, the Gaussian noise added to the input.
        alpha: ``Tensor[n]`` in [0, 1), the point on the segment.
    """

    index: Tensor
    noise: Tensor
    alpha: Tensor


def shap_draws(samples: int, baselines: int, shape: tuple[int, ...], noise: float,
               seed: int = 0) -> ShapDraws:
    """The draws of :func:`gradient_shap` for ``samples`` samples (float32, on the CPU).

    Args:
        samples: number of samples ``n``.
        baselines: number of baselines to draw from.
        shape: ``(C, H, W)`` of one image.
        noise: standard deviation of the noise (in input units, as Captum's ``stdevs``).
        seed: seed of a private generator (the global one is untouched).
    """
    if samples < 1:
        raise ValueError("samples must be at least 1")
    gen = torch.Generator().manual_seed(seed)
    index = torch.randint(baselines, (samples,), generator=gen)
    eps = torch.randn((samples, *shape), generator=gen) * noise
    alpha = torch.rand(samples, generator=gen)
    return ShapDraws(index, eps, alpha)


@register_method(
    "gradient_shap",
    "GradientSHAP: (x + e - x') times the gradient at a random point between a random "
    "baseline x' and the noisy input",
    "Lundberg & Lee 2017, https://arxiv.org/abs/1705.07874",
    signed=True, cost="moderate", order=70,
)
def gradient_shap(
    model: Classifier | nn.Module,
    images: Tensor,
    target: Target = None,
    *,
    baselines: str | float | Tensor = "zero",
    samples: int = 5,
    noise: float = 0.0,
    reduce: Reduce = "sum_abs",
    batch_size: int | None = 64,
    seed: int = 0,
    fast: bool = True,
) -> Tensor:
    """``1/n sum_i (x + e_i - x'_i) * dS_c/dx (x'_i + a_i (x + e_i - x'_i))`` for a batch.

    All samples of all images go through the network together, ``batch_size`` at a time.

    Args:
        model: a :class:`Classifier` or an ``nn.Module`` returning logits ``Tensor[B, K]``.
        images: ``Tensor[B, C, H, W]`` in the model's input space.
        target: ``None`` (top-1 of the clean image), an ``int``, or a sequence / ``Tensor[B]``.
        baselines: the distribution of references: a ``Tensor[N, C, H, W]`` of N baselines
            shared by all images (Captum's ``baselines``), or one reference per image as
            :func:`baseline_images` makes it (``"zero"``, ``"black"``, ``"mean"``, ...).
        samples: number of draws per image (Captum's ``n_samples``, default 5).
        noise: standard deviation of the Gaussian noise added to the input, in input units
            (Captum's ``stdevs``, default 0).
        reduce: channel reduction; ``"sum_abs"`` by default, ``"none"`` keeps channels.
        batch_size: samples per forward/backward pass (None: all at once).
        seed: seed of the draws (see :func:`shap_draws`).
        fast: use the batch-norm-folded private copy.

    Returns:
        ``Tensor[B, H, W]`` (``Tensor[B, C, H, W]`` with ``reduce="none"``).
    """
    t, _ = targets_and_logits(model, images, target, fast)
    x = images.detach()
    b = x.shape[0]
    shared = isinstance(baselines, Tensor) and baselines.dim() == 4
    if shared:
        assert isinstance(baselines, Tensor)
        if baselines.shape[1:] != x.shape[1:]:
            raise ValueError(f"baselines must be Tensor[N, {', '.join(map(str, x.shape[1:]))}],"
                             f" got {tuple(baselines.shape)}")
        refs = baselines.detach().to(x)
    else:
        refs = baseline_images(model, x, baselines)  # one per image
    d = shap_draws(samples, refs.shape[0] if shared else 1, tuple(x.shape[1:]), noise, seed)
    idx_s = d.index.to(x.device)
    eps = d.noise.to(x)
    alpha = d.alpha.to(x)

    def draw(bi: Tensor, si: Tensor) -> Tensor:  # image bi, draw si
        ref = refs[idx_s[si]] if shared else refs[bi]
        diff = x[bi] + eps[si] - ref
        points = ref + alpha[si].view(-1, 1, 1, 1) * diff
        grad, _, _ = input_gradient(model, points, take(t, bi), fast=fast)
        return diff * grad

    total = sample_sum(b, samples, batch_size, x.device, draw)
    return reduce_channels(total / samples, reduce)
