"""``deepinside evaluate``: measurements on datasets, one sub-subcommand each.

This module creates the ``evaluate`` parser, adds ``localization`` and then lets every other
module of :mod:`deepinside.commands` that defines ``register_evaluate(subparsers)`` add its own.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..cli import CLIError, add_model_args, fail, lookup, model_from_args


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``evaluate`` and its sub-subcommands."""
    from ..cli import _command_modules
    from ..localize import RECIPES

    p = sub.add_parser("evaluate", help="measure methods on a dataset (localization, ...)")
    esub = p.add_subparsers(dest="evaluation", required=True, metavar="WHAT")
    q = esub.add_parser(
        "localization",
        help="weakly supervised localisation: GT-known / top-1 / top-5 loc, pointing game",
    )
    q.add_argument("--dataset", "-d", required=True,
                   help="annotations.json, a CSV of boxes, or an ILSVRC/VOC XML folder")
    add_model_args(q)
    q.add_argument("--recipe", "-r", default="default", choices=sorted(RECIPES))
    q.add_argument("--method", default=None, help="attribution method (default: the recipe's)")
    q.add_argument("--limit", "-n", type=int, default=None, help="only the first N photos")
    q.add_argument("--workers", "-j", type=int, default=1,
                   help="GrabCut worker processes (0: none, all in this process; recipes "
                        "without GrabCut always segment in this process)")
    q.add_argument("--batch-size", "-b", type=int, default=16)
    q.add_argument("--seed", type=int, default=0, help="GrabCut's random seed")
    q.add_argument("--out", "-o", default="deepinside-eval-localization",
                   help="output directory (a run there with the same settings is resumed)")
    q.set_defaults(func=cmd_localization)
    for mod in _command_modules():
        fn = getattr(mod, "register_evaluate", None)
        if fn is not None:
            fn(esub)


def dataset_records(path: str, limit: int | None) -> tuple[list, list]:
    """The usable records of a data set (the first ``limit``), and the malformed ones, reported.

    Raises:
        CLIError: the data set cannot be read, or holds no usable record.
    """
    from ..evaluate.datasets import DatasetError, read_dataset

    if limit is not None and limit < 1:
        raise CLIError("--limit must be at least 1")
    try:
        records, problems = read_dataset(path)
    except (DatasetError, OSError) as e:
        raise CLIError(f"cannot read {path}: {e}") from None
    for where, why in problems:
        fail(where, why)
    records = records[:limit] if limit is not None else records
    if not records:
        raise CLIError(f"no usable records in {path}")
    return records, problems


def cmd_localization(args: argparse.Namespace) -> int:
    from ..evaluate.runner import RunMismatchError, format_table, run_localization
    from ..localize import get_recipe, map_function

    if args.workers < 0 or args.batch_size < 1:
        raise CLIError("--workers must be >= 0 and --batch-size >= 1")
    if args.method is not None:
        lookup(map_function, args.method)
    records, problems = dataset_records(args.dataset, args.limit)
    clf = model_from_args(args)
    failed: list = []

    def on_problem(item: str, reason: str) -> None:
        fail(item, reason)
        failed.append(item)

    try:
        summary = run_localization(clf, records, args.out, recipe=args.recipe,
                                   method=args.method, workers=args.workers,
                                   batch_size=args.batch_size, seed=args.seed,
                                   on_problem=on_problem)
    except RunMismatchError as e:
        raise CLIError(str(e)) from None
    rec = get_recipe(args.recipe)
    name = f"{rec.name} ({args.method or rec.method}{' x ' + rec.combine if rec.combine else ''})"
    print(format_table(summary, name))
    out = Path(args.out)
    print(f"wrote {out / 'per_image.jsonl'} and {out / 'summary.json'}", file=sys.stderr)
    if problems or failed:
        print(f"skipped {len(problems)} malformed records and {len(failed)} unreadable photos",
              file=sys.stderr)
    return 1 if problems or failed else 0
