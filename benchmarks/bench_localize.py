"""Benchmark: images per second of the whole localisation evaluation, and GrabCut's share.

The whole pipeline of ``deepinside evaluate localization``: read the photo, the saliency map for
its true class (this process, 1 torch thread), GrabCut / threshold and the metrics (worker
processes), one line of ``per_image.jsonl``. Runs on the first N photos of imagenet-val-300.

    python benchmarks/bench_localize.py [--n 48] [--recipe paper] [--workers 0,1,2]
    python benchmarks/bench_localize.py --whole-command --n 80 [--repeat 3]

The first form times ``run_localization`` inside one process: images/s include starting the
worker processes; the "without the start" figure subtracts the time of a run on one photo.
GrabCut's share is the time in segmentation over the wall time of the in-process run
(``--workers 0``), where nothing overlaps.

``--whole-command`` times what a user waits for, from outside: the whole
``deepinside evaluate localization --recipe paper --limit N`` command with ``--workers 0`` (all in
one process) and ``--workers 2``, alternated, ``--repeat`` times each, into fresh output folders;
it prints the median wall time of each and their ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dataset", default=os.environ.get(
        "DEEPINSIDE_DATA", str(REPO.parent / "shared/data/imagenet-val-300")))
    ap.add_argument("--n", type=int, default=48, help="photos")
    ap.add_argument("--recipe", default="paper")
    ap.add_argument("--model", default="efficientnet_lite0")
    ap.add_argument("--workers", default="0,1,2", help="comma-separated worker counts")
    ap.add_argument("--json", default=None, help="also write the results to this file")
    ap.add_argument("--whole-command", action="store_true",
                    help="time the whole `deepinside evaluate localization` command, -j 0 vs -j 2")
    ap.add_argument("--repeat", type=int, default=3, help="runs of each (--whole-command)")
    ap.add_argument("--src", action="append", default=[],
                    help="(--whole-command) also time the package in this src folder, e.g. a "
                         "checkout of an older version (python -m deepinside with PYTHONPATH)")
    args = ap.parse_args()
    if args.whole_command:
        whole_command(args)
        return

    import torch

    torch.set_num_threads(1)
    import deepinside
    from deepinside.evaluate import read_dataset, run_localization

    records, _ = read_dataset(args.dataset)
    records = records[: args.n]
    clf = deepinside.load_model(args.model)
    run_localization(clf, records[:2], tempfile.mkdtemp(), recipe=args.recipe, workers=0,
                     show_progress=False)  # warm-up: model, caches
    results = {"n_images": len(records), "recipe": args.recipe, "cpus": os.cpu_count(),
               "runs": {}}
    for w in [int(x) for x in args.workers.split(",")]:
        with tempfile.TemporaryDirectory() as out:  # one photo: mostly starting the workers
            t0 = time.perf_counter()
            run_localization(clf, records[:1], out, recipe=args.recipe, workers=w,
                             show_progress=False)
            one = time.perf_counter() - t0
        with tempfile.TemporaryDirectory() as out:
            t0 = time.perf_counter()
            s = run_localization(clf, records, out, recipe=args.recipe, workers=w,
                                 show_progress=False)
            wall = time.perf_counter() - t0
        sec = s["seconds_per_image"]
        steady = (len(records) - 1) / max(wall - one, 1e-9)
        results["runs"][w] = {"images_per_s": len(records) / wall, "wall_s": wall,
                              "one_image_s": one, "steady_images_per_s": steady,
                              "map_s_per_image": sec["map"],
                              "segment_s_per_image": sec["segment"]}
        if w == 0:
            results["grabcut_share"] = sec["segment"] * len(records) / wall
        print(f"workers={w}: {len(records) / wall:6.2f} images/s, {steady:6.2f} without the "
              f"start ({one:4.1f} s for one photo; wall {wall:6.1f} s, "
              f"map {sec['map'] * 1e3:6.1f} ms/img, segment {sec['segment'] * 1e3:6.1f} ms/img)",
              flush=True)
    runs = results["runs"]
    if 1 in runs and 2 in runs:
        results["speedup_2_vs_1"] = runs[2]["images_per_s"] / runs[1]["images_per_s"]
        results["steady_speedup_2_vs_1"] = (runs[2]["steady_images_per_s"]
                                            / runs[1]["steady_images_per_s"])
        print(f"2 workers / 1 worker: {results['speedup_2_vs_1']:.2f}x "
              f"({results['steady_speedup_2_vs_1']:.2f}x without the start)")
    if "grabcut_share" in results:
        print(f"segmentation ({args.recipe}) share of the in-process time: "
              f"{results['grabcut_share']:.0%}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")


def whole_command(args: argparse.Namespace) -> None:
    """Median wall time of the whole command with 0 and 2 workers, and their ratio."""
    versions = {"this": None, **{src: src for src in args.src}}
    times = {(v, w): [] for v in versions for w in (0, 2)}
    for _ in range(args.repeat):
        for (v, w), seen in times.items():
            env = dict(os.environ)
            if versions[v] is not None:
                env["PYTHONPATH"] = str(Path(versions[v]).resolve())
            with tempfile.TemporaryDirectory() as out:
                cmd = [sys.executable, "-m", "deepinside", "evaluate", "localization",
                       "--dataset", args.dataset, "--recipe", args.recipe, "--model", args.model,
                       "--limit", str(args.n), "--workers", str(w), "--out", out]
                t0 = time.perf_counter()
                subprocess.run(cmd, check=True, capture_output=True, env=env)
                seen.append(time.perf_counter() - t0)
            print(f"{v}: workers={w}: {seen[-1]:6.1f} s", flush=True)
    results = {"n_images": args.n, "recipe": args.recipe, "cpus": os.cpu_count(), "runs": {}}
    for v in versions:
        med0, med2 = statistics.median(times[v, 0]), statistics.median(times[v, 2])
        results["runs"][v] = {"seconds_workers_0": times[v, 0], "seconds_workers_2": times[v, 2],
                              "median_0": med0, "median_2": med2, "ratio_0_over_2": med0 / med2}
        print(f"{v}: whole command, {args.n} photos, recipe {args.recipe}, {os.cpu_count()} "
              f"CPUs: median {med0:.1f} s with --workers 0, {med2:.1f} s with --workers 2: "
              f"{med0 / med2:.2f}x")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
