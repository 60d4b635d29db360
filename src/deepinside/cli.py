"""The ``deepinside`` command, thin over the public API.

Subcommands: ``classify``, ``saliency``, ``models``, ``demo``, and those that modules of the
:mod:`deepinside.commands` package add (each module has ``register(subparsers)`` and may have
``demo(context) -> list[Path]`` to add its part to ``deepinside demo``).

Batch jobs never stop at one bad input: each failure is one line on stderr naming the input and
the reason, and the exit status is 1 if any input failed (2 for a usage or model error).
"""

from __future__ import annotations

import argparse
import importlib
import json
import pkgutil
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["DemoContext", "main"]

PROGRESS_MIN = 5  # show a progress bar from this many inputs on


class CLIError(Exception):
    """A usage error: printed as one line, exit status 2."""


# ----------------------------------------------------------------------------- shared helpers


def add_model_args(p: argparse.ArgumentParser) -> None:
    """``--model``, ``--weights``, ``--device``: how a subcommand finds its classifier."""
    p.add_argument("--model", "-m", default="efficientnet_lite0",
                   help="efficientnet_lite0 (default), efficientnet_lite1/2, timm:<name>, "
                        "torchvision:<name>")
    p.add_argument("--weights", "-w", default=None,
                   help="local .safetensors/.pt/.pth state dict for the model's architecture")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:1, ... (default: auto)")


def resolve_device(name: str):
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError as e:
        raise CLIError(f"bad --device {name!r}: {e}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise CLIError("--device cuda asked for, but no CUDA device is available")
    return dev


def model_from_args(args: argparse.Namespace):
    """Load the classifier that ``--model/--weights/--device`` name (errors become CLIError)."""
    from .models import ModelLoadError, load_model

    try:
        return load_model(args.model, weights=args.weights, device=resolve_device(args.device))
    except ModelLoadError as e:
        raise CLIError(str(e)) from None


def lookup(get, name: str):
    """``get(name)`` from a registry (methods, recipes, ...); an unknown name -> CLIError."""
    try:
        return get(name)
    except KeyError as e:
        raise CLIError(str(e).strip("'\"")) from None


def resolve_class(clf, key: str) -> int:
    """A class given on the command line (index or name) -> index; unknown -> CLIError."""
    try:
        return clf.class_index(key)
    except ValueError as e:
        raise CLIError(str(e)) from None


def fail(item: object, reason: str) -> None:
    """One line on stderr for one failed input (safe beside a progress bar)."""
    from tqdm import tqdm

    tqdm.write(f"deepinside: {item}: {reason}", file=sys.stderr)


def progress(total: int, desc: str, unit: str = "img"):
    """A tqdm bar on stderr, shown when there is more than a handful of items."""
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, disable=total < PROGRESS_MIN,
                file=sys.stderr, dynamic_ncols=True)


@dataclass
class PhotoBatch:
    paths: list[Path]
    photos: list  # PIL images


def iter_photo_batches(inputs: Sequence[str], batch_size: int, failures: list) -> Iterator:
    """Expand inputs and yield loaded photos in batches; unreadable ones are reported and skipped.

    Appends ``(input, reason)`` to ``failures`` for each bad input.
    """
    from .images import ImageLoadError, expand_inputs, load_image

    paths, problems = expand_inputs(inputs)
    for item, reason in problems:
        fail(item, reason)
        failures.append((item, reason))
    yield len(paths)
    batch = PhotoBatch([], [])
    for path in paths:
        try:
            batch.photos.append(load_image(path))
            batch.paths.append(path)
        except ImageLoadError as e:
            msg = str(e).removeprefix(f"{path}: ")
            fail(path, msg)
            failures.append((str(path), msg))
            yield PhotoBatch([], [])  # lets the caller advance its bar
            continue
        if len(batch.paths) == batch_size:
            yield batch
            batch = PhotoBatch([], [])
    if batch.paths:
        yield batch


def topk_records(clf, logits, k: int) -> list[list[dict]]:
    """Per image: ``[{"class", "name", "prob", "logit"}, ...]`` for the top-k classes."""
    import torch

    probs = torch.softmax(logits.float(), dim=1)
    k = min(k, logits.shape[1])
    vals, idx = probs.topk(k, dim=1)
    return [
        [
            {"class": int(c), "name": clf.short_name(int(c)), "prob": float(p),
             "logit": float(logits[i, c])}
            for p, c in zip(vals[i], idx[i])
        ]
        for i in range(logits.shape[0])
    ]


# ----------------------------------------------------------------------------- classify


def cmd_classify(args: argparse.Namespace) -> int:
    import torch

    from .images import photos_to_batch
    from .saliency import eval_mode

    if args.top_k < 1:
        raise CLIError("--top-k must be at least 1")
    clf = model_from_args(args)
    failures: list = []
    results = []
    batches = iter_photo_batches(args.images, args.batch_size, failures)
    total = next(batches)
    with progress(total, "classify") as bar:
        for batch in batches:
            if batch.paths:
                x = photos_to_batch(batch.photos, clf.preprocessing, crop=True)
                with torch.no_grad(), eval_mode(clf.module):
                    logits = clf(x.to(clf.device, clf.dtype))
                for path, top in zip(batch.paths, topk_records(clf, logits, args.top_k)):
                    results.append({"image": str(path), "top": top})
                    if not args.json:
                        text = ", ".join(f"{t['name']} {t['prob']:.3f}" for t in top)
                        bar.write(f"{path}: {text}", file=sys.stdout)
            bar.update(max(1, len(batch.paths)))
    if args.json:
        json.dump(results, sys.stdout, indent=2)
        sys.stdout.write("\n")
    return 1 if failures or not total else 0


# ----------------------------------------------------------------------------- saliency


def output_paths(out: Path, stem: str, suffixes: Sequence[str]) -> list[Path]:
    return [out / f"{stem}{s}" for s in suffixes]


def claim_batch(batch: PhotoBatch, outputs, taken: dict[Path, Path], overwrite: bool,
                failures: list) -> list:
    """The ``(path, photo)`` pairs of a batch whose outputs may be written; the others fail.

    Args:
        outputs: ``f(path) -> list[Path]``, the files a photo's results go to.
        taken: outputs claimed so far in this run (updated).
        failures: gets ``(path, reason)`` for each photo refused.
    """
    keep = []
    for path, photo in zip(batch.paths, batch.photos):
        why = claim_outputs(outputs(path), taken, path, overwrite)
        if why:
            fail(path, why)
            failures.append((str(path), why))
        else:
            keep.append((path, photo))
    return keep


def claim_outputs(paths: list[Path], taken: dict[Path, Path], source: Path,
                  overwrite: bool) -> str | None:
    """Why these outputs must not be written (existing file, or another input's), or None."""
    for p in paths:
        if p in taken:
            return f"output {p} would also be written for {taken[p]} (rename one of them)"
        if p.exists() and not overwrite:
            return f"output {p} exists (use --overwrite to replace it)"
    for p in paths:
        taken[p] = source
    return None


SALIENCY_OUTPUTS = ("_saliency.png", "_overlay.png", "_saliency.npy")


def cmd_saliency(args: argparse.Namespace) -> int:
    import numpy as np

    from .render import heatmap, overlay, save_png
    from .saliency import photo_maps

    if args.batch_size < 1:
        raise CLIError("--batch-size must be at least 1")
    clf = model_from_args(args)
    target = resolve_class(clf, args.target) if args.target is not None else None
    method = _method_from_args(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    failures: list = []
    taken: dict[Path, Path] = {}
    batches = iter_photo_batches(args.images, args.batch_size, failures)
    total = next(batches)
    with progress(total, "saliency") as bar:
        for batch in batches:
            keep = claim_batch(batch, lambda p: output_paths(out, p.stem, SALIENCY_OUTPUTS),
                               taken, args.overwrite, failures)
            if keep:
                photos = [p for _, p in keep]
                kw = {"method": method} if method is not None else {}
                maps, targets, _ = photo_maps(clf, photos, target, batch_size=len(photos), **kw)
                for (path, photo), m, t in zip(keep, maps, targets.tolist()):
                    png, ovl, npy = output_paths(out, path.stem, SALIENCY_OUTPUTS)
                    save_png(heatmap(m), png)
                    save_png(_label(overlay(photo, m), clf.short_name(t)), ovl)
                    np.save(npy, m.astype(np.float32))
            bar.update(max(1, len(batch.paths)))
    print(f"wrote maps for {_count_done(taken)} of {total} images to {out}", file=sys.stderr)
    return 1 if failures or not total else 0


def _count_done(taken: dict[Path, Path]) -> int:
    return len({src for p, src in taken.items() if p.exists()})


def _method_from_args(args: argparse.Namespace):
    """The attribution function named by ``--method`` (if the methods registry is present)."""
    name = getattr(args, "method", None)
    if name in (None, "gradient"):
        return None
    try:
        from .methods import get_method
    except ImportError:
        raise CLIError(f"unknown method {name!r}") from None
    return lookup(get_method, name)


def _label(img, text: str):
    """Write a class name in the top-left corner of an image (uint8 H, W, 3)."""
    from PIL import Image, ImageDraw

    im = Image.fromarray(img)
    d = ImageDraw.Draw(im)
    box = d.textbbox((4, 4), text)
    d.rectangle((box[0] - 3, box[1] - 3, box[2] + 3, box[3] + 3), fill=(0, 0, 0))
    d.text((4, 4), text, fill=(255, 255, 255))
    import numpy as np

    return np.asarray(im)


# ----------------------------------------------------------------------------- models


def cmd_models(args: argparse.Namespace) -> int:
    from .models import list_models

    for name, desc in list_models().items():
        print(f"{name:20s} {desc}")
    print(f"{'timm:<name>':20s} any timm model, pretrained weights through timm (needs internet)")
    print(f"{'torchvision:<name>':20s} any torchvision classifier, weights through torchvision "
          "(needs internet)")
    return 0


# ----------------------------------------------------------------------------- demo


@dataclass
class DemoContext:
    """What ``deepinside demo`` hands to each capability's demo function."""

    classifier: object
    photos: list  # (name, PIL image)
    out: Path
    notes: list[str] = field(default_factory=list)


def demo_photos() -> list:
    """Photos that ship with installed packages (scikit-image, matplotlib), never ImageNet's."""
    import matplotlib.cbook as cbook
    from PIL import Image
    from skimage import data

    photos = [(n, Image.fromarray(getattr(data, n)()).convert("RGB"))
              for n in ("chelsea", "coffee", "astronaut", "rocket")]
    with cbook.get_sample_data("grace_hopper.jpg") as f:
        photos.append(("grace_hopper", Image.open(f).convert("RGB")))
    return photos


def cmd_demo(args: argparse.Namespace) -> int:
    from .render import heatmap, overlay, save_figure
    from .saliency import photo_maps

    clf = model_from_args(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    photos = demo_photos()
    maps, targets, logits = photo_maps(clf, [p for _, p in photos])
    tops = topk_records(clf, logits, 5)
    rows, titles, labels = [], [], []
    for (name, photo), m, t, top in zip(photos, maps, targets.tolist(), tops):
        rows.append([_np(photo), heatmap(m), overlay(photo, m)])
        titles.append([name, "saliency |dS_c/dI| (max over RGB)", f"overlay: {clf.short_name(t)}"])
        labels.append("top-5:\n" + "\n".join(f"{r['prob']:.2f} {r['name'][:22]}" for r in top))
    written = [save_figure(rows, out / "saliency.png", titles, labels)]
    ctx = DemoContext(clf, photos, out)
    for mod in _command_modules():
        fn = getattr(mod, "demo", None)
        if fn is not None:
            written.extend(fn(ctx))
    for p in written:
        print(f"wrote {p}")
    for n in ctx.notes:
        print(n)
    return 0


def _np(photo):
    import numpy as np

    return np.asarray(photo)


# ----------------------------------------------------------------------------- entry point


def _command_modules() -> list:
    from . import commands

    return [importlib.import_module(f"{commands.__name__}.{m.name}")
            for m in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name)]


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="deepinside",
        description="What an image classifier looks at, and what it has learned "
                    "(Simonyan et al. 2013, https://arxiv.org/abs/1312.6034, and beyond).",
    )
    parser.add_argument("--version", action="version", version=f"deepinside {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("classify", help="top-k classes of photos")
    p.add_argument("images", nargs="+", help="files, directories or glob patterns")
    add_model_args(p)
    p.add_argument("--top-k", "-k", type=int, default=5)
    p.add_argument("--json", action="store_true", help="print a JSON array")
    p.add_argument("--batch-size", "-b", type=int, default=16)
    p.set_defaults(func=cmd_classify)

    p = sub.add_parser("saliency", help="the paper's saliency maps for photos")
    p.add_argument("images", nargs="+", help="files, directories or glob patterns")
    add_model_args(p)
    p.add_argument("--target", "-t", default=None,
                   help="class index or name (default: each photo's top-1 class)")
    p.add_argument("--method", default="gradient",
                   help="attribution method (default: gradient, the paper's)")
    p.add_argument("--out", "-o", default="deepinside-saliency", help="output directory")
    p.add_argument("--batch-size", "-b", type=int, default=16)
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.set_defaults(func=cmd_saliency)

    p = sub.add_parser("models", help="list the named models")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("demo", help="run everything on photos that ship with installed packages")
    add_model_args(p)
    p.add_argument("--out", "-o", default="deepinside-demo", help="output directory")
    p.set_defaults(func=cmd_demo)

    for mod in _command_modules():
        mod.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``deepinside`` command; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except CLIError as e:
        print(f"deepinside: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("deepinside: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
