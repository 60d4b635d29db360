"""RISE: randomized input sampling (Petsiuk, Das & Saenko 2018).

The saliency of a pixel is the expected class probability over random masks that keep it:
``S(l) = 1 / (N p) sum_i f(x . M_i) M_i(l)``. Each mask is a random binary ``s x s`` grid (a
cell kept with probability ``p``), upsampled bilinearly to ``(s + 1) * ceil(H / s)`` pixels and
cropped at a random offset of less than one cell, as in the authors' code
(github.com/eclique/RISE, ``generate_masks``; it resizes with scikit-image's reflect mode, which
differs from the clamped borders here only in the outer half cell). A masked image is
``x' + M (x - x')``: with the default input-space zero reference it is the authors' ``x * M``
on the normalised image.

Forward passes only. The grids and offsets of all masks are drawn at once from a private
generator (a few bytes per mask); the full-size masks are made chunk by chunk, so a 224 px
image with 4,000 masks needs memory for ``batch_size`` masked images only.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..engine import network
from ..models import Classifier
from ..targets import Target, need_logits, take, target_scores
from ._common import Progress, baseline_images, sample_sum, targets_and_logits
from ._registry import register_method

__all__ = ["rise", "rise_masks"]


class _MaskDraws:
    """Grids ``Tensor[N, s, s]`` and crop offsets ``Tensor[N, 2]`` of N masks of an H x W image."""

    def __init__(self, count: int, size: tuple[int, int], grid: int, p: float, seed: int):
        if count < 1 or grid < 1 or not 0.0 < p <= 1.0:
            raise ValueError("masks must be at least 1, grid at least 1 and 0 < p <= 1")
        gen = torch.Generator().manual_seed(seed)
        self.size = size
        self.cell = (math.ceil(size[0] / grid), math.ceil(size[1] / grid))
        self.up = ((grid + 1) * self.cell[0], (grid + 1) * self.cell[1])
        self.grids = torch.rand((count, grid, grid), generator=gen) < p
        self.shifts = torch.stack([torch.randint(c, (count,), generator=gen) for c in self.cell], 1)

    def masks(self, sl: slice, device: torch.device, dtype: torch.dtype) -> Tensor:
        """The masks ``sl`` at full size, ``Tensor[n, 1, H, W]`` in [0, 1]."""
        g = self.grids[sl].to(device=device, dtype=dtype)[:, None]
        up = F.interpolate(g, size=self.up, mode="bilinear", align_corners=False)
        h, w = self.size
        out = [up[i, :, dy : dy + h, dx : dx + w] for i, (dy, dx) in
               enumerate(self.shifts[sl].tolist())]
        return torch.stack(out).clamp_(0, 1)  # rounding may pass 1 by an ulp


def rise_masks(count: int, size: tuple[int, int], grid: int = 7, p: float = 0.5,
               seed: int = 0, device: torch.device | str = "cpu",
               dtype: torch.dtype = torch.float32) -> Tensor:
    """All ``count`` masks :func:`rise` uses with these settings, ``Tensor[N, 1, H, W]``."""
    return _MaskDraws(count, size, grid, p, seed).masks(slice(0, count), torch.device(device),
                                                        dtype)


@register_method(
    "rise",
    "RISE: the class probability averaged over random smooth masks that keep each pixel",
    "Petsiuk, Das & Saenko 2018, https://arxiv.org/abs/1806.07421",
    cost="slow", order=170, demo={"masks": 500},
)
def rise(
    model: Classifier | nn.Module,
    images: Tensor,
    target: Target = None,
    *,
    masks: int = 4000,
    grid: int = 7,
    p: float = 0.5,
    score: str = "probability",
    baseline: str | float | Tensor = "zero",
    batch_size: int | None = 64,
    seed: int = 0,
    progress: Progress | None = None,
    fast: bool = True,
) -> Tensor:
    """``1 / (N p) sum_i f_c(x' + M_i (x - x')) M_i`` for each image of a batch.

    Every image sees the same N masks. The masked copies of all images go through the
    network ``batch_size`` at a time (flat index: mask ``i // B``, image ``i % B``, so each
    mask is made once).

    Args:
        model: a :class:`Classifier` or an ``nn.Module`` returning logits ``Tensor[B, K]``.
        images: ``Tensor[B, C, H, W]`` in the model's input space.
        target: ``None`` (top-1 of the clean image), an ``int``, or a sequence / ``Tensor[B]``.
        masks: number of masks N (paper: 4000 for ResNet-50).
        grid: cells per side of the random grid, s (paper: 7).
        p: probability of keeping a cell (paper: 0.5).
        score: ``"probability"`` (softmax, the paper) or ``"logit"`` (a target callable gets
            the probabilities or the logits accordingly).
        baseline: what a masked pixel becomes (see :func:`baseline_images`; default the
            input-space zero, as the authors' ``x * M``).
        batch_size: masked images per forward pass (None: all at once).
        seed: seed of the masks (a private generator; the global one is untouched).
        progress: called as ``progress(done, total)`` after each pass, counting masked images.
        fast: use the batch-norm-folded private copy.

    Returns:
        ``Tensor[B, H, W]``.
    """
    if score not in ("probability", "logit"):
        raise ValueError(f"score must be 'probability' or 'logit', got {score!r}")
    t, _ = targets_and_logits(model, images, target, fast)
    x = images.detach()
    b, _, h, w = x.shape
    draws = _MaskDraws(masks, (h, w), grid, p, seed)
    ref = baseline_images(model, x, baseline)
    diff = x - ref

    def draw(bi: Tensor, mi: Tensor) -> Tensor:  # image bi, mask mi
        lo = int(mi[0])
        m = draws.masks(slice(lo, int(mi[-1]) + 1), x.device, x.dtype)[mi - lo]
        logits = logits_of(ref[bi] + m * diff[bi])
        if score == "probability":
            logits = need_logits(logits, "rise with score='probability' (a softmax; "
                                 "score='logit' reads any output)").softmax(dim=1)
        s = target_scores(take(t, bi), logits).to(x.dtype)
        return s.view(-1, 1, 1) * m[:, 0]

    with torch.no_grad(), network(model, x, fast=fast) as logits_of:
        sal = sample_sum(b, masks, batch_size, x.device, draw, samples_first=True,
                         progress=progress)
    return sal / (masks * p)
