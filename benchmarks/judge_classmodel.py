"""Judge class model images with models that never saw the optimisation.

Makes class model images with ``efficientnet_lite0`` for the issue's ten classes, saves them as
8-bit PNGs (clipped to [0, 1] and rounded, as a saved PNG is), reads them back, and classifies
them with:

- ``efficientnet_lite0`` itself (its own probability of the class: did the ascent work?);
- ``efficientnet_lite2`` (top-1 / top-5), the issue's judge;
- harder judges: ``efficientnet_lite1``; and lite2 on copies that are blurred (Gaussian,
  sigma 2 px), shrunk (to 56 px and back: only the coarse shape survives) and JPEG-compressed
  (quality 20). An image that survives these looks like the object at a coarse scale rather
  than as fine texture that only networks read.

Usage::

    python benchmarks/judge_classmodel.py --mode lucid            # the issue's ten classes
    python benchmarks/judge_classmodel.py --mode paper --steps 200
    python benchmarks/judge_classmodel.py --classes 130 9 --set tv=0.002 --threads 1

Prints one table row (Markdown) and writes the PNGs and a grid to ``--out``.
"""

from __future__ import annotations

import argparse
import ast
import io
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageFilter

import deepinside
from deepinside.classmodel import class_model
from deepinside.engine import forward_logits
from deepinside.render import grid_image

CLASSES = [130, 1, 9, 250, 291, 543, 951, 945, 417, 980]


def _blur(im: Image.Image) -> Image.Image:
    return im.filter(ImageFilter.GaussianBlur(2))


def _shrink(im: Image.Image) -> Image.Image:
    return im.resize((56, 56), Image.Resampling.BILINEAR).resize(im.size, Image.Resampling.BILINEAR)


def _jpeg(im: Image.Image) -> Image.Image:
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=20)
    buf.seek(0)
    return Image.open(buf).convert("RGB")


def judge(clf, photos: list[Image.Image], classes: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """(rank of the true class 0-based, its probability) per photo, whole photo resized."""
    x = torch.stack([clf.preprocessing.to_tensor(p, crop=False) for p in photos])
    probs = torch.softmax(forward_logits(clf, x.to(clf.device, clf.dtype)).float(), 1)
    t = torch.tensor(classes)
    ranks = (probs > probs.gather(1, t[:, None])).sum(1)
    return ranks.numpy(), probs.gather(1, t[:, None])[:, 0].numpy()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mode", default="lucid")
    ap.add_argument("--classes", type=int, nargs="+", default=CLASSES)
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--lr", type=float, default=None)
    ap.add_argument("--l2", type=float, default=None)
    ap.add_argument("--set", nargs="*", default=[], help="mode options, key=value")
    ap.add_argument("--snapshots", type=int, default=0, help="also save the evolution (K steps)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: leave)")
    ap.add_argument("--out", default="classmodel-judge")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    extra = {k: ast.literal_eval(v) for k, v in (s.split("=", 1) for s in args.set)}
    gen = deepinside.load_model("efficientnet_lite0")
    t0 = time.perf_counter()
    res = class_model(gen, args.classes, mode=args.mode, steps=args.steps, seed=args.seed,
                      lr=args.lr, l2=args.l2, snapshots=args.snapshots, **extra)
    seconds = time.perf_counter() - t0
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    photos = []
    for c, img in zip(args.classes, res.images):
        a = (img.clamp(0, 1).permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)
        path = out / f"{c}_{gen.short_name(c).replace(' ', '_')}.png"
        Image.fromarray(a).save(path)
        photos.append(Image.open(path).convert("RGB"))
    labels = [f"{c} {gen.short_name(c)}" for c in args.classes]
    Image.fromarray(grid_image([np.asarray(p) for p in photos], labels)).save(out / "grid.png")
    if res.snapshots.numel():  # rows: classes; columns: the snapshots
        cells, names = [], []
        for i, c in enumerate(args.classes):
            for k, st in enumerate(res.snapshot_steps):
                a = res.snapshots[k, i].permute(1, 2, 0).numpy()
                cells.append((a * 255 + 0.5).clip(0, 255).astype(np.uint8))
                names.append(f"{gen.short_name(c)}, step {st}")
        evo = grid_image(cells, names, columns=len(res.snapshot_steps))
        Image.fromarray(evo).save(out / "evolution.png")

    lite1 = deepinside.load_model("efficientnet_lite1")
    lite2 = deepinside.load_model("efficientnet_lite2")
    r0, p0 = judge(gen, photos, args.classes)
    r2, p2 = judge(lite2, photos, args.classes)
    r1, q1 = judge(lite1, photos, args.classes)
    rb, qb = judge(lite2, [_blur(p) for p in photos], args.classes)
    rs, qs = judge(lite2, [_shrink(p) for p in photos], args.classes)
    rj, qj = judge(lite2, [_jpeg(p) for p in photos], args.classes)
    # a smoother score than counts, for tuning: mean log10 probability over the hard judges
    hard_logp = float(np.mean(np.log10(np.maximum(np.stack([q1, qb, qs, qj]), 1e-6))))
    n = len(args.classes)

    def tk(r):
        return f"{int((r < 1).sum())}/{n} / {int((r < 5).sum())}/{n}"

    print("per class (rank in lite2, lite1, blur, shrink, jpeg): "
          + ", ".join(f"{c}:{a},{b},{d},{e},{f}" for c, a, b, d, e, f in
                      zip(args.classes, r2, r1, rb, rs, rj)), file=sys.stderr)
    hard = int((r1 < 5).sum() + (rb < 5).sum() + (rs < 5).sum() + (rj < 5).sum())
    print("| mode | lite0 prob (mean) | lite2 top-1 / top-5 | lite1 top-1 / top-5 | "
          "lite2 blurred | lite2 shrunk | lite2 JPEG | hard top-5 sum | hard log10 p | time |")
    print(f"| {args.mode} {extra or ''} steps={res.options['steps']} | {p0.mean():.2f} | {tk(r2)} "
          f"| {tk(r1)} | {tk(rb)} | {tk(rs)} | {tk(rj)} | {hard}/{4 * n} | {hard_logp:.2f} "
          f"| {seconds:.0f} s |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
