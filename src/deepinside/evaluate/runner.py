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
    "BACKENDS",
    "MP_CONTEXT",
    "RecordSink",
    "RunLockedError",
    "RunMismatchError",
    "failure_record",
    "fit_record_boxes",
    "map_tasks",
    "record_hash",
    "run_config",
    "run_localization",
    "start_workers",
    "weights_hash",
    "write_summary",
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


def failure_record(key: str, record_hash: str, reason: str) -> dict:
    """The line of ``per_image.jsonl`` for a photo that could not be evaluated, and why."""
    return {"key": key, "record_hash": record_hash, "error": reason}


def _read_done(path: Path, parse: Callable[[dict], object] = ImageResult.from_json
               ) -> list[ImageResult | dict]:
    """The lines of ``per_image.jsonl``: records (``parse`` of a line), or
    :func:`failure_record` dicts; a torn last line (interrupted write) is cut off.

    Raises:
        RunMismatchError: a complete line in the file is not a record of this version.
    """
    if not path.exists():
        return []
    rows: list[ImageResult | dict] = []
    good = 0
    with path.open("rb") as f:
        for n, raw in enumerate(f, start=1):
            if not raw.endswith(b"\n"):
                break  # the torn last line of an interrupted write
            try:
                d = json.loads(raw)
                if isinstance(d, dict) and "error" in d:
                    rows.append(failure_record(str(d["key"]), str(d["record_hash"]),
                                               str(d["error"])))
                else:
                    rows.append(parse(d))
            except (ValueError, TypeError, KeyError):
                raise RunMismatchError(f"{path}, line {n}, is not a record of this version of "
                                       "deepinside; use another --out or delete it") from None
            good += len(raw)
    if good != path.stat().st_size:
        with path.open("r+b") as f:
            f.truncate(good)
    return rows


def _key(row: ImageResult | dict) -> str:
    return row["key"] if isinstance(row, dict) else row.key


def _hash(row: ImageResult | dict) -> str:
    return row["record_hash"] if isinstance(row, dict) else row.record_hash


def _drop_failures(path: Path, rows: list[ImageResult | dict]) -> list[ImageResult | dict]:
    """Rewrite ``per_image.jsonl`` without its failure lines (atomically); the records kept."""
    kept = [r for r in rows if not isinstance(r, dict)]
    if len(kept) < len(rows):
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text("".join(json.dumps(r.to_json()) + "\n" for r in kept), encoding="utf-8")
        os.replace(tmp, path)
    return kept


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


BACKENDS = ("local", "ray")


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
    backend: str = "local",
    ray_address: str | None = None,
    retry_failed: bool = False,
) -> dict:
    """Evaluate localisation on ``records``, streaming to ``out/per_image.jsonl``; resumable.

    A run is defined by everything that changes its records (:func:`run_config`: the package
    version, the model's name, a hash of its weights, its preprocessing, the method, the recipe
    and the seed; and each record's annotations, :func:`record_hash`). Into an ``out`` that
    holds the same run, only the photos not yet done are computed; any difference is refused.
    One evaluation at a time writes into an ``out`` (a lock the OS releases when the process
    ends, however it ends); this process is the only writer, whatever the backend.

    A photo that cannot be evaluated (unreadable, a label the model does not have, no box on
    the photo, a map or a segmentation that fails) is a line ``{"key", "record_hash",
    "error"}`` (:func:`failure_record`), reported through ``on_problem`` too. Such a photo is
    done: a resumed run does not retry it (it reports it again, so a resumed run says what a
    run in one go says) unless ``retry_failed``. The summary is over the other lines, with
    ``n_failed`` for these.

    Args:
        model: a :class:`deepinside.Classifier`.
        records: the dataset (see :func:`deepinside.evaluate.datasets.read_dataset`).
        out: output folder; a run already there with the same settings is resumed.
        recipe: a recipe name or :class:`Recipe`.
        method: attribution method name (default: the recipe's).
        workers: ``local``: GrabCut worker processes (``spawn``ed); 0 runs everything in this
            process, as do recipes without GrabCut (their segmentation takes about a
            millisecond). With ``pool``, the number of processes it has. ``ray``: the model
            actors (segmentation runs in Ray tasks on the CPUs they leave).
        batch_size: photos per saliency pass.
        seed: GrabCut's random seed.
        show_progress: a tqdm bar (images/s) on stderr.
        on_problem: called with ``(photo, reason)`` for a photo that fails (see above) or a
            second record of the same key (skipped, no line).
        on_warning: called with ``(photo, note)`` for a box clipped to the photo or ignored
            (default: a Python warning).
        pool: GrabCut workers already started by :func:`start_workers` (used instead of
            starting ``workers`` new ones; the caller shuts them down). ``local`` only.
        backend: ``"local"`` (this process and its workers) or ``"ray"`` (a Ray Data
            pipeline, :mod:`.ray_backend`; needs ``pip install 'deepinside[ray]'``).
        ray_address: ``ray`` only: a cluster to join (``"auto"``, ``"ray://host:10001"``);
            default: the Ray already initialised in this process, else a local one.
        retry_failed: evaluate again the photos that failed in an earlier run into ``out``.

    Returns:
        The summary (also written to ``out/summary.json``), over the records of this call.

    Raises:
        RunMismatchError: ``out`` holds a run made with other settings or annotations.
        RunLockedError: another evaluation is writing into ``out``.
        ValueError: an unknown backend. ImportError: ``ray`` without Ray installed.
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if backend == "ray":
        from .ray_backend import require_ray

        require_ray()
    rec = get_recipe(recipe)
    method = method or rec.method
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with _locked(out):
        _check_config(out, run_config(model, rec, method, seed))
        return _run(model, records, out, rec, method, workers, batch_size, seed, show_progress,
                    on_problem, on_warning, pool, backend, ray_address, retry_failed)


class RecordSink:
    """The one writer of ``per_image.jsonl``: a line per photo, flushed at once, counted on the
    progress bar; failures also go to ``on_problem``. Backends hand it what their photos give.
    """

    def __init__(self, file, bar, paths: dict[str, object],
                 on_problem: Callable[[str, str], None] | None) -> None:
        self.file, self.bar, self.paths, self.on_problem = file, bar, paths, on_problem
        self.results: list[ImageResult] = []
        self.failures: list[dict] = []

    def result(self, row: ImageResult) -> None:
        """Write a photo's record."""
        self._write(row.to_json())
        self.results.append(row)

    def failure(self, key: str, record_hash: str, reason: str) -> None:
        """Write a photo's failure line and report it."""
        line = failure_record(key, record_hash, reason)
        self._write(line)
        self.failures.append(line)
        self.report(key, reason)

    def report(self, key: str, reason: str) -> None:
        """Tell ``on_problem`` about a photo (by its path where known)."""
        if self.on_problem is not None:
            self.on_problem(str(self.paths.get(key, key)), reason)

    def _write(self, line: dict) -> None:
        self.file.write(json.dumps(line) + "\n")
        self.file.flush()
        self.bar.update(1)


def fit_record_boxes(record: Record, photo) -> tuple[list, list[str], str]:
    """``(boxes, notes, reason)``: a record's boxes clipped to its photo, the notes on them, and
    why the photo cannot be scored (``""`` if it can)."""
    from .metrics import fit_boxes

    kept, notes = fit_boxes(record.boxes, photo.width, photo.height)
    if not kept:
        return [], [], "none of its boxes lies on the photo"
    return kept, list(notes), ""


def map_tasks(model, items: Sequence[Record], photos: Sequence, boxes: Sequence[list],
              rec: Recipe, method: str, hashes: dict[str, str], seed: int, batch_size: int,
              fail: Callable[[Record, str], None]) -> list[tuple[Record, ScoreTask]]:
    """The maps of a batch of photos, as :class:`ScoreTask`s; if the batch fails, photo by
    photo, and ``fail(record, reason)`` for each photo whose map fails (what both backends
    run on the model's device)."""
    from ..localize import recipe_maps

    def maps_of(items, photos):
        try:
            maps, logits = recipe_maps(model, photos, [r.label for r in items], rec, method,
                                       batch_size=batch_size)
            return list(items), list(photos), maps, logits
        except Exception as e:  # noqa: BLE001 - one bad photo must not stop the run
            if len(items) == 1:
                fail(items[0], f"cannot compute its map: {e}")
                return [], [], [], None
        kept = [maps_of([r], [p]) for r, p in zip(items, photos)]
        kept = [k for k in kept if k[0]]
        if not kept:
            return [], [], [], None
        return ([k[0][0] for k in kept], [k[1][0] for k in kept], [k[2][0] for k in kept],
                torch.cat([k[3] for k in kept]))

    t0 = time.perf_counter()
    ok, photos_ok, maps, logits = maps_of(items, photos)
    if not ok:
        return []
    box_of = {id(r): b for r, b in zip(items, boxes)}
    per = (time.perf_counter() - t0) / len(ok)
    top5 = logits.topk(min(5, logits.shape[1]), dim=1).indices.tolist()
    return [(r, ScoreTask(key=r.key, record_hash=hashes[r.key], photo=np.asarray(photo), map=m,
                          boxes=box_of[id(r)], label=r.label, top5=t5, recipe=rec, seed=seed,
                          map_seconds=per))
            for r, photo, m, t5 in zip(ok, photos_ok, maps, top5)]


def _run(model, records, out, rec, method, workers, batch_size, seed, show_progress,
         on_problem, on_warning, pool, backend, ray_address, retry_failed) -> dict:
    from tqdm import tqdm

    lines_path = out / PER_IMAGE
    old = _read_done(lines_path)
    if retry_failed:
        old = _drop_failures(lines_path, old)
    done = {_key(r): r for r in old}
    hashes = {r.key: record_hash(r) for r in records}
    changed = [k for k, h in hashes.items() if k in done and _hash(done[k]) != h]
    if changed:
        raise RunMismatchError(
            f"{out} holds results for {len(changed)} of these photos with other annotations "
            f"(label or boxes; e.g. {changed[0]}); use another --out or delete it")
    bar = tqdm(total=len(records), initial=sum(k in done for k in hashes), desc="localize",
               unit="img", disable=not show_progress, file=sys.stderr, dynamic_ncols=True)

    def warn(path: object, note: str) -> None:
        if on_warning is not None:
            on_warning(str(path), note)
        else:
            warnings.warn(f"{path}: {note}", stacklevel=3)

    paths = {r.key: r.path for r in records}
    try:
        with lines_path.open("a", encoding="utf-8") as f:
            sink = RecordSink(f, bar, paths, on_problem)
            todo, seen = [], set()
            for r in records:
                if r.key in done:
                    if isinstance(done[r.key], dict):  # failed before: said again, not retried
                        sink.report(r.key, done[r.key]["error"])
                    continue
                if r.key in seen:
                    bar.update(1)
                    if on_problem is not None:
                        on_problem(str(r.path), f"a second record for {r.key}: only the first "
                                                "one is evaluated")
                    continue
                seen.add(r.key)
                why = label_problem(r, model)
                if why:
                    sink.failure(r.key, hashes[r.key], why)
                else:
                    todo.append(r)
            if todo and backend == "ray":
                from .ray_backend import run_ray

                run_ray(model, todo, sink, rec, method, hashes, workers=workers,
                        batch_size=batch_size, seed=seed, warn=warn, address=ray_address)
            elif todo:
                _run_local(model, todo, sink, rec, method, hashes, workers, batch_size, seed,
                           warn, pool)
    finally:
        bar.close()
    rows = [done[k] for k in hashes if k in done] + sink.results + sink.failures
    return write_summary(out, rows)


def write_summary(out: Path, rows: Sequence[ImageResult | dict]) -> dict:
    """``summary.json`` of a run's lines (records and failures), and its content."""
    results = [r for r in rows if not isinstance(r, dict)]
    summary = summarize(results)
    summary = {"n_images": summary.pop("n_images"), "n_failed": len(rows) - len(results),
               **summary}
    (out / SUMMARY).write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def _run_local(model, todo, sink, rec, method, hashes, workers, batch_size, seed, warn,
               pool) -> None:
    from ..images import iter_photo_batches

    by_path = {str(r.path): r for r in todo}

    def fail(r: Record, reason: str) -> None:
        sink.failure(r.key, hashes[r.key], reason)

    def unreadable(src: object, reason: str) -> None:
        fail(by_path[str(src)], reason)

    own_pool = pool is None and workers > 0 and rec.segment == "grabcut"
    if own_pool:  # (a threshold segmentation takes about a millisecond: no workers for it)
        pool = start_workers(workers)
    threads = torch.get_num_threads()
    if pool is not None:  # the maps leave the workers their cores (idle OpenMP threads spin)
        torch.set_num_threads(max(1, min(threads, (os.cpu_count() or 1) - workers)))
    pending: deque[tuple[Future | Callable[[], ImageResult], Record]] = deque()
    max_pending = max(2 * batch_size, 4 * max(workers, 1))
    try:

        def drain(limit: int) -> None:
            while len(pending) > limit:
                item, r = pending.popleft()
                try:
                    row = item.result() if isinstance(item, Future) else item()
                except Exception as e:  # noqa: BLE001 - one photo must not stop the run
                    fail(r, f"cannot segment its map: {e}")
                    continue
                sink.result(row)

        # a small first batch gives the workers their first photos sooner
        first = min(batch_size, 4) if pool is not None else batch_size
        batches = itertools.chain(
            iter_photo_batches(todo[:first], first, unreadable, source=lambda r: r.path),
            iter_photo_batches(todo[first:], batch_size, unreadable, source=lambda r: r.path))
        for batch in batches:
            items, photos, boxes = [], [], []
            for r, photo in zip(batch.items, batch.photos):
                kept, notes, why = fit_record_boxes(r, photo)
                if why:
                    fail(r, why)
                    continue
                for note in notes:
                    warn(r.path, note)
                items.append(r)
                photos.append(photo)
                boxes.append(kept)
            if not items:
                continue
            for r, task in map_tasks(model, items, photos, boxes, rec, method, hashes, seed,
                                     batch_size, fail):
                pending.append((pool.submit(score_photo, task) if pool is not None
                                else functools.partial(score_photo, task), r))
            drain(max_pending)
        drain(0)
    finally:
        torch.set_num_threads(threads)
        if own_pool:
            pool.shutdown(wait=True, cancel_futures=True)
