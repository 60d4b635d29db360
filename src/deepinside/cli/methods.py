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


def demo(ctx, sign: str | None = None, shared_scale: bool | None = None) -> list[Path]:
    """One photo, every method in a grid with colour bars (``methods.png``).

    ``sign`` and ``shared_scale`` default to the context's (``deepinside demo --sign ...
    --shared-scale``). Signed methods are drawn on a diverging colour map centred on 0
    (``sign="auto"``), the others as magnitudes; each panel has its own scale unless
    ``shared_scale``. A method
    whose map has no such sign (:attr:`~deepinside.methods.MethodInfo.signs`: a map of
    magnitudes has no negative part) is drawn at its
    :attr:`~deepinside.methods.MethodInfo.default_sign` instead, and its panel's title says
    so (``"gradcam (absolute: no sign)"``), as the page's "Compare all methods" does.
    """
    from ..methods import list_methods, method_names
    from ..photomaps import photo_maps
    from ..render import save_map_grid

    sign = ctx.sign if sign is None else sign
    shared_scale = ctx.shared_scale if shared_scale is None else shared_scale
    name, photo = ctx.photos[0]
    infos = list_methods()
    names = method_names()
    panels = []
    target = None
    for m in names:
        info = infos[m]
        s = sign if sign in info.signs else info.default_sign  # "auto": the default too
        options = {**info.demo, **DEMO_OPTIONS.get(m, {}), **info.sign_options(s)}
        maps, t, _ = photo_maps(ctx.classifier, [photo], target, method=m, **options)
        target = int(t[0])
        title = m if sign in ("auto", s) else f"{m} ({s}: no sign)"
        panels.append((title, maps[0], s))
    label = ctx.classifier.short_name(target)
    path = save_map_grid(ctx.out / "methods.png", photo, panels, shared_scale=shared_scale,
                         title=f"{name}: every method explains {label!r}")
    lighter = "; ".join(f"{m} with " + ", ".join(f"{k}={v}" for k, v in infos[m].demo.items())
                        for m in names if infos[m].demo)
    ctx.notes.append(f"methods.png: {name} explained by {len(names)} methods "
                     f"(`deepinside methods` lists them; signed maps red for, blue against the "
                     f"class; {lighter})")
    return [path]
