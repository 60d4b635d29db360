"""deepinside's feature visualisation against Lucent's, on the same channels of lite0.

Lucent (https://github.com/greentfrapp/lucent, torch-lucent) is the PyTorch port of Lucid
(Olah et al. 2017, https://distill.pub/2017/feature-visualization/). Both render, for ten
channels of two layers of ``efficientnet_lite0`` (five a layer, fixed below), an image with the
same objective (the channel's mean over positions: Lucent's ``channel``), the same number of
steps, the same parametrisation (a Fourier spectrum scaled by ``1 / f^decay`` with Lucid's
colour decorrelation and sigmoid; Adam, learning rate 0.05) and the model's own
normalisation; each library keeps its own transformation robustness (Lucent's
``standard_transforms``; deepinside's octaves and two transformed copies per step). Lucent
renders the five channels of a layer as one batch of five (``channel(layer, k, batch=i)``
summed); so does deepinside (``channel(layer, [k0, ..., k4])``).

Scored on the final images, as returned (224 px, no transform): each channel's activation
``unit_values`` (the same function for both). deepinside "matches or beats" Lucent on a channel
when its activation is at least Lucent's.

Usage::

    python benchmarks/bench_lucent.py                    # 128 steps, decay 1.0 (Lucent's)
    python benchmarks/bench_lucent.py --steps 256 --threads 2
    python benchmarks/bench_lucent.py --decay 1.2        # deepinside's default decay
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
import time

import numpy as np
import torch

import deepinside
from deepinside.classmodel import channel, unit_values, visualize

# written down before any run: five channels of a middle and of a deep layer
CHANNELS = {"blocks.3": [0, 9, 17, 33, 64], "blocks.5": [3, 17, 42, 101, 150]}


def lucent_render(module, layer: str, ks: list[int], steps: int, pre, seed: int) -> torch.Tensor:
    """Lucent's render_vis on a private copy (its hooks are never removed): ``Tensor[N, 3,
    224, 224]`` in [0, 1]."""
    from lucent.optvis import objectives, param, render, transform

    torch.manual_seed(seed)
    np.random.seed(seed)  # Lucent's transforms draw from NumPy, which torch's seed leaves alone
    net = copy.deepcopy(module).eval()
    obj = sum(objectives.channel(layer.replace(".", "_"), k, batch=i) for i, k in enumerate(ks))
    mean = torch.tensor(pre.mean).view(1, 3, 1, 1)
    std = torch.tensor(pre.std).view(1, 3, 1, 1)
    tfs = [*transform.standard_transforms, lambda x: (x - mean) / std]  # the model's own
    images = render.render_vis(
        net, obj, lambda: param.image(224, batch=len(ks), fft=True, decorrelate=True),
        transforms=tfs, thresholds=(steps,), preprocess=False, progress=False,
        show_image=False)
    return torch.from_numpy(images[-1]).permute(0, 3, 1, 2).float()


def activations(clf, layer: str, ks: list[int], images: torch.Tensor) -> list[float]:
    """Each image's activation of its channel (the mean over positions)."""
    x = clf.preprocessing.normalize(images)
    return [float(unit_values(clf, channel(layer, k), x[i:i + 1])[0]) for i, k in enumerate(ks)]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=128)
    ap.add_argument("--decay", type=float, default=1.0,
                    help="deepinside's Fourier decay (Lucent's is 1.0)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: leave)")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    clf = deepinside.load_model("efficientnet_lite0")
    print(f"efficientnet_lite0, {args.steps} steps, decay {args.decay:g}, "
          f"{torch.get_num_threads()} threads, load average {os.getloadavg()[0]:.1f}")
    print("| layer | channel | Lucent | deepinside | deepinside >= Lucent |")
    print("|---|---|---|---|---|")
    wins = total = 0
    times = {"Lucent": [0.0, 0.0], "deepinside": [0.0, 0.0]}  # wall, CPU seconds
    for layer, ks in CHANNELS.items():
        t0, c0 = time.perf_counter(), time.process_time()
        theirs = lucent_render(clf.module, layer, ks, args.steps, clf.preprocessing, args.seed)
        times["Lucent"][0] += time.perf_counter() - t0
        times["Lucent"][1] += time.process_time() - c0
        t0, c0 = time.perf_counter(), time.process_time()
        ours = visualize(clf, channel(layer, ks), steps=args.steps, seed=args.seed,
                         decay_power=args.decay).images
        times["deepinside"][0] += time.perf_counter() - t0
        times["deepinside"][1] += time.process_time() - c0
        a, b = activations(clf, layer, ks, theirs), activations(clf, layer, ks, ours)
        for k, x, y in zip(ks, a, b):
            wins += y >= x
            total += 1
            print(f"| {layer} | {k} | {x:.3f} | {y:.3f} | {'yes' if y >= x else 'no'} |",
                  flush=True)
    print(f"\ndeepinside matches or beats Lucent on {wins}/{total} channels")
    for name, (wall, cpu) in times.items():
        print(f"{name}: {wall:.0f} s wall, {cpu:.0f} s CPU for the {total} channels")
    return 0


if __name__ == "__main__":
    sys.exit(main())
