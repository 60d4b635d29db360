"""``deepinside evaluate``: measurements on labelled datasets with boxes.

- ``evaluate localization``: weakly supervised localisation (GT-known / top-1 / top-5 loc,
  pointing game), streaming and resumable (:func:`deepinside.evaluate.run_localization`).
- ``evaluate compare``: every attribution method on one data set, one table
  (:func:`deepinside.evaluate.compare.compare_methods`).
"""

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
    nonnegative_int,
    output_dir,
    positive_int,
    progress,
)


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``evaluate`` and its sub-subcommands."""
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
    q.add_argument("--limit", "-n", type=positive_int, default=None,
                   help="only the first N photos")
    q.add_argument("--workers", "-j", type=nonnegative_int, default=1,
                   help="local: GrabCut worker processes (0: none, all in this process; "
                        "recipes without GrabCut always segment in this process); ray: model "
                        "actors")
    add_batch_size(q)
    q.add_argument("--seed", type=int, default=0, help="GrabCut's random seed")
    q.add_argument("--out", "-o", default="deepinside-eval-localization",
                   help="output directory (a run there with the same settings is resumed)")
    q.add_argument("--retry-failed", action="store_true",
                   help="evaluate again the photos that failed in the run in --out (by "
                        "default a resumed run keeps their failure lines)")
    q.add_argument("--json", action="store_true",
                   help="print the summary as JSON instead of a table")
    add_backend_args(q)
    q.set_defaults(func=run_localization)
    _register_compare(esub)


def _nonnegative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    return value


_nonnegative_float.__name__ = "float"
RAY_ONLY = ("ray_address", "ray_timeout", "actor_cpus", "actor_gpus")


def add_backend_args(p: argparse.ArgumentParser) -> None:
    """``--backend local|ray`` and the Ray backend's options (see docs/scale.md)."""
    p.add_argument("--backend", choices=("local", "ray"), default="local",
                   help="local: this process and its workers (default); ray: a Ray Data "
                        "pipeline (pip install 'deepinside[ray]'; see docs/scale.md)")
    p.add_argument("--ray-address", default=None, metavar="ADDRESS",
                   help="with --backend ray: join this cluster: HEAD:6379, 'auto' (as Ray "
                        "means it: RAY_ADDRESS, else the cluster `ray start` started on this "
                        "machine) or 'ray://HEAD:10001'; default: RAY_ADDRESS if set, else a "
                        "local Ray on this machine's cores")
    p.add_argument("--ray-timeout", type=_nonnegative_float, default=None, metavar="SECONDS",
                   help="with --backend ray: give up joining the cluster after this long, "
                        "with a one-line error (default 30)")
    p.add_argument("--actor-cpus", type=_nonnegative_float, default=None, metavar="N",
                   help="with --backend ray: CPUs each model actor asks for (default 0.5 "
                        "without GPUs, none besides its GPU with GPUs); from 1 up also its "
                        "torch threads (default: from its node's CPUs)")
    p.add_argument("--actor-gpus", type=_nonnegative_float, default=None, metavar="N",
                   help="with --backend ray: GPUs each model actor asks for (default 1 where "
                        "the cluster has GPUs, else 0)")


def check_backend(args: argparse.Namespace) -> None:
    """A one-line error for ``--backend ray`` without Ray, or a Ray option without it.

    Raises:
        CLIError: as above.
    """
    if args.backend != "ray":
        for name in RAY_ONLY:
            if getattr(args, name) is not None:
                raise CLIError(f"--{name.replace('_', '-')} needs --backend ray")
        return
    from ..evaluate import get_backend

    try:
        get_backend(args.backend).check()
    except ImportError as e:
        raise CLIError(str(e)) from None


def ray_settings(args: argparse.Namespace) -> dict:
    """The Ray backend's keyword arguments of :func:`deepinside.evaluate.run_localization` and
    ``compare_methods`` from the command line (none for another backend)."""
    if args.backend != "ray":
        return {}
    settings = {"ray_address": args.ray_address, "actor_cpus": args.actor_cpus,
                "actor_gpus": args.actor_gpus}
    if args.ray_timeout is not None:
        settings["ray_timeout"] = args.ray_timeout
    return settings


def connect_backend(args: argparse.Namespace) -> None:
    """``--backend ray``: join the cluster (or start the local Ray) now, before the model
    loads and before ``--out`` is locked, and say on stderr what it is.

    Raises:
        CLIError: the cluster cannot be joined (one line: the address and the likely cause).
    """
    if args.backend != "ray":
        return
    from ..evaluate import RayConnectError, connect_ray

    settings = ray_settings(args)
    try:
        said = connect_ray(settings["ray_address"],
                           **({"timeout": settings["ray_timeout"]} if "ray_timeout" in settings
                              else {}))
    except RayConnectError as e:
        raise CLIError(str(e)) from None
    Failures.say("ray", said.removeprefix("ray: "))


def dataset_records(path: str, limit: int | None, failures: Failures) -> list:
    """The usable records of a data set (the first ``limit``); malformed ones go to ``failures``.

    Raises:
        CLIError: the data set cannot be read, or holds no usable record.
    """
    from ..evaluate.datasets import DatasetError, read_dataset

    try:
        records, problems = read_dataset(path)
    except (DatasetError, OSError) as e:
        raise CLIError(f"cannot read {path}: {e}") from None
    for where, why in problems:
        failures(where, why)
    records = records[:limit] if limit is not None else records
    if not records:
        raise CLIError(f"no usable records in {path}")
    return records


def run_localization(args: argparse.Namespace) -> int:
    from ..evaluate import runner
    from ..evaluate.tables import localization_table
    from ..localize import get_recipe
    from ..methods import get_method

    if args.method is not None:
        lookup(get_method, args.method)
    check_backend(args)
    out = output_dir(args.out)
    problems = Failures()
    records = dataset_records(args.dataset, args.limit, problems)
    rec = get_recipe(args.recipe)
    connect_backend(args)
    pool = None
    if args.backend == "local" and args.workers > 0 and rec.segment == "grabcut":
        # started before the model loads
        pool = runner.start_workers(args.workers)
    failed = Failures()

    def warn(item: str, note: str) -> None:
        failed.say(item, f"warning: {note}")

    try:
        clf = model_from_args(args)
        summary = runner.run_localization(clf, records, out, recipe=rec,
                                          method=args.method, workers=args.workers,
                                          batch_size=args.batch_size, seed=args.seed,
                                          on_problem=failed, on_warning=warn, pool=pool,
                                          backend=args.backend,
                                          **ray_settings(args),
                                          retry_failed=args.retry_failed)
    except (runner.RunMismatchError, runner.RunLockedError) as e:
        raise CLIError(str(e)) from None
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
    rec = get_recipe(args.recipe)
    name = f"{rec.name} ({args.method or rec.method}{' x ' + rec.combine if rec.combine else ''})"
    if args.json:
        json.dump(summary, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print(localization_table(summary, name))
    print(f"wrote {out / 'per_image.jsonl'} and {out / 'summary.json'}", file=sys.stderr)
    if problems or failed:
        print(f"skipped {len(problems)} malformed records; {len(failed)} photos failed (each "
              "said above; a line with its reason in per_image.jsonl)", file=sys.stderr)
    return 1 if problems or failed else 0


def _register_compare(evaluate_subparsers) -> None:
    """Add ``evaluate compare``."""
    p = evaluate_subparsers.add_parser(
        "compare",
        help="every attribution method on a labelled data set: pointing game, localisation, "
             "deletion / insertion, randomisation, speed",
    )
    p.add_argument("--methods", default=None,
                   help="comma-separated method names (default: all but the slow ones, which "
                        "run thousands of passes a photo: cost 'slow' in `deepinside methods`)")
    p.add_argument("--dataset", "-d", required=True,
                   help="directory (or annotations file) of a labelled data set with boxes")
    p.add_argument("--limit", "-n", type=positive_int, default=None,
                   help="use the first N photos only")
    add_model_args(p)
    add_batch_size(p)
    p.add_argument("--steps", type=positive_int, default=16,
                   help="deletion / insertion steps (default 16)")
    p.add_argument("--recipe", "-r", default="gradcam-30",
                   help="localisation recipe whose segmentation makes the boxes "
                        "(default gradcam-30: threshold at 30%% of the range, largest component)")
    p.add_argument("--smooth", type=float, default=0.04,
                   help="blur every map before segmenting it, sigma as a fraction of the "
                        "photo's side (default 0.04)")
    p.add_argument("--no-deletion", action="store_true",
                   help="skip the deletion / insertion curves")
    p.add_argument("--no-randomization", action="store_true",
                   help="skip the randomisation test (saves one map per image)")
    p.add_argument("--json", action="store_true", help="print JSON rows instead of a table")
    p.add_argument("--workers", "-j", type=positive_int, default=1,
                   help="with --backend ray: model actors")
    p.add_argument("--metrics", default=None,
                   help="score with registered metrics instead (names, families, 'cheap' or "
                        "'all'; `python -c 'import deepinside; print(list(deepinside."
                        "list_metrics()))'`): a resumable run into --out, with per-photo lines, "
                        "means with 95%% intervals and the significant differences")
    p.add_argument("--out", "-o", default="deepinside-compare",
                   help="with --metrics: the run directory (default deepinside-compare)")
    p.add_argument("--seed", type=int, default=0, help="with --metrics: the random metrics' seed")
    add_backend_args(p)
    p.set_defaults(func=run_compare)


def run_compare_metrics(args: argparse.Namespace, names: list[str]) -> int:
    """``evaluate compare --metrics``: a run into ``--out`` (see :mod:`..evaluate.metrics_run`)."""
    from ..evaluate import runner
    from ..evaluate.metrics_run import compare_metrics, metrics_table
    from ..metrics import resolve_metrics

    try:
        resolve_metrics(args.metrics)
    except KeyError as e:
        raise CLIError(str(e).strip("'\"")) from None
    problems = Failures()
    records = dataset_records(args.dataset, args.limit, problems)
    connect_backend(args)
    clf = model_from_args(args)
    failures = Failures()

    def warn(item: str, note: str) -> None:
        failures.say(item, f"warning: {note}")

    try:
        summary = compare_metrics(clf, records, args.out, names, args.metrics,
                                  batch_size=args.batch_size, seed=args.seed,
                                  backend=args.backend, workers=args.workers,
                                  on_problem=failures, on_warning=warn, **ray_settings(args))
    except (runner.RunMismatchError, runner.RunLockedError, ValueError) as e:
        raise CLIError(str(e)) from None
    if args.json:
        json.dump(summary, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print(f"{clf.name} on {summary['n_images']} photos of {args.dataset}; maps explain the "
              f"true class; per photo in {args.out}/per_image.jsonl")
        print(metrics_table(summary))
    return 1 if failures or problems else 0


def run_compare(args: argparse.Namespace) -> int:
    from ..evaluate.compare import compare_methods
    from ..evaluate.tables import methods_table
    from ..localize import get_recipe
    from ..methods import get_method, method_names

    if args.methods is None:
        names = list(method_names(slow=False))
    else:
        names = [n.strip() for n in args.methods.split(",") if n.strip()]
    if not names:
        raise CLIError("--methods is empty")
    for n in names:
        lookup(get_method, n)
    if args.metrics is not None:
        check_backend(args)
        return run_compare_metrics(args, names)
    lookup(get_recipe, args.recipe)
    check_backend(args)
    problems = Failures()
    records = dataset_records(args.dataset, args.limit, problems)
    connect_backend(args)
    clf = model_from_args(args)
    failures = Failures()

    with progress(len(records), "compare") as bar:
        rows = compare_methods(clf, records, names, batch_size=args.batch_size,
                               steps=args.steps, recipe=args.recipe, smooth=args.smooth,
                               deletion=not args.no_deletion,
                               randomization=not args.no_randomization,
                               on_batch=bar.update, on_failure=failures,
                               backend=args.backend, workers=args.workers,
                               **ray_settings(args))
    if args.json:
        json.dump([r.to_dict() for r in rows], sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print(f"{clf.name} on {len(records) - len(failures)} photos of {args.dataset}; "
              f"maps explain the true class")
        print(methods_table(rows))
    return 1 if failures or problems else 0
