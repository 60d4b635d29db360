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

import contextlib
import functools
import hashlib
import itertools
import json
import multiprocessing
import os
import sys
import time
import warnings
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from ..localize import Recipe, get_recipe
from .datasets import Record, label_problem
from .scoring import ImageResult, ScoreTask, init_worker, score_photo, summarize

__all__ = [
    "MP_CONTEXT",
    "RunLockedError",
    "RunMismatchError",
    "record_hash",
    "run_config",
    "run_localization",
    "start_workers",
    "weights_hash",
]

MP_CONTEXT = "spawn"
PER_IMAGE = "per_image.jsonl"
SUMMARY = "summary.json"
CONFIG = "config.json"
LOCK = ".lock"


class RunMismatchError(ValueError):
    """``--out`` holds a run made with other settings; resuming it would mix two runs."""


class RunLockedError(RuntimeError):
    """Another evaluation is writing into the same ``--out``."""


def weights_hash(module) -> str:
    """SHA-256 of a module's state dict (names, dtypes, shapes and values), hex."""
    h = hashlib.sha256()
    for name, t in sorted(module.state_dict().items()):
        t = t.detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def record_hash(record: Record) -> str:
    """A short hash of a record's annotations (its key, label and boxes)."""
    text = json.dumps([record.key, int(record.label), [list(map(float, b)) for b in record.boxes]])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def run_config(model, recipe: Recipe, method: str, seed: int) -> dict:
    """Everything that changes the records of a run, as written to ``config.json``."""
    from .. import __version__

    pre = getattr(model, "preprocessing", None)
    module = getattr(model, "module", model)
    return {"deepinside": __version__, "model": getattr(model, "name", type(module).__name__),
            "weights_sha256": weights_hash(module),
            "preprocessing": asdict(pre) if pre is not None else None,
            "method": method, "seed": seed, "recipe": asdict(recipe)}


def _differences(old: object, new: object, prefix: str = "") -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for k in sorted(set(old) | set(new), key=str):
            out += _differences(old.get(k), new.get(k), f"{prefix}{k}.")
        return out
    if old != new:
        def short(v):
            if prefix.endswith("sha256.") and isinstance(v, str):
                return f"{v[:12]}..."
            return json.dumps(v)

        return [f"{prefix.rstrip('.')} ({short(old)} there, {short(new)} now)"]
    return []


def _read_done(path: Path) -> list[ImageResult]:
    """The records of ``per_image.jsonl``; a torn last line (interrupted write) is cut off.

    Raises:
        RunMismatchError: a complete line in the file is not a record of this version.
    """
    if not path.exists():
        return []
    rows: list[ImageResult] = []
    good = 0
    with path.open("rb") as f:
        for n, raw in enumerate(f, start=1):
            if not raw.endswith(b"\n"):
                break  # the torn last line of an interrupted write
            try:
                rows.append(ImageResult.from_json(json.loads(raw)))
            except (ValueError, TypeError):
                raise RunMismatchError(f"{path}, line {n}, is not a record of this version of "
                                       "deepinside; use another --out or delete it") from None
            good += len(raw)
    if good != path.stat().st_size:
        with path.open("r+b") as f:
            f.truncate(good)
    return rows


def _check_config(out: Path, config: dict) -> None:
    config = json.loads(json.dumps(config))  # as it reads back (tuples become lists)
    cfg_path = out / CONFIG
    if cfg_path.exists():
        try:
            old = json.loads(cfg_path.read_text())
        except (OSError, ValueError):
            old = {"config.json": "unreadable"}
        diff = _differences(old, config)
        if diff:
            raise RunMismatchError(f"{out} holds a run with other settings: {'; '.join(diff[:4])}"
                                   f"{'; ...' if len(diff) > 4 else ''}; use another --out or "
                                   "delete it")
    else:
        cfg_path.write_text(json.dumps(config, indent=2) + "\n")


@contextlib.contextmanager
def _locked(out: Path) -> Iterator[None]:
    """Hold ``out/.lock`` for the run (released by the OS, even if the process is killed)."""
    try:
        import fcntl
    except ImportError:  # not on POSIX: no lock
        yield
        return
    with (out / LOCK).open("a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            f.seek(0)
            who = f.read().strip() or "?"
            raise RunLockedError(f"another evaluation (pid {who}) is writing to {out}; wait "
                                 "for it to finish or use another --out") from None
        f.seek(0)
        f.truncate()
        f.write(f"{os.getpid()}\n")
        f.flush()
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


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
        for _ in range(workers):  # one process is started per task while none is idle
            pool.submit(int)
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
    on_warning: Callable[[str, str], None] | None = None,
    pool: ProcessPoolExecutor | None = None,
) -> dict:
    """Evaluate localisation on ``records``, streaming to ``out/per_image.jsonl``; resumable.

    A run is defined by everything that changes its records (:func:`run_config`: the package
    version, the model's name, a hash of its weights, its preprocessing, the method, the recipe
    and the seed; and each record's annotations, :func:`record_hash`). Into an ``out`` that
    holds the same run, only the photos not yet done are computed; any difference is refused.
    One evaluation at a time writes into an ``out`` (a lock the OS releases when the process
    ends, however it ends).

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
        on_problem: called with ``(photo, reason)`` for a photo that is skipped: unreadable,
            a label that is not a class of the model, no box on the photo, a map that fails.
        on_warning: called with ``(photo, note)`` for a box clipped to the photo or ignored
            (default: a Python warning).
        pool: GrabCut workers already started by :func:`start_workers` (used instead of
            starting ``workers`` new ones; the caller shuts them down).

    Returns:
        The summary (also written to ``out/summary.json``), over the records of this call.

    Raises:
        RunMismatchError: ``out`` holds a run made with other settings or annotations.
        RunLockedError: another evaluation is writing into ``out``.
    """
    rec = get_recipe(recipe)
    method = method or rec.method
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with _locked(out):
        _check_config(out, run_config(model, rec, method, seed))
        return _run(model, records, out, rec, method, workers, batch_size, seed, show_progress,
                    on_problem, on_warning, pool)


def _run(model, records, out, rec, method, workers, batch_size, seed, show_progress,
         on_problem, on_warning, pool) -> dict:
    from tqdm import tqdm

    from ..images import iter_photo_batches
    from ..localize import recipe_maps
    from .metrics import fit_boxes

    lines_path = out / PER_IMAGE
    done = {r.key: r for r in _read_done(lines_path)}
    hashes = {r.key: record_hash(r) for r in records}
    changed = [k for k, h in hashes.items() if k in done and done[k].record_hash != h]
    if changed:
        raise RunMismatchError(
            f"{out} holds results for {len(changed)} of these photos with other annotations "
            f"(label or boxes; e.g. {changed[0]}); use another --out or delete it")
    rows = [done[k] for k in hashes if k in done]
    bar = tqdm(total=len(records), initial=len(rows), desc="localize", unit="img",
               disable=not show_progress, file=sys.stderr, dynamic_ncols=True)

    def skip(path: object, reason: str) -> None:
        bar.update(1)
        if on_problem is not None:
            on_problem(str(path), reason)

    def warn(path: object, note: str) -> None:
        if on_warning is not None:
            on_warning(str(path), note)
        else:
            warnings.warn(f"{path}: {note}", stacklevel=3)

    todo, seen = [], set()
    for r in records:
        if r.key in done:
            continue
        if r.key in seen:
            skip(r.path, f"a second record for {r.key}: only the first one is evaluated")
            continue
        seen.add(r.key)
        why = label_problem(r, model)
        if why:
            skip(r.path, why)
        else:
            todo.append(r)

    def maps_of(items, photos):
        """The batch's maps; if the batch fails, photo by photo, skipping those that fail."""
        try:
            maps, logits = recipe_maps(model, photos, [r.label for r in items], rec, method,
                                       batch_size=batch_size)
            return items, photos, maps, logits
        except Exception as e:  # noqa: BLE001 - one bad photo must not stop the run
            if len(items) == 1:
                skip(items[0].path, f"cannot compute its map: {e}")
                return [], [], [], None
        kept = [maps_of([r], [p]) for r, p in zip(items, photos)]
        kept = [k for k in kept if k[0]]
        if not kept:
            return [], [], [], None
        return ([k[0][0] for k in kept], [k[1][0] for k in kept], [k[2][0] for k in kept],
                torch.cat([k[3] for k in kept]))

    own_pool = pool is None and workers > 0 and rec.segment == "grabcut" and bool(todo)
    if own_pool:  # (a threshold segmentation takes about a millisecond: no workers for it)
        pool = start_workers(workers)
    threads = torch.get_num_threads()
    if pool is not None:  # the maps leave the workers their cores (idle OpenMP threads spin)
        torch.set_num_threads(max(1, min(threads, (os.cpu_count() or 1) - workers)))
    pending: deque[tuple[Future | Callable[[], ImageResult], Path]] = deque()
    max_pending = max(2 * batch_size, 4 * max(workers, 1))
    try:
        with lines_path.open("a", encoding="utf-8") as sink:

            def drain(limit: int) -> None:
                while len(pending) > limit:
                    item, path = pending.popleft()
                    try:
                        row = item.result() if isinstance(item, Future) else item()
                    except Exception as e:  # noqa: BLE001 - one photo must not stop the run
                        skip(path, f"cannot segment its map: {e}")
                        continue
                    sink.write(json.dumps(row.to_json()) + "\n")
                    sink.flush()
                    rows.append(row)
                    bar.update(1)

            # a small first batch gives the workers their first photos sooner
            first = min(batch_size, 4) if pool is not None else batch_size
            batches = itertools.chain(
                iter_photo_batches(todo[:first], first, skip, source=lambda r: r.path),
                iter_photo_batches(todo[first:], batch_size, skip, source=lambda r: r.path))
            for batch in batches:
                items, photos, boxes = [], [], []
                for r, photo in zip(batch.items, batch.photos):
                    kept, notes = fit_boxes(r.boxes, photo.width, photo.height)
                    for note in notes if kept else ():
                        warn(r.path, note)
                    if kept:
                        items.append(r)
                        photos.append(photo)
                        boxes.append(kept)
                    else:
                        skip(r.path, "none of its boxes lies on the photo")
                if not items:
                    continue
                t0 = time.perf_counter()
                ok, photos, maps, logits = maps_of(items, photos)
                boxes = [b for r, b in zip(items, boxes) if r in ok]
                if not ok:
                    continue
                per = (time.perf_counter() - t0) / len(ok)
                top5 = logits.topk(min(5, logits.shape[1]), dim=1).indices.tolist()
                for r, photo, m, t5, bx in zip(ok, photos, maps, top5, boxes):
                    task = ScoreTask(key=r.key, record_hash=hashes[r.key], photo=np.asarray(photo),
                                     map=m, boxes=bx, label=r.label, top5=t5, recipe=rec,
                                     seed=seed, map_seconds=per)
                    pending.append((pool.submit(score_photo, task) if pool is not None
                                    else functools.partial(score_photo, task), r.path))
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
