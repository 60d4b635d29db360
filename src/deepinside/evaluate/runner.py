"""The streaming, resumable evaluation of weakly supervised localisation.

For each photo of a dataset: the saliency map for its true class (batched on the model's
device, in this process), then GrabCut / thresholding and the metrics of one photo
(:func:`.scoring.score_photo`) in worker processes. One line per photo goes to
``per_image.jsonl`` as soon as it is done, so memory stays flat and an interrupted run resumes
where it stopped; ``summary.json`` is computed from those lines alone, so a resumed run and a
run in one go give the same summary.

Worker processes are started with the ``spawn`` method (a ``fork`` of a process whose torch /
OpenMP threads have already run can deadlock on a lock the threads held at the fork). They
import only :mod:`.scoring` (NumPy and OpenCV), and they are started before the first map is
computed, so their start-up overlaps the model's work instead of adding to it; while they run,
the maps use the cores the workers leave (``torch.set_num_threads``, restored at the end), since
idle OpenMP threads of torch spin and slow GrabCut down. Each worker exits when the evaluating
process dies.
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
import torch

from ..localize import Recipe, get_recipe
from .datasets import Record
from .scoring import ImageResult, ScoreTask, init_worker, score_photo, summarize

__all__ = ["MP_CONTEXT", "RunMismatchError", "run_localization", "start_workers"]

MP_CONTEXT = "spawn"
PER_IMAGE = "per_image.jsonl"
SUMMARY = "summary.json"
CONFIG = "config.json"


class RunMismatchError(ValueError):
    """``--out`` holds a run made with other settings; resuming it would mix two runs."""


def _read_done(path: Path) -> list[ImageResult]:
    """Complete lines of ``per_image.jsonl``; a torn last line (interrupted write) is cut off."""
    if not path.exists():
        return []
    rows: list[ImageResult] = []
    good = 0
    with path.open("rb") as f:
        for raw in f:
            if not raw.endswith(b"\n"):
                break
            try:
                rows.append(ImageResult.from_json(json.loads(raw)))
            except (json.JSONDecodeError, TypeError):
                break
            good += len(raw)
    if good != path.stat().st_size:
        with path.open("r+b") as f:
            f.truncate(good)
    return rows


def _check_config(out: Path, config: dict) -> None:
    cfg_path = out / CONFIG
    if cfg_path.exists():
        old = json.loads(cfg_path.read_text())
        if old != config:
            raise RunMismatchError(f"{out} holds a run with other settings ({cfg_path}); "
                                   "use another --out or delete it")
    else:
        cfg_path.write_text(json.dumps(config, indent=2) + "\n")


_ONE_THREAD = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def start_workers(workers: int) -> ProcessPoolExecutor:
    """``workers`` spawned GrabCut processes, started now, without waiting for them.

    Start them before the model loads (as ``deepinside evaluate localization`` does) and their
    imports overlap it; pass the pool to :func:`run_localization`. Each worker is one thread
    (its numerical libraries are told so through the environment it starts with; the parent's
    environment is restored at once) and exits when this process dies.
    """
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context(MP_CONTEXT),
                               initializer=init_worker, initargs=(os.getpid(),))
    saved = {k: os.environ.get(k) for k in _ONE_THREAD}
    os.environ.update(dict.fromkeys(_ONE_THREAD, "1"))
    try:
        pool.submit(int)  # starts the processes now, without waiting for them
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return pool


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
    pool: ProcessPoolExecutor | None = None,
) -> dict:
    """Evaluate localisation on ``records``, streaming to ``out/per_image.jsonl``; resumable.

    Args:
        model: a :class:`deepinside.Classifier`.
        records: the dataset (see :func:`deepinside.evaluate.datasets.read_dataset`).
        out: output folder; a run already there with the same settings is resumed.
        recipe: a recipe name or :class:`Recipe`.
        method: attribution method name (default: the recipe's).
        workers: GrabCut worker processes (``spawn``ed); 0 runs everything in this process, as
            do recipes without GrabCut (their segmentation takes about a millisecond). With
            ``pool``, the number of processes it has.
        batch_size: photos per saliency pass.
        seed: GrabCut's random seed.
        show_progress: a tqdm bar (images/s) on stderr.
        on_problem: called with ``(photo, reason)`` for an unreadable photo (it is skipped).
        pool: GrabCut workers already started by :func:`start_workers` (used instead of
            starting ``workers`` new ones; the caller shuts them down).

    Returns:
        The summary (also written to ``out/summary.json``), over the records of this call.

    Raises:
        RunMismatchError: ``out`` holds a run made with other settings.
    """
    from tqdm import tqdm

    from ..images import iter_photo_batches
    from ..localize import recipe_maps

    rec = get_recipe(recipe)
    method = method or rec.method
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    _check_config(out, {"model": getattr(model, "name", "custom"), "method": method,
                        "seed": seed, "recipe": asdict(rec)})
    lines_path = out / PER_IMAGE
    done = {r.key: r for r in _read_done(lines_path)}
    wanted = {r.key for r in records}
    todo = [r for r in records if r.key not in done]
    rows = [done[k] for k in wanted if k in done]
    own_pool = pool is None and workers > 0 and rec.segment == "grabcut" and todo
    if own_pool:  # (a threshold segmentation takes about a millisecond: no workers for it)
        pool = start_workers(workers)
    threads = torch.get_num_threads()
    if pool is not None:  # the maps leave the workers their cores (idle OpenMP threads spin)
        torch.set_num_threads(max(1, min(threads, (os.cpu_count() or 1) - workers)))
    pending: deque[Future | ImageResult] = deque()
    max_pending = max(2 * batch_size, 4 * max(workers, 1))
    bar = tqdm(total=len(records), initial=len(rows), desc="localize", unit="img",
               disable=not show_progress, file=sys.stderr, dynamic_ncols=True)

    def on_failure(path: object, reason: str) -> None:
        if on_problem is not None:
            on_problem(str(path), reason)

    try:
        with lines_path.open("a", encoding="utf-8") as sink:

            def drain(limit: int) -> None:
                while len(pending) > limit:
                    item = pending.popleft()
                    row = item.result() if isinstance(item, Future) else item
                    sink.write(json.dumps(row.to_json()) + "\n")
                    sink.flush()
                    rows.append(row)
                    bar.update(1)

            for batch in iter_photo_batches(todo, batch_size, on_failure,
                                            source=lambda r: r.path):
                bar.update(batch.failed)
                if not batch.items:
                    continue
                t0 = time.perf_counter()
                maps, logits = recipe_maps(model, batch.photos, [r.label for r in batch.items],
                                           rec, method, batch_size=batch_size)
                per = (time.perf_counter() - t0) / len(batch.items)
                top5 = logits.topk(min(5, logits.shape[1]), dim=1).indices.tolist()
                for r, photo, m, t5 in zip(batch.items, batch.photos, maps, top5):
                    task = ScoreTask(key=r.key, photo=np.asarray(photo), map=m,
                                     boxes=[tuple(b) for b in r.boxes], label=r.label, top5=t5,
                                     recipe=rec, seed=seed, map_seconds=per)
                    pending.append(pool.submit(score_photo, task) if pool is not None
                                   else score_photo(task))
                drain(max_pending)
            drain(0)
    finally:
        bar.close()
        torch.set_num_threads(threads)
        if own_pool:
            pool.shutdown(wait=True, cancel_futures=True)
    summary = summarize(rows)
    (out / SUMMARY).write_text(json.dumps(summary, indent=2) + "\n")
    return summary
