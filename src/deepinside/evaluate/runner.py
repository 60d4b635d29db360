"""The streaming, resumable evaluation of weakly supervised localisation.

For each photo of a dataset: the saliency map for its true class (batched on the model's
device, in this process), then GrabCut / thresholding and the metrics of one photo in worker
processes. One line per photo goes to ``per_image.jsonl`` as soon as it is done, so memory stays
flat and an interrupted run resumes where it stopped; ``summary.json`` is computed from those
lines alone, so a resumed run and a run in one go give the same summary.

Only the true class's box can score in any of the metrics (a right box for a wrong class is a
miss), so one map and one box per photo give the GT-known, top-1 and ILSVRC top-5 numbers exactly:
top-1 hit = (top-1 class is the label) and (box hit); top-5 error = not ((label in the top 5)
and (box hit)).

Worker processes are started with the ``spawn`` method: a ``fork`` of a process whose torch /
OpenMP threads have already run can deadlock on a lock the threads held at the fork.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import sys
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import asdict
from pathlib import Path

import numpy as np

from ..localize import Recipe, get_recipe, segment_map
from . import metrics as M
from .datasets import Record

__all__ = ["MP_CONTEXT", "RunMismatchError", "format_table", "run_localization", "summarize"]

MP_CONTEXT = "spawn"
PER_IMAGE = "per_image.jsonl"
SUMMARY = "summary.json"
CONFIG = "config.json"

# Set to the evaluating process's pid before workers start. A spawned worker imports this module
# afresh and sees None; a forked one would inherit the pid and refuse to run (see _check_worker).
_PARENT_PID: int | None = None


class RunMismatchError(ValueError):
    """``--out`` holds a run made with other settings; resuming it would mix two runs."""


def _init_worker() -> None:
    import cv2

    cv2.setNumThreads(1)


def _check_worker() -> None:
    if _PARENT_PID is not None and os.getpid() != _PARENT_PID:
        raise RuntimeError("localisation worker was forked from the evaluating process; "
                           "use the 'spawn' start method (fork after torch threads can hang)")


def localize_one(task: dict) -> dict:
    """Segment one photo's map and score it (runs in a worker process; numpy/OpenCV only).

    Args:
        task: ``key``, ``photo`` uint8 (H, W, 3), ``map`` float32 (H, W), ``boxes``, ``label``,
            ``top5`` (class indices, best first), ``recipe`` (dict of :class:`Recipe` fields),
            ``seed``, ``map_seconds``.

    Returns:
        The JSON-ready line of ``per_image.jsonl``.
    """
    _check_worker()
    t0 = time.perf_counter()
    photo, m, boxes = task["photo"], task["map"], [tuple(b) for b in task["boxes"]]
    recipe = Recipe(**task["recipe"])
    _, box, note = segment_map(photo, m, recipe, task["seed"])
    seg = time.perf_counter() - t0
    h, w = m.shape
    label, top5 = int(task["label"]), [int(c) for c in task["top5"]]
    iou = M.max_iou(box, boxes)
    hit = iou >= M.IOU_THRESHOLD
    preds = [(c, box if c == label else None) for c in top5]
    point = M.map_peak(m)
    return {
        "key": task["key"], "label": label, "top5": top5, "width": w, "height": h,
        "gt_boxes": [list(b) for b in boxes], "box": list(box), "iou": round(iou, 6),
        "hit": bool(hit), "top1_hit": M.top1_loc_hit(preds, label, boxes),
        "top5_err": M.top5_loc_error(preds, label, boxes),
        "point": list(point), "pointing_hit": M.pointing_hit(point, boxes),
        "energy_in_box": round(M.energy_in_boxes(m, boxes), 6), "note": note,
        "seconds": {"map": round(task["map_seconds"], 6), "segment": round(seg, 6)},
    }


def _mean(xs: Sequence[float]) -> float:
    return float(np.mean(xs)) if len(xs) else float("nan")


def _loc_scores(rows: Sequence[dict], boxes: Sequence[Sequence[float]]) -> dict:
    hits = [M.gt_known_hit(b, r["gt_boxes"]) for r, b in zip(rows, boxes)]
    top1 = [h and r["top5"][0] == r["label"] for r, h in zip(rows, hits)]
    top5 = [h and r["label"] in r["top5"] for r, h in zip(rows, hits)]
    return {"gt_known_loc_acc": _mean(hits), "top1_loc_acc": _mean(top1),
            "top5_loc_err": 1.0 - _mean(top5)}


def summarize(rows: Sequence[dict]) -> dict:
    """The summary of per-image lines (the content of ``summary.json``).

    Keys: ``n_images``, ``gt_known_loc_acc``, ``top1_loc_acc``, ``top5_loc_err``,
    ``pointing_game``, ``energy_in_box``, ``top1_cls_acc``, ``top5_cls_acc``, ``mean_box_area``
    and ``mean_gt_area`` (shares of the photo; the largest true box), ``seconds_per_image``
    (``map``, ``segment``) and ``baselines``: ``whole_image`` and ``centred_box`` (a box of the
    mean relative size of the largest true box, centred) with the three localisation scores, and
    ``centre_point`` with its ``pointing_game``.
    """
    rows = sorted(rows, key=lambda r: r["key"])
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


def format_table(summary: dict, name: str = "recipe") -> str:
    """A plain-text table of a summary and its baselines."""
    b = summary["baselines"]
    lines = [
        f"{'':28s} {'GT-known loc':>12s} {'top-1 loc':>10s} {'top-5 loc err':>14s} "
        f"{'pointing':>9s} {'energy':>7s}",
        f"{name:28s} {summary['gt_known_loc_acc']:12.3f} {summary['top1_loc_acc']:10.3f} "
        f"{summary['top5_loc_err']:14.3f} {summary['pointing_game']:9.3f} "
        f"{summary['energy_in_box']:7.3f}",
    ]
    for key, label in (("whole_image", "whole-image box"),
                       ("centred_box", "centred mean-size box")):
        s = b[key]
        lines.append(f"{label:28s} {s['gt_known_loc_acc']:12.3f} {s['top1_loc_acc']:10.3f} "
                     f"{s['top5_loc_err']:14.3f} {'':>9s} {'':>7s}")
    lines.append(f"{'centre point':28s} {'':>12s} {'':>10s} {'':>14s} "
                 f"{b['centre_point']['pointing_game']:9.3f} {'':>7s}")
    lines.append(f"n_images={summary['n_images']}  classification top-1 "
                 f"{summary['top1_cls_acc']:.3f}, top-5 {summary['top5_cls_acc']:.3f}")
    return "\n".join(lines)


def _read_done(path: Path) -> list[dict]:
    """Complete lines of ``per_image.jsonl``; a torn last line (interrupted write) is cut off."""
    if not path.exists():
        return []
    rows: list[dict] = []
    good = 0
    with path.open("rb") as f:
        for raw in f:
            if not raw.endswith(b"\n"):
                break
            try:
                rows.append(json.loads(raw))
            except json.JSONDecodeError:
                break
            good += len(raw)
    if good != path.stat().st_size:
        with path.open("r+b") as f:
            f.truncate(good)
    return rows


def run_localization(
    model,
    records: Sequence[Record],
    out: str | Path,
    *,
    recipe: str | Recipe = "default",
    method: str | None = None,
    workers: int = 1,
    batch_size: int = 16,
    seed: int = 0,
    show_progress: bool = True,
    on_problem: Callable[[str, str], None] | None = None,
) -> dict:
    """Evaluate localisation on ``records``, streaming to ``out/per_image.jsonl``; resumable.

    Args:
        model: a :class:`deepinside.Classifier`.
        records: the dataset (see :func:`deepinside.evaluate.datasets.read_dataset`).
        out: output folder; a run already there with the same settings is resumed.
        recipe: a recipe name or :class:`Recipe`.
        method: attribution method name (default: the recipe's).
        workers: GrabCut worker processes (``spawn``ed); 0 runs everything in this process, as
            do recipes without GrabCut (their segmentation takes about a millisecond).
        batch_size: photos per saliency pass.
        seed: GrabCut's random seed.
        show_progress: a tqdm bar (images/s) on stderr.
        on_problem: called with ``(photo, reason)`` for an unreadable photo (it is skipped).

    Returns:
        The summary (also written to ``out/summary.json``), over the records of this call.

    Raises:
        RunMismatchError: ``out`` holds a run made with other settings.
    """
    from tqdm import tqdm

    from ..images import ImageLoadError, load_image
    from ..localize import recipe_maps

    global _PARENT_PID
    rec = get_recipe(recipe)
    method = method or rec.method
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    config = {"model": getattr(model, "name", "custom"), "method": method, "seed": seed,
              "recipe": asdict(rec)}
    cfg_path = out / CONFIG
    if cfg_path.exists():
        old = json.loads(cfg_path.read_text())
        if old != config:
            raise RunMismatchError(f"{out} holds a run with other settings ({cfg_path}); "
                                   "use another --out or delete it")
    else:
        cfg_path.write_text(json.dumps(config, indent=2) + "\n")
    lines_path = out / PER_IMAGE
    done = {r["key"]: r for r in _read_done(lines_path)}
    wanted = {r.key for r in records}
    todo = [r for r in records if r.key not in done]
    rows = [done[k] for k in wanted if k in done]
    recipe_dict = asdict(rec)
    _PARENT_PID = os.getpid()
    use_pool = workers > 0 and rec.segment == "grabcut"  # a threshold takes about a millisecond
    pool = (ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context(MP_CONTEXT),
                                initializer=_init_worker) if use_pool else None)
    pending: deque[Future | dict] = deque()
    max_pending = max(2 * batch_size, 4 * max(workers, 1))
    bar = tqdm(total=len(records), initial=len(rows), desc="localize", unit="img",
               disable=not show_progress, file=sys.stderr, dynamic_ncols=True)
    try:
        with lines_path.open("a", encoding="utf-8") as sink:

            def drain(limit: int) -> None:
                while len(pending) > limit:
                    item = pending.popleft()
                    row = item.result() if isinstance(item, Future) else item
                    sink.write(json.dumps(row) + "\n")
                    sink.flush()
                    rows.append(row)
                    bar.update(1)

            for start in range(0, len(todo), batch_size):
                batch, photos = [], []
                for r in todo[start:start + batch_size]:
                    try:
                        photos.append(load_image(r.path))
                        batch.append(r)
                    except ImageLoadError as e:
                        if on_problem is not None:
                            on_problem(str(r.path), str(e).removeprefix(f"{r.path}: "))
                        bar.update(1)
                if not batch:
                    continue
                t0 = time.perf_counter()
                maps, logits = recipe_maps(model, photos, [r.label for r in batch], rec,
                                           method, batch_size=batch_size)
                per = (time.perf_counter() - t0) / len(batch)
                top5 = logits.topk(min(5, logits.shape[1]), dim=1).indices.tolist()
                for r, photo, m, t5 in zip(batch, photos, maps, top5):
                    task = {"key": r.key, "photo": np.asarray(photo), "map": m,
                            "boxes": [list(b) for b in r.boxes], "label": r.label, "top5": t5,
                            "recipe": recipe_dict, "seed": seed, "map_seconds": per}
                    pending.append(pool.submit(localize_one, task) if pool else
                                   localize_one(task))
                drain(max_pending)
            drain(0)
    finally:
        bar.close()
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        _PARENT_PID = None
    summary = summarize(rows)
    (out / SUMMARY).write_text(json.dumps(summary, indent=2) + "\n")
    return summary
