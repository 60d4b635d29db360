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
  ``model_targets``. :func:`class_score` builds the common ones (several classes of a
  multi-label head, the other class of a single-logit binary head). A callable receives the
  model's raw output when it is not a logits tensor, so any task can be aimed at:
  :func:`region_score` for segmentation (``Tensor[B, K, H, W]``), :func:`box_score` for
  detection (a list of ``{"boxes", "labels", "scores"}``).

Every target but a callable needs class logits ``Tensor[B, K]``; for another output it is one
line that says so. :func:`resolve_targets` turns a target into class indices (or keeps the
callable) on the output of one forward pass; :func:`target_scores` picks the scores to
differentiate. :func:`parse_target` reads the command line's and the server's text
(``"3"``, ``"tabby"``, ``"top2"``, ``"3,5"`` summed).
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
    "box_score",
    "class_indices",
    "class_score",
    "describe_output",
    "is_logits",
    "is_top_k",
    "need_logits",
    "parse_target",
    "region_score",
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


def describe_output(out: object) -> str:
    """A model output in a few words: ``Tensor[2, 21, 64, 64]``, ``list of 2 dict``, ..."""
    if isinstance(out, Tensor):
        return "Tensor[" + ", ".join(str(d) for d in out.shape) + "]"
    if isinstance(out, (list, tuple)):
        kinds = sorted({type(o).__name__ for o in out})
        return f"{type(out).__name__} of {len(out)} {'/'.join(kinds) or 'items'}"
    return type(out).__name__


def is_logits(out: object) -> bool:
    """Whether a (read) model output is class logits ``Tensor[B, K]``."""
    return isinstance(out, Tensor) and out.dim() == 2


def need_logits(out: object, what: str) -> Tensor:
    """``out`` if it is class logits ``Tensor[B, K]``, else one line: ``what`` needs them.

    Raises:
        ValueError: naming ``what``, the output and what would work.
    """
    if is_logits(out):
        return out  # type: ignore[return-value]
    raise ValueError(
        f"{what} needs class logits Tensor[B, K], but the model returns {describe_output(out)}; "
        "aim with a callable on its output (deepinside.region_score for segmentation, "
        "deepinside.box_score for detection) or pass load_model(..., output=f) to read logits")


def _batch_of(out: object) -> int | None:
    if isinstance(out, Tensor):
        return int(out.shape[0]) if out.dim() else None
    if isinstance(out, (list, tuple)):
        return len(out)
    if isinstance(out, dict):
        return next((b for b in map(_batch_of, out.values()) if b is not None), None)
    return None


def resolve_targets(target: Target, logits: Any, classes: Any = None,
                    batch: int | None = None) -> Tensor | ScoreFn:
    """Turn a target into class indices on the logits' device (or keep a callable).

    Args:
        target: see the module docstring.
        logits: ``Tensor[B, K]`` of the examples to explain (or the model's output when it
            has no class logits: then only a callable target can read it).
        classes: a :class:`~deepinside.Classifier` (for class names), or ``None``.
        batch: the number of examples (checked against a callable's scores).

    Returns:
        ``Tensor[B]`` (long) one class per example, ``Tensor[B, k]`` for ``"top<k>"`` (best
        first), or the callable itself.

    Raises:
        ValueError / TypeError: wrong length, out of range, unknown name, not integers.
    """
    if callable(target) and not isinstance(target, Tensor):
        return target
    what = "the top-1 class" if target is None else f"target {target!r}"
    need_logits(logits, what + " (an index, a name, top<k>)")
    b, k = logits.shape[0], logits.shape[-1]
    if target is None:
        return logits.detach().argmax(dim=-1)
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


def target_scores(targets: Tensor | ScoreFn, logits: Any, batch: int | None = None) -> Tensor:
    """The scores to explain: ``Tensor[B]`` (``Tensor[B, k]`` for several classes per example).

    Args:
        targets: what :func:`resolve_targets` returned.
        logits: ``Tensor[B, K]`` (or the model's output, for a callable).
        batch: the number of examples (default: read off the output).
    """
    if isinstance(targets, Tensor):
        logits = need_logits(logits, "a class target")
        if targets.dim() == 1:
            return logits.gather(1, targets[:, None])[:, 0]
        return logits.gather(1, targets)
    s = targets(logits)
    b = _batch_of(logits) if batch is None or is_logits(logits) else batch
    if not isinstance(s, Tensor) or s.dim() != 1 or (b is not None and s.shape[0] != b):
        raise ValueError("a target callable must return one score per example, Tensor[B]; got "
                         f"{getattr(s, 'shape', type(s).__name__)}")
    return s


def take(targets: Tensor | ScoreFn, index: Tensor) -> Tensor | ScoreFn:
    """The targets of the examples ``index`` (a callable applies to every row alike)."""
    return targets[index] if isinstance(targets, Tensor) else targets


def class_score(classes: int | Sequence[int], weights: Sequence[float] | None = None) -> ScoreFn:
    """A target callable: the (weighted) sum of some classes' logits, for every example.

    Multi-label (sigmoid) heads: an index is that label's logit, ``class_score([i, j])`` their
    sum. A single-logit binary head: ``0`` is the positive class, ``class_score([0],
    weights=[-1])`` the other one (the negated logit).

    Example:
        >>> dogs = class_score(range(151, 269))      # every dog breed of ImageNet at once
        >>> m = deepinside.saliency(clf, x, target=dogs)   # doctest: +SKIP
    """
    idx = [int(classes)] if isinstance(classes, (int, np.integer)) else [int(c) for c in classes]
    w = [1.0] * len(idx) if weights is None else [float(v) for v in weights]
    if not idx or len(w) != len(idx):
        raise ValueError("class_score needs at least one class and one weight per class")

    def score(logits: Tensor) -> Tensor:
        logits = need_logits(logits, "class_score")
        i = torch.tensor(idx, device=logits.device)
        return (logits[:, i] * torch.tensor(w, device=logits.device, dtype=logits.dtype)).sum(1)

    score.classes = idx  # type: ignore[attr-defined]  # for labels: which classes, how weighted
    score.weights = w  # type: ignore[attr-defined]
    return score


def region_score(class_index: int, mask: Tensor | np.ndarray) -> ScoreFn:
    """A target callable for segmentation: class ``class_index``'s logits summed over a mask.

    As pytorch-grad-cam's ``SemanticSegmentationTarget``: the output ``Tensor[B, K, H, W]``
    (or a mapping holding it as ``out``, as torchvision's segmentation models return) gives
    ``sum_{h, w} out[b, class_index, h, w] * mask[h, w]`` per image.

    Args:
        class_index: the class (channel) of the output.
        mask: ``Tensor[H, W]`` (every image) or ``Tensor[B, H, W]`` (one per image), bool or
            weights; resized (nearest) to the output's size when it differs.
    """
    m = torch.as_tensor(mask)
    if m.dim() not in (2, 3):
        raise ValueError(f"mask must be Tensor[H, W] or Tensor[B, H, W], got shape "
                         f"{tuple(m.shape)}")
    c = int(class_index)

    def score(out: Any) -> Tensor:
        if isinstance(out, dict) and isinstance(out.get("out"), Tensor):
            out = out["out"]
        if not isinstance(out, Tensor) or out.dim() != 4:
            raise ValueError("region_score needs a segmentation output Tensor[B, K, H, W], got "
                             f"{describe_output(out)}")
        if not 0 <= c < out.shape[1]:
            raise ValueError(f"region_score: class {c} is out of range 0..{out.shape[1] - 1}")
        w = m.to(device=out.device, dtype=out.dtype)
        w = w[None] if w.dim() == 2 else w
        if tuple(w.shape[-2:]) != tuple(out.shape[-2:]):
            w = torch.nn.functional.interpolate(w[:, None], size=out.shape[-2:],
                                                mode="nearest")[:, 0]
        return (out[:, c] * w).sum(dim=(1, 2))

    return score


def box_score(box: Sequence[float] | Tensor, label: int | Sequence[int],
              iou: float = 0.5) -> ScoreFn:
    """A target callable for detection: the score of the detection that best matches a box.

    As pytorch-grad-cam's ``FasterRCNNBoxScoreTarget``: for each image's detections
    (torchvision's list of ``{"boxes": Tensor[N, 4], "labels": Tensor[N], "scores":
    Tensor[N]}``), the detection of ``label`` whose box overlaps ``box`` most, with an IoU of
    at least ``iou``, gives its score; none gives 0. Several boxes (``Tensor[M, 4]`` with one
    label each) sum.

    Args:
        box: ``[x1, y1, x2, y2]`` in input pixels, or ``Tensor[M, 4]``.
        label: the class of each box.
        iou: the least intersection over union that counts as the same object.
    """
    boxes = torch.as_tensor(box, dtype=torch.float32).reshape(-1, 4)
    labels = [int(label)] * len(boxes) if isinstance(label, (int, np.integer)) else [
        int(v) for v in label]
    if len(labels) != len(boxes) or not len(boxes):
        raise ValueError(f"box_score needs one label per box: {len(boxes)} boxes, "
                         f"{len(labels)} labels")

    def score(out: Any) -> Tensor:
        from torchvision.ops import box_iou

        if not isinstance(out, (list, tuple)) or not all(
                isinstance(d, dict) and {"boxes", "labels", "scores"} <= set(d) for d in out):
            raise ValueError("box_score needs a detector's output, a list of dicts with "
                             f"'boxes', 'labels' and 'scores'; got {describe_output(out)}")
        rows = []
        for det in out:
            total = det["scores"].sum() * 0  # 0, still on the graph
            if len(det["boxes"]):
                overlap = box_iou(boxes.to(det["boxes"]), det["boxes"])
                for j, lab in enumerate(labels):
                    ok = (det["labels"] == lab) & (overlap[j] >= iou)
                    if bool(ok.any()):
                        best = torch.where(ok, overlap[j], -1.0).argmax()
                        total = total + det["scores"][best]
            rows.append(total)
        return torch.stack(rows)

    return score


def parse_target(text: str | None, classes: Any = None) -> Target:
    """A target written as text (command line, HTTP) -> a target.

    ``None`` or ``""``: each image's top-1 class; ``"3"``: an index; ``"tabby"``: a class name
    (needs ``classes``); ``"top2"``: the best ``k``; ``"3,5"`` or ``"tabby, tiger cat"``:
    those classes' logits summed (:func:`class_score`), unless the whole text is one class's
    name.

    Args:
        text: the target as written.
        classes: a :class:`~deepinside.Classifier` for names (and index checks), or ``None``.

    Raises:
        ValueError / TypeError: an unknown name (with close matches), a bad index.
    """
    if text is None or not text.strip():
        return None
    text = text.strip()
    if is_top_k(text):
        return text
    if text.isdigit():
        return class_indices(int(text), classes)[0]
    if "," not in text:
        return class_indices(text, classes)[0]
    try:
        return class_indices(text, classes)[0]  # a whole description: "tabby, tabby cat"
    except (ValueError, TypeError):
        parts = [p.strip() for p in text.split(",") if p.strip()]
    idx = class_indices([int(p) if p.isdigit() else p for p in parts], classes)
    return idx[0] if len(idx) == 1 else class_score(idx)
