"""Box arithmetic and localisation metrics.

Boxes are ``(x0, y0, x1, y1)`` in continuous pixel coordinates (``x1 > x0``; the whole photo is
``(0, 0, width, height)``); areas and intersections carry no ``+1``.

- Localisation is correct when the box overlaps *any* ground-truth box of the true class with
  IoU >= 0.5 (ILSVRC; Russakovsky et al. 2015, https://arxiv.org/abs/1409.0575).
- GT-known localisation accuracy: the box of the map for the true class is correct
  (Choe et al. 2020, https://arxiv.org/abs/2001.07437).
- Top-1 localisation accuracy: the top-1 class is the true one and its box is correct.
- Top-5 localisation error (ILSVRC): an image counts as an error unless one of the five guesses
  ``(class, box)`` has the true class and a correct box; a right box for a wrong class does not
  count.
- Pointing game (Zhang et al. 2016, https://arxiv.org/abs/1608.00507; TorchRay's benchmark): the
  map's maximum lies within 15 pixels of a ground-truth box.
- Energy in boxes: the share of the (non-negative) map's sum inside the union of the boxes.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = [
    "IOU_THRESHOLD",
    "POINTING_TOLERANCE",
    "box_area",
    "box_iou",
    "box_intersection",
    "boxes_mask",
    "centred_box",
    "energy_in_boxes",
    "fit_boxes",
    "gt_known_hit",
    "max_iou",
    "pointing_hit",
    "point_box_distance",
    "top1_loc_hit",
    "top5_loc_error",
]

IOU_THRESHOLD = 0.5
POINTING_TOLERANCE = 15.0

Box = Sequence[float]


def check_box(box: Box) -> tuple[float, float, float, float]:
    """``box`` as four floats; ``ValueError`` unless finite with ``x1 >= x0`` and ``y1 >= y0``."""
    if len(box) != 4:
        raise ValueError(f"a box has 4 numbers (x0, y0, x1, y1), got {box!r}")
    x0, y0, x1, y1 = (float(v) for v in box)
    if not all(np.isfinite(v) for v in (x0, y0, x1, y1)) or x1 < x0 or y1 < y0:
        raise ValueError(f"bad box {box!r}: need finite x0 <= x1 and y0 <= y1")
    return x0, y0, x1, y1


def fit_boxes(boxes: Sequence[Box], width: float, height: float) -> tuple[list[Box], list[str]]:
    """Ground-truth boxes checked against the photo ``(0, 0, width, height)``.

    A box that overlaps the photo but sticks out is clipped to it; a box that does not overlap
    it at all is dropped (it cannot be scored).

    Returns:
        ``(kept boxes, notes)``: one note per clipped or dropped box, saying which and why.
    """
    kept: list[Box] = []
    notes: list[str] = []
    for box in boxes:
        x0, y0, x1, y1 = check_box(box)
        c = (max(x0, 0.0), max(y0, 0.0), min(x1, float(width)), min(y1, float(height)))
        if c[2] <= c[0] or c[3] <= c[1]:
            notes.append(f"box {[x0, y0, x1, y1]} lies outside the {width:g}x{height:g} photo; "
                         "ignored")
            continue
        if c != (x0, y0, x1, y1):
            notes.append(f"box {[x0, y0, x1, y1]} clipped to the {width:g}x{height:g} photo")
        kept.append(c)
    return kept, notes


def box_area(box: Box) -> float:
    """Area of a box (0 for an empty one)."""
    x0, y0, x1, y1 = check_box(box)
    return (x1 - x0) * (y1 - y0)


def box_intersection(a: Box, b: Box) -> float:
    """Area of the intersection of two boxes."""
    ax0, ay0, ax1, ay1 = check_box(a)
    bx0, by0, bx1, by1 = check_box(b)
    return max(0.0, min(ax1, bx1) - max(ax0, bx0)) * max(0.0, min(ay1, by1) - max(ay0, by0))


def box_iou(a: Box, b: Box) -> float:
    """Intersection over union of two boxes (0 when the union is empty)."""
    inter = box_intersection(a, b)
    union = box_area(a) + box_area(b) - inter
    return inter / union if union > 0 else 0.0


def max_iou(box: Box | None, gt_boxes: Sequence[Box]) -> float:
    """The best IoU of ``box`` with any ground-truth box (0 for no box or no ground truth)."""
    if box is None or not gt_boxes:
        return 0.0
    return max(box_iou(box, g) for g in gt_boxes)


def gt_known_hit(box: Box | None, gt_boxes: Sequence[Box], thr: float = IOU_THRESHOLD) -> bool:
    """The box (of the true class's map) overlaps a ground-truth box with IoU >= ``thr``."""
    return max_iou(box, gt_boxes) >= thr


def top1_loc_hit(predictions: Sequence[tuple[int, Box | None]], label: int,
                 gt_boxes: Sequence[Box], thr: float = IOU_THRESHOLD) -> bool:
    """Top-1 localisation: the first guess has the true class and a correct box."""
    if not predictions:
        return False
    c, box = predictions[0]
    return int(c) == int(label) and gt_known_hit(box, gt_boxes, thr)


def top5_loc_error(predictions: Sequence[tuple[int, Box | None]], label: int,
                   gt_boxes: Sequence[Box], k: int = 5, thr: float = IOU_THRESHOLD) -> int:
    """ILSVRC top-5 localisation error of one image: 0 if one of the first ``k`` guesses
    ``(class, box)`` has the true class and IoU >= ``thr`` with a true box, else 1."""
    for c, box in list(predictions)[:k]:
        if int(c) == int(label) and gt_known_hit(box, gt_boxes, thr):
            return 0
    return 1


def point_box_distance(point: Sequence[float], box: Box) -> float:
    """Euclidean distance from a point ``(x, y)`` to a box (0 inside it)."""
    x, y = float(point[0]), float(point[1])
    x0, y0, x1, y1 = check_box(box)
    dx = max(x0 - x, 0.0, x - x1)
    dy = max(y0 - y, 0.0, y - y1)
    return float(np.hypot(dx, dy))


def pointing_hit(point: Sequence[float], gt_boxes: Sequence[Box],
                 tolerance: float = POINTING_TOLERANCE) -> bool:
    """The pointing game: ``point`` lies within ``tolerance`` pixels of a ground-truth box."""
    return any(point_box_distance(point, g) <= tolerance for g in gt_boxes)


def map_peak(saliency_map: np.ndarray) -> tuple[float, float]:
    """The centre ``(x + 0.5, y + 0.5)`` of the map's maximum pixel (the first one on ties)."""
    m = np.nan_to_num(np.asarray(saliency_map, dtype=np.float64), nan=-np.inf)
    y, x = np.unravel_index(int(np.argmax(m)), m.shape)
    return float(x) + 0.5, float(y) + 0.5


def boxes_mask(gt_boxes: Sequence[Box], shape: tuple[int, int]) -> np.ndarray:
    """Bool (H, W): pixels whose centre lies inside any of the boxes."""
    h, w = shape
    ys = np.arange(h)[:, None] + 0.5
    xs = np.arange(w)[None, :] + 0.5
    mask = np.zeros((h, w), dtype=bool)
    for b in gt_boxes:
        x0, y0, x1, y1 = check_box(b)
        mask |= (xs >= x0) & (xs <= x1) & (ys >= y0) & (ys <= y1)
    return mask


def energy_in_boxes(saliency_map: np.ndarray, gt_boxes: Sequence[Box]) -> float:
    """Share of the map's sum (negative values clipped to 0) inside the boxes; 0 for a zero map."""
    m = np.clip(np.nan_to_num(np.asarray(saliency_map, dtype=np.float64)), 0.0, None)
    total = float(m.sum())
    if total <= 0:
        return 0.0
    return float(m[boxes_mask(gt_boxes, m.shape)].sum()) / total


def centred_box(width: float, height: float, rel_w: float, rel_h: float) -> tuple[float, ...]:
    """A box of ``rel_w * width`` by ``rel_h * height`` centred in the photo."""
    bw, bh = rel_w * width, rel_h * height
    return ((width - bw) / 2, (height - bh) / 2, (width + bw) / 2, (height + bh) / 2)
