"""``evaluate compare --metrics``: attribution methods scored by registered metrics, as a run.

For each photo of a labelled data set and each method: the method's map for the true class and
every chosen metric of :mod:`deepinside.metrics` on it, one line of ``out/per_image.jsonl``
(``{"key", "record_hash", "method", "scores": {metric: value or null}, "map_ms"}``; a photo
that cannot be scored is one failure line ``{"key", "record_hash", "error"}``). The run
directory is :mod:`.rundir`'s: ``config.json`` (everything that changes the lines), the lock,
refusal of another run's folder, resume (photo x method lines already there are kept; a torn
last line is cut off). ``summary.json`` holds, per method and metric, the mean with its 95%
confidence interval (Student's t over photos), and for every metric the pairs of methods whose
difference is significant (paired t-test over the photos both scored, Holm's correction over
the pairs of that metric, 5% level).
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from ..images import iter_photo_batches, model_batch
from ..methods import get_method
from ..metrics import get_metric, list_metrics, resolve_metrics
from .datasets import Record, label_problem
from .rundir import (
    PER_IMAGE,
    SUMMARY,
    check_config,
    failure_record,
    locked,
    read_json_lines,
    record_hash,
    weights_hash,
)

__all__ = ["CHEAP", "compare_metrics", "metrics_table", "summarize_metrics"]

CHEAP = "cheap"  # the default: every metric without a forward pass of its own, or a few


def _config(model, methods: Sequence[str], metrics: Sequence[str], seed: int) -> dict:
    from dataclasses import asdict

    from .. import __version__

    pre = getattr(model, "preprocessing", None)
    module = getattr(model, "module", model)
    return {"deepinside": __version__, "kind": "compare",
            "model": getattr(model, "name", type(module).__name__),
            "weights_sha256": weights_hash(module),
            "preprocessing": asdict(pre) if pre is not None else None,
            "methods": list(methods), "metrics": list(metrics), "seed": seed}


def _boxes_on_input(r: Record, photo, size: tuple[int, int]) -> list[tuple[float, ...]]:
    """The record's boxes in the model input's pixels (the photo is resized whole)."""
    h, w = size
    sx, sy = w / photo.width, h / photo.height
    return [(b[0] * sx, b[1] * sy, b[2] * sx, b[3] * sy) for b in r.boxes]


def compare_metrics(
    model,
    records: Sequence[Record],
    out: str | Path,
    methods: Sequence[str],
    metrics: str | Sequence[str] = CHEAP,
    *,
    batch_size: int = 8,
    seed: int = 0,
    backend: str = "local",
    show_progress: bool = True,
    on_problem: Callable[[str, str], None] | None = None,
) -> dict:
    """Score ``methods`` on ``records`` with ``metrics``, streaming to ``out``; resumable.

    Args:
        model: a :class:`deepinside.Classifier`.
        records: the data set (:func:`deepinside.evaluate.read_dataset`).
        out: the run directory (a run with the same settings there is resumed).
        methods: registered method names (default options).
        metrics: names, families, ``"cheap"`` or ``"all"`` (:func:`resolve_metrics`).
        batch_size: photos per batch.
        seed: the random metrics' seed.
        backend: ``"local"`` only for now (``"ray"`` is refused with a one-line error).
        show_progress: a tqdm bar on stderr.
        on_problem: ``(photo, reason)`` for each photo that fails.

    Returns:
        The summary (also ``out/summary.json``).

    Raises:
        RunMismatchError: ``out`` holds another run. RunLockedError: it is being written.
        ValueError: an unknown backend, or ``ray`` (not yet for this comparison).
    """
    if backend != "local":
        raise ValueError(f"evaluate compare --metrics runs on the local backend only, not "
                         f"{backend!r}")
    names = resolve_metrics(metrics)
    for m in methods:
        get_method(m)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with locked(out):
        check_config(out, _config(model, methods, names, seed))
        lines_path = out / PER_IMAGE
        old = read_json_lines(lines_path)
        hashes = {r.key: record_hash(r) for r in records}
        done = {(d["key"], d.get("method")) for d in old}
        failed = {d["key"] for d in old if "error" in d}
        todo = [r for r in records if r.key not in failed
                and any((r.key, m) not in done for m in methods)]
        with lines_path.open("a", encoding="utf-8") as f:
            _score(model, todo, methods, names, done, hashes, f, batch_size, seed,
                   show_progress, len(records) - len(todo), len(records), on_problem)
        rows = [d for d in read_json_lines(lines_path) if d["key"] in hashes]
        summary = summarize_metrics(rows, methods, names)
        (out / SUMMARY).write_text(json.dumps(summary, indent=2, allow_nan=False) + "\n")
        return summary


def _score(model, todo, methods, names, done, hashes, f, batch_size, seed, show_progress,
           initial, total, on_problem) -> None:
    from tqdm import tqdm

    infos = list_metrics()
    bar = tqdm(total=total, initial=initial, desc="compare", unit="img",
               disable=not show_progress, file=sys.stderr, dynamic_ncols=True)

    def write(line: dict) -> None:
        f.write(json.dumps(line) + "\n")
        f.flush()

    def fail(r: Record, reason: str) -> None:
        write(failure_record(r.key, hashes[r.key], reason))
        if on_problem is not None:
            on_problem(str(r.path), reason)
        bar.update(1)

    by_path = {str(r.path): r for r in todo}
    usable = []
    for r in todo:
        why = label_problem(r, model)
        if why:
            fail(r, why)
        else:
            usable.append(r)
    try:
        for batch in iter_photo_batches(usable, batch_size,
                                        lambda src, why: fail(by_path[str(src)], why),
                                        source=lambda r: r.path):
            if not batch.items:
                continue
            x = model_batch(model, batch.photos, crop=False)
            t = torch.tensor([r.label for r in batch.items], device=x.device)
            boxes = [_boxes_on_input(r, p, tuple(x.shape[-2:]))
                     for r, p in zip(batch.items, batch.photos)]
            for method in methods:
                if all((r.key, method) in done for r in batch.items):
                    continue
                t0 = time.perf_counter()
                maps = get_method(method)(model, x, t).detach()
                ms = 1000 * (time.perf_counter() - t0) / len(batch.items)
                scores = {}
                for name in names:
                    opts: dict = {}
                    if "boxes" in infos[name].needs:
                        opts["boxes"] = boxes
                    if "method" in infos[name].needs:
                        opts["method"] = method
                    if "seed" in _params(infos[name].fn):
                        opts["seed"] = seed
                    scores[name] = get_metric(name)(model, x, maps, t, **opts).tolist()
                for i, r in enumerate(batch.items):
                    if (r.key, method) in done:
                        continue
                    write({"key": r.key, "record_hash": hashes[r.key], "method": method,
                           "scores": {n: (None if math.isnan(v[i]) else v[i])
                                      for n, v in scores.items()},
                           "map_ms": ms})
            bar.update(len(batch.items))
    finally:
        bar.close()


def _params(fn) -> set[str]:
    import inspect

    return set(inspect.signature(fn).parameters)


def _interval(values: np.ndarray) -> tuple[float, float]:
    """Mean and the half-width of its 95% Student-t interval (NaN half-width for one value)."""
    from scipy import stats

    n = len(values)
    mean = float(values.mean())
    if n < 2:
        return mean, math.nan
    return mean, float(stats.t.ppf(0.975, n - 1) * values.std(ddof=1) / math.sqrt(n))


def summarize_metrics(rows: Sequence[dict], methods: Sequence[str],
                      metrics: Sequence[str]) -> dict:
    """``summary.json`` from the lines of ``per_image.jsonl`` (see the module docstring)."""
    from scipy import stats

    infos = list_metrics()
    scored = [d for d in rows if "error" not in d]
    table: dict = {}
    per: dict = {}
    for m in methods:
        mine = [d for d in scored if d["method"] == m]
        table[m] = {"n_images": len(mine),
                    "map_ms": float(np.mean([d["map_ms"] for d in mine])) if mine else None}
        for name in metrics:
            vals = {d["key"]: d["scores"].get(name) for d in mine}
            vals = {k: v for k, v in vals.items() if v is not None}
            per[m, name] = vals
            if vals:
                mean, half = _interval(np.array(list(vals.values()), dtype=np.float64))
                table[m][name] = {"mean": mean, "ci95": None if math.isnan(half) else half,
                                  "n": len(vals)}
            else:
                table[m][name] = {"mean": None, "ci95": None, "n": 0}
    significant: dict = {}
    for name in metrics:
        tests = []
        for i, a in enumerate(methods):
            for b in methods[i + 1:]:
                keys = sorted(set(per[a, name]) & set(per[b, name]))
                if len(keys) < 3:
                    continue
                da = np.array([per[a, name][k] for k in keys])
                db = np.array([per[b, name][k] for k in keys])
                if np.allclose(da, db):
                    continue
                p = float(stats.ttest_rel(da, db).pvalue)
                if math.isfinite(p):
                    tests.append((p, a, b, float((da - db).mean()), len(keys)))
        tests.sort()
        found = []
        for rank, (p, a, b, diff, n) in enumerate(tests):  # Holm: stop at the first miss
            if p * (len(tests) - rank) >= 0.05:
                break
            better = a if (diff > 0) == infos[name].higher_is_better else b
            found.append({"a": a, "b": b, "better": better, "p": p, "mean_difference": diff,
                          "n": n})
        significant[name] = found
    return {"n_images": len({d["key"] for d in scored}),
            "n_failed": len({d["key"] for d in rows if "error" in d}),
            "methods": table, "significant": significant,
            "higher_is_better": {n: infos[n].higher_is_better for n in metrics}}


def metrics_table(summary: dict) -> str:
    """A Markdown table: methods x metrics, ``mean ± 95% half-width``; a ``*`` marks a method
    significantly better than every other method on that metric; then the significant pairs."""
    methods = list(summary["methods"])
    metrics = list(summary["higher_is_better"])
    head = "| method | " + " | ".join(
        f"{n} ({'higher' if summary['higher_is_better'][n] else 'lower'})" for n in metrics)
    lines = [head + " | ms / image |", "|" + "---|" * (len(metrics) + 2)]
    for m in methods:
        cells = []
        for n in metrics:
            c = summary["methods"][m][n]
            if c["mean"] is None:
                cells.append("-")
                continue
            wins = sum(1 for s in summary["significant"][n] if s["better"] == m)
            star = "*" if len(methods) > 1 and wins == len(methods) - 1 else ""
            half = f" ± {c['ci95']:.3g}" if c["ci95"] is not None else ""
            cells.append(f"{c['mean']:.3g}{half}{star}")
        ms = summary["methods"][m].get("map_ms")
        lines.append(f"| {m} | " + " | ".join(cells) + f" | {ms:.0f} |" if ms is not None
                     else f"| {m} | " + " | ".join(cells) + " | - |")
    pairs = [f"{n}: {s['better']} better than {s['b'] if s['better'] == s['a'] else s['a']} "
             f"(p = {s['p']:.2g}, n = {s['n']})"
             for n in metrics for s in summary["significant"][n]]
    lines.append("")
    lines.append(f"{summary['n_images']} photos; ± is the 95% interval of the mean; significant "
                 "differences (paired t-test, Holm, 5%): " + ("; ".join(pairs) or "none"))
    return "\n".join(lines)
