"""The Ray backend of the localisation runner: the same work as a streaming Ray Data pipeline.

::

    records (driver) -> decode + box check (CPU tasks) -> maps (a pool of model actors, batched,
    one GPU each where there are GPUs) -> segmentation + scores (CPU tasks) -> lines (driver)

The driver (:func:`.runner.run_localization`) keeps everything that makes a run safe: the lock
on ``--out``, the config check, resume, and writing ``per_image.jsonl`` through its one
:class:`.rundir.RecordSink`. The stages run the very functions of the local backend
(:func:`deepinside.images.open_photo`, :func:`.stages.fit_record_boxes`,
:func:`.stages.map_tasks`, :func:`.scoring.score_photo`), so a deterministic recipe gives the
same records. ``evaluate compare`` runs :func:`.stages.score_methods` on batches of records in
model actors; the driver merges their rows (:meth:`.stages.MethodScores.merge`). A photo that
fails anywhere becomes a failure row that flows on to the driver.

Rows travel as ``{"key": str, "item": bytes}`` (a pickled tuple), so photos and maps of any size
and failures of any kind share one Arrow schema. Ray Data streams the blocks with backpressure:
what is in flight is bounded by the actors' queues and the object store, not by the dataset.

Resources: on a small machine Ray Data's defaults can starve a stage (a whole CPU per actor
leaves none for the tasks that feed it, and the pipeline sits "backpressured"). So every stage
asks for a fraction of a CPU (:data:`DECODE_CPUS`, :data:`ACTOR_CPUS`, :data:`SCORE_CPUS`); the
actors take ``num_gpus=1`` instead where the cluster has GPUs (both overridable:
``actor_cpus`` / ``actor_gpus`` of the spec, ``--actor-cpus`` / ``--actor-gpus``). Each actor
sizes torch's threads from the CPUs of the node it runs on, read inside the actor
(:func:`actor_threads`). Which Ray, and joining it within a bounded time: :mod:`.ray_connect`
(a local Ray started there gets the machine's cores and an object store of
:data:`.ray_connect.OBJECT_STORE_BYTES`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
from collections.abc import Callable, Iterator, Sequence

import numpy as np

from .backend import CompareSpec, LinesSpec, RunSpec, register_backend
from .datasets import Record
from .ray_connect import DEFAULT_TIMEOUT, OBJECT_STORE_BYTES, connect_ray, filter_stderr
from .rundir import RecordSink
from .scoring import ScoreTask, score_photo
from .stages import MethodScores, fit_record_boxes, map_tasks, score_methods

__all__ = ["ACTOR_CPUS", "DECODE_CPUS", "OBJECT_STORE_BYTES", "SCORE_CPUS", "RayBackend",
           "actor_resources", "actor_threads", "compare_ray", "ray_session", "require_ray",
           "run_ray"]

DECODE_CPUS = 0.25
ACTOR_CPUS = 0.5
SCORE_CPUS = 0.5

RAY_MISSING = "the ray backend needs Ray: pip install 'deepinside[ray]'"


def require_ray() -> None:
    """Raise ``ImportError`` with the one line to fix it when Ray Data is not installed."""
    try:
        import ray  # noqa: F401
        import ray.data  # noqa: F401
    except ImportError:
        raise ImportError(RAY_MISSING) from None


@contextlib.contextmanager
def ray_session(address: str | None = None, timeout: float = DEFAULT_TIMEOUT) -> Iterator[None]:
    """Ray for the duration of a run: the one already initialised in this process, else the
    cluster at ``address`` or in ``RAY_ADDRESS``, else a new local Ray on this machine's cores
    (shut down at the end); see :func:`.ray_connect.connect_ray`.

    Raises:
        RayConnectError: the cluster cannot be joined within ``timeout`` (one line).
    """
    import ray

    for name, level in (("ray.data", logging.WARNING),  # the driver's bar says enough
                        ("ray.data._internal.progress", logging.ERROR)):  # "bars disabled"
        logging.getLogger(name).setLevel(level)
    if ray.is_initialized():
        yield
        return
    connect_ray(address, timeout)
    try:
        yield
    finally:
        ray.shutdown()


def actor_resources(actor_cpus: float | None, actor_gpus: float | None) -> dict[str, float]:
    """The Ray resources of one model actor: ``actor_gpus`` GPUs (default 1 where the
    cluster has GPUs, else 0) and ``actor_cpus`` CPUs (default :data:`ACTOR_CPUS` without a
    GPU, no request besides the GPU with one)."""
    gpus = actor_gpus if actor_gpus is not None else (1 if _gpus() else 0)
    res: dict[str, float] = {}
    if gpus:
        res["num_gpus"] = gpus
    if actor_cpus is not None:
        res["num_cpus"] = actor_cpus
    elif not gpus:
        res["num_cpus"] = ACTOR_CPUS
    return res


def actor_threads(actor_cpus: float | None, workers: int, reserve: int) -> int:
    """Torch threads for a model actor, read inside the actor from the node it runs on.

    ``actor_cpus`` from 1 up: that many (what the actor asked Ray for). Else the node's CPUs
    shared between the actors that can land on it (at most ``workers``, at most one per CPU)
    and ``reserve`` shares for the tasks beside them: ``cpus // (min(workers, cpus) +
    reserve)``, at least 1.
    """
    import ray

    if actor_cpus is not None and actor_cpus >= 1:
        return int(actor_cpus)
    cpus = float(os.cpu_count() or 1)
    with contextlib.suppress(Exception):  # Ray's node table; this machine's cores if absent
        here = ray.get_runtime_context().get_node_id()
        cpus = next(n["Resources"].get("CPU", cpus) for n in ray.nodes()
                    if n.get("NodeID") == here)
    cpus_n = max(1, int(cpus))
    return max(1, cpus_n // (min(max(1, workers), cpus_n) + reserve))


def _pack(*item: object) -> bytes:
    return pickle.dumps(item, protocol=pickle.HIGHEST_PROTOCOL)


def _rows(keys: Sequence[str], items: Sequence[bytes]) -> dict:
    return {"key": np.array(keys, dtype=object), "item": np.array(items, dtype=object)}


def decode_batch(batch: dict, need_boxes: bool = True) -> dict:
    """Stage 1 (CPU task): read and decode each photo, clip its boxes to it.

    In: ``("record", record, hash)``. Out: ``("photo", record, hash, uint8 array, boxes,
    notes)`` or ``("failed", key, hash, reason, notes)`` (also, with ``need_boxes``, for a
    photo none of whose boxes lies on it).
    """
    from ..images import ImageLoadError, open_photo
    from .metrics import fit_boxes

    out = []
    for raw in batch["item"]:
        _, r, h = pickle.loads(raw)
        try:
            photo = open_photo(r.path)
        except (ImageLoadError, TypeError, OSError) as e:
            out.append(_pack("failed", r.key, h, str(e).removeprefix(f"{r.path}: "), []))
            continue
        if need_boxes:
            boxes, notes, why = fit_record_boxes(r, photo)
        else:
            (boxes, notes), why = fit_boxes(r.boxes, photo.width, photo.height), ""
        out.append(_pack("failed", r.key, h, why, []) if why
                   else _pack("photo", r, h, np.asarray(photo), boxes, notes))
    return _rows(list(batch["key"]), out)


class _ModelActor:
    """A model actor: torch threads for its node (:func:`actor_threads` of ``sizing``), the
    model fetched once from the object store (``model_ref``: a one-element list holding its
    reference) and moved to the actor's GPU if it has one."""

    def __init__(self, model_ref: list, sizing: tuple[float | None, int, int]) -> None:
        import ray
        import torch

        torch.set_num_threads(actor_threads(*sizing))
        self.model = ray.get(model_ref[0])
        if torch.cuda.is_available() and ray.get_gpu_ids():
            self.model.module.to("cuda")


def _photos_of(batch: dict) -> tuple[list, list, list, list, list, dict, dict]:
    """A model actor's input: ``(keys, out, records, photos, boxes, hashes, notes)`` where
    ``keys`` / ``out`` already hold the rows that failed upstream (passed on as they are)."""
    from PIL import Image

    keys, out, items, photos, boxes, hashes, notes = [], [], [], [], [], {}, {}
    for key, raw in zip(batch["key"], batch["item"]):
        item = pickle.loads(raw)
        if item[0] != "photo":
            keys.append(key)
            out.append(raw)
            continue
        _, r, h, array, b, n = item
        items.append(r)
        photos.append(Image.fromarray(array))
        boxes.append(b)
        hashes[r.key], notes[r.key] = h, n
    return keys, out, items, photos, boxes, hashes, notes


def _actor_batch(batch: dict, produce: Callable) -> dict:
    """A model actor's batch: stage 1's photos through ``produce(records, photos, boxes,
    hashes, fail)``, which gives ``(key, kind, payload)`` per photo done; out, ``(kind,
    payload, notes)`` rows, the failures (upstream or ``fail``'s) passed on."""
    keys, out, items, photos, boxes, hashes, notes = _photos_of(batch)

    def fail(r: Record, reason: str) -> None:
        keys.append(r.key)
        out.append(_pack("failed", r.key, hashes[r.key], reason, notes[r.key]))

    if items:
        for key, kind, payload in list(produce(items, photos, boxes, hashes, fail)):
            keys.append(key)
            out.append(_pack(kind, payload, notes[key]))
    return _rows(keys, out)


class MapActor(_ModelActor):
    """Stage 2 (actor): the model, loaded once per actor; the maps of a batch of photos.

    In: stage 1's rows. Out: ``("task", ScoreTask, notes)`` or ``("failed", ...)``.
    """

    def __init__(self, model_ref: list, recipe, method: str, seed: int, batch_size: int,
                 sizing: tuple[float | None, int, int]) -> None:
        super().__init__(model_ref, sizing)
        self.recipe, self.method, self.seed, self.batch_size = recipe, method, seed, batch_size

    def __call__(self, batch: dict) -> dict:
        return _actor_batch(batch, lambda items, photos, boxes, hashes, fail: (
            (r.key, "task", task) for r, task in map_tasks(
                self.model, items, photos, boxes, self.recipe, self.method, hashes, self.seed,
                self.batch_size, fail)))


class LinesActor(_ModelActor):
    """A model actor of :func:`run_lines`: the caller's stage on a batch of photos.

    In: stage 1's rows. Out: ``("result", row, notes)`` or ``("failed", ...)``.
    """

    def __init__(self, model_ref: list, stage,
                 sizing: tuple[float | None, int, int]) -> None:
        super().__init__(model_ref, sizing)
        self.stage = stage

    def __call__(self, batch: dict) -> dict:
        return _actor_batch(batch, lambda items, photos, boxes, hashes, fail: (
            (row.key, "result", row)
            for row in self.stage(self.model, items, photos, boxes, hashes, fail)))


def score_batch(batch: dict) -> dict:
    """Stage 3 (CPU task): segment and score each map (:func:`.scoring.score_photo`).

    Out: ``("result", ImageResult, notes)`` or ``("failed", key, hash, reason, notes)``.
    """
    import cv2

    cv2.setNumThreads(1)
    out = []
    for raw in batch["item"]:
        item = pickle.loads(raw)
        if item[0] != "task":
            out.append(raw)
            continue
        task: ScoreTask = item[1]
        try:
            out.append(_pack("result", score_photo(task), item[2]))
        except Exception as e:  # noqa: BLE001 - one photo must not stop the run
            out.append(_pack("failed", task.key, task.record_hash,
                             f"cannot segment its map: {e}", item[2]))
    return _rows(list(batch["key"]), out)


def _gpus() -> int:
    import ray

    return int(ray.cluster_resources().get("GPU", 0))


def _quiet_context():
    import ray.data

    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False  # the driver's bar counts photos
    ctx.enable_operator_progress_bars = False
    ctx.execution_options.verbose_progress = False
    ctx.enable_auto_log_stats = False
    detectors = getattr(ctx, "issue_detectors_config", None)  # Ray >= 2.50: its memory advice
    if detectors is not None:  # repeats every 30 s on stderr; the actors' size is known here
        detectors.detectors = []
    return ctx


def build_dataset(spec: RunSpec, todo: Sequence[Record]):
    """The Ray Data pipeline of a run (lazy: nothing runs until it is iterated; then the
    actors start, each fetching the model put once in the object store, while the first
    photos decode)."""
    import ray
    import ray.data

    ctx = _quiet_context()
    workers, batch_size, hashes = max(1, spec.workers), spec.batch_size, spec.hashes
    model_ref = [ray.put(spec.model)]  # in a list: the actors get the reference, fetch it once
    items = [_pack("record", r, hashes[r.key]) for r in todo]
    block_size = ctx.target_max_block_size
    # A block per photo out of every stage (the dataset keeps this context): each photo's
    # line reaches the driver as soon as it is scored, and GrabCut spreads over one task per
    # photo, instead of a task scoring a model batch's photos one after another and handing
    # them over together at its end.
    ctx.target_max_block_size = 1
    try:
        ds = ray.data.from_items([{"key": r.key, "item": it} for r, it in zip(todo, items)],
                                 override_num_blocks=max(1, -(-len(todo) // batch_size)))
        ds = ds.map_batches(decode_batch, batch_size=batch_size, num_cpus=DECODE_CPUS)
        ds = ds.map_batches(
            MapActor, batch_size=batch_size, compute=ray.data.ActorPoolStrategy(size=workers),
            fn_constructor_kwargs={"model_ref": model_ref, "recipe": spec.recipe,
                                   "method": spec.method, "seed": spec.seed,
                                   "batch_size": batch_size,
                                   "sizing": (spec.actor_cpus, workers, 1)},
            **actor_resources(spec.actor_cpus, spec.actor_gpus))
        score_size = 1 if spec.recipe.segment == "grabcut" else batch_size
        return ds.map_batches(score_batch, batch_size=score_size, num_cpus=SCORE_CPUS)
    finally:
        ctx.target_max_block_size = block_size


# Ray Data's actor pool passes its actors their constructor through the object store and
# restarts them (max_restarts=-1), and Ray's core then logs at error level on every run that
# a restart would fail if those objects were lost; they live as long as the run.
NOISE = (b"has constructor arguments in the object store and max_restarts > 0",)


def _drain(ds, sink: RecordSink, warn: Callable[[object, str], None]) -> None:
    """Hand every row the pipeline ``ds`` gives to ``sink`` (its notes to ``warn``)."""
    for batch in ds.iter_batches(batch_size=None, batch_format="numpy", prefetch_batches=1):
        for raw in batch["item"]:
            item = pickle.loads(raw)
            key = item[1].key if item[0] == "result" else item[1]
            for note in item[-1]:
                warn(sink.paths.get(key, key), note)
            if item[0] == "result":
                sink.result(item[1])
            else:
                sink.failure(item[1], item[2], item[3])


def run_ray(spec: RunSpec, todo: Sequence[Record], sink: RecordSink) -> None:
    """Evaluate ``todo`` through the Ray Data pipeline; every line goes to ``sink``."""
    with ray_session(spec.address, spec.ray_timeout), filter_stderr(NOISE):
        _drain(build_dataset(spec, todo), sink, spec.warn)


def run_lines(spec: LinesSpec, todo: Sequence[Record], sink: RecordSink) -> None:
    """One line per photo by ``spec.stage``: decoding in CPU tasks, the stage in a pool of
    ``spec.workers`` model actors (sized per node as :func:`build_dataset`'s); every line goes
    to ``sink``."""
    import ray
    import ray.data

    with ray_session(spec.address, spec.ray_timeout), filter_stderr(NOISE):
        _quiet_context()
        workers = max(1, spec.workers)
        ds = ray.data.from_items(
            [{"key": r.key, "item": _pack("record", r, spec.hashes[r.key])} for r in todo],
            override_num_blocks=max(1, -(-len(todo) // spec.batch_size)))
        ds = ds.map_batches(decode_batch, batch_size=spec.batch_size, num_cpus=DECODE_CPUS,
                            fn_kwargs={"need_boxes": False})
        ds = ds.map_batches(
            LinesActor, batch_size=spec.batch_size,
            compute=ray.data.ActorPoolStrategy(size=workers),
            fn_constructor_kwargs={"model_ref": [ray.put(spec.model)], "stage": spec.stage,
                                   "sizing": (spec.actor_cpus, workers, 1)},
            **actor_resources(spec.actor_cpus, spec.actor_gpus))
        _drain(ds, sink, spec.warn)


class CompareActor(_ModelActor):
    """``evaluate compare`` on a batch of records in a model actor:
    :func:`.stages.score_methods` on the batch; out, its rows and its failures.
    """

    def __init__(self, model_ref: list, methods: list[str], spec: CompareSpec,
                 sizing: tuple[float | None, int, int]) -> None:
        super().__init__(model_ref, sizing)
        self.methods, self.spec = methods, spec

    def __call__(self, batch: dict) -> dict:
        records = [pickle.loads(raw) for raw in batch["item"]]
        failed: list[tuple[str, str]] = []
        rows = score_methods(self.model, records, self.methods, self.spec,
                             on_failure=lambda p, why: failed.append((str(p), why)))
        part = _pack("part", rows, failed, len(records))
        return _rows([records[0].key if records else ""], [part])


def compare_ray(model, records: Sequence, methods: Sequence[str], spec: CompareSpec,
                on_batch: Callable[[int], None] | None = None,
                on_failure: Callable[[object, str], None] | None = None) -> list[MethodScores]:
    """:func:`.stages.score_methods` over a pool of ``spec.workers`` model actors: each batch
    of records is scored in an actor, and the driver merges the batches' rows (the same means
    as one process, up to the order of floating-point sums).

    ``on_batch`` hears of each batch as its actor finishes it; a data set of fewer than
    ``workers`` batches is cut into smaller ones, so that every actor has work and the
    progress moves before the end."""
    import ray
    import ray.data

    scores = {m: MethodScores(m) for m in methods}
    workers = max(1, spec.workers)
    per_actor = max(1, min(spec.batch_size, -(-len(records) // workers)))
    with ray_session(spec.address, spec.ray_timeout), filter_stderr(NOISE):
        _quiet_context()
        ds = ray.data.from_items([{"key": r.key, "item": pickle.dumps(r)} for r in records],
                                 override_num_blocks=max(1, -(-len(records) // per_actor)))
        ds = ds.map_batches(
            CompareActor, batch_size=per_actor, compute=ray.data.ActorPoolStrategy(size=workers),
            fn_constructor_kwargs={"model_ref": [ray.put(model)], "methods": list(methods),
                                   "spec": spec, "sizing": (spec.actor_cpus, workers, 0)},
            **actor_resources(spec.actor_cpus, spec.actor_gpus))
        for batch in ds.iter_batches(batch_size=None, batch_format="numpy", prefetch_batches=1):
            for raw in batch["item"]:
                _, rows, failed, n = pickle.loads(raw)
                for path, why in failed:
                    if on_failure is not None:
                        on_failure(path, why)
                for row in rows:
                    scores[row.method].merge(row)
                if on_batch is not None:
                    on_batch(n)
    return [scores[m] for m in methods]


class RayBackend:
    """``backend="ray"``: a Ray Data pipeline (:func:`run_ray`), model actors for comparisons
    (:func:`compare_ray`)."""

    name = "ray"

    def check(self) -> None:
        """See :func:`require_ray`."""
        require_ray()

    def localize(self, spec: RunSpec, todo: Sequence[Record], sink: RecordSink) -> None:
        """See :func:`run_ray`."""
        run_ray(spec, todo, sink)

    def lines(self, spec: LinesSpec, todo: Sequence[Record], sink: RecordSink) -> None:
        """See :func:`run_lines`."""
        run_lines(spec, todo, sink)

    def compare(self, model, records: Sequence, methods: Sequence[str], spec: CompareSpec,
                on_batch: Callable[[int], None] | None,
                on_failure: Callable[[object, str], None] | None) -> list[MethodScores]:
        """See :func:`compare_ray`."""
        return compare_ray(model, records, methods, spec, on_batch, on_failure)


register_backend(RayBackend())
