"""What the metrics share: maps prepared as Quantus prepares them, box masks, chunked forward
passes through the engine, the attribution method to recompute maps, NumPy draws.

Random metrics draw from ``numpy.random.RandomState(seed)`` in the order Quantus 0.6 draws
from NumPy's global generator, so a metric run with ``seed=s`` equals Quantus run after
``np.random.seed(s)`` (the tests check this), and a run is reproducible.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from ..engine import check_images, forward_logits
from ..methods import get_method
from ..methods._common import chunks, targets_and_logits
from ..models import Classifier
from ..ops import resize_maps
from ..targets import Target

__all__ = ["Boxes", "MethodArg", "boxes_masks", "class_targets", "explainer", "flat",
           "normalise_by_max", "pearson", "per_feature", "predict", "prepare", "rank",
           "spearman_rows"]

Boxes = Sequence[Sequence[Sequence[float]]] | Tensor | None
MethodArg = str | Callable | None


def normalise_by_max(a: Tensor) -> Tensor:
    """Each map divided by its largest magnitude (an all-zero map is left as it is).

    Quantus's ``normalise_by_max`` divides the whole batch by one maximum, so a photo's score
    would depend on the photos batched with it; here each photo has its own.
    """
    top = a.flatten(1).abs().amax(dim=1).view(-1, *([1] * (a.dim() - 1)))
    return torch.where(top > 0, a / torch.where(top > 0, top, torch.ones_like(top)), a)


def prepare(images: Tensor, maps: Tensor, *, abs: bool = False,
            normalise: bool = False) -> Tensor:
    """``maps`` as ``Tensor[B, H, W]`` float64 at the images' size, normalised, then made
    absolute (Quantus's order), as each metric's defaults ask.

    Raises:
        ValueError: maps that are not one ``Tensor[B, h, w]`` per image.
    """
    check_images(images)
    b, _, h, w = images.shape
    if not isinstance(maps, Tensor) or maps.dim() != 3 or maps.shape[0] != b:
        shape = tuple(maps.shape) if isinstance(maps, Tensor) else type(maps).__name__
        raise ValueError(f"maps must be Tensor[{b}, h, w] (one map per image), got {shape}")
    a = maps.detach().to(device=images.device, dtype=torch.float64)
    if tuple(a.shape[-2:]) != (h, w):
        a = resize_maps(a, (h, w))
    if not bool(torch.isfinite(a).all()):
        raise ValueError("maps have non-finite values (NaN or infinity)")
    if normalise:
        a = normalise_by_max(a)
    if abs:
        a = a.abs()
    return a


def flat(a: Tensor, channels: int = 1) -> Tensor:
    """``Tensor[B, C * H * W]``: each map repeated over ``channels`` (Quantus broadcasts a
    one-channel map to the image's channels and counts every channel value as a feature)."""
    if channels == 1:
        return a.reshape(a.shape[0], -1)
    return a[:, None].expand(a.shape[0], channels, *a.shape[1:]).reshape(a.shape[0], -1)


def boxes_masks(boxes: Boxes, images: Tensor, metric: str) -> Tensor:
    """``Tensor[B, H, W]`` bool: pixels inside a box of each image (centres inside).

    Args:
        boxes: per image, a list of ``(x0, y0, x1, y1)`` in the images' pixel coordinates;
            or masks ``Tensor[B, H, W]`` (any dtype; nonzero is inside).

    Raises:
        ValueError: no boxes, or not one entry per image.
    """
    b, _, h, w = images.shape
    if boxes is None:
        raise ValueError(f"{metric} needs boxes= (ground-truth boxes or masks, one per image)")
    if isinstance(boxes, Tensor):
        if boxes.dim() == 4 and boxes.shape[1] == 1:
            boxes = boxes[:, 0]
        if boxes.shape != (b, h, w):
            raise ValueError(f"{metric}: masks must be Tensor[{b}, {h}, {w}], got "
                             f"{tuple(boxes.shape)}")
        return (boxes != 0).to(images.device)
    from ..boxes import boxes_mask

    if len(boxes) != b:
        raise ValueError(f"{metric}: boxes= needs one list of boxes per image ({b}), "
                         f"got {len(boxes)}")
    return torch.as_tensor(np.stack([boxes_mask(bs, (h, w)) for bs in boxes]),
                           device=images.device)


def class_targets(model: Classifier | nn.Module, images: Tensor, target: Target,
                  fast: bool = True) -> Tensor:
    """One class per image, ``Tensor[B]`` (resolved on the clean images).

    Raises:
        ValueError: a target that is not one class per image (a callable, ``"top5"``).
    """
    t, _ = targets_and_logits(model, images, target, fast)
    if not isinstance(t, Tensor):
        raise ValueError("metrics need one class per image as target, not a callable")
    return t


def per_feature(model: Classifier | nn.Module, images: Tensor, maps: Tensor, target: Target,
                *, abs: bool, normalise: bool, fast: bool) -> tuple[Tensor, Tensor, Tensor]:
    """``(targets Tensor[B], images detached, maps Tensor[B, C * H * W])``: what the metrics
    that perturb colour values start from (the map repeated over the channels, as Quantus)."""
    t = class_targets(model, images, target, fast)
    prepared = prepare(images, maps, abs=abs, normalise=normalise)
    return t, images.detach(), flat(prepared, images.shape[1])


def predict(model: Classifier | nn.Module, x: Tensor, *, softmax: bool = False,
            batch_size: int | None = 64, fast: bool = True) -> Tensor:
    """Logits (or softmax probabilities) ``Tensor[N, K]`` float64, ``batch_size`` at a time."""
    out = []
    for sl in chunks(x.shape[0], batch_size):
        logits = forward_logits(model, x[sl], fast=fast).double()
        out.append(logits.softmax(dim=1) if softmax else logits)
    return torch.cat(out)


def explainer(method: MethodArg, metric: str, options: dict | None = None,
              fast: bool = True) -> Callable[[Classifier | nn.Module, Tensor, Tensor], Tensor]:
    """``explain(model, images, targets) -> Tensor[B, H, W]`` float64 at the images' size.

    Args:
        method: a registered method name or ``fn(model, images, target, **options)``.
        metric: the metric's name, for the error message.
        options: the method's options.

    Raises:
        ValueError: no method given.
    """
    if method is None:
        raise ValueError(f"{metric} recomputes maps: pass method= (the method that made them, "
                         "a name or a function) and method_options= if any")
    fn = get_method(method) if isinstance(method, str) else method
    opts = dict(options or {})
    if isinstance(method, str):
        opts.setdefault("fast", fast)

    def explain(model, images, targets):
        m = fn(model, images, targets, **opts)
        return prepare(images, m.detach())

    return explain


def rank(x: Tensor) -> Tensor:
    """Average ranks (ties share their mean rank) along the last dimension, float64."""
    from .perturbation import _average_ranks

    return _average_ranks(x.reshape(-1, x.shape[-1])).view(x.shape)


def pearson(a: Tensor, b: Tensor) -> Tensor:
    """Pearson correlation of each row pair, ``Tensor[B]``; NaN where a row is constant
    (as SciPy)."""
    a = a.double() - a.double().mean(dim=1, keepdim=True)
    b = b.double() - b.double().mean(dim=1, keepdim=True)
    den = a.norm(dim=1) * b.norm(dim=1)
    r = (a * b).sum(dim=1) / den
    return torch.where(den > 0, r.clamp(-1.0, 1.0), torch.full_like(r, float("nan")))


def spearman_rows(a: Tensor, b: Tensor) -> Tensor:
    """Spearman correlation of each row pair (Pearson of average ranks); NaN where constant."""
    return pearson(rank(a), rank(b))


def draws_to(x: np.ndarray, like: Tensor) -> Tensor:
    """A NumPy draw as a tensor on ``like``'s device, float64."""
    return torch.as_tensor(x, dtype=torch.float64, device=like.device)
