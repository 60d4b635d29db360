"""One photo of an audit -> one line of ``per_image.jsonl`` (NumPy only).

The line keeps the photo's maps pooled to :data:`.spray.GRID` x :data:`.spray.GRID` cells, not
whole, so an audit's memory and its file grow by about a kilobyte a photo whatever the photos'
size; everything the per-class analysis (:mod:`.suspicion`) needs is in the lines, so a resumed
audit and one in one go analyse the same numbers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields

import numpy as np

from ..evaluate import metrics as M
from .spray import GRID, downsample_map

__all__ = ["AuditRecord", "photo_record"]

DIGITS = 5  # decimals kept of a pooled map's cells


@dataclass
class AuditRecord:
    """One line of an audit's ``per_image.jsonl``.

    Attributes:
        key, record_hash: the photo, and a hash of its annotations in the dataset.
        label: its class; ``top5``: the model's five best classes, best first.
        width, height: the photo's size; ``gt_boxes``: its true boxes, clipped to it (may be
            empty: a data set without boxes).
        map: the map for ``label``, pooled to ``GRID x GRID`` cells and scaled to maximum 1
            (rows top to bottom).
        pred_map: the same for the predicted class ``top5[0]`` when it is not ``label``, else
            ``None``.
        peak: the map's maximum at the photo's own resolution, ``(x, y)`` as fractions of the
            width and height.
        energy_in_box: the share of the map's energy inside the true boxes, ``None`` without
            boxes; ``pointing_hit``: the peak within 15 px of a true box (``None`` likewise).
        seconds: time spent on the maps (per photo of its batch).
    """

    key: str
    record_hash: str
    label: int
    top5: list[int]
    width: int
    height: int
    gt_boxes: list[list[float]]
    map: np.ndarray
    pred_map: np.ndarray | None
    peak: list[float]
    energy_in_box: float | None
    pointing_hit: bool | None
    seconds: float = 0.0

    def __post_init__(self) -> None:  # the maps kept as float32 arrays: a kilobyte each
        self.map = np.asarray(self.map, dtype=np.float32)
        if self.pred_map is not None:
            self.pred_map = np.asarray(self.pred_map, dtype=np.float32)

    @property
    def correct(self) -> bool:
        """The model's best class is the label."""
        return bool(self.top5) and self.top5[0] == self.label

    def grid(self) -> np.ndarray:
        """The pooled map, ``(GRID, GRID)`` float32."""
        return self.map

    def to_json(self) -> dict:
        """The JSON-ready line (the maps as lists of rows, :data:`DIGITS` decimals)."""
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        for k in ("map", "pred_map"):
            if d[k] is not None:
                d[k] = np.round(d[k].astype(np.float64), DIGITS).tolist()
        return d

    @classmethod
    def from_json(cls, d: dict) -> AuditRecord:
        """A record from a line of ``per_image.jsonl``."""
        return cls(**d)


def _pooled(m: np.ndarray, grid: int) -> np.ndarray:
    g = np.clip(downsample_map(m, grid), 0.0, None).astype(np.float64)
    top = float(g.max())
    if top > 0:
        g = g / top
    return np.round(g, DIGITS).astype(np.float32)  # as a line reads back


def photo_record(key: str, record_hash: str, label: int, top5: Sequence[int],
                 label_map: np.ndarray, pred_map: np.ndarray | None,
                 boxes: Sequence[Sequence[float]], seconds: float = 0.0,
                 grid: int = GRID) -> AuditRecord:
    """The audit line of one photo from its maps at the photo's own size ``(H, W)``.

    Args:
        key, record_hash: the photo and its annotations' hash.
        label: the labelled class; ``top5``: the model's best classes, best first.
        label_map: the map for ``label``, ``(H, W)`` at the photo's size.
        pred_map: the map for ``top5[0]`` when it differs from ``label``, else ``None``.
        boxes: the true boxes ``(x0, y0, x1, y1)`` in the photo's pixels, already clipped to it
            (empty when the data set has none).
        seconds: time spent on the maps.
        grid: cells a side of the pooled maps.
    """
    h, w = label_map.shape
    px, py = M.map_peak(label_map)
    has_boxes = len(boxes) > 0
    return AuditRecord(
        key=key, record_hash=record_hash, label=int(label), top5=[int(c) for c in top5],
        width=int(w), height=int(h), gt_boxes=[[float(v) for v in b] for b in boxes],
        map=_pooled(label_map, grid),
        pred_map=_pooled(pred_map, grid) if pred_map is not None else None,
        peak=[round(px / w, 6), round(py / h, 6)],
        energy_in_box=round(M.energy_in_boxes(label_map, boxes), 6) if has_boxes else None,
        pointing_hit=M.pointing_hit((px, py), boxes) if has_boxes else None,
        seconds=round(float(seconds), 6))
