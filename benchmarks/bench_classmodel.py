"""Seconds per ascent step of ``class_model`` against the floor.

The floor is one forward and one backward pass (gradient with respect to the input only) of the
same batch through the same BN-folded ``channels_last`` copy of the model: the least any
gradient-ascent step can cost. The lucid mode's batch is ``classes x copies`` transformed images
at each octave's size (half, three quarters, then the whole image by default), so its floor is
the sum over the steps of the floor at that step's size; the paper mode's is ``classes`` images
at full size. Target: within 1.15x.

Usage::

    python benchmarks/bench_classmodel.py                 # 10 classes, 224 px, lite0
    python benchmarks/bench_classmodel.py --threads 1 --steps 6
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch

import deepinside
from deepinside.classmodel import class_model, mode_defaults, octave_plan
from deepinside.fastmodel import fast_copy

CLASSES = [130, 1, 9, 250, 291, 543, 951, 945, 417, 980]


def floor(module, batch: int, size: int, repeats: int) -> float:
    """Median seconds of one forward + input-gradient backward of ``batch`` images."""
    x = torch.randn(batch, 3, size, size)
    net = fast_copy(module, x) or module
    x = x.contiguous(memory_format=torch.channels_last).requires_grad_(True)
    t = torch.zeros(batch, dtype=torch.long)
    times = []
    for i in range(repeats + 1):
        t0 = time.perf_counter()
        logits = net(x)
        torch.autograd.grad(logits.gather(1, t[:, None]).sum(), x)
        if i:  # the first call warms up
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def step_times(clf, mode: str, steps: int, size: int) -> list[float]:
    """Seconds of each step after the first of one ``class_model`` run (the first warms up)."""
    stamps: list[float] = []
    class_model(clf, CLASSES, mode=mode, steps=steps + 1, size=size,
                progress=lambda _n: stamps.append(time.perf_counter()))
    return [b - a for a, b in zip(stamps, stamps[1:])]


def input_sizes(mode: str, steps: int, size: int) -> list[int]:
    """The network's input size at each of the steps after the first."""
    octaves = mode_defaults(mode).get("octaves", ((1.0, 1.0),))
    return [max(8, round(size * sc)) for sc in octave_plan(steps + 1, octaves)][1:]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="efficientnet_lite0")
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: leave)")
    ap.add_argument("--modes", nargs="+", default=["lucid", "paper"])
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    clf = deepinside.load_model(args.model)
    print(f"{args.model}, {len(CLASSES)} classes, {args.size} px, "
          f"{torch.get_num_threads()} threads")
    print("| mode | batch | input sizes | s/run (steps after the first) | floor s | ratio |")
    print("|---|---|---|---|---|---|")
    for mode in args.modes:
        batch = len(CLASSES) * int(mode_defaults(mode).get("copies", 1))
        sizes = input_sizes(mode, args.steps, args.size)
        floors = {sz: floor(clf.module, batch, sz, max(2, args.steps // 2)) for sz in set(sizes)}
        run = sum(step_times(clf, mode, args.steps, args.size))
        f = sum(floors[sz] for sz in sizes)
        print(f"| {mode} | {batch} | {', '.join(str(k) for k in sorted(floors))} | {run:.3f} "
              f"| {f:.3f} | {run / f:.2f}x |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
