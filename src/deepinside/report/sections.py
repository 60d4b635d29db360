"""The sections of ``deepinside paper``: each computes its numbers and writes its figures.

Every function takes a :class:`Context` and returns a JSON-ready dict (the section's part of
``report.json``); the figures are PNG files in ``context.out / "figures"``, named in the dict
relative to ``context.out``. They call only the public API and the photo pipeline.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = [
    "PAPER_CLASSES",
    "Context",
    "class_models",
    "deconvnet_and_gradient",
    "localization",
    "methods_comparison",
    "metrics_comparison",
    "metrics_section",
    "saliency_maps",
]

# The classes of the paper's figure 1, as it names them.
PAPER_CLASSES = ("goose", "ostrich", "limousine", "washing machine", "computer keyboard",
                 "kit fox", "husky", "dalmatian", "bell pepper", "lemon")
PAPER_TOP5_LOC_ERR = 0.464  # ILSVRC-2013 test, the paper's section 6
# The metrics of the metrics section: none needs more than a few passes of the model per photo
# in a quick report; the full one adds a faithfulness and a randomisation metric.
QUICK_METRICS = "cheap"
FULL_METRICS = "cheap,faithfulness_correlation,random_logit"


@dataclass
class Context:
    """What every section needs.

    Attributes:
        classifier: the model the report is about.
        out: the report's folder.
        records: dataset records (photos with labels and boxes), or ``None``.
        photos: ``(name, PIL image)`` for the saliency figure (dataset or demo photos).
        quick: fewer steps and photos.
        say: progress messages (one line each).
        metrics_run: an ``evaluate compare --metrics`` run whose ``summary.json`` the metrics
            section shows (``None``: the section makes its own run in ``out/eval/``).
    """

    classifier: object
    out: Path
    records: list | None
    photos: list
    quick: bool
    say: Callable[[str], None] = print
    metrics_run: Path | None = None
    figures: Path = field(init=False)

    def __post_init__(self) -> None:
        self.figures = self.out / "figures"
        self.figures.mkdir(parents=True, exist_ok=True)

    def rel(self, path: Path) -> str:
        return path.relative_to(self.out).as_posix()


def _other_models(name: str) -> list:
    """The installed EfficientNet-Lite models other than ``name`` (judges of class models)."""
    import deepinside

    judges = []
    for other in ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"):
        if other == name:
            continue
        with contextlib.suppress(deepinside.ModelLoadError):
            judges.append(deepinside.load_model(other))
    return judges


def _probabilities(clf, images: list, classes: list[int]) -> list[float]:
    """Each image's probability of its class under ``clf`` (8-bit images, whole image)."""
    import torch
    from PIL import Image

    import deepinside

    photos = [Image.fromarray(a) for a in images]
    _, logits = deepinside.forward_photos(clf, photos, crop=False)
    probs = torch.softmax(logits.float(), dim=1)
    return [round(float(probs[i, c]), 4) for i, c in enumerate(classes)]


# ----------------------------------------------------------------------------- section 1


def class_models(ctx: Context) -> dict:
    """Paper figure 1: the paper's class models and the recognisable ones, judged."""
    import deepinside
    from deepinside.render import grid_image, save_png, uint8_images

    clf = ctx.classifier
    classes, names = [], []
    for key in PAPER_CLASSES:
        try:
            classes.append(clf.class_index(key))
            names.append(key)
        except ValueError:
            continue
    if not classes:  # not an ImageNet model: its first ten classes
        classes = list(range(min(10, len(clf.class_names))))
        names = [clf.short_name(c) for c in classes]
    if ctx.quick:
        classes, names = classes[:4], names[:4]
    judges = _other_models(getattr(clf, "name", ""))
    # lucid: its default (160); a quick report 48, about the fewest its octaves need
    steps = {"paper": 40 if ctx.quick else 200, "lucid": 48 if ctx.quick else 160}
    out: dict = {"classes": [{"class": c, "name": n} for c, n in zip(classes, names)],
                 "judges": [j.name for j in judges], "modes": {}}
    for mode in ("paper", "lucid"):
        ctx.say(f"  class models, {mode} mode: {len(classes)} classes, {steps[mode]} steps")
        t0 = time.perf_counter()
        snaps = 6 if mode == "paper" else 0
        r = deepinside.class_model(clf, classes, mode=mode, steps=steps[mode], seed=0,
                                   snapshots=snaps)
        images = uint8_images(r.images)
        grid = ctx.figures / f"classmodels_{mode}.png"
        save_png(grid_image(images, names), grid)
        probs = {clf.name: _probabilities(clf, images, classes)}
        for j in judges:
            probs[j.name] = _probabilities(j, images, classes)
        entry = {"steps": steps[mode], "seconds": round(time.perf_counter() - t0, 1),
                 "figure": ctx.rel(grid), "probability": probs}
        if snaps:
            frames = [uint8_images(s)[0] for s in r.snapshots]
            evo = ctx.figures / "classmodel_evolution.png"
            save_png(grid_image(frames, [f"step {k}" for k in r.snapshot_steps],
                                columns=len(frames)), evo)
            entry["evolution"] = {"class": names[0], "figure": ctx.rel(evo),
                                  "steps": list(r.snapshot_steps),
                                  "objective": [round(float(v), 3)
                                                for v in r.objective[:, 0].tolist()]}
        out["modes"][mode] = entry
    return out


# ----------------------------------------------------------------------------- section 2


def saliency_maps(ctx: Context) -> dict:
    """Paper figure 2: photos, their top-1 class and the paper's map, on a grid."""
    import deepinside
    from deepinside.render import heatmap, save_figure, to_uint8

    clf = ctx.classifier
    photos = ctx.photos[: 4 if ctx.quick else 8]
    maps, targets, logits = deepinside.photo_maps(clf, [p for _, p in photos])
    probs = logits.softmax(dim=1)
    rows, titles, items = [], [], []
    for (name, photo), m, t, p in zip(photos, maps, targets.tolist(), probs):
        rows.append([to_uint8(photo), heatmap(m)])
        titles.append([f"{name}", f"{clf.short_name(t)} ({float(p[t]):.2f})"])
        items.append({"photo": name, "class": t, "name": clf.short_name(t),
                      "prob": round(float(p[t]), 4)})
    path = save_figure(rows, ctx.figures / "saliency.png", titles, cell=2.4)
    return {"figure": ctx.rel(path), "photos": items}


# ----------------------------------------------------------------------------- section 3


class _ConvPool:
    """A small convolutional network; with ``relu`` rectifiers after its convolutions."""

    @staticmethod
    def make(relu: bool, seed: int = 0):
        import torch
        from torch import nn

        torch.manual_seed(seed)
        act = nn.ReLU if relu else nn.Identity
        return nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), act(), nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, padding=1), act(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(16 * 8 * 8, 10),
        ).eval()


def deconvnet_and_gradient(ctx: Context) -> dict:
    """Section 4: the deconvnet reconstruction against the gradient, measured."""
    import torch

    import deepinside
    from deepinside.evaluate.faithfulness import spearman

    clf = ctx.classifier
    photos = [p for _, p in ctx.photos[: 4 if ctx.quick else 16]]
    x = deepinside.model_batch(clf, photos, crop=False)
    maps = {m: deepinside.get_method(m)(clf, x).float().cpu()
            for m in ("gradient", "deconvnet", "guided_backprop")}

    def corr(a: str, b: str) -> dict:
        c = spearman(maps[a], maps[b])
        return {"mean": round(float(c.mean()), 4), "min": round(float(c.min()), 4),
                "max": round(float(c.max()), 4)}

    g = torch.Generator().manual_seed(0)
    probe = torch.randn(4, 3, 32, 32, generator=g)
    exact = {}
    for relu in (False, True):
        net = _ConvPool.make(relu)
        a = deepinside.get_method("deconvnet")(net, probe, 3, reduce="none", fast=False)
        b = deepinside.get_method("gradient")(net, probe, 3, reduce="none", fast=False)
        exact["with_relu" if relu else "without_relu"] = {
            "max_abs_difference": float((a - b).abs().max()),
            "relative": float((a - b).abs().max() / b.abs().max())}
    return {"n_photos": len(photos), "model": {
        "deconvnet_vs_gradient": corr("deconvnet", "gradient"),
        "deconvnet_vs_guided_backprop": corr("deconvnet", "guided_backprop"),
        "guided_backprop_vs_gradient": corr("guided_backprop", "gradient")},
        "conv_maxpool_network": exact}


# ----------------------------------------------------------------------------- section 4


def localization(ctx: Context) -> dict:
    """Paper figure 3 and section 6: GrabCut from the map, and the dataset's tables."""
    import deepinside
    from deepinside.evaluate.runner import run_localization
    from deepinside.render import draw_localizations, heatmap, save_figure, to_uint8

    clf = ctx.classifier
    shown = ctx.photos[:3]
    locs = deepinside.localize(clf, [p for _, p in shown], recipe="paper")
    rows, titles = [], []
    for (name, photo), [loc] in zip(shown, locs):
        fg = to_uint8(photo).copy()
        fg[~loc.mask] = (fg[~loc.mask] * 0.25).astype(np.uint8)
        rows.append([to_uint8(photo), heatmap(loc.saliency), fg, draw_localizations(photo, [loc])])
        titles.append([name, "gradient map", "GrabCut foreground", f"box: {loc.name}"])
    fig = save_figure(rows, ctx.figures / "localization.png", titles, cell=2.4)
    out: dict = {"figure": ctx.rel(fig), "paper_top5_loc_err": PAPER_TOP5_LOC_ERR}
    if ctx.records is None:
        out["skipped"] = "no dataset with boxes (--dataset): the table needs ground-truth boxes"
        return out
    table = {}
    for recipe in ("paper", "default"):
        ctx.say(f"  localisation, recipe {recipe}: {len(ctx.records)} photos")
        s = run_localization(clf, ctx.records, ctx.out / "eval" / recipe, recipe=recipe,
                             workers=1 if recipe == "paper" else 0, show_progress=False)
        table[recipe] = {k: s[k] for k in ("n_images", "gt_known_loc_acc", "top1_loc_acc",
                                           "top5_loc_err", "pointing_game", "top1_cls_acc",
                                           "top5_cls_acc")}
        table[recipe]["baselines"] = s["baselines"]
    out["table"] = table
    return out


# ----------------------------------------------------------------------------- section 5


def methods_comparison(ctx: Context) -> dict:
    """Beyond the paper: pointing game, deletion / insertion and the sanity check per method."""
    from deepinside.evaluate.compare import compare_methods
    from deepinside.methods import method_names

    if ctx.records is None:
        return {"skipped": "no dataset with boxes (--dataset): the pointing game and the "
                           "localisation column need ground-truth boxes"}
    methods = method_names(report="quick" if ctx.quick else "full")
    records = ctx.records[: 4 if ctx.quick else 32]
    ctx.say(f"  methods comparison: {len(methods)} methods on {len(records)} photos")
    rows = compare_methods(ctx.classifier, records, methods, steps=8 if ctx.quick else 16)
    return {"n_photos": len(records),
            "rows": [{k: (round(v, 4) if isinstance(v, float) else v)
                      for k, v in r.to_dict().items()} for r in rows]}


def metrics_comparison(ctx: Context) -> dict:
    """Beyond the paper: the methods scored by metrics of Quantus's families, means with 95%
    intervals and the significant differences (an ``evaluate compare --metrics`` run in
    ``out/eval/metrics[-quick]``, resumable as any run; or the summary of ``ctx.metrics_run``)."""
    from deepinside.evaluate.metrics_run import compare_metrics
    from deepinside.methods import method_names

    if ctx.metrics_run is not None:
        run = Path(ctx.metrics_run)
        summary = json.loads((run / "summary.json").read_text())
        inside = run.resolve().is_relative_to(ctx.out.resolve())  # shown as the page links it
        return metrics_section(summary, run.resolve().relative_to(ctx.out.resolve()).as_posix()
                               if inside else str(run))
    if ctx.records is None:
        return {"skipped": "no dataset with labels and boxes (--dataset): the metrics explain "
                           "the true class and the localisation ones need ground-truth boxes"}
    methods = list(method_names(report="quick" if ctx.quick else "full"))
    metrics = QUICK_METRICS if ctx.quick else FULL_METRICS
    records = ctx.records[: 4 if ctx.quick else 32]
    run = ctx.out / "eval" / ("metrics-quick" if ctx.quick else "metrics")
    ctx.say(f"  metrics: {len(methods)} methods on {len(records)} photos ({metrics})")
    summary = compare_metrics(ctx.classifier, records, run, methods, metrics,
                              show_progress=False)
    return metrics_section(summary, ctx.rel(run))


def metrics_section(summary: dict, run: str) -> dict:
    """The metrics section's part of ``report.json`` from a run's ``summary.json``: per metric
    (its direction) and method the mean, the 95% half-width and the count, and the pairs of
    methods whose difference is significant (paired t-test, Holm, 5%)."""
    def r4(v):
        return None if v is None else round(float(v), 4)

    methods = list(summary["methods"])
    rows = []
    for name, higher in summary["higher_is_better"].items():
        cells = {m: {"mean": r4(summary["methods"][m][name]["mean"]),
                     "ci95": r4(summary["methods"][m][name]["ci95"]),
                     "n": summary["methods"][m][name]["n"]} for m in methods}
        pairs = [{"better": p["better"], "worse": p["b"] if p["better"] == p["a"] else p["a"],
                  "p": float(f"{p['p']:.3g}"), "n": p["n"]}
                 for p in summary["significant"].get(name, [])]
        rows.append({"metric": name, "higher_is_better": higher, "methods": cells,
                     "significant": pairs})
    return {"run": run, "n_photos": summary["n_images"], "n_failed": summary["n_failed"],
            "methods": methods, "map_ms": {m: r4(summary["methods"][m].get("map_ms"))
                                           for m in methods},
            "rows": rows}


def cached(path: Path, config: dict, compute: Callable[[], dict], figures: Path) -> dict:
    """``compute()``, or its stored result when ``config`` is unchanged and its figures exist."""
    if path.exists():
        try:
            stored = json.loads(path.read_text())
        except ValueError:
            stored = {}
        if stored.get("config") == config:
            result = stored["result"]
            names = [v for v in _strings(result) if v.startswith("figures/")]
            if all((figures.parent / n).is_file() for n in names):
                return {**result, "reused": True}
    result = compute()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"config": config, "result": result}, indent=1) + "\n")
    return result


def _strings(obj: object):
    if isinstance(obj, str):
        yield obj
    elif isinstance(obj, dict):
        for v in obj.values():
            yield from _strings(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _strings(v)
