"""Benchmark: ``POST /v1/explain`` (the paper's gradient) against calling the library directly.

Starts ``deepinside serve`` (a separate process), then sends the same
photos (the first 16 dev photos, or the demo photos) from 1, 4 and 16 concurrent clients, each
request the whole ``/v1/explain`` (upload, decode, classify, map, PNGs, JSON). The baseline is
what the server does for one request, called from Python on the same photos one at a time:
``photo_maps`` (its one forward pass gives the top-1 class and the logits), ``overlay``, the
box (``segment_map``) and the PNG encodings. Each client keeps its connection open. Prints
requests/s and p50/p95 latency.

    python benchmarks/bench_serve.py [--requests 48] [--model efficientnet_lite0]
"""

from __future__ import annotations

import argparse
import io
import os
import socket
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _photos(dataset: str) -> list[bytes]:
    from deepinside.images import demo_photos

    folder = Path(dataset) / "images"
    files = sorted(folder.glob("*.JPEG"))[:16] if folder.is_dir() else []
    if files:
        return [f.read_bytes() for f in files]
    out = []
    for _, p in demo_photos():
        buf = io.BytesIO()
        p.save(buf, "JPEG", quality=90)
        out.append(buf.getvalue())
    return out


def _pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dataset", default=os.environ.get(
        "DEEPINSIDE_DATA", str(REPO.parent / "shared/data/imagenet-val-300")))
    ap.add_argument("--model", default="efficientnet_lite0")
    ap.add_argument("--requests", type=int, default=48, help="requests per concurrency level")
    args = ap.parse_args()

    import subprocess
    import sys

    import httpx
    import numpy as np
    from PIL import Image

    import deepinside
    from deepinside.localize import get_recipe, segment_map
    from deepinside.render import overlay
    from deepinside.serve.photos import map_png, png

    clf = deepinside.load_model(args.model)
    photos = _photos(args.dataset)

    def direct(data: bytes) -> None:
        photo = Image.open(io.BytesIO(data)).convert("RGB")
        [m], _, _ = deepinside.photo_maps(clf, [photo])
        map_png(m)
        png(overlay(photo, m))
        mask, _, _ = segment_map(np.asarray(photo), m, get_recipe("gradcam-30", smooth=0.04))
        png((mask * 255).astype(np.uint8))

    for p in photos[:2]:
        direct(p)  # warm-up: caches, the fast copy
    lib = []
    for i in range(args.requests):
        t0 = time.perf_counter()
        direct(photos[i % len(photos)])
        lib.append(time.perf_counter() - t0)

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "deepinside", "serve", "--model",
                               args.model, "--port", str(port)], stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.1)

    local = threading.local()  # one keep-alive connection per client thread

    def ask(i: int) -> float:
        if not hasattr(local, "client"):
            local.client = httpx.Client(timeout=300)
        t0 = time.perf_counter()
        r = local.client.post(f"{url}/v1/explain",
                              files={"image": ("p.jpg", photos[i % len(photos)])},
                              data={"method": "gradient", "localize": "true"})
        r.raise_for_status()
        return time.perf_counter() - t0

    for i in range(2):
        ask(i)
    rows = [("library, one at a time", 1, args.requests / sum(lib), lib)]
    for clients in (1, 4, 16):
        t0 = time.perf_counter()
        with ThreadPoolExecutor(clients) as pool:
            lat = list(pool.map(ask, range(args.requests)))
        rows.append((f"server, {clients} client(s)", clients,
                     args.requests / (time.perf_counter() - t0), lat))
    server.terminate()
    server.wait()
    print(f"{clf.name}, /v1/explain (gradient, localize), {len(photos)} photos, "
          f"{args.requests} requests each, {os.cpu_count()} CPUs")
    print("| | requests/s | p50 ms | p95 ms |\n|---|---|---|---|")
    for name, _, rps, lat in rows:
        print(f"| {name} | {rps:.2f} | {1e3 * statistics.median(lat):.0f} | "
              f"{1e3 * _pct(lat, 0.95):.0f} |")
    over = statistics.median(rows[1][3]) / statistics.median(lib) - 1
    print(f"the server adds {100 * over:.0f}% at p50 with one client")


if __name__ == "__main__":
    main()
