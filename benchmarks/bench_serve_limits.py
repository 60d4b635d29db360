"""Benchmark: ``deepinside serve``'s limits hold (issue 20): work that stops, memory that returns.

Starts ``deepinside serve --timeout T`` (a separate process) and measures:

1. a normal request: ``POST /v1/explain`` (the paper's gradient) of one photo, median of 5;
2. a request that runs past the time limit (RISE with 8000 masks, one per forward pass): its
   504's time, then at once a normal request: its latency against (1) (goal: within one normal
   request time, i.e. the work of the 504 stopped and freed the worker);
3. the same after a 40 MP PNG explain with ``localize`` (504 if it takes longer than the limit);
4. the server's resident memory (``/proc/PID/status`` VmRSS) before 20 class-model jobs, at its
   peak while they run and are fetched, and after their results expired (``--job-ttl``).

    python benchmarks/bench_serve_limits.py [--model efficientnet_lite0] [--timeout 3]
        [--jobs 20] [--classes 10] [--steps 8]
"""

from __future__ import annotations

import argparse
import io
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _photo(dataset: str) -> bytes:
    folder = Path(dataset) / "images"
    files = sorted(folder.glob("*.JPEG")) if folder.is_dir() else []
    if files:
        return files[0].read_bytes()
    from deepinside.images import demo_photos

    buf = io.BytesIO()
    next(iter(demo_photos()))[1].save(buf, "JPEG", quality=90)
    return buf.getvalue()


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dataset", default=os.environ.get(
        "DEEPINSIDE_DATA", str(REPO.parent / "shared/data/imagenet-val-300")))
    ap.add_argument("--model", default="efficientnet_lite0")
    ap.add_argument("--timeout", type=float, default=0.0,
                    help="the server's --timeout (default: 5 normal requests, at least 3 s)")
    ap.add_argument("--jobs", type=int, default=20)
    ap.add_argument("--classes", type=int, default=10, help="classes per job")
    ap.add_argument("--steps", type=int, default=2, help="ascent steps per job")
    ap.add_argument("--ttl", type=float, default=5.0, help="--job-ttl of the server")
    args = ap.parse_args()

    import httpx

    photo = _photo(args.dataset)
    client = httpx.Client(timeout=600)

    def start(timeout: float) -> tuple[subprocess.Popen, str]:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        proc = subprocess.Popen(
            [sys.executable, "-m", "deepinside", "serve", "--model", args.model, "--port",
             str(port), "--timeout", str(timeout), "--jobs", str(args.jobs),
             "--jobs-per-client", str(args.jobs), "--job-ttl", str(args.ttl)],
            stderr=subprocess.DEVNULL)
        url = f"http://127.0.0.1:{port}"
        for _ in range(3000):
            try:
                if client.get(f"{url}/healthz").status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        return proc, url

    def explain(method: str = "gradient", params: str = "") -> tuple[int, float]:
        t0 = time.perf_counter()
        r = client.post(f"{url}/v1/explain", files={"image": ("p.jpg", photo)},
                        data={"method": method, "params": params})
        return r.status_code, time.perf_counter() - t0

    timeout = args.timeout
    if not timeout:  # a time limit of 5 normal requests, on this machine now (at least 3 s)
        server, url = start(600)
        for _ in range(3):
            explain()  # warm-up: caches
        timeout = max(3.0, 5 * statistics.median(explain()[1] for _ in range(3)))
        server.terminate()
        server.wait()
    server, url = start(timeout)
    try:
        for _ in range(2):
            explain()  # warm-up: the fast copy, caches
        normal = [explain()[1] for _ in range(5)]
        after, stopped, codes = [], [], []
        for _ in range(3):
            code, t = explain("rise", '{"masks": 8000, "batch_size": 1}')
            assert code == 504, code
            stopped.append(t)
            code, t = explain()
            after.append(t)
            codes.append(code)

        import numpy as np
        from PIL import Image

        a = np.zeros((5000, 8000, 3), np.uint8)
        a[1000:3000, 2000:5000] = (200, 120, 40)
        buf = io.BytesIO()
        Image.fromarray(a).save(buf, "PNG")
        t0 = time.perf_counter()
        big = client.post(f"{url}/v1/explain", files={"image": ("big.png", buf.getvalue())},
                          data={"method": "gradient", "localize": "true"})
        big_t = time.perf_counter() - t0
        code, big_after = explain()

        print(f"{args.model}, --timeout {timeout:.3g}, {os.cpu_count()} CPUs, load "
              f"{os.getloadavg()[0]:.1f}")
        med = statistics.median(normal)
        print(f"normal explain (gradient): median {1e3 * med:.0f} ms "
              f"({', '.join(f'{1e3 * t:.0f}' for t in normal)})")
        print(f"rise 8000 masks: 504 after {', '.join(f'{t:.2f}' for t in stopped)} s")
        print(f"the explain right after each 504: {', '.join(f'{1e3 * t:.0f}' for t in after)} "
              f"ms (status {', '.join(map(str, codes))}) "
              f"ms = {max(after) / med:.2f}x the normal median at worst")
        print(f"40 MP PNG explain with localize: {big.status_code} after {big_t:.2f} s; the "
              f"explain right after: {code} in {1e3 * big_after:.0f} ms "
              f"= {big_after / med:.2f}x the normal median")

        rss = [_rss_mb(server.pid)]
        peak = [rss[0]]
        done = threading.Event()

        def watch() -> None:
            while not done.is_set():
                peak.append(_rss_mb(server.pid))
                time.sleep(0.05)

        threading.Thread(target=watch, daemon=True).start()
        t0 = time.perf_counter()
        classes = list(range(args.classes))
        ids = [client.post(f"{url}/v1/classmodel", json={
            "classes": classes, "mode": "lucid", "steps": args.steps}).json()["job"]
            for _ in range(args.jobs)]
        sizes = []
        for job in ids:
            while (r := client.get(f"{url}/v1/jobs/{job}")).json()["state"] in ("queued",
                                                                                  "running"):
                time.sleep(0.2)
            assert r.json()["state"] == "done", r.json()
            sizes.append(len(r.content))
        ran = time.perf_counter() - t0
        time.sleep(args.ttl + 1.0)  # the results expire; the server frees them when idle
        gone = sum(client.get(f"{url}/v1/jobs/{job}").status_code == 404 for job in ids)
        time.sleep(0.5)
        done.set()
        rss.append(_rss_mb(server.pid))
        print(f"{args.jobs} class-model jobs ({args.classes} classes, {args.steps} steps, lucid) "
              f"in {ran:.0f} s, {statistics.mean(sizes) / 2**20:.1f} MB of JSON each; "
              f"{gone} of {args.jobs} expired after --job-ttl {args.ttl:g}")
        print(f"server RSS: before {rss[0]:.0f} MB, peak {max(peak):.0f} MB, "
              f"after expiry {rss[1]:.0f} MB ({rss[1] - rss[0]:+.0f} MB)")
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
