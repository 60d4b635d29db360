"""``deepinside models``: the named models, and the other ways to name one."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``models`` subcommand."""
    p = sub.add_parser("models", help="list the named models")
    p.add_argument("pattern", nargs="?", default=None, help="only names matching this glob")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..models import list_loaders, list_models

    for name, desc in list_models(args.pattern).items():
        print(f"{name:22s} {desc}")
    for prefix, desc in list_loaders().items():
        print(f"{prefix + '<name>':22s} {desc}")
    print(f"{'package.module:factory':22s} a model built by your own function")
    return 0
