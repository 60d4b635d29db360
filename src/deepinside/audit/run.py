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

import json
import sys
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict
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
            "preprocessing": asdict(pre) if pre is not None else None,
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

    from ..evaluate.datasets import read_dataset
    from ..evaluate.runner import _check_config, _locked
    from ..images import ImageLoadError, open_photo

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
    with _locked(out):
        _check_config(out, audit_config(model, method, {k: repr(v) for k, v in
                                                        sorted(options.items())}))
        lines, failed = _lines(model, records, out, method, batch_size, backend, workers,
                               ray_address, show_progress, on_problem, options)
        by_key = {r.key: r for r in records}
        mine = [r for r in lines if r.key in by_key]

        def photo(key: str):
            try:
                return open_photo(by_key[key].path)
            except (ImageLoadError, OSError):
                return None

        bar = tqdm(total=len({r.label for r in mine}), desc="audit classes", unit="class",
                   disable=not show_progress, file=sys.stderr, dynamic_ncols=True)
        try:
            from .analysis import analyse

            classes_ = analyse(model, mine, photo, names=model.short_name,
                               erase_photos=erase_photos, batch_size=batch_size,
                               progress=bar.update)
        finally:
            bar.close()
        meta = {"model": getattr(model, "name", "model"), "method": method, "dataset": source,
                "n_photos": len(mine), "n_failed": failed, "deepinside": _version()}
        lookup = {r.key: r for r in mine}

        def example(key: str):
            p = photo(key)
            return None if p is None else (p, lookup[key].grid())

        figures = write_figures(classes_, out, example, figure_classes)
        result = audit_json(classes_, meta)
        (out / AUDIT_JSON).write_text(json.dumps(result, indent=2) + "\n")
        (out / PAGE).write_text(render_audit_page(classes_, meta, figures), encoding="utf-8")
    return result


def _version() -> str:
    from .. import __version__

    return __version__


def _lines(model, records, out: Path, method, batch_size, backend, workers, ray_address,
           show_progress, on_problem, options) -> tuple[list[AuditRecord], int]:
    """Every record's audit line: those in ``out/per_image.jsonl`` and the new ones (written
    there as they come); and how many photos failed."""
    from tqdm import tqdm

    from ..evaluate.datasets import label_problem
    from ..evaluate.runner import (
        PER_IMAGE,
        RecordSink,
        RunMismatchError,
        _read_done,
        record_hash,
    )

    path = out / PER_IMAGE
    old = _read_done(path, AuditRecord.from_json)
    done = {(r["key"] if isinstance(r, dict) else r.key): r for r in old}
    hashes = {r.key: record_hash(r) for r in records}
    changed = [k for k, h in hashes.items() if k in done and (
        done[k]["record_hash"] if isinstance(done[k], dict) else done[k].record_hash) != h]
    if changed:
        raise RunMismatchError(f"{out} holds lines for {len(changed)} of these photos with "
                               f"other annotations (e.g. {changed[0]}); use another --out or "
                               "delete it")
    bar = tqdm(total=len(records), initial=sum(k in done for k in hashes), desc="audit",
               unit="img", disable=not show_progress, file=sys.stderr, dynamic_ncols=True)
    paths = {r.key: r.path for r in records}
    try:
        with path.open("a", encoding="utf-8") as f:
            sink = RecordSink(f, bar, paths, on_problem)
            todo, seen = [], set()
            for r in records:
                if r.key in done:
                    if isinstance(done[r.key], dict):
                        sink.report(r.key, done[r.key]["error"])
                    continue
                if r.key in seen:
                    continue
                seen.add(r.key)
                why = label_problem(r, model)
                if why:
                    sink.failure(r.key, hashes[r.key], why)
                else:
                    todo.append(r)
            if todo and backend == "ray":
                raise NotImplementedError("the ray backend of the audit")
            elif todo:
                _local(model, todo, sink, method, hashes, batch_size, options)
    finally:
        bar.close()
    rows = [done[k] for k in hashes if k in done] + sink.results + sink.failures
    lines = [r for r in rows if isinstance(r, AuditRecord)]
    return lines, len(rows) - len(lines)


def _local(model, todo, sink, method, hashes, batch_size, options) -> None:
    from ..evaluate.metrics import fit_boxes
    from ..images import iter_photo_batches
    from .analysis import audit_batch

    by_path = {str(r.path): r for r in todo}

    def fail(r, reason: str) -> None:
        sink.failure(r.key, hashes[r.key], reason)

    for batch in iter_photo_batches(todo, batch_size,
                                    lambda src, why: fail(by_path[str(src)], why),
                                    source=lambda r: r.path):
        if not batch.items:
            continue
        boxes = [fit_boxes(r.boxes, p.width, p.height)[0]
                 for r, p in zip(batch.items, batch.photos)]
        for line in audit_batch(model, batch.items, batch.photos, boxes, method, hashes,
                                batch_size, fail, **options):
            sink.result(line)
