"""``deepinside methods``: the attribution methods and their papers (and the demo figure)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

__all__ = ["COMPARE_METHODS", "DEMO_METHODS", "DEMO_OPTIONS", "SLOW_METHODS", "demo",
           "register"]

# Every registered method (a test keeps the two equal), in the order of the figure.
DEMO_METHODS = ("gradient", "deconvnet", "guided_backprop", "gradient_x_input", "smoothgrad",
                "integrated_gradients", "deeplift", "gradient_shap", "lrp", "gradcam", "gradcam_pp",
                "layercam", "hirescam", "xgradcam", "eigencam", "scorecam", "ablationcam",
                "occlusion", "rise", "extremal_perturbation")
# Thousands of passes per photo: left out of `evaluate compare` unless named.
SLOW_METHODS = ("scorecam", "rise", "extremal_perturbation")
COMPARE_METHODS = tuple(m for m in DEMO_METHODS if m not in SLOW_METHODS)
# The demo figure's lighter settings for the perturbation methods (a few seconds each on a CPU).
DEMO_OPTIONS: dict[str, dict] = {"rise": {"masks": 500},
                                 "extremal_perturbation": {"iterations": 100}}


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
        json.dump([{"name": i.name, "description": i.description, "paper": i.paper}
                   for i in infos], sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    width = max(len(i.name) for i in infos)
    for i in infos:
        print(f"{i.name:{width}s}  {i.description}")
        print(f"{'':{width}s}  {i.paper}")
    return 0


def demo(ctx, sign: str = "auto", shared_scale: bool = False) -> list[Path]:
    """One photo, every method in a grid with colour bars (``methods.png``).

    Signed methods are drawn on a diverging colour map centred on 0 (``sign="auto"``), the
    others as magnitudes; each panel has its own scale unless ``shared_scale``.
    """
    from ..images import photo_maps
    from ..methods import signed_options
    from ..render import save_map_grid
    from .common import sign_of

    name, photo = ctx.photos[0]
    panels = []
    target = None
    for m in DEMO_METHODS:
        s = sign_of(m, sign)
        maps, t, _ = photo_maps(ctx.classifier, [photo], target, method=m,
                                **DEMO_OPTIONS.get(m, {}), **signed_options(m, s))
        target = int(t[0])
        panels.append((m, maps[0], s))
    label = ctx.classifier.short_name(target)
    path = save_map_grid(ctx.out / "methods.png", photo, panels, shared_scale=shared_scale,
                         title=f"{name}: every method explains {label!r}")
    ctx.notes.append(f"methods.png: {name} explained by {len(DEMO_METHODS)} methods "
                     f"(`deepinside methods` lists them; signed maps red for, blue against the "
                     f"class; RISE with 500 masks and extremal perturbation with 100 steps)")
    return [path]
