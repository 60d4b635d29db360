"""One class of an audit: its strategies (SpRAy clusters), how suspicious each is, and the
verdict of the erase check (NumPy only; the erasing itself is :mod:`.erase`).

The suspicion of a cluster ``j`` of class ``c`` (a number in [0, 1], higher = more likely that
the class is recognised by something that is not the object)::

    suspicion_j = share_j * fixed_j * off_j

- ``share_j``: the cluster's photos over the class's photos (a strategy the model uses often);
- ``fixed_j = max(hits_j - 1, 0) / (n_j - 1)`` (0 for a cluster of one photo), where
  ``hits_j`` of the cluster's ``n_j`` photos have their own map's peak within
  :data:`FIXED_RADIUS` (of the photo's width and of its height) of the cluster's mean map's
  peak: the evidence sits at the same place in every photo, as a watermark or a stamp does,
  while objects move from photo to photo. One photo always agrees with a mean it dominates, so
  only the others count: a lone photo is no evidence of a habit;
- ``off_j``: the mean share of the maps' energy outside the object's boxes (``1 - energy in
  box``); for a photo without boxes, outside the central quarter of the photo (the middle half
  of its width and of its height), where ImageNet-like photos keep their object.

The class's suspicion is its largest cluster suspicion. The three factors multiply, so each
alone is not enough: a large cluster that always peaks at the photo's centre on the object
(``off`` small), or an off-object context that moves with the object (``fixed`` small), scores
low.

**Flagged** (the erase check, :mod:`.erase`): on the cluster's most typical photos that have
boxes, the cluster's hot region (the cells of its mean map of at least :data:`HOT` times its
maximum), less the object's boxes, and separately the object's boxes, are blurred; a cluster is
flagged when erasing its region drops the class's logit more than erasing the object, on
average over at least :data:`MIN_ERASE_PHOTOS` photos. A class is flagged when one of its
clusters is.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from .records import AuditRecord
from .spray import normalize_maps, spectral_clusters

__all__ = [
    "EXAMPLES",
    "FIXED_RADIUS",
    "HOT",
    "MIN_ERASE_PHOTOS",
    "ClassAudit",
    "ClusterAudit",
    "class_audit",
    "grid_peak",
    "hot_region",
]

FIXED_RADIUS = 0.125  # "the same place": within 1/8 of the width and of the height
HOT = 0.5  # the hot region: cells of the mean map of at least half its maximum
EXAMPLES = 4  # example photos a cluster shows
MIN_ERASE_PHOTOS = 3  # the erase check needs at least this many photos with boxes to flag


@dataclass
class ClusterAudit:
    """One strategy of a class.

    Attributes:
        keys: its photos, most typical first (closest to the cluster's mean map).
        share: its photos over the class's.
        mean_map: the mean of its pooled maps, maximum 1, ``(GRID, GRID)``.
        peak: the mean map's maximum, ``(x, y)`` as fractions of the width and height (the
            centre of its cell).
        fixed, off_object, suspicion: see the module's formula.
        examples: the first :data:`EXAMPLES` of ``keys``.
        erase_region_drop, erase_object_drop: the class logit's mean drop when the hot region
            (less the boxes) or the boxes are blurred, ``None`` before the erase check or
            without photos with boxes; ``erase_photos``: how many photos it averaged.
        flagged: the erase check says the model relies on the region more than on the object.
    """

    keys: list[str]
    share: float
    mean_map: np.ndarray
    peak: tuple[float, float]
    fixed: float
    off_object: float
    suspicion: float
    examples: list[str]
    erase_region_drop: float | None = None
    erase_object_drop: float | None = None
    erase_photos: int = 0
    flagged: bool = False
    erase: list[tuple[float, float]] = field(default_factory=list, repr=False)

    def set_erase(self, region_drops: Sequence[float], object_drops: Sequence[float]) -> None:
        """Record the erase check's drops (one per photo) and the verdict."""
        self.erase_photos = len(region_drops)
        if self.erase_photos:
            self.erase_region_drop = float(np.mean(region_drops))
            self.erase_object_drop = float(np.mean(object_drops))
        self.flagged = bool(self.erase_photos >= MIN_ERASE_PHOTOS
                            and self.erase_region_drop > self.erase_object_drop)


@dataclass
class ClassAudit:
    """One class of an audit.

    Attributes:
        label, name: the class index and its short name.
        n: its photos; ``accuracy``: the share the model classifies as it (top-1).
        energy_in_box, pointing: the means over its photos with boxes (``None`` without).
        k, eigenvalues: SpRAy's number of clusters and the Laplacian's smallest eigenvalues.
        clusters: largest first.
    """

    label: int
    name: str
    n: int
    accuracy: float
    energy_in_box: float | None
    pointing: float | None
    k: int
    eigenvalues: list[float]
    clusters: list[ClusterAudit] = field(default_factory=list)

    @property
    def suspicion(self) -> float:
        """The largest suspicion of its clusters."""
        return max((c.suspicion for c in self.clusters), default=0.0)

    @property
    def flagged(self) -> bool:
        """One of its clusters is flagged by the erase check."""
        return any(c.flagged for c in self.clusters)


def grid_peak(m: np.ndarray) -> tuple[float, float]:
    """The maximum cell of a pooled map ``(h, w)``, its centre ``(x, y)`` as fractions."""
    h, w = m.shape
    y, x = np.unravel_index(int(np.argmax(m)), m.shape)
    return (x + 0.5) / w, (y + 0.5) / h


def hot_region(mean_map: np.ndarray, hot: float = HOT) -> np.ndarray:
    """Bool ``(h, w)``: the cells of a mean map of at least ``hot`` times its maximum."""
    m = np.asarray(mean_map, dtype=np.float64)
    top = float(m.max()) if m.size else 0.0
    return m >= hot * top if top > 0 else np.zeros(m.shape, dtype=bool)


def _central_energy(g: np.ndarray) -> float:
    h, w = g.shape
    total = float(g.sum())
    inner = float(g[h // 4: h - h // 4, w // 4: w - w // 4].sum())
    return inner / total if total > 0 else 0.0


def class_audit(label: int, name: str, records: Sequence[AuditRecord], *,
                k: int | None = None) -> ClassAudit:
    """A class's strategies and their suspicion from its photos' audit lines (in any order).

    Args:
        label, name: the class.
        records: the lines of the photos labelled ``label``.
        k: the number of clusters (default: the eigengap's).
    """
    records = sorted(records, key=lambda r: r.key)
    n = len(records)
    boxed = [r for r in records if r.energy_in_box is not None]
    grids = np.stack([r.grid() for r in records]) if records else np.zeros((0, 1, 1))
    audit = ClassAudit(
        label=int(label), name=name, n=n,
        accuracy=float(np.mean([r.correct for r in records])) if n else float("nan"),
        energy_in_box=float(np.mean([r.energy_in_box for r in boxed])) if boxed else None,
        pointing=float(np.mean([bool(r.pointing_hit) for r in boxed])) if boxed else None,
        k=0, eigenvalues=[])
    if not n:
        return audit
    spray = spectral_clusters(grids, [r.key for r in records], k=k)
    audit.k, audit.eigenvalues = spray.k, [round(float(v), 6) for v in spray.eigenvalues]
    unit = normalize_maps(grids)
    for j in range(spray.k):
        idx = np.flatnonzero(spray.labels == j)
        mean = grids[idx].mean(0)
        mean = mean / mean.max() if mean.max() > 0 else mean
        peak = grid_peak(mean)
        centre = normalize_maps(mean[None])[0]
        typical = sorted(idx, key=lambda i: (-round(float(unit[i] @ centre), 9),
                                             records[i].key))
        members = [records[i] for i in typical]
        hits = sum(max(abs(r.peak[0] - peak[0]), abs(r.peak[1] - peak[1])) <= FIXED_RADIUS
                   for r in members)
        fixed = max(hits - 1, 0) / (len(members) - 1) if len(members) > 1 else 0.0
        off = float(np.mean([1.0 - (r.energy_in_box if r.energy_in_box is not None
                                    else _central_energy(r.grid())) for r in members]))
        share = len(idx) / n
        audit.clusters.append(ClusterAudit(
            keys=[r.key for r in members], share=share, mean_map=mean.astype(np.float32),
            peak=(round(peak[0], 6), round(peak[1], 6)), fixed=fixed, off_object=off,
            suspicion=share * fixed * off, examples=[r.key for r in members[:EXAMPLES]]))
    return audit
