"""``deepinside localize``: boxes and masks of the top classes of photos (paper section 6)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from ..cli import (
    CLIError,
    add_model_args,
    claim_batch,
    iter_photo_batches,
    lookup,
    model_from_args,
    progress,
    resolve_class,
)

COLOURS = [(255, 64, 64), (64, 200, 255), (255, 210, 0), (120, 255, 120), (255, 120, 255)]


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``localize`` subcommand."""
    from ..localize import RECIPES

    p = sub.add_parser("localize", help="boxes of the top classes of photos (weakly supervised)")
    p.add_argument("images", nargs="+", help="files, directories or glob patterns")
    add_model_args(p)
    p.add_argument("--recipe", "-r", default="default", choices=sorted(RECIPES),
                   help="default (Grad-CAM x blurred gradient, 30%% threshold), paper (gradient, "
                        "GrabCut, largest component), ...")
    p.add_argument("--top-k", "-k", type=int, default=1, help="classes per photo (default 1)")
    p.add_argument("--target", "-t", default=None, help="localise this class (index or name)")
    p.add_argument("--method", default=None, help="attribution method (default: the recipe's)")
    p.add_argument("--seed", type=int, default=0, help="GrabCut's random seed")
    p.add_argument("--out", "-o", default="deepinside-localize", help="output directory")
    p.add_argument("--json", action="store_true", help="print the boxes as a JSON array")
    p.add_argument("--batch-size", "-b", type=int, default=16)
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.set_defaults(func=cmd_localize)


def draw(photo, locs) -> np.ndarray:
    """The photo with each localisation's mask tinted and its box labelled, uint8 (H, W, 3)."""
    from PIL import Image, ImageDraw, ImageFont

    a = np.asarray(photo.convert("RGB"), dtype=np.float32)
    for i, loc in reversed(list(enumerate(locs))):
        c = np.array(COLOURS[i % len(COLOURS)], dtype=np.float32)
        a[loc.mask] = 0.6 * a[loc.mask] + 0.4 * c
    im = Image.fromarray(a.clip(0, 255).astype(np.uint8))
    d = ImageDraw.Draw(im)
    width = max(2, round(min(im.size) / 150))
    try:
        font = ImageFont.load_default(size=max(10, round(min(im.size) / 22)))
    except TypeError:  # Pillow < 10.1: one bitmap size
        font = ImageFont.load_default()
    for i, loc in enumerate(locs):
        c = COLOURS[i % len(COLOURS)]
        x0, y0, x1, y1 = loc.box
        d.rectangle((x0, y0, max(x0, x1 - 1), max(y0, y1 - 1)), outline=c, width=width)
        text = f"{loc.name} {loc.prob:.2f}"
        tb = d.textbbox((x0 + width + 2, y0 + width + 2), text, font=font)
        d.rectangle((tb[0] - 2, tb[1] - 2, tb[2] + 2, tb[3] + 2), fill=(0, 0, 0))
        d.text((x0 + width + 2, y0 + width + 2), text, fill=c, font=font)
    return np.asarray(im)


def cmd_localize(args: argparse.Namespace) -> int:
    from ..localize import localize
    from ..render import save_png

    if args.top_k < 1:
        raise CLIError("--top-k must be at least 1")
    if args.batch_size < 1:
        raise CLIError("--batch-size must be at least 1")
    clf = model_from_args(args)
    target = resolve_class(clf, args.target) if args.target is not None else None
    if args.method is not None:
        from ..localize import map_function

        lookup(map_function, args.method)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    boxes_path = out / "boxes.json"
    if boxes_path.exists() and not args.overwrite:
        raise CLIError(f"{boxes_path} exists (use --overwrite to replace it)")
    failures: list = []
    taken: dict[Path, Path] = {}
    results = []
    batches = iter_photo_batches(args.images, args.batch_size, failures)
    total = next(batches)
    with progress(total, "localize") as bar:
        for batch in batches:
            keep = claim_batch(batch, lambda p: [out / f"{p.stem}_localize.png"], taken,
                               args.overwrite, failures)
            if keep:
                locs = localize(clf, [p for _, p in keep], top_k=args.top_k, target=target,
                                method=args.method, recipe=args.recipe, seed=args.seed,
                                batch_size=len(keep))
                for (path, photo), row in zip(keep, locs):
                    save_png(draw(photo, row), out / f"{path.stem}_localize.png")
                    results.append({"image": str(path), "width": photo.width,
                                    "height": photo.height,
                                    "localizations": [loc.to_dict() for loc in row]})
                    if not args.json:
                        text = "; ".join(f"{loc.name} {loc.prob:.2f} box "
                                         + ",".join(f"{v:.0f}" for v in loc.box) for loc in row)
                        bar.write(f"{path}: {text}", file=sys.stdout)
            bar.update(max(1, len(batch.paths)))
    boxes_path.write_text(json.dumps(results, indent=2) + "\n")
    if args.json:
        json.dump(results, sys.stdout, indent=2)
        sys.stdout.write("\n")
    print(f"wrote {len(results)} of {total} images and {boxes_path} to {out}", file=sys.stderr)
    return 1 if failures or not total else 0


def demo(ctx) -> list[Path]:
    """``deepinside demo``: the paper's recipe beside the default one, on the demo photos."""
    from ..localize import localize
    from ..render import heatmap, save_figure

    photos = [p for _, p in ctx.photos]
    paper = localize(ctx.classifier, photos, recipe="paper")
    default = localize(ctx.classifier, photos, recipe="default")
    rows, titles = [], []
    for (name, photo), [p], [d] in zip(ctx.photos, paper, default):
        rows.append([heatmap(p.saliency), draw(photo, [p]), heatmap(d.saliency), draw(photo, [d])])
        titles.append([f"{name}: gradient", "paper: GrabCut, largest comp.",
                       "Grad-CAM x blurred gradient", f"default: {d.name}"])
    path = save_figure(rows, ctx.out / "localization.png", titles)
    ctx.notes.append("localization.png: the paper's recipe (gradient map, GrabCut, largest "
                     "component) beside the default (Grad-CAM x blurred gradient, 30% threshold)")
    return [path]
