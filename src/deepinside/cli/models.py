"""``deepinside models``: the named models, and the other ways to name one."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``models`` subcommand."""
    p = sub.add_parser("models", help="list the named models")
    p.add_argument("pattern", nargs="?", default=None, help="only names matching this glob")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..models import list_models

    for name, desc in list_models(args.pattern).items():
        print(f"{name:20s} {desc}")
    print(f"{'timm:<name>':20s} any timm model, pretrained weights through timm (needs internet)")
    print(f"{'torchvision:<name>':20s} any torchvision classifier, weights through torchvision "
          "(needs internet)")
    return 0
