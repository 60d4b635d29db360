"""``deepinside localize``: boxes and masks of the top classes of photos (paper section 6)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .common import (
    CLIError,
    Failures,
    add_batch_size,
    add_model_args,
    add_target_arg,
    claim_batch,
    lookup,
    model_from_args,
    output_dir,
    photo_batches,
    positive_int,
    progress,
    target_from_args,
)


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``localize`` subcommand."""
    from ..localize import RECIPES

    p = sub.add_parser("localize", help="boxes of the top classes of photos (weakly supervised)")
    p.add_argument("images", nargs="+", help="files, directories or glob patterns")
    add_model_args(p)
    p.add_argument("--recipe", "-r", default="default", choices=sorted(RECIPES),
                   help="default (Grad-CAM x blurred gradient, 30%% threshold), paper (gradient, "
                        "GrabCut, largest component), ...")
    p.add_argument("--top-k", "-k", type=positive_int, default=1,
                   help="classes per photo (default 1)")
    add_target_arg(p, "localise")
    p.add_argument("--method", default=None, help="attribution method (default: the recipe's)")
    p.add_argument("--seed", type=int, default=0, help="GrabCut's random seed")
    p.add_argument("--out", "-o", default="deepinside-localize", help="output directory")
    p.add_argument("--json", action="store_true", help="print the boxes as a JSON array")
    add_batch_size(p)
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..localize import localize
    from ..methods import get_method
    from ..render import draw_localizations, save_png

    if args.method is not None:
        lookup(get_method, args.method)
    out = output_dir(args.out)
    clf = model_from_args(args)
    target = target_from_args(clf, args.target)
    if callable(target):
        raise CLIError(f"--target {args.target!r}: localize needs classes (an index, a name or "
                       "top<k>), not a sum of classes")
    boxes_path = out / "boxes.json"
    if boxes_path.exists() and not args.overwrite:
        raise CLIError(f"{boxes_path} exists (use --overwrite to replace it)")
    failures = Failures()
    taken: dict[Path, Path] = {}
    results = []
    total, batches = photo_batches(args.images, args.batch_size, failures)
    with progress(total, "localize") as bar:
        for batch in batches:
            keep = claim_batch(batch, lambda p: [out / f"{p.stem}_localize.png"], taken,
                               args.overwrite, failures)
            if keep:
                locs = localize(clf, [p for _, p in keep], top_k=args.top_k, target=target,
                                method=args.method, recipe=args.recipe, seed=args.seed,
                                batch_size=len(keep))
                for (path, photo), row in zip(keep, locs):
                    try:
                        save_png(draw_localizations(photo, row), out / f"{path.stem}_localize.png")
                    except OSError as e:
                        failures(path, f"cannot write {e.filename or out}: {e.strerror or e}")
                        continue
                    results.append({"image": str(path), "width": photo.width,
                                    "height": photo.height,
                                    "localizations": [loc.to_dict() for loc in row]})
                    if not args.json:
                        text = "; ".join(f"{loc.name} {loc.prob:.2f} box "
                                         + ",".join(f"{v:.0f}" for v in loc.box) for loc in row)
                        bar.write(f"{path}: {text}", file=sys.stdout)
            bar.update(len(batch.items) + batch.failed)
    boxes_path.write_text(json.dumps(results, indent=2) + "\n")
    if args.json:
        json.dump(results, sys.stdout, indent=2)
        sys.stdout.write("\n")
    print(f"wrote {len(results)} of {total} images and {boxes_path} to {out}", file=sys.stderr)
    return 1 if failures or not total else 0


def demo(ctx) -> list[Path]:
    """``deepinside demo``: the paper's recipe beside the default one, on the demo photos."""
    from ..localize import localize
    from ..render import draw_localizations, heatmap, save_figure

    photos = [p for _, p in ctx.photos]
    paper = localize(ctx.classifier, photos, recipe="paper")
    default = localize(ctx.classifier, photos, recipe="default")
    rows, titles = [], []
    for (name, photo), [p], [d] in zip(ctx.photos, paper, default):
        rows.append([heatmap(p.saliency), draw_localizations(photo, [p]), heatmap(d.saliency),
                     draw_localizations(photo, [d])])
        titles.append([f"{name}: gradient", "paper: GrabCut, largest comp.",
                       "Grad-CAM x blurred gradient", f"default: {d.name}"])
    path = save_figure(rows, ctx.out / "localization.png", titles)
    ctx.notes.append("localization.png: the paper's recipe (gradient map, GrabCut, largest "
                     "component) beside the default (Grad-CAM x blurred gradient, 30% threshold)")
    return [path]
