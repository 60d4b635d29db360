"""The streaming, resumable evaluation of weakly supervised localisation: the driver.

For each photo of a dataset: the saliency map for its true class, then GrabCut / thresholding
and the metrics of one photo (:func:`.scoring.score_photo`), run by a backend (:mod:`.backend`:
``local``, this process and its GrabCut workers, :mod:`.local_backend`; or ``ray``,
:mod:`.ray_backend`). One line per photo goes to ``per_image.jsonl`` as soon as it is done,
through the driver's one writer, so memory stays flat and an interrupted run resumes where it
stopped; ``summary.json`` is computed from those lines alone, so a resumed run and a run in one
go give the same summary (the run directory: :mod:`.rundir`).
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from ..localize import Recipe, get_recipe
from . import local_backend, ray_backend  # noqa: F401 - each registers its backend
from .backend import BACKENDS, Backend, RunSpec, get_backend
from .datasets import Record, label_problem
from .local_backend import MP_CONTEXT, start_workers
from .ray_connect import DEFAULT_TIMEOUT
from .rundir import (
    PER_IMAGE,
    RecordSink,
    RunLockedError,
    RunMismatchError,
    check_config,
    drop_failures,
    failure_record,
    locked,
    read_done,
    record_hash,
    row_hash,
    row_key,
    run_config,
    weights_hash,
    write_summary,
)
from .stages import fit_record_boxes, map_tasks

__all__ = [
    "BACKENDS",
    "MP_CONTEXT",
    "RecordSink",
    "RunLockedError",
    "RunMismatchError",
    "failure_record",
    "fit_record_boxes",
    "get_backend",
    "map_tasks",
    "record_hash",
    "run_config",
    "run_localization",
    "start_workers",
    "stream_run",
    "weights_hash",
    "write_summary",
]


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
    ray_timeout: float = DEFAULT_TIMEOUT,
    actor_cpus: float | None = None,
    actor_gpus: float | None = None,
) -> dict:
    """Evaluate localisation on ``records``, streaming to ``out/per_image.jsonl``; resumable.

    A run is defined by everything that changes its records (:func:`.rundir.run_config`: the package
    version, the model's name, a hash of its weights, its preprocessing, the method, the recipe
    and the seed; and each record's annotations, :func:`.rundir.record_hash`). Into an ``out`` that
    holds the same run, only the photos not yet done are computed; any difference is refused.
    One evaluation at a time writes into an ``out`` (a lock the OS releases when the process
    ends, however it ends); this process is the only writer, whatever the backend.

    A photo that cannot be evaluated (unreadable, a label the model does not have, no box on
    the photo, a map or a segmentation that fails) is a line ``{"key", "record_hash",
    "error"}`` (:func:`.rundir.failure_record`), reported through ``on_problem`` too. Such a
    photo is done: a resumed run does not retry it (it reports it again, so a resumed run says
    what a run in one go says) unless ``retry_failed``. The summary is over the other lines, with
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
        pool: GrabCut workers already started by :func:`.local_backend.start_workers` (used
            instead of starting ``workers`` new ones; the caller shuts them down). ``local``
            only.
        backend: ``"local"`` (this process and its workers) or ``"ray"`` (a Ray Data
            pipeline, :mod:`.ray_backend`; needs ``pip install 'deepinside[ray]'``), or another.
        ray_address: ``ray`` only: a cluster to join (``HOST:PORT``, ``"auto"``,
            ``"ray://host:10001"``); default: the Ray already initialised in this process,
            else ``RAY_ADDRESS``, else a new local one (:mod:`.ray_connect`).
        retry_failed: evaluate again the photos that failed in an earlier run into ``out``.
        ray_timeout: ``ray`` only: seconds to reach and join the cluster before a
            :class:`.ray_connect.RayConnectError` (one line: the address and the likely cause).
        actor_cpus, actor_gpus: ``ray`` only: what each model actor asks for (see
            :class:`.backend.RunSpec`).

    Returns:
        The summary (also written to ``out/summary.json``), over the records of this call.

    Raises:
        RunMismatchError: ``out`` holds a run made with other settings or annotations.
        RunLockedError: another evaluation is writing into ``out``.
        ValueError: an unknown backend. ImportError: ``ray`` without Ray installed.
        RayConnectError: ``ray``: the cluster cannot be joined (the lock is released).
    """
    where = get_backend(backend)
    where.check()
    rec = get_recipe(recipe)
    method = method or rec.method
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with locked(out):
        check_config(out, run_config(model, rec, method, seed))
        spec = RunSpec(model, rec, method, {r.key: record_hash(r) for r in records}, seed=seed,
                       batch_size=batch_size, workers=workers, pool=pool, address=ray_address,
                       ray_timeout=ray_timeout, actor_cpus=actor_cpus, actor_gpus=actor_gpus)
        return _run(where, spec, records, out, show_progress, on_problem, on_warning,
                    retry_failed)


def _run(where: Backend, spec: RunSpec, records: Sequence[Record], out: Path,
         show_progress: bool, on_problem: Callable[[str, str], None] | None,
         on_warning: Callable[[str, str], None] | None, retry_failed: bool) -> dict:
    def warn(path: object, note: str) -> None:
        if on_warning is not None:
            on_warning(str(path), note)
        else:
            warnings.warn(f"{path}: {note}", stacklevel=3)

    spec.warn = warn
    rows = stream_run(spec.model, records, out, spec.hashes,
                      lambda todo, sink: where.localize(spec, todo, sink), desc="localize",
                      show_progress=show_progress, on_problem=on_problem,
                      retry_failed=retry_failed)
    return write_summary(out, rows)


def stream_run(model, records: Sequence[Record], out: Path, hashes: dict[str, str],
               run: Callable[[list[Record], RecordSink], None], *, desc: str,
               parse: Callable[[dict], object] | None = None, show_progress: bool = True,
               on_problem: Callable[[str, str], None] | None = None,
               retry_failed: bool = False) -> list:
    """The streaming part of a run into ``out`` (locked and its config checked by the caller):
    the lines already in ``out/per_image.jsonl`` (:func:`.rundir.read_done` with ``parse``),
    then ``run(todo, sink)`` on the records still to do, every new line through one
    :class:`.rundir.RecordSink` (a progress bar ``desc`` counts them).

    Returns:
        The lines of ``records`` (records and failure dicts): those read, then the new ones.

    Raises:
        RunMismatchError: a line there has other annotations than its record now.
    """
    from tqdm import tqdm

    lines_path = out / PER_IMAGE
    old = read_done(lines_path) if parse is None else read_done(lines_path, parse)
    if retry_failed:
        old = drop_failures(lines_path, old)
    done = {row_key(r): r for r in old}
    changed = [k for k, h in hashes.items() if k in done and row_hash(done[k]) != h]
    if changed:
        raise RunMismatchError(
            f"{out} holds results for {len(changed)} of these photos with other annotations "
            f"(label or boxes; e.g. {changed[0]}); use another --out or delete it")
    bar = tqdm(total=len(records), initial=sum(k in done for k in hashes), desc=desc,
               unit="img", disable=not show_progress, file=sys.stderr, dynamic_ncols=True)
    try:
        with lines_path.open("a", encoding="utf-8") as f:
            sink = RecordSink(f, bar, {r.key: r.path for r in records}, on_problem)
            todo = _todo(model, records, hashes, done, sink, on_problem)
            if todo:
                run(todo, sink)
    finally:
        bar.close()
    return [done[k] for k in hashes if k in done] + sink.results + sink.failures


def _todo(model, records: Sequence[Record], hashes: dict[str, str], done: dict,
          sink: RecordSink, on_problem: Callable[[str, str], None] | None) -> list[Record]:
    """The records still to evaluate: not done, the first of their key, a label the model has
    (the others are reported, or written as failures)."""
    todo, seen = [], set()
    for r in records:
        if r.key in done:
            if isinstance(done[r.key], dict):  # failed before: said again, not retried
                sink.report(r.key, done[r.key]["error"])
            continue
        if r.key in seen:
            sink.bar.update(1)
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
    return todo
