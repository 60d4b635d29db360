"""Occlusion sensitivity (Zeiler & Fergus 2014)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..engine import forward_logits
from ..models import Classifier
from ..targets import Target, take, target_scores
from ._common import baseline_images, chunks, targets_and_logits
from ._registry import register_method

__all__ = ["occlusion", "window_starts"]


def window_starts(size: int, window: int, stride: int) -> list[int]:
    """Start offsets of a sliding window; the last window ends at the border."""
    if not 1 <= window <= size:
        raise ValueError(f"window {window} must be between 1 and the image size {size}")
    if stride < 1:
        raise ValueError("stride must be at least 1")
    starts = list(range(0, size - window + 1, stride))
    if starts[-1] != size - window:
        starts.append(size - window)
    return starts


@register_method(
    "occlusion",
    "occlusion: the drop of the class score when a sliding square is replaced by a baseline",
    "Zeiler & Fergus 2014, https://arxiv.org/abs/1311.2901",
    signed=True, cost="moderate", order=160, report="full",
)
def occlusion(
    model: Classifier | nn.Module,
    images: Tensor,
    target: Target = None,
    *,
    window: int | None = None,
    stride: int | None = None,
    baseline: str | float | Tensor = "zero",
    batch_size: int | None = 64,
    fast: bool = True,
) -> Tensor:
    """Average score drop ``S_c(x) - S_c(x occluded)`` over the windows covering each pixel.

    Forward passes only (no gradient), all occluded copies of all images batched together.

    Args:
        model: a :class:`Classifier` or an ``nn.Module`` returning logits ``Tensor[B, K]``.
        images: ``Tensor[B, C, H, W]``.
        target: ``None`` (top-1), an ``int``, or a sequence / ``Tensor[B]`` of ints.
        window: side of the square (default: a fifth of the shorter image side).
        stride: step between windows (default: half the window); the last window of each
            row and column is moved to touch the border, so every pixel is covered.
        baseline: what fills the square (see :func:`baseline_images`; default the input-space
            zero, i.e. the mean colour of a normalised model).
        batch_size: occluded images per forward pass (None: all at once).
        fast: use the batch-norm-folded private copy.

    Returns:
        ``Tensor[B, H, W]``: positive where hiding the pixel lowers the class score.
    """
    t, logits = targets_and_logits(model, images, target, fast)
    x = images.detach()
    b, _, h, w = x.shape
    win = window or max(1, min(h, w) // 5)
    step = stride or max(1, win // 2)
    ys, xs = window_starts(h, win, step), window_starts(w, win, step)
    masks = torch.zeros((len(ys) * len(xs), 1, h, w), dtype=torch.bool, device=x.device)
    for i, y0 in enumerate(ys):
        for j, x0 in enumerate(xs):
            masks[i * len(xs) + j, :, y0 : y0 + win, x0 : x0 + win] = True
    ref = baseline_images(model, x, baseline)
    clean = target_scores(t, logits)
    p = masks.shape[0]
    drops = torch.empty((b, p), dtype=clean.dtype, device=x.device)
    n = b * p  # flat index i -> image i // p, window i % p
    for sl in chunks(n, batch_size):
        idx = torch.arange(sl.start, sl.stop, device=x.device)
        bi, pi = idx // p, idx % p
        occluded = torch.where(masks[pi], ref[bi], x[bi])
        s = target_scores(take(t, bi), forward_logits(model, occluded, fast=fast))
        drops[bi, pi] = clean[bi] - s
    m = masks[:, 0].to(x.dtype)  # Tensor[P, H, W]
    heat = torch.einsum("bp,phw->bhw", drops.to(x.dtype), m)
    return heat / m.sum(dim=0).clamp(min=1)
