"""``deepinside.audit``: what a model relies on, class by class, over a whole data set.

1. Every photo's audit line (:mod:`.records`: its maps pooled, its prediction, energy in box,
   pointing) streams to ``out/per_image.jsonl``, one line a photo, written by the runner's one
   writer (:class:`deepinside.evaluate.runner.RecordSink`) under the runner's lock and config
   check: resumable after a kill, refused into a folder of another run.
2. Per class, its strategies (SpRAy, :mod:`.spray`), their suspicion and the erase check
   (:mod:`.suspicion`, :mod:`.erase`), from the lines alone.
3. ``out/audit.json``, ``out/index.html`` and ``out/figures/`` (:mod:`.page`).
"""

from __future__ import annotations

import functools
import json
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

from .page import audit_json, render_audit_page, write_figures
from .records import AuditRecord
from .spray import GRID

__all__ = ["AUDIT_JSON", "audit", "audit_config", "select_records"]

AUDIT_JSON = "audit.json"
PAGE = "index.html"
FIGURE_CLASSES = 40  # figures for this many classes of the page's order (and every flagged one)


def audit_config(model, method: str, options: dict) -> dict:
    """Everything that changes an audit's lines, as written to ``config.json``."""
    from .. import __version__
    from ..evaluate.runner import weights_hash

    pre = getattr(model, "preprocessing", None)
    module = getattr(model, "module", model)
    return {"deepinside": __version__, "kind": "audit",
            "model": getattr(model, "name", type(module).__name__),
            "weights_sha256": weights_hash(module),
            "preprocessing": pre.to_dict() if pre is not None else None,
            "method": method, "options": options, "grid": GRID}


def select_records(model, records: Sequence, classes: Sequence[int | str] | None,
                   limit: int | None) -> list:
    """The records of ``classes`` (indices or names of the model's classes; all if ``None``),
    the first ``limit`` of them.

    Raises:
        ValueError: a class the model does not have (with close matches).
    """
    recs = list(records)
    if classes:
        want = {model.class_index(c) for c in classes}
        recs = [r for r in recs if r.label in want]
    return recs[:limit] if limit is not None else recs


def audit(
    model,
    dataset: str | Path | Sequence,
    out: str | Path = "deepinside-audit",
    *,
    method: str = "gradcam",
    classes: Sequence[int | str] | None = None,
    limit: int | None = None,
    backend: str = "local",
    batch_size: int = 16,
    erase_photos: int = 16,
    figure_classes: int = FIGURE_CLASSES,
    show_progress: bool = True,
    on_problem: Callable[[str, str], None] | None = None,
    ray_address: str | None = None,
    workers: int = 1,
    dataset_name: str | None = None,
    **options: object,
) -> dict:
    """Audit ``model`` on a data set: per class, its strategies, a suspicion score, and the
    erase check; writes ``out/audit.json``, ``out/index.html`` and ``out/per_image.jsonl``.

    Args:
        model: a :class:`deepinside.Classifier` (its class names name the classes).
        dataset: a path :func:`deepinside.evaluate.read_dataset` reads, or its records.
        out: the audit's folder; an audit there with the same settings is resumed (only the
            photos not yet done are computed).
        method: the attribution method of the maps (default Grad-CAM).
        classes: only these classes (indices or names).
        limit: only the first N photos (after ``classes``).
        backend: ``"local"`` or ``"ray"``.
        batch_size: photos per pass.
        erase_photos: at most this many photos of a cluster are erased.
        figure_classes: figures for this many classes (in the page's order; flagged classes
            always get theirs).
        show_progress: progress bars on stderr.
        on_problem: ``(photo, reason)`` for each photo that cannot be audited (default: a
            warning).
        ray_address: ``ray`` only: the cluster to join.
        workers: ``ray`` only: model actors.
        dataset_name: what the page calls the data set (default: its path).
        **options: the method's options.

    Returns:
        The content of ``audit.json``.

    Raises:
        RunMismatchError: ``out`` holds an audit with other settings.
        RunLockedError: another audit is writing into ``out``.
        ValueError: an unknown class or backend. DatasetError: an unreadable data set.
    """
    from ..evaluate.rundir import locked
    from ..evaluate.runner import get_backend

    where = get_backend(backend)
    where.check()
    if on_problem is None:
        on_problem = _warn
    records, source = _records(model, dataset, classes, limit, on_problem, dataset_name)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with locked(out):
        lines, failed = _stream_lines(
            model, records, out, where, method=method, options=options, batch_size=batch_size,
            workers=workers, ray_address=ray_address, show_progress=show_progress,
            on_problem=on_problem)
        photos = _PhotoReader(records, lines)
        classes_ = _analyse(model, lines, photos, erase_photos=erase_photos,
                            batch_size=batch_size, show_progress=show_progress)
        meta = _meta(model, method, source, len(lines), failed)
        return _write(out, classes_, meta, photos, figure_classes)


def _warn(photo: str, reason: str) -> None:
    warnings.warn(f"{photo}: {reason}", stacklevel=3)


def _records(model, dataset: str | Path | Sequence, classes: Sequence[int | str] | None,
             limit: int | None, on_problem: Callable[[str, str], None],
             dataset_name: str | None) -> tuple[list, str]:
    """The stage that reads the data set: its selected records, and what the page calls it."""
    from ..evaluate.datasets import read_dataset

    source = dataset_name or (str(dataset) if isinstance(dataset, (str, Path)) else "records")
    if isinstance(dataset, (str, Path)):
        dataset, problems = read_dataset(dataset)
        for place, why in problems:
            on_problem(place, why)
    return select_records(model, dataset, classes, limit), source


def _stream_lines(model, records: list, out: Path, where, *, method: str, options: dict,
                  batch_size: int, workers: int, ray_address: str | None, show_progress: bool,
                  on_problem: Callable[[str, str], None]) -> tuple[list[AuditRecord], int]:
    """The per-photo stage (in ``out``, locked by the caller): the config checked, the lines
    already written read back, the others computed by the backend ``where`` and streamed.

    Returns:
        ``(the audit lines of the records, how many photos failed)``.
    """
    from ..evaluate.backend import LinesSpec
    from ..evaluate.rundir import check_config, record_hash
    from ..evaluate.runner import stream_run
    from .analysis import audit_batch

    check_config(out, audit_config(model, method, {k: repr(v) for k, v in
                                                   sorted(options.items())}))
    spec = LinesSpec(model, functools.partial(audit_batch, method=method,
                                              batch_size=batch_size, options=options),
                     {r.key: record_hash(r) for r in records}, batch_size=batch_size,
                     workers=workers, address=ray_address,
                     warn=lambda path, note: on_problem(str(path), f"warning: {note}"))
    rows = stream_run(model, records, out, spec.hashes,
                      lambda todo, sink: where.lines(spec, todo, sink), desc="audit",
                      parse=AuditRecord.from_json, show_progress=show_progress,
                      on_problem=on_problem)
    lines = [r for r in rows if isinstance(r, AuditRecord)]
    return lines, len(rows) - len(lines)


class _PhotoReader:
    """``key -> photo`` (read from disk when asked, never kept: the erase check and the
    figures read their photos batch by batch), and ``key -> (photo, pooled map)``."""

    def __init__(self, records: Sequence, lines: Sequence[AuditRecord]) -> None:
        self.paths = {r.key: r.path for r in records}
        self.lines = {r.key: r for r in lines}

    def __call__(self, key: str):
        from ..images import ImageLoadError, open_photo

        try:
            return open_photo(self.paths[key])
        except (ImageLoadError, OSError):
            return None

    def example(self, key: str):
        p = self(key)
        return None if p is None else (p, self.lines[key].grid())


def _analyse(model, lines: list[AuditRecord], photos: _PhotoReader, *, erase_photos: int,
             batch_size: int, show_progress: bool) -> list:
    """The per-class stage: strategies, suspicion and erase check (a progress bar of classes)."""
    from tqdm import tqdm

    from .analysis import analyse

    bar = tqdm(total=len({r.label for r in lines}), desc="audit classes", unit="class",
               disable=not show_progress, file=sys.stderr, dynamic_ncols=True)
    try:
        return analyse(model, lines, photos, names=model.short_name, erase_photos=erase_photos,
                       batch_size=batch_size, progress=bar.update)
    finally:
        bar.close()


def _meta(model, method: str, source: str, n_photos: int, failed: int) -> dict:
    from .. import __version__

    return {"model": getattr(model, "name", "model"), "method": method, "dataset": source,
            "n_photos": n_photos, "n_failed": failed, "deepinside": __version__}


def _write(out: Path, classes: list, meta: dict, photos: _PhotoReader,
           figure_classes: int) -> dict:
    """The output stage: the figures, ``audit.json`` and ``index.html``; returns the JSON."""
    figures = write_figures(classes, out, photos.example, figure_classes)
    result = audit_json(classes, meta)
    (out / AUDIT_JSON).write_text(json.dumps(result, indent=2) + "\n")
    (out / PAGE).write_text(render_audit_page(classes, meta, figures), encoding="utf-8")
    return result
