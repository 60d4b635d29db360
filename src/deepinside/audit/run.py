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
    from tqdm import tqdm

    from .. import __version__
    from ..evaluate.backend import LinesSpec
    from ..evaluate.datasets import read_dataset
    from ..evaluate.rundir import check_config, locked, record_hash
    from ..evaluate.runner import get_backend, stream_run
    from ..images import ImageLoadError, open_photo
    from .analysis import analyse, audit_batch

    where = get_backend(backend)
    where.check()

    if on_problem is None:
        def on_problem(photo: str, reason: str) -> None:
            warnings.warn(f"{photo}: {reason}", stacklevel=3)

    source = dataset_name or (str(dataset) if isinstance(dataset, (str, Path)) else "records")
    if isinstance(dataset, (str, Path)):
        dataset, problems = read_dataset(dataset)
        for where, why in problems:
            on_problem(where, why)
    records = select_records(model, dataset, classes, limit)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with locked(out):
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
        mine = [r for r in rows if isinstance(r, AuditRecord)]
        failed = len(rows) - len(mine)
        by_key = {r.key: r for r in records}

        def photo(key: str):
            try:
                return open_photo(by_key[key].path)
            except (ImageLoadError, OSError):
                return None

        bar = tqdm(total=len({r.label for r in mine}), desc="audit classes", unit="class",
                   disable=not show_progress, file=sys.stderr, dynamic_ncols=True)
        try:
            classes_ = analyse(model, mine, photo, names=model.short_name,
                               erase_photos=erase_photos, batch_size=batch_size,
                               progress=bar.update)
        finally:
            bar.close()
        meta = {"model": getattr(model, "name", "model"), "method": method, "dataset": source,
                "n_photos": len(mine), "n_failed": failed, "deepinside": __version__}
        lookup = {r.key: r for r in mine}

        def example(key: str):
            p = photo(key)
            return None if p is None else (p, lookup[key].grid())

        figures = write_figures(classes_, out, example, figure_classes)
        result = audit_json(classes_, meta)
        (out / AUDIT_JSON).write_text(json.dumps(result, indent=2) + "\n")
        (out / PAGE).write_text(render_audit_page(classes_, meta, figures), encoding="utf-8")
    return result
