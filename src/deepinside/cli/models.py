"""``deepinside models``: the named models, and the other ways to name one."""

from __future__ import annotations

import argparse
import json
import sys

# The other ways to name a model (see deepinside.models.load_model).
OTHER_NAMES = {
    "timm:<name>": "any timm model, pretrained weights through timm (needs internet)",
    "torchvision:<name>": "any torchvision classifier, weights through torchvision "
                          "(needs internet)",
}


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``models`` subcommand."""
    p = sub.add_parser("models", help="list the named models")
    p.add_argument("pattern", nargs="?", default=None, help="only names matching this glob")
    p.add_argument("--json", action="store_true", help="print a JSON array")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..models import list_models

    rows = {**list_models(args.pattern), **OTHER_NAMES}
    if args.json:
        json.dump([{"name": n, "description": d} for n, d in rows.items()], sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    for name, desc in rows.items():
        print(f"{name:20s} {desc}")
    return 0
