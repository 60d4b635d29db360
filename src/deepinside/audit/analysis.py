"""The audit's two computing steps: a batch of photos -> their audit lines (on the model's
device, what every backend runs), and all the lines -> the classes' strategies, suspicion and
erase checks (in the driver, once every line is written)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from .records import AuditRecord, photo_record
from .suspicion import ClassAudit, class_audit, hot_region

__all__ = ["analyse", "audit_batch"]


def audit_batch(model, items: Sequence, photos: Sequence, boxes: Sequence[list],
                hashes: dict[str, str], fail: Callable[[object, str], None], *,
                method: str = "gradcam", batch_size: int = 16,
                options: dict | None = None) -> list[AuditRecord]:
    """The audit lines of a batch of photos: the map for each labelled class, and for the
    predicted class where it differs; if the batch fails, photo by photo, and ``fail(item,
    reason)`` for each photo whose maps fail.

    Args:
        model: a :class:`deepinside.Classifier`.
        items: the photos' dataset records (``key``, ``label``).
        photos: their RGB photos.
        boxes: their true boxes, clipped to the photo (may be empty).
        hashes: ``key -> record hash``.
        fail: called for a photo that cannot be audited.
        method: the attribution method.
        batch_size: photos per pass.
        options: the method's options.

    The stage of the audit's :class:`deepinside.evaluate.backend.LinesSpec`: both backends
    run it on the model's device.
    """
    options = options or {}
    from .. import photo_maps

    def lines(items, photos, boxes) -> list[AuditRecord]:
        t0 = time.perf_counter()
        maps, _, logits = photo_maps(model, list(photos), [r.label for r in items],
                                     method=method, batch_size=batch_size, **options)
        top5 = logits.topk(min(5, logits.shape[1]), dim=1).indices.tolist()
        other = [i for i, (r, t) in enumerate(zip(items, top5)) if t[0] != r.label]
        pred = dict.fromkeys(range(len(items)))
        if other:
            more, _, _ = photo_maps(model, [photos[i] for i in other],
                                    [top5[i][0] for i in other], method=method,
                                    batch_size=batch_size, **options)
            pred.update(zip(other, more))
        per = (time.perf_counter() - t0) / len(items)
        return [photo_record(r.key, hashes[r.key], r.label, t5, m, pred[i], b, per)
                for i, (r, m, t5, b) in enumerate(zip(items, maps, top5, boxes))]

    try:
        return lines(items, photos, boxes)
    except Exception as e:  # noqa: BLE001 - one bad photo must not stop the run
        if len(items) == 1:
            fail(items[0], f"cannot compute its map: {e}")
            return []
    out: list[AuditRecord] = []
    for r, p, b in zip(items, photos, boxes):
        out += audit_batch(model, [r], [p], [b], hashes, fail, method=method,
                           batch_size=batch_size, options=options)
    return out


def analyse(model, lines: Sequence[AuditRecord], open_photo: Callable[[str], object | None],
            *, names: Callable[[int], str], erase_photos: int = 16, batch_size: int = 16,
            progress: Callable[[int], None] | None = None) -> list[ClassAudit]:
    """Every class's strategies, suspicion and erase check, from the audit's lines.

    Args:
        model: the audited classifier (the erase check runs it, through the engine).
        lines: the audit lines, one per photo (any order).
        open_photo: ``key -> RGB photo`` (or ``None`` when it cannot be read any more).
        names: ``class index -> name``.
        erase_photos: at most this many of a cluster's most typical photos with boxes are
            erased.
        batch_size: photos per forward pass of the erase check.
        progress: called with 1 after each class's clusters (the erase check follows, in
            batches of photos of many clusters).

    Returns:
        One :class:`ClassAudit` per class with photos, in class order.
    """
    from .erase import erase_drops

    by_class: dict[int, list[AuditRecord]] = {}
    for r in lines:
        by_class.setdefault(r.label, []).append(r)
    out, jobs = [], []  # jobs: (class, cluster, key, boxes), erased together afterwards
    for label in sorted(by_class):
        rows = {r.key: r for r in by_class[label]}
        audit = class_audit(label, names(label), list(rows.values()))
        for c in audit.clusters:
            boxed = [k for k in c.keys if rows[k].gt_boxes][:erase_photos]
            jobs += [(audit.label, c, k, rows[k].gt_boxes) for k in boxed]
        out.append(audit)
        if progress is not None:
            progress(1)
    for start in range(0, len(jobs), batch_size * 4):  # the photos of many clusters a pass
        part = [(*j[:2], photo, j[3]) for j in jobs[start:start + batch_size * 4]
                for photo in [open_photo(j[2])] if photo is not None]  # read when erased
        if not part:
            continue
        region, obj = erase_drops(model, [j[2] for j in part], [j[0] for j in part],
                                  [hot_region(j[1].mean_map) for j in part],
                                  [j[3] for j in part], batch_size=batch_size)
        for (_, c, _, _), dr, do in zip(part, region, obj):
            c.erase.append((float(dr), float(do)))
    for audit in out:
        for c in audit.clusters:
            c.set_erase([d[0] for d in c.erase], [d[1] for d in c.erase])
    return out
