"""``deepinside demo``: every capability on photos that ship with installed packages.

Writes ``saliency.png`` (photo | the paper's map | overlay, with the top-5 classes), then asks
each subcommand module with a ``demo(context)`` function for its figures.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path

from ..images import demo_photos
from .common import add_model_args, add_sign_args, model_from_args, output_dir

__all__ = ["DemoContext", "demo_photos", "register"]


@dataclass
class DemoContext:
    """What ``deepinside demo`` hands to each capability's demo function."""

    classifier: object
    photos: list  # (name, PIL image)
    out: Path
    notes: list[str] = field(default_factory=list)
    sign: str = "auto"  # --sign: how signed maps are drawn
    shared_scale: bool = False  # --shared-scale: one colour scale for every map of a figure


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``demo`` subcommand."""
    p = sub.add_parser("demo", help="run everything on photos that ship with installed packages")
    add_model_args(p)
    p.add_argument("--out", "-o", default="deepinside-demo", help="output directory")
    add_sign_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..photomaps import photo_maps
    from ..render import heatmap, overlay, save_figure, to_uint8
    from . import command_modules

    out = output_dir(args.out)
    clf = model_from_args(args)
    photos = demo_photos()
    maps, targets, logits = photo_maps(clf, [p for _, p in photos])
    tops = clf.top_classes(logits, 5)
    rows, titles, labels = [], [], []
    for (name, photo), m, t, top in zip(photos, maps, targets.tolist(), tops):
        rows.append([to_uint8(photo), heatmap(m), overlay(photo, m)])
        titles.append([name, "saliency |dS_c/dI| (max over RGB)", f"overlay: {clf.short_name(t)}"])
        labels.append("top-5:\n" + "\n".join(f"{r['prob']:.2f} {r['name'][:22]}" for r in top))
    written = [save_figure(rows, out / "saliency.png", titles, labels)]
    ctx = DemoContext(clf, photos, out, sign=args.sign, shared_scale=args.shared_scale)
    for mod in command_modules():
        fn = getattr(mod, "demo", None)
        if fn is not None:
            written.extend(fn(ctx))
    for p in written:
        print(f"wrote {p}")
    for n in ctx.notes:
        print(n)
    return 0
