"""Photos -> maps: the public entry point above the methods and the photo pipeline.

- :func:`forward_photos`: photos -> the model's batch on its device and dtype, and its logits
  (the one place a front end turns photos into a forward pass);
- :func:`photo_maps`: photos -> one map per photo (and target), resized back to the photo.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Callable, Sequence

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from .engine import forward_logits
from .images import model_batch, resize_maps_to
from .methods import get_method
from .models import Classifier
from .targets import ScoreFn, Target, resolve_targets

__all__ = ["forward_photos", "photo_maps"]


def forward_photos(
    model: Classifier,
    photos: Sequence[Image.Image],
    *,
    crop: bool,
    device: torch.device | str | None = None,
) -> tuple[Tensor, Tensor]:
    """``(x Tensor[B, 3, H, W], logits Tensor[B, K])`` of photos (:func:`model_batch`, then
    one forward pass without gradients).

    Args:
        crop: ``False`` (maps: the whole photo), ``True`` (classification: a centre crop).
        device: default: the model's device.
    """
    x = model_batch(model, photos, crop=crop, device=device)
    return x, forward_logits(model, x)


def photo_maps(
    model: Classifier,
    photos: Sequence[Image.Image],
    target: Target = None,
    *,
    method: str | Callable[..., Tensor] = "gradient",
    batch_size: int = 16,
    device: torch.device | str | None = None,
    progress: Callable[[int, int], None] | None = None,
    **options: object,
) -> tuple[list[np.ndarray], Tensor | ScoreFn, Tensor]:
    """Maps for whole photos, each resized back to the photo's own height and width.

    Each photo is resized (no crop) to the model's input size, so the map covers the whole
    photo; the map is then resized bilinearly to the photo's size. The targets are resolved on
    one forward pass per batch; ``"top<k>"`` gives ``k`` maps per photo (the photo is
    repeated ``k`` times in the method's batch).

    Args:
        model: the classifier (its preprocessing is used).
        photos: RGB PIL images.
        target: see :mod:`deepinside.targets`; a sequence / tensor has one entry per photo.
        method: a registered method name (default: the paper's ``"gradient"``) or
            ``f(model, images, target, **options) -> Tensor[B, H, W]``.
        batch_size: photos per forward/backward pass.
        device: where the inputs go (default: the model's device).
        progress: ``progress(done, total)`` after each batch, in photos (as the methods'
            ``progress``; a one-argument callable gets the increment, deprecated since 0.2.0).
        **options: options of the method.

    Returns:
        ``(maps, targets, logits)``: float32 arrays of shape (height, width) (``(k, height,
        width)`` for top-k), one per photo; the class each map explains (``Tensor[N]`` /
        ``Tensor[N, k]``, or the target callable); and the logits ``Tensor[N, K]`` of the
        resized photos (a model without class logits: its outputs, concatenated).
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    if not photos:
        raise ValueError("no photos given")
    if isinstance(target, Tensor) and target.dim() == 0:
        target = int(target)
    fn = get_method(method) if isinstance(method, str) else method
    report = _two_argument_progress(progress)
    per_photo = target is not None and not isinstance(target, (int, np.integer, str)) and not (
        callable(target) and not isinstance(target, Tensor))
    if per_photo:
        items = target.cpu() if isinstance(target, Tensor) else list(target)  # type: ignore
        if len(items) != len(photos):
            raise ValueError(f"got {len(items)} targets for {len(photos)} photos")
    maps: list[np.ndarray] = []
    targets: list[Tensor] = []
    all_logits: list[Tensor] = []
    t: Tensor | ScoreFn = target  # type: ignore[assignment]
    for start in range(0, len(photos), batch_size):
        chunk = photos[start : start + batch_size]
        x, logits = forward_photos(model, chunk, crop=False, device=device)
        want = items[start : start + len(chunk)] if per_photo else target
        t = resolve_targets(want, logits, model)  # type: ignore[arg-type]
        if isinstance(t, Tensor) and t.dim() == 2:  # top-k: the photo once per class
            k = t.shape[1]
            m = fn(model, x.repeat_interleave(k, 0), t.reshape(-1), **options)
            m = m.reshape(len(chunk), k, *m.shape[1:])
        else:
            m = fn(model, x, t, **options)
        maps.extend(resize_maps_to(m, chunk))
        if isinstance(t, Tensor):
            targets.append(t.cpu())
        all_logits.append(logits.float().cpu() if isinstance(logits, Tensor) else logits)
        if report is not None:
            report(start + len(chunk), len(photos))
    if targets:
        t = torch.cat(targets)
    if all(isinstance(o, Tensor) for o in all_logits):
        return maps, t, torch.cat(all_logits)
    return maps, t, [o for out in all_logits for o in out]  # e.g. a detector's dicts


def _two_argument_progress(
    progress: Callable[..., None] | None,
) -> Callable[[int, int], None] | None:
    """``progress`` as ``f(done, total)``; a one-argument callable (0.1's increments) is
    wrapped, with a ``DeprecationWarning``."""
    if progress is None:
        return None
    try:
        params = inspect.signature(progress).parameters.values()
    except (TypeError, ValueError):
        return progress
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if len(positional) >= 2 or any(p.kind is p.VAR_POSITIONAL for p in params):
        return progress
    warnings.warn("progress(n) with the number of photos of each batch is deprecated since "
                  "0.2.0; photo_maps calls progress(done, total)", DeprecationWarning,
                  stacklevel=3)
    last = [0]

    def increments(done: int, total: int) -> None:
        progress(done - last[0])
        last[0] = done

    return increments
