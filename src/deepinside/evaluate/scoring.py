"""One photo's map -> box -> record of ``per_image.jsonl``, and the summary of such records.

NumPy and OpenCV only: this is what a GrabCut worker process imports (``python -X importtime
-c "import deepinside.evaluate.scoring"`` loads no torch), so a worker starts in a fraction of a
second. The driver (:mod:`.runner`) computes the maps and writes the records.

Only the true class's box can score in any of the metrics (a right box for a wrong class is a
miss), so one map and one box per photo give the GT-known, top-1 and ILSVRC top-5 numbers exactly:
top-1 hit = (top-1 class is the label) and (box hit); top-5 error = not ((label in the top 5)
and (box hit)).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from ..segment import Box, Recipe, segment_map
from . import metrics as M

__all__ = ["ImageResult", "ScoreTask", "init_worker", "score_photo", "summarize"]


@dataclass
class ScoreTask:
    """What a worker needs to segment and score one photo.

    Attributes:
        key: the photo's identifier in the dataset.
        record_hash: a hash of its annotations (label and boxes), to tell a changed dataset.
        photo: uint8 (H, W, 3).
        map: float32 (H, W), the map for the true class at the photo's size.
        boxes: ground-truth boxes ``(x0, y0, x1, y1)``.
        label: the true class.
        top5: the model's five best classes, best first.
        recipe: the :class:`~deepinside.localize.Recipe` that segments.
        seed: GrabCut's random seed.
        map_seconds: time spent on the map (per photo of its batch).
    """

    key: str
    record_hash: str
    photo: np.ndarray
    map: np.ndarray
    boxes: list[Box]
    label: int
    top5: list[int]
    recipe: Recipe
    seed: int = 0
    map_seconds: float = 0.0


@dataclass
class ImageResult:
    """One line of ``per_image.jsonl``: a photo's box and its scores.

    Attributes:
        key, record_hash: the photo, and a hash of its annotations in the dataset.
        label, top5, width, height, gt_boxes: its class, the model's top 5 classes, its size
            and the true boxes (clipped to the photo).
        box: the box found for the true class; ``iou`` its best IoU with a true box.
        hit, top1_hit, top5_err: GT-known hit, top-1 localisation hit, ILSVRC top-5 error.
        point, pointing_hit: the map's peak and whether it is within 15 px of a true box.
        energy_in_box: the share of the map's energy inside the true boxes.
        note: why a degenerate case decided the box, or ``""``.
        seconds: ``{"map": ..., "segment": ...}``.
    """

    key: str
    record_hash: str
    label: int
    top5: list[int]
    width: int
    height: int
    gt_boxes: list[list[float]]
    box: list[float]
    iou: float
    hit: bool
    top1_hit: bool
    top5_err: int
    point: list[float]
    pointing_hit: bool
    energy_in_box: float
    note: str = ""
    seconds: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict:
        """The JSON-ready line (field order as above)."""
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict) -> ImageResult:
        """A record from a line of ``per_image.jsonl``."""
        return cls(**d)


def _watch_parent(parent: int) -> None:
    while True:
        if os.getppid() != parent:
            os._exit(1)  # the evaluating process is gone: nothing will read our results
        time.sleep(0.5)


def init_worker(parent: int | None = None) -> None:
    """Worker start-up: one OpenCV thread; exit when the parent process ``parent`` dies."""
    import cv2

    cv2.setNumThreads(1)
    if parent is not None:
        threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()


def score_photo(task: ScoreTask) -> ImageResult:
    """Segment one photo's map with the recipe and score the box (NumPy and OpenCV only)."""
    t0 = time.perf_counter()
    m, boxes = task.map, [tuple(b) for b in task.boxes]
    _, box, note = segment_map(task.photo, m, task.recipe, task.seed)
    seg = time.perf_counter() - t0
    h, w = m.shape
    label, top5 = int(task.label), [int(c) for c in task.top5]
    iou = M.max_iou(box, boxes)
    preds = [(c, box if c == label else None) for c in top5]
    point = M.map_peak(m)
    return ImageResult(
        key=task.key, record_hash=task.record_hash, label=label, top5=top5, width=w, height=h,
        gt_boxes=[list(b) for b in boxes], box=list(box), iou=round(iou, 6),
        hit=bool(iou >= M.IOU_THRESHOLD), top1_hit=M.top1_loc_hit(preds, label, boxes),
        top5_err=M.top5_loc_error(preds, label, boxes),
        point=list(point), pointing_hit=M.pointing_hit(point, boxes),
        energy_in_box=round(M.energy_in_boxes(m, boxes), 6), note=note,
        seconds={"map": round(task.map_seconds, 6), "segment": round(seg, 6)},
    )


def _mean(xs: Sequence[float]) -> float:
    return float(np.mean(xs)) if len(xs) else float("nan")


def _loc_scores(rows: Sequence[dict], boxes: Sequence[Sequence[float]]) -> dict:
    hits = [M.gt_known_hit(b, r["gt_boxes"]) for r, b in zip(rows, boxes)]
    top1 = [h and r["top5"][0] == r["label"] for r, h in zip(rows, hits)]
    top5 = [h and r["label"] in r["top5"] for r, h in zip(rows, hits)]
    return {"gt_known_loc_acc": _mean(hits), "top1_loc_acc": _mean(top1),
            "top1_loc_err": 1.0 - _mean(top1), "top5_loc_err": 1.0 - _mean(top5)}


def summarize(rows: Sequence[ImageResult | dict]) -> dict:
    """The summary of per-image lines (the content of ``summary.json``).

    Keys: ``n_images``, ``gt_known_loc_acc``, ``top1_loc_acc``, and the ILSVRC localisation
    errors (IoU >= 0.5) ``top1_loc_err`` (= 1 - ``top1_loc_acc``; Grad-CAM's 56.51% on VGG-16)
    and ``top5_loc_err`` (Simonyan et al.'s 46.4%, Grad-CAM's 46.41%), ``pointing_game``,
    ``energy_in_box``, ``top1_cls_acc``, ``top5_cls_acc``, ``mean_box_area`` and
    ``mean_gt_area`` (shares of the photo; the largest true box), ``seconds_per_image``
    (``map``, ``segment``) and ``baselines``: ``whole_image`` and ``centred_box`` (a box of the
    mean relative size of the largest true box, centred) with the four localisation scores, and
    ``centre_point`` with its ``pointing_game``.
    """
    rows = sorted((r.to_json() if isinstance(r, ImageResult) else r for r in rows),
                  key=lambda r: r["key"])
    n = len(rows)

    def largest(r):
        return max(r["gt_boxes"], key=M.box_area)

    rel = [((b[2] - b[0]) / r["width"], (b[3] - b[1]) / r["height"])
           for r in rows for b in [largest(r)]]
    rel_w, rel_h = (float(np.mean([a for a, _ in rel])), float(np.mean([b for _, b in rel]))) \
        if rel else (0.0, 0.0)
    whole = [(0.0, 0.0, r["width"], r["height"]) for r in rows]
    centred = [M.centred_box(r["width"], r["height"], rel_w, rel_h) for r in rows]
    centre_hits = [M.pointing_hit((r["width"] / 2, r["height"] / 2), r["gt_boxes"]) for r in rows]
    return {
        "n_images": n,
        "gt_known_loc_acc": _mean([r["hit"] for r in rows]),
        "top1_loc_acc": _mean([r["top1_hit"] for r in rows]),
        "top1_loc_err": 1.0 - _mean([r["top1_hit"] for r in rows]),
        "top5_loc_err": _mean([r["top5_err"] for r in rows]),
        "pointing_game": _mean([r["pointing_hit"] for r in rows]),
        "energy_in_box": _mean([r["energy_in_box"] for r in rows]),
        "top1_cls_acc": _mean([r["top5"][0] == r["label"] for r in rows]),
        "top5_cls_acc": _mean([r["label"] in r["top5"] for r in rows]),
        "mean_box_area": _mean([M.box_area(r["box"]) / (r["width"] * r["height"]) for r in rows]),
        "mean_gt_area": _mean([M.box_area(largest(r)) / (r["width"] * r["height"])
                               for r in rows]),
        "seconds_per_image": {k: _mean([r["seconds"][k] for r in rows])
                              for k in ("map", "segment")},
        "baselines": {
            "whole_image": _loc_scores(rows, whole),
            "centred_box": {**_loc_scores(rows, centred), "relative_size": [rel_w, rel_h]},
            "centre_point": {"pointing_game": _mean(centre_hits)},
        },
    }
