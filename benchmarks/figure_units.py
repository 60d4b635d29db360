"""The figure of docs/visualize.md: channels of three depths of lite0, each with its top photos.

For three layers of ``efficientnet_lite0`` (shallow ``blocks.1``, middle ``blocks.3``, deep
``blocks.5``) and three channels of each (fixed below, not chosen by their look), renders the
channel's feature visualisation (``visualize``, the lucid defaults) and finds, in one pass over
the photos, the ``--top`` photos that excite each channel most; each row of the figure is the
visualisation followed by the top photos' patches.

Usage::

    python benchmarks/figure_units.py --dataset /work/shared/data/imagenet-val-300/images \\
        --class-options --out docs/img/units_grid.jpg
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import deepinside
from deepinside.classmodel import channel, mode_defaults, top_photos, visualize
from deepinside.images import expand_inputs
from deepinside.render import grid_image, save_png, uint8_images

UNITS = {"blocks.1": [3, 10, 20], "blocks.3": [9, 33, 64], "blocks.5": [17, 42, 101]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", nargs="+", required=True)
    ap.add_argument("--top", type=int, default=4)
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--size", type=int, default=160, help="cell size in the figure")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--class-options", action="store_true",
                    help="render with the class model's lucid options (strong transforms, "
                         "octaves, two copies) instead of visualize's own")
    ap.add_argument("--out", default="units_grid.png")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    clf = deepinside.load_model("efficientnet_lite0")
    paths, _ = expand_inputs(args.dataset)
    t0 = time.perf_counter()
    units = [(layer, k) for layer, ks in UNITS.items() for k in ks]
    best = top_photos(clf, [channel(layer, k) for layer, k in units], [str(p) for p in paths],
                      args.top)
    print(f"top photos of {len(units)} channels over {len(paths)} photos: "
          f"{time.perf_counter() - t0:.0f} s", file=sys.stderr)
    s = args.size
    cells, labels = [], []
    for layer, ks in UNITS.items():
        t0 = time.perf_counter()
        opts = {}
        if args.class_options:
            opts = {k: v for k, v in mode_defaults("lucid").items() if k not in ("other", "rivals")}
        r = visualize(clf, channel(layer, ks), **{**opts, "steps": args.steps})
        print(f"{layer}: {time.perf_counter() - t0:.0f} s", file=sys.stderr)
        for k, img in zip(ks, uint8_images(r.images)):
            i = units.index((layer, k))
            cells.append(np.asarray(Image.fromarray(img).resize((s, s), Image.LANCZOS)))
            labels.append(f"{layer}:{k}")
            for rank, t in enumerate(best[i], 1):
                patch = Image.fromarray(t.patch).resize((s, s), Image.BICUBIC)
                cells.append(np.asarray(patch))
                labels.append(f"top {rank}: {t.value:.2f}")
    save_png(grid_image(cells, labels, columns=1 + args.top), Path(args.out))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
