"""``deepinside classify``: the top-k classes of photos."""

from __future__ import annotations

import argparse
import json
import sys

from .common import (
    Failures,
    add_batch_size,
    add_model_args,
    model_from_args,
    photo_batches,
    positive_int,
    progress,
)


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``classify`` subcommand."""
    p = sub.add_parser("classify", help="top-k classes of photos")
    p.add_argument("images", nargs="+", help="files, directories or glob patterns")
    add_model_args(p)
    p.add_argument("--top-k", "-k", type=positive_int, default=5,
                   help="classes per photo, best first (default 5)")
    p.add_argument("--json", action="store_true", help="print a JSON array")
    add_batch_size(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..photomaps import forward_photos

    clf = model_from_args(args)
    failures = Failures()
    results = []
    total, batches = photo_batches(args.images, args.batch_size, failures)
    with progress(total, "classify") as bar:
        for batch in batches:
            if batch.items:
                _, logits = forward_photos(clf, batch.photos, crop=True)
                for path, top in zip(batch.items, clf.top_classes(logits, args.top_k)):
                    results.append({"image": str(path), "top": top})
                    if not args.json:
                        text = ", ".join(f"{t['name']} {t['prob']:.3f}" for t in top)
                        bar.write(f"{path}: {text}", file=sys.stdout)
            bar.update(len(batch.items) + batch.failed)
    if args.json:
        json.dump(results, sys.stdout, indent=2)
        sys.stdout.write("\n")
    return 1 if failures or not total else 0
