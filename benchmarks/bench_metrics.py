"""Benchmark: the runtime of every evaluation metric, per photo, on the dev photos.

Run:  .venv/bin/python benchmarks/bench_metrics.py [--photos 4] [--method gradient]
      [--metrics all] [--threads 2] [--json out.json]

efficientnet_lite0 at 224 x 224, the first ``--photos`` photos of imagenet-val-300 (their
ground-truth boxes and labels) in one batch; the maps of ``--method`` for the true class; each
metric with its defaults (docs/metrics.md), timed once after a warm-up call of the method.
Prints milliseconds per photo and the batch's mean value of each metric.

Or, with ``--from-run DIR``: the timings an ``evaluate compare --metrics`` run measured as it
went (``DIR/summary.json``: the mean milliseconds per photo of each method's map and of each
metric on its maps), as a Markdown table; nothing is computed.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--photos", type=int, default=4)
    ap.add_argument("--method", default="gradient")
    ap.add_argument("--metrics", default="all", help="names, families, all or cheap")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", default=None)
    ap.add_argument("--from-run", default=None, metavar="DIR",
                    help="print the timings of an evaluate compare --metrics run instead")
    ap.add_argument("--dataset", default=os.environ.get(
        "DEEPINSIDE_DATA", str(REPO.parent / "shared/data/imagenet-val-300")))
    args = ap.parse_args()
    if args.from_run:
        print(run_timings(json.loads((Path(args.from_run) / "summary.json").read_text())))
        return
    torch.set_num_threads(args.threads)

    import deepinside
    from deepinside.evaluate import read_dataset
    from deepinside.images import load_image
    from deepinside.metrics import get_metric, list_metrics, resolve_metrics

    clf = deepinside.load_model("efficientnet_lite0")
    records, _ = read_dataset(args.dataset)
    records = records[: args.photos]
    photos = [load_image(r.path) for r in records]
    x = deepinside.photos_to_batch(photos, clf.preprocessing, crop=False)
    h, w = x.shape[-2:]
    boxes = [[(b[0] * w / p.width, b[1] * h / p.height, b[2] * w / p.width, b[3] * h / p.height)
              for b in r.boxes] for r, p in zip(records, photos)]
    labels = torch.tensor([r.label for r in records])
    method = deepinside.get_method(args.method)
    method(clf, x[:1], labels[:1])
    t0 = time.perf_counter()
    maps = method(clf, x, labels)
    map_ms = 1000 * (time.perf_counter() - t0) / len(records)
    print(f"{args.method}: {map_ms:.0f} ms per photo for the map; {len(records)} photos, "
          f"{torch.get_num_threads()} threads")
    rows = []
    infos = list_metrics()
    for name in resolve_metrics(args.metrics):
        info = infos[name]
        opts = {}
        if "boxes" in info.needs:
            opts["boxes"] = boxes
        if "method" in info.needs:
            opts["method"] = args.method
        t0 = time.perf_counter()
        v = get_metric(name)(clf, x, maps, labels, **opts)
        ms = 1000 * (time.perf_counter() - t0) / len(records)
        mean = float(v[~torch.isnan(v)].mean()) if bool((~torch.isnan(v)).any()) else math.nan
        rows.append({"metric": name, "family": info.family, "ms_per_photo": ms, "mean": mean})
        print(f"{name:26s} {info.family:14s} {ms:10.0f} ms/photo   mean {mean:.4g}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"method": args.method, "map_ms": map_ms,
                                               "photos": len(records), "rows": rows}, indent=2))


def run_timings(summary: dict) -> str:
    """A Markdown table of a run's timings: a row per metric, a column per method (ms per
    photo; the map's first, then each metric's on that method's maps, with the metric's
    share of the method's total)."""
    methods = list(summary["methods"])
    total = {m: (summary["methods"][m]["map_ms"] or 0.0)
             + sum(summary["methods"][m]["metric_ms"].values()) for m in methods}
    lines = ["| ms / photo | " + " | ".join(methods) + " |", "|---|" + "---:|" * len(methods)]
    lines.append("| the map | " + " | ".join(f"{summary['methods'][m]['map_ms']:.0f}"
                                             for m in methods) + " |")
    for n in summary["higher_is_better"]:
        cells = []
        for m in methods:
            v = summary["methods"][m]["metric_ms"].get(n)
            cells.append("-" if v is None else f"{v:.0f} ({100 * v / total[m]:.0f}%)")
        lines.append(f"| {n} | " + " | ".join(cells) + " |")
    lines.append("| total | " + " | ".join(f"{total[m]:.0f}" for m in methods) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
