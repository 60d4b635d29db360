"""``deepinside audit``: what a model relies on, class by class, over a whole data set
(:func:`deepinside.audit`): SpRAy strategies, a suspicion score and the erase check per class;
``--out`` gets ``index.html``, ``audit.json`` and ``per_image.jsonl`` (resumable)."""

from __future__ import annotations

import argparse
import json
import sys

from .common import (
    CLIError,
    Failures,
    add_batch_size,
    add_model_args,
    lookup,
    model_from_args,
    output_dir,
    positive_int,
)
from .evaluate import add_backend_args, check_backend, dataset_records


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``audit``."""
    p = sub.add_parser("audit", help="find what a model relies on, class by class, over a "
                                     "data set (SpRAy clusters, suspicion, erase check)")
    p.add_argument("--dataset", "-d", required=True,
                   help="annotations.json, a CSV of boxes, or an ILSVRC/VOC XML folder")
    add_model_args(p)
    p.add_argument("--method", default="gradcam", help="attribution method (default gradcam)")
    p.add_argument("--classes", default=None,
                   help="comma-separated classes to audit (indices or names; default all)")
    p.add_argument("--limit", "-n", type=positive_int, default=None,
                   help="only the first N photos (of those classes)")
    add_batch_size(p)
    p.add_argument("--erase-photos", type=positive_int, default=16,
                   help="photos of a cluster the erase check blurs (default 16)")
    p.add_argument("--workers", "-j", type=positive_int, default=1,
                   help="with --backend ray: model actors")
    p.add_argument("--out", "-o", default="deepinside-audit",
                   help="output directory (an audit there with the same settings is resumed)")
    p.add_argument("--json", action="store_true",
                   help="print audit.json (every class and cluster) instead of the table")
    add_backend_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from .. import audit
    from ..evaluate import runner
    from ..methods import get_method

    lookup(get_method, args.method)
    check_backend(args)
    out = output_dir(args.out)
    problems = Failures()
    records = dataset_records(args.dataset, None, problems)
    clf = model_from_args(args)
    classes = [c.strip() for c in args.classes.split(",") if c.strip()] if args.classes else None
    failed = Failures()
    try:
        result = audit(clf, records, out, method=args.method, classes=classes, limit=args.limit,
                       backend=args.backend, batch_size=args.batch_size,
                       erase_photos=args.erase_photos, on_problem=failed,
                       ray_address=args.ray_address, workers=args.workers,
                       dataset_name=args.dataset)
    except (runner.RunMismatchError, runner.RunLockedError, ValueError) as e:
        raise CLIError(str(e)) from None
    flagged = [c for c in result["classes"] if c["flagged"]]
    if args.json:
        print(json.dumps(result, indent=2))  # what audit.json holds
    else:
        _print_table(result, flagged)
    print(f"wrote {out / 'index.html'}, {out / 'audit.json'} and {out / 'per_image.jsonl'}",
          file=sys.stderr)
    if problems or failed:
        print(f"skipped {len(problems)} malformed records; {len(failed)} photos failed (each "
              "said above)", file=sys.stderr)
    return 1 if problems or failed else 0


def _print_table(result: dict, flagged: list[dict]) -> None:
    print(f"{result['n_photos']} photos, {len(result['classes'])} classes, {len(flagged)} "
          "flagged" + (": " + ", ".join(c["name"] for c in flagged) if flagged else ""))
    for c in result["classes"][:10]:
        print(f"  {c['suspicion']:.3f}  {c['name']} ({c['n']} photos)"
              f"{'  FLAGGED' if c['flagged'] else ''}")
