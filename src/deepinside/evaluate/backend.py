"""Where an evaluation runs: the :class:`Backend` interface and the registry of backends.

A backend runs the stages (:mod:`.stages`: boxes, maps, :func:`.scoring.score_photo`, the
comparison of methods) somewhere, and hands every line to the driver's one writer
(:class:`.rundir.RecordSink`); the driver (:func:`.runner.run_localization`,
:func:`.compare.compare_methods`) keeps the run directory, the lock and resume. ``local``
(:mod:`.local_backend`: this process and its GrabCut workers) and ``ray``
(:mod:`.ray_backend`: a Ray Data pipeline) register themselves here; a new backend is a module
that calls :func:`register_backend`, imported by the drivers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from .ray_connect import DEFAULT_TIMEOUT
from .stages import CompareSpec

if TYPE_CHECKING:
    from ..segment import Recipe
    from .datasets import Record
    from .rundir import RecordSink
    from .stages import MethodScores

__all__ = ["BACKENDS", "Backend", "CompareSpec", "LinesSpec", "RunSpec", "get_backend",
           "register_backend"]


@dataclass
class RunSpec:
    """What a backend needs to evaluate localisation on a list of records.

    Attributes:
        model: the :class:`deepinside.Classifier`.
        recipe: the localisation recipe.
        method: the attribution method's name.
        hashes: each record's :func:`.rundir.record_hash`, by key.
        seed: GrabCut's seed.
        batch_size: photos per map pass.
        workers: ``local``: GrabCut worker processes; ``ray``: model actors.
        warn: ``warn(photo, note)`` for a box clipped to its photo or ignored.
        pool: ``local``: GrabCut workers already started (:func:`.local_backend.start_workers`).
        address: ``ray``: the cluster to join (``None``: the Ray of this process, else
            ``RAY_ADDRESS``, else a new local one; :mod:`.ray_connect`).
        ray_timeout: ``ray``: seconds to reach and join the cluster before a one-line error.
        actor_cpus: ``ray``: CPUs each model actor asks for (default 0.5 without GPUs, none
            besides its GPU with them); from 1 up, also its torch threads.
        actor_gpus: ``ray``: GPUs each model actor asks for (default 1 where the cluster has
            GPUs, else 0).
    """

    model: Any
    recipe: Recipe
    method: str
    hashes: dict[str, str]
    seed: int = 0
    batch_size: int = 16
    workers: int = 1
    warn: Callable[[object, str], None] = field(default=lambda path, note: None)
    pool: ProcessPoolExecutor | None = None
    address: str | None = None
    ray_timeout: float = DEFAULT_TIMEOUT
    actor_cpus: float | None = None
    actor_gpus: float | None = None


@dataclass
class LinesSpec:
    """What a backend needs to turn each photo into one line by a stage of its caller's (the
    audit's lines, :func:`deepinside.audit.analysis.audit_batch`).

    Attributes:
        model: the :class:`deepinside.Classifier`.
        stage: ``stage(model, records, photos, boxes, hashes, fail) -> rows`` on a batch of
            decoded photos (their boxes clipped to them, possibly none), on the model's device;
            ``fail(record, reason)`` for a photo it cannot do; each row has ``to_json()``. A
            module-level function or a ``functools.partial`` of one (Ray pickles it).
        hashes: each record's :func:`.rundir.record_hash`, by key.
        batch_size: photos per batch.
        workers: ``ray``: model actors.
        warn: ``warn(photo, note)`` for a box clipped to its photo or ignored.
        address: ``ray``: the cluster to join.
        ray_timeout, actor_cpus, actor_gpus: ``ray``: as :class:`RunSpec`'s.
    """

    model: Any
    stage: Callable[..., list]
    hashes: dict[str, str]
    batch_size: int = 16
    workers: int = 1
    warn: Callable[[object, str], None] = field(default=lambda path, note: None)
    address: str | None = None
    ray_timeout: float = DEFAULT_TIMEOUT
    actor_cpus: float | None = None
    actor_gpus: float | None = None


class Backend(Protocol):
    """Runs the stages of an evaluation somewhere."""

    name: str

    def check(self) -> None:
        """Raise ``ImportError`` (one line: what to install) if it cannot run here."""

    def localize(self, spec: RunSpec, todo: Sequence[Record], sink: RecordSink) -> None:
        """Evaluate ``todo``; every photo's line (record or failure) goes to ``sink``."""

    def lines(self, spec: LinesSpec, todo: Sequence[Record], sink: RecordSink) -> None:
        """One line per photo of ``todo`` by ``spec.stage``; each goes to ``sink``."""

    def compare(self, model: Any, records: Sequence, methods: Sequence[str], spec: CompareSpec,
                on_batch: Callable[[int], None] | None,
                on_failure: Callable[[object, str], None] | None) -> list[MethodScores]:
        """One :class:`.stages.MethodScores` per method, in the order given."""


BACKENDS: dict[str, Backend] = {}


def register_backend(backend: Backend) -> Backend:
    """Make ``backend`` available as ``backend=backend.name``; returns it."""
    BACKENDS[backend.name] = backend
    return backend


def get_backend(name: str) -> Backend:
    """The backend registered as ``name``.

    Raises:
        ValueError: an unknown name (the message lists the known ones).
    """
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")
    return BACKENDS[name]
