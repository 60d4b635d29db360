"""The local backend: maps in this process, GrabCut in a pool of worker processes.

Worker processes are started with the ``spawn`` method (a ``fork`` of a process whose torch /
OpenMP threads have already run can deadlock on a lock the threads held at the fork). They
import only :mod:`.scoring` (NumPy and OpenCV), and they are started before the first map is
computed, so their start-up overlaps the model's work instead of adding to it; while they run,
the maps use the cores the workers leave (``torch.set_num_threads``, restored at the end), since
idle OpenMP threads of torch spin and slow GrabCut down. Each worker exits when the evaluating
process dies.
"""

from __future__ import annotations

import functools
import itertools
import multiprocessing
import os
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor

import torch

from ..images import iter_photo_batches
from .backend import CompareSpec, LinesSpec, RunSpec, register_backend
from .datasets import Record
from .metrics import fit_boxes
from .rundir import RecordSink
from .scoring import ImageResult, init_worker, score_photo
from .stages import MethodScores, fit_record_boxes, map_tasks, score_methods

__all__ = ["MP_CONTEXT", "LocalBackend", "lines", "localize", "start_workers"]

MP_CONTEXT = "spawn"


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


def localize(spec: RunSpec, todo: Sequence[Record], sink: RecordSink) -> None:
    """Evaluate ``todo`` here: the maps in this process, the segmentation in ``spec.pool`` (or
    ``spec.workers`` new GrabCut workers; none for a threshold recipe or ``workers=0``)."""
    model, rec, method, hashes = spec.model, spec.recipe, spec.method, spec.hashes
    workers, batch_size, seed, warn, pool = (spec.workers, spec.batch_size, spec.seed,
                                             spec.warn, spec.pool)
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


def lines(spec: LinesSpec, todo: Sequence[Record], sink: RecordSink) -> None:
    """One line per photo of ``todo`` by ``spec.stage``, in this process."""
    by_path = {str(r.path): r for r in todo}

    def fail(r: Record, reason: str) -> None:
        sink.failure(r.key, spec.hashes[r.key], reason)

    for batch in iter_photo_batches(todo, spec.batch_size,
                                    lambda src, why: fail(by_path[str(src)], why),
                                    source=lambda r: r.path):
        boxes = []
        for r, photo in zip(batch.items, batch.photos):
            kept, notes = fit_boxes(r.boxes, photo.width, photo.height)
            for note in notes:
                spec.warn(r.path, note)
            boxes.append(kept)
        if batch.items:
            for row in spec.stage(spec.model, batch.items, batch.photos, boxes, spec.hashes,
                                  fail):
                sink.result(row)


class LocalBackend:
    """``backend="local"``: this process (and its GrabCut workers)."""

    name = "local"

    def check(self) -> None:
        """Nothing to check: the local backend always runs."""

    def localize(self, spec: RunSpec, todo: Sequence[Record], sink: RecordSink) -> None:
        """See :func:`localize`."""
        localize(spec, todo, sink)

    def lines(self, spec: LinesSpec, todo: Sequence[Record], sink: RecordSink) -> None:
        """See :func:`lines`."""
        lines(spec, todo, sink)

    def compare(self, model, records: Sequence, methods: Sequence[str], spec: CompareSpec,
                on_batch: Callable[[int], None] | None,
                on_failure: Callable[[object, str], None] | None) -> list[MethodScores]:
        """:func:`.stages.score_methods` in this process."""
        return score_methods(model, records, methods, spec, on_batch, on_failure)


register_backend(LocalBackend())
