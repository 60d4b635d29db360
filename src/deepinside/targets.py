"""What to explain: the class (or score) whose gradient a map shows, resolved in one place.

A target is one of:

- ``None``: each example's top-1 class;
- an ``int`` or a class name (``"tabby"``; names need a :class:`~deepinside.Classifier`) for
  every example;
- a sequence of ints / names, or a ``Tensor[B]`` of ints: one class per example;
- ``"top5"`` (any ``"top<k>"``): each example's ``k`` best classes, ``Tensor[B, k]``, several maps
  per photo;
- a callable ``score(logits Tensor[B, K]) -> Tensor[B]``: any differentiable function of the
  logits, applied row by row (a sum of classes, a margin, ...), as pytorch-grad-cam's
  ``model_targets``. :func:`class_score` builds the common ones.

:func:`resolve_targets` turns a target into class indices (or keeps the callable) on the logits
of one forward pass; :func:`target_scores` picks the scores to differentiate.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "ScoreFn",
    "Target",
    "class_indices",
    "class_score",
    "is_top_k",
    "resolve_targets",
    "take",
    "target_scores",
]

ScoreFn = Callable[[Tensor], Tensor]
Target = None | int | str | Sequence[int | str] | Tensor | ScoreFn

_TOP_K = re.compile(r"^top-?(\d+)$")


def is_top_k(target: object) -> int | None:
    """``k`` if ``target`` is ``"top<k>"`` (``"top5"``, ``"top-3"``), else ``None``."""
    if isinstance(target, str):
        m = _TOP_K.match(target.strip().lower())
        if m:
            k = int(m.group(1))
            if k < 1:
                raise ValueError(f"target {target!r}: k must be at least 1")
            return k
    return None


def class_indices(items: object, classes: Any = None) -> list[int]:
    """Class indices from one class or a sequence of them (ints, NumPy ints, names).

    Args:
        items: an int or name, or a sequence / ``Tensor`` of them.
        classes: a :class:`~deepinside.Classifier` for names (and index checks), or ``None``.

    Raises:
        TypeError: a bool, a float, or a name without a Classifier. ValueError: unknown name.
    """
    if isinstance(items, (int, np.integer, str)) or (
            isinstance(items, Tensor) and items.dim() == 0):
        items = [items]
    if isinstance(items, Tensor):
        if items.is_floating_point() or items.dtype == torch.bool:
            raise TypeError(f"class tensor must hold integers, got {items.dtype}")
        items = items.tolist()
    out = [_index(i, classes) for i in items]  # type: ignore[union-attr]
    if not out:
        raise ValueError("no classes given")
    return out


def _index(item: object, classes: Any) -> int:
    if isinstance(item, bool):
        raise TypeError("a target class must be an int or a name, not a bool")
    if isinstance(item, (int, np.integer)):
        if classes is not None and hasattr(classes, "class_index"):
            return int(classes.class_index(int(item)))
        return int(item)
    if isinstance(item, str):
        if classes is None or not hasattr(classes, "class_index"):
            raise TypeError(f"the class name {item!r} needs a deepinside Classifier (its class "
                            "names); give the class index instead")
        return int(classes.class_index(item))
    raise TypeError("target must be None, an int, a class name, 'top<k>', a sequence of ints "
                    f"or names, a Tensor[B] of ints, or a callable on the logits; got {item!r}")


def resolve_targets(target: Target, logits: Tensor, classes: Any = None) -> Tensor | ScoreFn:
    """Turn a target into class indices on the logits' device (or keep a callable).

    Args:
        target: see the module docstring.
        logits: ``Tensor[B, K]`` of the examples to explain.
        classes: a :class:`~deepinside.Classifier` (for class names), or ``None``.

    Returns:
        ``Tensor[B]`` (long) one class per example, ``Tensor[B, k]`` for ``"top<k>"`` (best
        first), or the callable itself.

    Raises:
        ValueError / TypeError: wrong length, out of range, unknown name, not integers.
    """
    b, k = logits.shape[0], logits.shape[-1]
    if target is None:
        return logits.detach().argmax(dim=-1)
    if callable(target) and not isinstance(target, Tensor):
        return target
    top = is_top_k(target)
    if top is not None:
        return logits.detach().topk(min(top, k), dim=-1).indices
    if isinstance(target, (int, np.integer, str)):  # bools too: _index refuses them
        t = torch.full((b,), _index(target, None if isinstance(target, (int, np.integer))
                                    else classes), dtype=torch.long, device=logits.device)
    elif isinstance(target, Tensor):
        if target.is_floating_point() or target.is_complex() or target.dtype == torch.bool:
            raise TypeError(f"target tensor must hold integers, got {target.dtype}")
        t = target.detach().to(device=logits.device, dtype=torch.long)
        t = t.reshape(-1) if t.dim() != 2 else t
    else:
        t = torch.tensor([i if isinstance(i, (int, np.integer)) and not isinstance(i, bool)
                          else _index(i, classes) for i in target], dtype=torch.long,
                         device=logits.device)
    if t.shape[0] != b:
        raise ValueError(f"got {t.shape[0]} targets for a batch of {b}")
    if t.numel() and (int(t.min()) < 0 or int(t.max()) >= k):
        raise ValueError(f"target class out of range 0..{k - 1}: {t.tolist()}")
    return t


def target_scores(targets: Tensor | ScoreFn, logits: Tensor) -> Tensor:
    """The scores to explain: ``Tensor[B]`` (``Tensor[B, k]`` for several classes per example).

    Args:
        targets: what :func:`resolve_targets` returned.
        logits: ``Tensor[B, K]``.
    """
    if isinstance(targets, Tensor):
        if targets.dim() == 1:
            return logits.gather(1, targets[:, None])[:, 0]
        return logits.gather(1, targets)
    s = targets(logits)
    if not isinstance(s, Tensor) or s.shape != logits.shape[:1]:
        raise ValueError("a target callable must return one score per example, Tensor[B]; got "
                         f"{getattr(s, 'shape', type(s).__name__)}")
    return s


def take(targets: Tensor | ScoreFn, index: Tensor) -> Tensor | ScoreFn:
    """The targets of the examples ``index`` (a callable applies to every row alike)."""
    return targets[index] if isinstance(targets, Tensor) else targets


def class_score(classes: int | Sequence[int], weights: Sequence[float] | None = None) -> ScoreFn:
    """A target callable: the (weighted) sum of some classes' logits, for every example.

    Example:
        >>> dogs = class_score(range(151, 269))      # every dog breed of ImageNet at once
        >>> m = deepinside.saliency(clf, x, target=dogs)   # doctest: +SKIP
    """
    idx = [int(classes)] if isinstance(classes, (int, np.integer)) else [int(c) for c in classes]
    w = [1.0] * len(idx) if weights is None else [float(v) for v in weights]
    if not idx or len(w) != len(idx):
        raise ValueError("class_score needs at least one class and one weight per class")

    def score(logits: Tensor) -> Tensor:
        i = torch.tensor(idx, device=logits.device)
        return (logits[:, i] * torch.tensor(w, device=logits.device, dtype=logits.dtype)).sum(1)

    return score
