"""``deepinside classmodel``: class model visualisation (Simonyan et al. 2013, section 2).

Writes ``<index>_<name>.png`` per class, ``grid.png`` with the class names under the images,
and with ``--snapshots K`` the evolution: ``<index>_<name>_steps.png`` (a strip) per class and
``evolution.gif`` (all classes, one frame per snapshot).
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

from .common import (
    CLIError,
    add_model_args,
    model_from_args,
    nonnegative_int,
    output_dir,
    positive_int,
    progress,
    resolve_class,
)

__all__ = ["demo", "register"]

DEMO_CLASSES = ("ostrich", "goldfish", "volcano", "balloon")
DEMO_STEPS = 48  # about the fewest the lucid mode's octaves need


def register(subparsers) -> None:
    """Add the ``classmodel`` subcommand."""
    from ..classmodel import MODES, mode_defaults

    steps = ", ".join(f"{m} {mode_defaults(m)['steps']}" for m in MODES)
    p = subparsers.add_parser(
        "classmodel",
        help="the image a classifier finds most typical of a class (class model visualisation)",
        description="Class model visualisation (Simonyan et al. 2013, "
                    "https://arxiv.org/abs/1312.6034, section 2): gradient ascent on the input.",
    )
    p.add_argument("--class", "-c", dest="classes", action="append", required=True,
                   metavar="CLASS", help="class index or name (repeat for more classes)")
    p.add_argument("--mode", choices=MODES, default="lucid",
                   help="lucid (default: regularised, recognisable), paper (exact: "
                        "S_c - lambda*||I||^2, plain ascent from the mean image), pixel "
                        "(the paper's ascent with jitter, blur and decay)")
    p.add_argument("--steps", type=positive_int, default=None,
                   help=f"ascent steps (default: {steps})")
    p.add_argument("--size", type=_size, default=None,
                   help="image size in pixels (default: the model's input size)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--lr", type=float, default=None, help="step size (default per mode)")
    p.add_argument("--l2", type=float, default=None,
                   help="lambda of the L2 penalty (default per mode; paper: 1e-3)")
    p.add_argument("--snapshots", type=nonnegative_int, default=0, metavar="K",
                   help="also save the evolution: K snapshots as a strip per class and a GIF")
    add_model_args(p)
    p.add_argument("--out", "-o", default="deepinside-classmodel", help="output directory")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.set_defaults(func=run)


def _size(text: str) -> int:
    value = positive_int(text)
    if value < 8:
        raise argparse.ArgumentTypeError(f"must be at least 8 pixels, got {value}")
    return value


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", name).strip("_") or "class"


def _write_outputs(clf, result, out: Path, with_snapshots: bool) -> list[Path]:
    from ..render import grid_image, save_gif, save_png, uint8_images

    names = [clf.short_name(int(c)) for c in result.classes]
    stems = [f"{int(c)}_{_slug(nm)}" for c, nm in zip(result.classes, names)]
    images = uint8_images(result.images)
    written = [save_png(img, out / f"{s}.png") for s, img in zip(stems, images)]
    labels = [f"{int(c)} {nm}" for c, nm in zip(result.classes, names)]
    written.append(save_png(grid_image(images, labels), out / "grid.png"))
    if with_snapshots and result.snapshots.numel():
        frames = [uint8_images(s) for s in result.snapshots]  # K lists of N images
        steps = [f"step {k}" for k in result.snapshot_steps]
        for i, stem in enumerate(stems):
            strip = grid_image([f[i] for f in frames], steps, columns=len(frames))
            written.append(save_png(strip, out / f"{stem}_steps.png"))
        gif = [grid_image(f, [f"{lab} ({st})" for lab in labels]) for f, st in zip(frames, steps)]
        written.append(save_gif(gif, out / "evolution.gif"))
    return written


def _planned(clf, classes: list[int], out: Path, snapshots: int) -> list[Path]:
    stems = [f"{c}_{_slug(clf.short_name(c))}" for c in classes]
    paths = [out / f"{s}.png" for s in stems] + [out / "grid.png"]
    if snapshots:
        paths += [out / f"{s}_steps.png" for s in stems] + [out / "evolution.gif"]
    return paths


def run(args: argparse.Namespace) -> int:
    import torch

    from ..classmodel import class_model, mode_defaults
    from ..engine import forward_logits

    out = output_dir(args.out)
    clf = model_from_args(args)
    classes: list[int] = []
    for key in args.classes:
        c = resolve_class(clf, key)
        if c not in classes:
            classes.append(c)
    if not args.overwrite:
        existing = [p for p in _planned(clf, classes, out, args.snapshots) if p.exists()]
        if existing:
            raise CLIError(f"output {existing[0]} exists (use --overwrite to replace it)")
    steps = args.steps or mode_defaults(args.mode)["steps"]
    t0 = time.perf_counter()
    with progress(steps, f"classmodel ({args.mode})", unit="step") as bar:
        result = class_model(clf, classes, mode=args.mode, steps=steps, size=args.size,
                             seed=args.seed, snapshots=args.snapshots, lr=args.lr, l2=args.l2,
                             progress=bar.update)
    written = _write_outputs(clf, result, out, args.snapshots > 0)
    x = clf.preprocessing.normalize(result.images.to(clf.device, clf.dtype))
    probs = torch.softmax(forward_logits(clf, x).float(), 1)  # what it thinks of its images
    for i, c in enumerate(classes):
        print(f"{c} {clf.short_name(c)}: p={float(probs[i, c]):.3f} "
              f"(top-1: {clf.short_name(int(probs[i].argmax()))})")
    print(f"wrote {len(written)} files to {out} in {time.perf_counter() - t0:.0f} s",
          file=sys.stderr)
    return 0


def demo(ctx) -> list[Path]:
    """A small class-model grid for ``deepinside demo`` (a few classes, few steps)."""
    from ..classmodel import class_model
    from ..render import grid_image, save_png, uint8_images

    clf = ctx.classifier
    try:
        classes = [clf.class_index(c) for c in DEMO_CLASSES]
    except ValueError:
        classes = [0, 1, 2, 3]
    t0 = time.perf_counter()
    result = class_model(clf, classes, mode="lucid", steps=DEMO_STEPS, seed=0, copies=1)
    images = uint8_images(result.images)
    labels = [clf.short_name(c) for c in classes]

    path = save_png(grid_image(images, labels, columns=len(images)), ctx.out / "classmodel.png")
    ctx.notes.append(f"class models ({DEMO_STEPS} steps, lucid mode) in "
                     f"{time.perf_counter() - t0:.0f} s; `deepinside classmodel` makes better ones "
                     "with more steps")
    return [path]
