"""``deepinside paper``: Simonyan, Vedaldi & Zisserman (2013) regenerated as one page.

https://arxiv.org/abs/1312.6034. :func:`paper_report` runs each section of the paper on a
classifier and a dataset with boxes (:mod:`.sections`), keeps each section's result in
``out/cache/`` (so an interrupted report resumes, and a second run with the same arguments only
re-renders), and writes ``out/index.html`` (:mod:`.page`; no CDN, the figures beside it),
``out/report.json`` (every number the page shows) and ``out/figures/``. The localisation
tables are ``deepinside evaluate localization`` runs in ``out/eval/<recipe>/``, the metrics
table an ``evaluate compare --metrics`` run in ``out/eval/metrics[-quick]/``.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

from . import sections
from .page import render_page

__all__ = ["paper_report"]

QUICK_PHOTOS = 50  # --quick: the tables on the first 50 photos of the dataset

SECTIONS = (
    ("class_models", "Class models (figure 1)", sections.class_models),
    ("saliency", "Saliency maps (figure 2)", sections.saliency_maps),
    ("deconvnet", "Deconvnet and the gradient (section 4)", sections.deconvnet_and_gradient),
    ("localization", "Localisation (figure 3, section 6)", sections.localization),
    ("methods", "Beyond the paper", sections.methods_comparison),
    ("metrics", "Methods scored by metrics", sections.metrics_comparison),
)


def _versions() -> dict:
    import numpy
    import timm
    import torch

    from .. import __version__

    return {"deepinside": __version__, "torch": torch.__version__, "timm": timm.__version__,
            "numpy": numpy.__version__, "python": platform.python_version()}


def _machine() -> dict:
    import torch

    cpu = platform.processor() or platform.machine()
    return {"system": f"{platform.system()} {platform.release()}", "cpu": cpu,
            "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}


def _timed(fn: Callable[[sections.Context], dict], ctx: sections.Context) -> dict:
    t0 = time.perf_counter()
    result = fn(ctx)
    result["seconds"] = round(time.perf_counter() - t0, 1)
    return result


def paper_report(
    classifier,
    out: str | Path,
    *,
    records: list | None = None,
    dataset: str | None = None,
    quick: bool = False,
    say: Callable[[str], None] | None = None,
    metrics_run: str | Path | None = None,
) -> dict:
    """Regenerate the paper's figures and tables on ``classifier``; write the page.

    Args:
        classifier: a :class:`deepinside.Classifier`.
        out: the report's folder (created; a report already there with the same arguments is
            reused section by section).
        records: a dataset with boxes (``deepinside.evaluate.read_dataset``), or ``None``: the
            demo photos, and no table that needs boxes.
        dataset: the dataset's path, for the page.
        quick: fewer classes, steps and photos (the first :data:`QUICK_PHOTOS` of the
            dataset); the page says so.
        say: progress messages (default: stderr).
        metrics_run: an ``evaluate compare --metrics`` run folder whose ``summary.json`` the
            metrics section shows, instead of making its own run (a small one in ``out/eval``).

    Returns:
        The content of ``report.json``.
    """
    from ..images import ImageLoadError, demo_photos, load_image

    say = say or (lambda m: print(m, file=sys.stderr, flush=True))
    if quick and records is not None:
        records = records[:QUICK_PHOTOS]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    photos = []
    if records is not None:
        for r in records:
            try:
                photos.append((Path(r.key).name, load_image(r.path)))
            except ImageLoadError:  # an unreadable photo is left out of the figures
                continue
            if len(photos) == (8 if quick else 16):
                break
    if not photos:  # no dataset, or none of its first photos can be read
        photos = demo_photos()
    ctx = sections.Context(classifier, out, records, photos, quick, say,
                           Path(metrics_run) if metrics_run is not None else None)
    from ..classmodel import mode_defaults
    from ..evaluate.runner import weights_hash

    pre = getattr(classifier, "preprocessing", None)
    config = {"model": classifier.name, "dataset": dataset,
              "weights_sha256": weights_hash(classifier.module),
              "preprocessing": repr(pre),
              "photos": [r.key for r in records] if records is not None else "demo",
              "quick": quick, "version": _versions()["deepinside"]}
    # what only one section depends on is in that section's key alone, so that another
    # metrics run re-renders the report instead of recomputing it
    only = {"metrics": {"metrics_run": str(metrics_run) if metrics_run is not None else None},
            "class_models": {"defaults": repr(mode_defaults("lucid"))}}
    report: dict = {
        "title": "Deep Inside Convolutional Networks, regenerated",
        "paper": "Simonyan, Vedaldi & Zisserman 2013, https://arxiv.org/abs/1312.6034",
        "model": classifier.name, "dataset": dataset or "demo photos (no boxes)",
        "n_photos": len(records) if records is not None else len(photos),
        "quick": quick, "versions": _versions(), "machine": _machine(), "sections": {},
    }
    for i, (key, title, fn) in enumerate(SECTIONS, start=1):
        say(f"[{i}/{len(SECTIONS)}] {title}")
        report["sections"][key] = sections.cached(
            out / "cache" / f"{key}.json", {**config, **only.get(key, {})},
            lambda fn=fn: _timed(fn, ctx), ctx.figures)
    loc = report["sections"]["localization"].get("table", {}).get("paper")
    if loc:
        report["accuracy"] = {"top1": loc["top1_cls_acc"], "top5": loc["top5_cls_acc"]}
    report["seconds"] = round(time.perf_counter() - t0, 1)
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / "index.html").write_text(render_page(report), encoding="utf-8")
    return report
