"""Extremal perturbations with smooth masks (Fong, Patrick & Vedaldi 2019).

The mask ``m`` of a given area ``a`` that keeps the class score highest when the rest of the
image is blurred (the *preservation game*; ``variant="delete"`` seeks the mask whose removal
lowers it most). Following TorchRay's reference implementation
(``torchray/attribution/extremal_perturbation.py``):

- the mask is a smooth max-pooling of a parameter grid with one value every ``step`` pixels:
  each parameter spreads over the image as a bump of radius about ``sigma``, and the bumps are
  pooled by a softmax with coldness 20 (the paper's smooth max); the mask has a margin of
  ``sigma`` pixels on each side;
- the perturbation is a pyramid of ``levels`` blurred copies of the image, the Gaussian's
  sigma going from ``max_blur`` down to 0 (the image itself); a mask value in [0, 1] picks a
  level, interpolated linearly between the two nearest;
- the objective is the class logit plus the area constraint
  ``-lambda mean((sort(m) - r_a)^2)``, where ``r_a`` is the sorted vector of a mask of area
  ``a``; ``lambda`` starts at 300 and grows by 0.35 % per iteration;
- SGD with momentum 0.9 (dampening 0.9), learning rate 0.01, parameters clamped to [0, 1],
  800 iterations; every other iteration the masked image is flipped left-right (jitter).

Each image of the batch has its own mask; the images are optimised together, ``batch_size`` at
a time, with one forward and one backward pass per iteration (the mask parameters are the only
gradient computed). The blur is :func:`deepinside.filters.gaussian_blur` (reflect padding;
TorchRay pads with zeros).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..engine import network
from ..filters import gaussian_blur
from ..models import Classifier
from ..targets import Target, take, target_scores
from ._common import Progress, chunks, targets_and_logits
from ._registry import register_method

__all__ = ["SmoothMask", "blur_pyramid", "extremal_perturbation"]

COLDNESS = 20.0


class SmoothMask:
    """Smooth masks of an H x W image from parameter grids (TorchRay's ``MaskGenerator``).

    Attributes:
        shape_in: ``(h, w)`` of the parameter grid, ``ceil(H / step)`` by ``ceil(W / step)``.
        shape_out: ``(H', W')`` of the mask with its margin of ``sigma`` pixels per side.
    """

    def __init__(self, size: tuple[int, int], step: int, sigma: float,
                 device: torch.device, dtype: torch.dtype) -> None:
        if step < 1 or sigma <= 0:
            raise ValueError("step must be at least 1 and sigma positive")
        self.size, self.step, self.sigma = size, step, sigma
        self.margin = sigma
        self.padding = 1 + math.ceil((self.margin + sigma) / step)
        self.radius = 1 + math.ceil(sigma / step)
        k = 2 * self.radius + 1
        self.shape_in = tuple(math.ceil(z / step) for z in size)
        self.shape_mid = tuple(z + 2 * self.padding - k + 1 for z in self.shape_in)
        self.shape_up = tuple(step * z for z in self.shape_mid)
        self.shape_out = tuple(z - step + 1 for z in self.shape_up)
        # weight of parameter (i + ky - padding, j + kx - padding) at output pixel (u, v): a
        # bump of the distance from the parameter's centre (margin + step * index)
        off = torch.arange(k, dtype=torch.float64).view(-1, 1) - self.padding  # [k, 1]
        dists = []
        for z_out, z_mid, z_up in zip(self.shape_out, self.shape_mid, self.shape_up):
            u = torch.arange(z_out, dtype=torch.float64).view(1, -1)  # [1, H']
            i = torch.floor(u * (z_mid / z_up)) + off  # parameter index, [k, H']
            dists.append(u - (self.margin + step * i))
        dy, dx = dists
        dist = torch.sqrt(dy[:, None, :, None] ** 2 + dx[None, :, None, :] ** 2)  # [k, k, H', W']
        weight = torch.exp(-2.0 * ((dist / sigma - 0.5).clamp(min=0)) ** 2)
        self.weight = weight.reshape(1, k * k, *self.shape_out).to(device=device, dtype=dtype)

    def __call__(self, params: Tensor) -> tuple[Tensor, Tensor]:
        """Masks ``(cropped Tensor[B, 1, H, W], full Tensor[B, 1, H', W'])`` in [0, 1].

        Args:
            params: ``Tensor[B, 1, h, w]`` of shape :attr:`shape_in`.
        """
        k = 2 * self.radius + 1
        m = F.unfold(params, (k, k), padding=self.padding)
        m = m.reshape(params.shape[0], k * k, *self.shape_mid)
        m = F.interpolate(m, size=self.shape_up, mode="nearest")
        m = m[:, :, : self.shape_out[0], : self.shape_out[1]] * self.weight
        m = (m * torch.softmax(COLDNESS * m, dim=1)).sum(dim=1, keepdim=True).clamp(0, 1)
        o = round(self.margin)
        return m[:, :, o : o + self.size[0], o : o + self.size[1]], m


def blur_pyramid(images: Tensor, levels: int = 8, max_blur: float = 20.0) -> Tensor:
    """``Tensor[B, L, C, H, W]``: level l blurred with sigma ``max_blur (1 - l / (L - 1))``.

    The last level is the image itself, the first the most blurred.
    """
    if levels < 2 or max_blur <= 0:
        raise ValueError("levels must be at least 2 and max_blur positive")
    sig = torch.linspace(0, 1, levels, dtype=torch.float64)
    return torch.stack([gaussian_blur(images, float((1 - s) * max_blur)) for s in sig], dim=1)


def _perturb(pyramid: Tensor, mask: Tensor) -> Tensor:
    """Each pixel from the pyramid level the mask picks, interpolated: ``Tensor[B, C, H, W]``."""
    levels = pyramid.shape[1]
    w = mask * (levels - 1)  # [B, 1, H, W]
    k = w.detach().floor().clamp(max=levels - 1)
    frac = w - k
    k = k.long()
    c = pyramid.shape[2]
    k0 = k[:, :, None].expand(-1, 1, c, -1, -1)
    y0 = pyramid.gather(1, k0)[:, 0]
    y1 = pyramid.gather(1, (k0 + 1).clamp(max=levels - 1))[:, 0]
    return (1 - frac) * y0 + frac * y1


@register_method(
    "extremal_perturbation",
    "extremal perturbation: the smooth mask of a fixed area whose preserved region keeps the "
    "class score highest under blur (optimised)",
    "Fong, Patrick & Vedaldi 2019, https://arxiv.org/abs/1910.08485",
    cost="slow", order=180, demo={"iterations": 100},
)
def extremal_perturbation(
    model: Classifier | nn.Module,
    images: Tensor,
    target: Target = None,
    *,
    area: float = 0.1,
    iterations: int = 800,
    step: int = 7,
    sigma: float = 21.0,
    levels: int = 8,
    max_blur: float = 20.0,
    variant: str = "preserve",
    jitter: bool = True,
    learning_rate: float = 0.01,
    momentum: float = 0.9,
    area_weight: float = 300.0,
    area_growth: float = 1.0035,
    batch_size: int | None = 4,
    progress: Progress | None = None,
    fast: bool = True,
) -> Tensor:
    """The optimised mask of each image, ``Tensor[B, H, W]`` in [0, 1].

    Args:
        model: a :class:`Classifier` or an ``nn.Module`` returning logits ``Tensor[B, K]``.
        images: ``Tensor[B, C, H, W]`` in the model's input space.
        target: ``None`` (top-1 of the clean image), an ``int``, or a sequence / ``Tensor[B]``.
        area: fraction of the mask that is kept (TorchRay default: 0.1). As in TorchRay the
            constraint is on the mask with its margin of ``sigma`` pixels per side, so the
            kept part of the image itself is up to ``(H + 2 sigma)(W + 2 sigma) / (H W)``
            times larger (1.41 at 224 px with sigma 21).
        iterations: optimisation steps (TorchRay: 800).
        step: pixels between mask parameters (TorchRay: 7, for 224 px).
        sigma: radius of a parameter's bump, and the mask's margin (TorchRay: 21).
        levels: blur levels of the perturbation pyramid (TorchRay: 8).
        max_blur: sigma of the strongest blur (TorchRay: 20).
        variant: ``"preserve"`` (keep the mask, blur the rest) or ``"delete"`` (blur the mask;
            the mask is then where blurring lowers the score most).
        jitter: flip the perturbed image left-right every other iteration.
        learning_rate, momentum: of the SGD on the mask parameters (TorchRay: 0.01, 0.9).
        area_weight, area_growth: lambda of the area constraint at the start, and its growth
            per iteration (TorchRay: 300, 1.0035).
        batch_size: images optimised together (None: all).
        progress: ``progress(done, total)`` after each iteration, in image-iterations.
        fast: use the batch-norm-folded private copy.

    Returns:
        ``Tensor[B, H, W]``: the masks (1 where the image is kept).
    """
    if variant not in ("preserve", "delete"):
        raise ValueError(f"variant must be 'preserve' or 'delete', got {variant!r}")
    if not 0.0 < area < 1.0 or iterations < 1:
        raise ValueError("area must be in (0, 1) and iterations at least 1")
    t, _ = targets_and_logits(model, images, target, fast)
    x = images.detach()
    b, _, h, w = x.shape
    gen = SmoothMask((h, w), step, sigma, x.device, x.dtype)
    full = gen.shape_out[0] * gen.shape_out[1]
    reference = torch.ones(full, device=x.device, dtype=x.dtype)
    reference[: int(full * (1 - area))] = 0
    out = torch.empty((b, h, w), device=x.device, dtype=x.dtype)
    total, done = b * iterations, 0
    with network(model, x, fast=fast) as logits_of:
        for sl in chunks(b, batch_size):
            idx = torch.arange(sl.start, sl.stop, device=x.device)
            tt = take(t, idx)
            pyramid = blur_pyramid(x[sl], levels, max_blur)

            def step_done(n: int = len(idx)) -> None:
                nonlocal done
                done += n
                if progress is not None:
                    progress(done, total)

            mask = _optimise(logits_of, pyramid, tt, gen, reference, iterations=iterations,
                             variant=variant, jitter=jitter, learning_rate=learning_rate,
                             momentum=momentum, area_weight=area_weight,
                             area_growth=area_growth, on_step=step_done)
            out[sl] = mask.detach()[:, 0]  # the last step's mask, as TorchRay
    return out


def _optimise(logits_of, pyramid: Tensor, tt, gen: SmoothMask, reference: Tensor, *,
              iterations: int, variant: str, jitter: bool, learning_rate: float,
              momentum: float, area_weight: float, area_growth: float,
              on_step: Callable[[], None]) -> Tensor:
    """The masks ``Tensor[n, 1, H, W]`` of a chunk of images after ``iterations`` SGD steps
    (TorchRay's loop); ``on_step()`` after each."""
    sign = 1.0 if variant == "preserve" else -1.0
    n = pyramid.shape[0]  # Tensor[n, L, C, H, W]
    params = torch.ones((n, 1, *gen.shape_in), device=reference.device, dtype=reference.dtype)
    buf: Tensor | None = None
    mask = params
    lam = area_weight
    for it in range(iterations):
        with torch.enable_grad():
            params.requires_grad_(True)
            mask, mask_full = gen(params)
            xp = _perturb(pyramid, mask if variant == "preserve" else 1 - mask)
            if jitter and it % 2 == 0:
                xp = xp.flip(dims=(3,))
            reward = sign * target_scores(tt, logits_of(xp))
            srt = mask_full.flatten(1).sort(dim=1).values
            regul = ((srt - reference) ** 2).mean(dim=1) * lam
            (g,) = torch.autograd.grad((regul - reward).sum(), params)
        with torch.no_grad():  # SGD, momentum and dampening as torch.optim.SGD
            buf = (g.clone() if buf is None
                   else buf.mul_(momentum).add_(g, alpha=1 - momentum))
            params = (params.detach() - learning_rate * buf).clamp_(0, 1)
        lam *= area_growth
        on_step()
    return mask
