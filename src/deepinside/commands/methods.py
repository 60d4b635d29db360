"""``deepinside methods`` (the attribution methods and their papers) and
``deepinside evaluate compare`` (every method on one labelled data set, one table)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

__all__ = ["demo", "register", "register_evaluate"]

DEMO_METHODS = ("gradient", "deconvnet", "guided_backprop", "gradient_x_input", "smoothgrad",
                "integrated_gradients", "gradcam", "gradcam_pp", "occlusion")
DEMO_OPTIONS: dict[str, dict] = {}  # per-method options for the demo figure (defaults if absent)


def register(subparsers) -> None:
    """Add the ``methods`` subcommand."""
    p = subparsers.add_parser("methods", help="list the attribution methods and their papers")
    p.add_argument("--json", action="store_true", help="print a JSON array")
    p.set_defaults(func=cmd_methods)


def cmd_methods(args: argparse.Namespace) -> int:
    from ..methods import list_methods

    infos = list(list_methods().values())
    if args.json:
        json.dump([{"name": i.name, "description": i.description, "paper": i.paper}
                   for i in infos], sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    width = max(len(i.name) for i in infos)
    for i in infos:
        print(f"{i.name:{width}s}  {i.description}")
        print(f"{'':{width}s}  {i.paper}")
    return 0


def register_evaluate(evaluate_subparsers) -> None:
    """Add ``evaluate compare`` to the ``evaluate`` command's sub-subcommands."""
    from ..cli import add_model_args

    p = evaluate_subparsers.add_parser(
        "compare",
        help="every attribution method on a labelled data set: pointing game, localisation, "
             "deletion / insertion, randomisation, speed",
    )
    p.add_argument("--methods", default=",".join(DEMO_METHODS),
                   help="comma-separated method names (default: all)")
    p.add_argument("--dataset", required=True,
                   help="directory (or annotations file) of a labelled data set with boxes")
    p.add_argument("--limit", type=int, default=None, help="use the first N photos only")
    add_model_args(p)
    p.add_argument("--batch-size", "-b", type=int, default=16)
    p.add_argument("--steps", type=int, default=16, help="deletion / insertion steps")
    p.add_argument("--recipe", default="gradcam-30",
                   help="localisation recipe whose segmentation makes the boxes "
                        "(default: threshold at 30%% of the range, largest component)")
    p.add_argument("--smooth", type=float, default=0.04,
                   help="blur every map before segmenting it, sigma as a fraction of the "
                        "photo's side (default 0.04)")
    p.add_argument("--no-deletion", action="store_true",
                   help="skip the deletion / insertion curves")
    p.add_argument("--no-randomization", action="store_true",
                   help="skip the randomisation test (saves one map per image)")
    p.add_argument("--json", action="store_true", help="print JSON rows instead of a table")
    p.set_defaults(func=cmd_compare)


def cmd_compare(args: argparse.Namespace) -> int:
    from ..cli import CLIError, fail, lookup, model_from_args, progress
    from ..evaluate.compare import compare_methods, format_table
    from ..methods import get_method
    from .evaluate import dataset_records

    names = [n.strip() for n in args.methods.split(",") if n.strip()]
    if not names:
        raise CLIError("--methods is empty")
    for n in names:
        lookup(get_method, n)
    if args.batch_size < 1 or args.steps < 1:
        raise CLIError("--batch-size and --steps must be at least 1")
    from ..localize import get_recipe

    lookup(get_recipe, args.recipe)
    records, problems = dataset_records(args.dataset, args.limit)
    clf = model_from_args(args)
    failures: list = []

    def on_failure(path, why):
        fail(path, why)
        failures.append(path)

    with progress(len(records), "compare") as bar:
        rows = compare_methods(clf, records, names, batch_size=args.batch_size,
                               steps=args.steps, recipe=args.recipe, smooth=args.smooth,
                               deletion=not args.no_deletion,
                               randomization=not args.no_randomization,
                               on_batch=bar.update, on_failure=on_failure)
    if args.json:
        json.dump([r.to_dict() for r in rows], sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print(f"{clf.name} on {len(records) - len(failures)} photos of {args.dataset}; "
              f"maps explain the true class")
        print(format_table(rows))
    return 1 if failures or problems else 0


def demo(ctx) -> list[Path]:
    """One photo, every method side by side (``methods.png``)."""
    import functools

    import numpy as np

    from .. import methods as registry
    from ..render import heatmap, overlay, save_figure
    from ..saliency import photo_maps

    name, photo = ctx.photos[0]
    row_maps, row_overlays, titles = [], [], []
    target = None
    for m in DEMO_METHODS:
        fn = functools.partial(registry.get_method(m), **DEMO_OPTIONS.get(m, {}))
        maps, t, _ = photo_maps(ctx.classifier, [photo], target, method=fn)
        target = int(t[0])
        mp = np.clip(maps[0], 0, None) if m == "occlusion" else maps[0]
        row_maps.append(heatmap(mp))
        row_overlays.append(overlay(photo, mp))
        titles.append(m)
    label = ctx.classifier.short_name(target)
    path = save_figure([row_maps, row_overlays], ctx.out / "methods.png",
                       [titles, [f"{t}: {label}" for t in titles]])
    ctx.notes.append(f"methods.png: {name} explained by {len(DEMO_METHODS)} methods "
                     f"(`deepinside methods` lists them)")
    return [path]

