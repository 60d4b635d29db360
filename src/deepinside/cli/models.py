"""``deepinside models``: the named models, and the other ways to name one."""

from __future__ import annotations

import argparse
import json
import sys


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``models`` subcommand."""
    p = sub.add_parser("models", help="list the named models")
    p.add_argument("pattern", nargs="?", default=None, help="only names matching this glob")
    p.add_argument("--json", action="store_true", help="print a JSON array")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..models import list_loaders, list_models

    rows = dict(list_models(args.pattern))
    rows.update({f"{prefix}<name>": desc for prefix, desc in list_loaders().items()})
    rows["package.module:factory"] = "a model built by your own function"
    if args.json:
        json.dump([{"name": n, "description": d} for n, d in rows.items()], sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    for name, desc in rows.items():
        print(f"{name:22s} {desc}")
    return 0
