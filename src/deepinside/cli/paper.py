"""``deepinside paper``: the paper's figures and tables, regenerated as one page."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .common import CLIError, Failures, add_model_args, model_from_args, output_dir, positive_int


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``paper`` subcommand."""
    p = sub.add_parser(
        "paper", help="regenerate the paper (Simonyan et al. 2013) as a report: index.html",
        description="Every figure and table of Simonyan, Vedaldi & Zisserman (2013, "
                    "https://arxiv.org/abs/1312.6034) on a classifier and a dataset with "
                    "boxes, next to what the field learned since.")
    add_model_args(p)
    p.add_argument("--dataset", "-d", default=None,
                   help="a dataset with boxes (as for evaluate localization); default: the "
                        "demo photos, without the tables that need boxes")
    p.add_argument("--limit", "-n", type=positive_int, default=None,
                   help="only the first N photos of the dataset")
    p.add_argument("--out", "-o", default="deepinside-paper",
                   help="output folder (a report there with the same arguments is reused)")
    p.add_argument("--metrics-run", default=None, metavar="DIR",
                   help="show the metrics of this `evaluate compare --metrics` run (its "
                        "summary.json) instead of computing them")
    p.add_argument("--quick", action="store_true",
                   help="fewer classes, steps and photos: the whole page in a few minutes")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..report import paper_report
    from .evaluate import dataset_records

    out = output_dir(args.out)
    problems = Failures()
    records = None
    if args.dataset is not None:
        records = dataset_records(args.dataset, args.limit, problems)
    elif args.limit is not None:
        raise CLIError("--limit needs --dataset")
    if args.metrics_run is not None and not (Path(args.metrics_run) / "summary.json").is_file():
        raise CLIError(f"--metrics-run {args.metrics_run}: no summary.json there (the folder of "
                       "a finished `deepinside evaluate compare --metrics` run)")
    from ..evaluate.runner import RunLockedError, RunMismatchError

    clf = model_from_args(args)
    try:
        report = paper_report(clf, out, records=records, dataset=args.dataset, quick=args.quick,
                              metrics_run=args.metrics_run)
    except (RunLockedError, RunMismatchError) as e:
        raise CLIError(str(e)) from None
    print(f"wrote {out / 'index.html'} and {out / 'report.json'} in {report['seconds']:.0f} s",
          file=sys.stderr)
    return 1 if problems else 0
