"""Benchmark: photos/s of the localisation evaluation by backend (local, ray) and workers.

Each configuration runs the whole ``run_localization`` (photo reading, maps, segmentation,
scores, ``per_image.jsonl``) on the first N photos of imagenet-val-300 into a fresh folder, in
this process, with the model already loaded. ``local/0`` is everything in this process;
``local/N`` has N GrabCut worker processes (a threshold recipe never uses them); ``ray/N`` is
the Ray Data pipeline with N model actors on a local Ray of this machine's cores (or, with
``--ray-nodes K``, a cluster of K raylets on this machine, ``ray.cluster_utils.Cluster``, the
cores split between them; or the cluster at ``--ray-address``), started before the clock (its
start is printed apart), so its time includes the actors' start-up (each imports torch and
receives the model) as the local workers' time includes theirs.

    python benchmarks/bench_scale.py [--n 300] [--recipes paper,default]
                                     [--configs local/0,local/1,local/2,ray/2]
                                     [--ray-nodes 2 | --ray-address HEAD:6379] [--json out.json]

Prints one table per recipe: seconds, photos/s, the ratio to the first configuration, the
first-photo latency (from the call to the first line of ``per_image.jsonl``: workers or actors
starting, the first batch's maps) and the steady rate after it (the other photos over the
time from the first line to the end), and how many of its records (timings aside) equal the
first configuration's. (With GrabCut a map that differs in its last bits, from another number
of torch threads or another batch, can move a seed pixel and so a box: the threshold recipes
agree exactly, GrabCut's nearly.)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def records_of(path: Path) -> list[dict]:
    """The lines of a per_image.jsonl, sorted by key, without their timings."""
    rows = [json.loads(x) for x in path.read_text().splitlines()]
    return sorted(({k: v for k, v in r.items() if k != "seconds"} for r in rows),
                  key=lambda r: r["key"])


class FirstLine:
    """The moment ``path`` gets its first byte (polled every 10 ms in a thread)."""

    def __init__(self, path: Path) -> None:
        self.path, self.at = path, None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.is_set():
            if self.path.exists() and self.path.stat().st_size:
                self.at = time.perf_counter()
                return
            time.sleep(0.01)

    def stop(self) -> float | None:
        self._stop.set()
        self._thread.join()
        return self.at


def start_ray(nodes: int, address: str | None):
    """Ray for the ``ray/N`` configurations: a cluster to join, a local Ray, or ``nodes``
    raylets on this machine; returns what to shut down (or ``None``)."""
    import ray

    from deepinside.evaluate import connect_ray
    from deepinside.evaluate.ray_connect import OBJECT_STORE_BYTES

    if address or nodes <= 1:
        print(connect_ray(address), file=sys.stderr)
        return None
    from ray.cluster_utils import Cluster

    # its own temporary directory: not this machine's /tmp/ray (another Ray's "auto")
    os.environ["RAY_TMPDIR"] = tempfile.mkdtemp(prefix="di-bench-", dir="/tmp")
    per = max(1, (os.cpu_count() or 1) // nodes)
    store = OBJECT_STORE_BYTES // nodes
    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": per, "object_store_memory": store, "include_dashboard": False})
    for _ in range(nodes - 1):
        cluster.add_node(num_cpus=per, object_store_memory=store)
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, log_to_driver=False, logging_level="WARNING")
    print(f"ray: {nodes} nodes of {per} CPU each on this machine", file=sys.stderr)
    return cluster


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dataset", default=os.environ.get(
        "DEEPINSIDE_DATA", str(REPO.parent / "shared/data/imagenet-val-300")))
    ap.add_argument("--n", type=int, default=300, help="photos")
    ap.add_argument("--model", default="efficientnet_lite0")
    ap.add_argument("--recipes", default="paper,default")
    ap.add_argument("--configs", default="local/0,local/1,local/2,ray/2",
                    help="comma-separated backend/workers")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--ray-nodes", type=int, default=1,
                    help="ray/N on this many raylets of this machine (its cores split)")
    ap.add_argument("--ray-address", default=None, help="ray/N on this cluster instead")
    ap.add_argument("--json", default=None, help="also write the results to this file")
    args = ap.parse_args()

    import torch

    import deepinside
    from deepinside.evaluate import read_dataset, run_localization

    torch.set_num_threads(os.cpu_count() or 1)
    records, _ = read_dataset(args.dataset)
    records = records[:args.n]
    model = deepinside.load_model(args.model)
    configs = [(c.split("/")[0], int(c.split("/")[1])) for c in args.configs.split(",")]
    ray_start, cluster = None, None
    if any(b == "ray" for b, _ in configs):
        t0 = time.perf_counter()
        cluster = start_ray(args.ray_nodes, args.ray_address)
        ray_start = time.perf_counter() - t0
        print(f"ray start: {ray_start:.1f} s (not counted below)", file=sys.stderr)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"load average before: {load:.1f} on {os.cpu_count()} CPUs", file=sys.stderr)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for recipe in args.recipes.split(","):
            base = None
            print(f"\n{recipe}, {len(records)} photos, {args.model}, {os.cpu_count()} CPUs, "
                  f"batch {args.batch_size}")
            print(f"{'config':<10} {'seconds':>8} {'photos/s':>9} {'x first':>8} "
                  f"{'first s':>8} {'steady/s':>9} {'x first':>8}  same     map s/photo  "
                  "segment s/photo")
            for backend, workers in configs:
                out = Path(tmp) / f"{recipe}-{backend}-{workers}"
                watch = FirstLine(out / "per_image.jsonl")
                t0 = time.perf_counter()
                s = run_localization(model, records, out, recipe=recipe, workers=workers,
                                     batch_size=args.batch_size, show_progress=False,
                                     backend=backend)
                end = time.perf_counter()
                secs, first = end - t0, (watch.stop() or end) - t0
                steady = (len(records) - 1) / max(1e-9, secs - first)
                rows = records_of(out / "per_image.jsonl")
                if base is None:
                    base = (secs, rows, steady)
                differ = sum(a != b for a, b in zip(rows, base[1])) + abs(len(rows) - len(base[1]))
                same = f"{len(rows) - differ}/{len(rows)}"
                row = {"recipe": recipe, "backend": backend, "workers": workers,
                       "photos": len(records), "seconds": round(secs, 2),
                       "photos_per_s": round(len(records) / secs, 3),
                       "vs_first": round(base[0] / secs, 3),
                       "first_photo_s": round(first, 2), "steady_photos_per_s": round(steady, 3),
                       "steady_vs_first": round(steady / base[2], 3), "records_as_first": same,
                       "gt_known_loc_acc": s["gt_known_loc_acc"],
                       "stage_seconds_per_photo": s["seconds_per_image"]}
                results.append(row)
                print(f"{backend + '/' + str(workers):<10} {secs:>8.1f} "
                      f"{row['photos_per_s']:>9.2f} {row['vs_first']:>8.2f} {first:>8.1f} "
                      f"{steady:>9.2f} {row['steady_vs_first']:>8.2f}  {same:<8} "
                      f"{s['seconds_per_image']['map']:>11.3f}  "
                      f"{s['seconds_per_image']['segment']:>15.3f}", flush=True)
    if cluster is not None:
        import ray

        ray.shutdown()
        cluster.shutdown()
        shutil.rmtree(os.environ["RAY_TMPDIR"], ignore_errors=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"ray_start_s": ray_start, "load_average": load,
                                               "runs": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
