"""``evaluate compare --metrics``: attribution methods scored by registered metrics, as a run.

For each photo of a labelled data set and each method: the method's map for the true class and
every chosen metric of :mod:`deepinside.metrics` on it, one line of ``out/per_image.jsonl``
(``{"key", "record_hash", "method", "scores": {metric: value or null}, "map_ms",
"metric_ms": {metric: milliseconds}}``, times per photo; a photo
that cannot be scored is one failure line ``{"key", "record_hash", "error"}``). The lines come
from one stage, :func:`.stages.score_metrics`, run by either backend (``local``: this process;
``ray``: model actors, :meth:`.backend.Backend.lines`) and written by this process alone
(:class:`.rundir.RecordSink`). The run directory is :mod:`.rundir`'s: ``config.json``
(everything that changes the lines), the lock, refusal of another run's folder, resume (the
photo x method lines already there are kept and not computed again; a torn last line is cut
off). A random metric draws for each photo from a seed of its own (:func:`photo_seed`), so
its value does not depend on the batch, the backend or a resume. ``summary.json`` holds, per
method and metric, the mean with its 95% confidence interval (Student's t over photos) and the
mean milliseconds per photo of the map and of each metric, and
for every metric the pairs of methods whose difference is significant (paired t-test over the
photos both scored, Holm's correction over the pairs of that metric, 5% level).
"""

from __future__ import annotations

import functools
import json
import math
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from ..methods import get_method
from ..metrics import list_metrics, resolve_metrics
from . import local_backend, ray_backend  # noqa: F401 - each registers its backend
from .backend import LinesSpec, get_backend
from .datasets import Record, label_problem
from .ray_connect import DEFAULT_TIMEOUT
from .rundir import (
    PER_IMAGE,
    SUMMARY,
    RecordSink,
    RunMismatchError,
    check_config,
    locked,
    read_json_lines,
    record_hash,
    weights_hash,
)
from .stages import photo_seed, score_metrics

__all__ = ["CHEAP", "compare_metrics", "metrics_table", "photo_seed", "summarize_metrics"]

CHEAP = "cheap"  # the default: every metric without a forward pass of its own, or a few
DRAWS = "per photo: seed hashed with its key"  # how the random metrics draw (in config.json)


def _config(model, methods: Sequence[str], metrics: Sequence[str], seed: int) -> dict:
    from dataclasses import asdict

    from .. import __version__

    pre = getattr(model, "preprocessing", None)
    module = getattr(model, "module", model)
    return {"deepinside": __version__, "kind": "compare",
            "model": getattr(model, "name", type(module).__name__),
            "weights_sha256": weights_hash(module),
            "preprocessing": asdict(pre) if pre is not None else None,
            "methods": list(methods), "metrics": list(metrics), "seed": seed, "draws": DRAWS}


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
    workers: int = 1,
    ray_address: str | None = None,
    ray_timeout: float = DEFAULT_TIMEOUT,
    actor_cpus: float | None = None,
    actor_gpus: float | None = None,
    show_progress: bool = True,
    on_problem: Callable[[str, str], None] | None = None,
    on_warning: Callable[[str, str], None] | None = None,
) -> dict:
    """Score ``methods`` on ``records`` with ``metrics``, streaming to ``out``; resumable.

    The lines are :func:`.stages.score_metrics`'s, run by the backend (``local``: in this
    process; ``ray``: in a pool of ``workers`` model actors, photos decoded in Ray tasks) and
    written by this process alone (:class:`.rundir.RecordSink`): both backends give the same
    lines, up to floating-point noise. Into an ``out`` that holds the same run, only the
    ``(photo, method)`` pairs without a line are computed; a photo that failed is not retried.

    Args:
        model: a :class:`deepinside.Classifier`.
        records: the data set (:func:`deepinside.evaluate.read_dataset`).
        out: the run directory (a run with the same settings there is resumed).
        methods: registered method names (default options).
        metrics: names, families, ``"cheap"`` or ``"all"`` (:func:`resolve_metrics`).
        batch_size: photos per batch.
        seed: the random metrics' seed (each photo draws with :func:`photo_seed`).
        backend: ``"local"`` or ``"ray"`` (or another registered backend).
        workers, ray_address, ray_timeout, actor_cpus, actor_gpus: ``ray`` only: see
            :func:`.runner.run_localization`.
        show_progress: a tqdm bar on stderr (lines: photos x methods).
        on_problem: ``(photo, reason)`` for each photo that fails (again on a resume).
        on_warning: ``(photo, note)`` for a box clipped to its photo or ignored (once each).

    Returns:
        The summary (also ``out/summary.json``).

    Raises:
        RunMismatchError: ``out`` holds another run, or lines of these photos with other
            annotations. RunLockedError: it is being written.
        ValueError: an unknown backend. ImportError: ``ray`` without Ray.
        RayConnectError: ``ray``: the cluster cannot be joined.
    """
    where = get_backend(backend)
    where.check()
    names = resolve_metrics(metrics)
    for m in methods:
        get_method(m)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with locked(out):
        check_config(out, _config(model, methods, names, seed))
        lines_path = out / PER_IMAGE
        hashes = {}
        for r in records:
            hashes.setdefault(r.key, record_hash(r))
        old = [d for d in read_json_lines(lines_path) if d["key"] in hashes]
        changed = sorted({d["key"] for d in old if d["record_hash"] != hashes[d["key"]]})
        if changed:
            raise RunMismatchError(
                f"{out} holds results for {len(changed)} of these photos with other "
                f"annotations (label or boxes; e.g. {changed[0]}); use another --out or "
                "delete it")
        settings = {"batch_size": batch_size, "workers": workers, "warn": _once(on_warning),
                    "address": ray_address, "ray_timeout": ray_timeout,
                    "actor_cpus": actor_cpus, "actor_gpus": actor_gpus}
        _stream(where, model, hashes, settings, records, lines_path, old, methods, names, seed,
                show_progress, on_problem)
        rows = [d for d in read_json_lines(lines_path) if d["key"] in hashes]
        summary = summarize_metrics(rows, methods, names)
        (out / SUMMARY).write_text(json.dumps(summary, indent=2, allow_nan=False) + "\n")
        return summary


def _once(on_warning: Callable[[str, str], None] | None) -> Callable[[object, str], None]:
    """A warning callback that says each (photo, note) once (a backend may repeat a photo's
    notes with each of its lines)."""
    said: set[tuple[str, str]] = set()

    def warn(photo: object, note: str) -> None:
        if on_warning is not None and (str(photo), note) not in said:
            said.add((str(photo), note))
            on_warning(str(photo), note)

    return warn


def _stream(where, model, hashes: dict[str, str], settings: dict, records: Sequence[Record],
            lines_path: Path, old: list[dict], methods: Sequence[str], names: list[str],
            seed: int, show_progress: bool,
            on_problem: Callable[[str, str], None] | None) -> None:
    """Hand the backend the photos with a line still to write (a :class:`.backend.LinesSpec`
    of :func:`.stages.score_metrics` with ``settings``), each line to one sink."""
    from tqdm import tqdm

    done = {(d["key"], d.get("method")) for d in old}
    failed = {d["key"]: d["error"] for d in old if "error" in d}
    n = len(methods)
    initial = sum(n if k in failed else sum((k, m) in done for m in methods) for k in hashes)
    bar = tqdm(total=n * len(hashes), initial=initial, desc="compare", unit="line",
               disable=not show_progress, file=sys.stderr, dynamic_ncols=True)
    try:
        with lines_path.open("a", encoding="utf-8") as f:
            sink = RecordSink(f, bar, {r.key: r.path for r in records}, on_problem,
                              failure_steps=n)
            todo, seen = [], set()
            for r in records:
                if r.key in seen:
                    continue
                seen.add(r.key)
                have = sum((r.key, m) in done for m in methods)
                if r.key in failed:  # failed before: said again, not retried
                    sink.report(r.key, failed[r.key])
                elif have == n:
                    continue
                elif why := label_problem(r, model):
                    sink.failure(r.key, hashes[r.key], why)
                else:
                    todo.append(r)
            if todo:
                keys = {r.key for r in todo}
                stage = functools.partial(score_metrics, methods=list(methods), metrics=names,
                                          seed=seed,
                                          done=frozenset(p for p in done if p[0] in keys))
                where.lines(LinesSpec(model, stage, hashes, **settings), todo, sink)
    finally:
        bar.close()


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
                    "map_ms": float(np.mean([d["map_ms"] for d in mine])) if mine else None,
                    "metric_ms": {n: float(np.mean(v)) for n in metrics
                                  if (v := [d["metric_ms"][n] for d in mine
                                            if n in d.get("metric_ms", {})])}}
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
                with warnings.catch_warnings():  # differences all alike: p is 0, as it should
                    warnings.simplefilter("ignore", RuntimeWarning)
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
    """A Markdown table: a row per metric (its direction), a column per method, cells
    ``mean ± 95% half-width``; a ``*`` marks a method significantly better than every other
    method on that metric; a last row of the map's milliseconds per photo; then the
    significant pairs."""
    methods = list(summary["methods"])
    metrics = list(summary["higher_is_better"])
    lines = ["| metric | " + " | ".join(methods) + " |", "|---|" + "---|" * len(methods)]
    for n in metrics:
        cells = []
        for m in methods:
            c = summary["methods"][m][n]
            if c["mean"] is None:
                cells.append("-")
                continue
            wins = sum(1 for s in summary["significant"][n] if s["better"] == m)
            star = "*" if len(methods) > 1 and wins == len(methods) - 1 else ""
            half = f" ± {c['ci95']:.3g}" if c["ci95"] is not None else ""
            cells.append(f"{c['mean']:.3g}{half}{star}")
        way = "higher" if summary["higher_is_better"][n] else "lower"
        lines.append(f"| {n} ({way}) | " + " | ".join(cells) + " |")
    ms = [summary["methods"][m].get("map_ms") for m in methods]
    lines.append("| map, ms / photo | " + " | ".join("-" if v is None else f"{v:.0f}"
                                                   for v in ms) + " |")
    pairs = [f"{n}: {s['better']} better than {s['b'] if s['better'] == s['a'] else s['a']} "
             f"(p = {s['p']:.2g}, n = {s['n']})"
             for n in metrics for s in summary["significant"][n]]
    lines.append("")
    lines.append(f"{summary['n_images']} photos; ± is the 95% interval of the mean; * better "
                 "than every other method; significant differences (paired t-test, Holm, 5%): "
                 + ("; ".join(pairs) or "none"))
    return "\n".join(lines)
