"""``deepinside methods``: the attribution methods and their papers (and the demo figure)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

__all__ = ["DEMO_OPTIONS", "demo", "register"]

# Options of the demo figure on top of each method's own (MethodInfo.demo), by method name;
# empty: a test sets lighter ones.
DEMO_OPTIONS: dict[str, dict] = {}


def register(subparsers) -> None:
    """Add the ``methods`` subcommand."""
    p = subparsers.add_parser("methods", help="list the attribution methods and their papers")
    p.add_argument("pattern", nargs="?", default=None, help="only names matching this glob")
    p.add_argument("--json", action="store_true", help="print a JSON array")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..methods import list_methods

    infos = list(list_methods(args.pattern).values())
    if not infos:
        return 1
    if args.json:
        json.dump([i.to_json() for i in infos], sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    width = max(len(i.name) for i in infos)
    for i in infos:
        print(f"{i.name:{width}s}  {i.description}")
        print(f"{'':{width}s}  {i.paper}")
    return 0


def demo(ctx) -> list[Path]:
    """One photo, every method side by side (``methods.png``)."""
    import numpy as np

    from ..methods import list_methods, method_names
    from ..photomaps import photo_maps
    from ..render import heatmap, overlay, save_figure

    name, photo = ctx.photos[0]
    row_maps, row_overlays, titles = [], [], []
    target = None
    infos = list_methods()
    names = method_names()
    for m in names:
        options = {**infos[m].demo, **DEMO_OPTIONS.get(m, {})}
        maps, t, _ = photo_maps(ctx.classifier, [photo], target, method=m, **options)
        target = int(t[0])
        mp = np.clip(maps[0], 0, None) if infos[m].signed else maps[0]
        row_maps.append(heatmap(mp))
        row_overlays.append(overlay(photo, mp))
        titles.append(m)
    label = ctx.classifier.short_name(target)
    path = save_figure([row_maps, row_overlays], ctx.out / "methods.png",
                       [titles, [f"{t}: {label}" for t in titles]])
    lighter = "; ".join(f"{m} with " + ", ".join(f"{k}={v}" for k, v in infos[m].demo.items())
                        for m in names if infos[m].demo)
    ctx.notes.append(f"methods.png: {name} explained by {len(names)} methods "
                     f"(`deepinside methods` lists them; {lighter})")
    return [path]

