"""What the subcommands share: model arguments, argparse types, errors, progress, photo batches.

Batch jobs never stop at one bad input: each failure is one line on stderr naming the input and
the reason (:class:`Failures`), and the exit status is 1 if any input failed (2 for a usage or
model error, :class:`CLIError`).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

__all__ = [
    "CLIError",
    "Failures",
    "add_model_args",
    "add_target_arg",
    "check_logits",
    "claim_batch",
    "lookup",
    "model_from_args",
    "nonnegative_int",
    "output_dir",
    "photo_batches",
    "positive_int",
    "progress",
    "resolve_class",
    "target_from_args",
]

PROGRESS_MIN = 5  # show a progress bar from this many inputs on


class CLIError(Exception):
    """A usage error: printed as one line, exit status 2."""


# ----------------------------------------------------------------------------- argparse types


def _int_at_least(low: int, what: str) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be {what}, got {value}")
        return value

    parse.__name__ = "int"
    return parse


positive_int = _int_at_least(1, "at least 1")
nonnegative_int = _int_at_least(0, "0 or more")


def add_model_args(p: argparse.ArgumentParser) -> None:
    """The model options every subcommand shares (one place: classify, saliency, localize,
    classmodel, evaluate, paper, serve, demo): ``--model``, ``--weights``, ``--num-classes``,
    ``--class-names``, ``--device``."""
    g = p.add_argument_group("model")
    g.add_argument("--model", "-m", default="efficientnet_lite0",
                   help="efficientnet_lite0 (default), efficientnet_lite1/2, timm:<name>, "
                        "torchvision:<name>, hf:<folder> (a Hugging Face save_pretrained "
                        "folder), package.module:factory")
    g.add_argument("--weights", "-w", default=None,
                   help="local .safetensors/.pt/.pth state dict for the model's architecture "
                        "(its head may have its own number of classes)")
    g.add_argument("--num-classes", type=positive_int, default=None, metavar="N",
                   help="classes of the model's head (default: the checkpoint's)")
    g.add_argument("--class-names", default=None, metavar="FILE",
                   help="the classes' names: one a line, a JSON list or a JSON {index: name}")
    g.add_argument("--device", default="auto", help="cpu, cuda, cuda:1, ... (default: auto)")


def add_target_arg(p: argparse.ArgumentParser, what: str = "explain") -> None:
    """``--target``: what to explain, as :func:`deepinside.targets.parse_target` reads it."""
    p.add_argument("--target", "-t", default=None,
                   help=f"what to {what}: a class index or name, top<k> (each photo's k best "
                        "classes), or classes separated by commas (their logits summed); "
                        "default: each photo's top-1 class")


def add_batch_size(p: argparse.ArgumentParser, default: int = 16) -> None:
    """``--batch-size``: photos per forward/backward pass."""
    p.add_argument("--batch-size", "-b", type=positive_int, default=default,
                   help=f"photos per pass (default {default})")


def add_sign_args(p: argparse.ArgumentParser) -> None:
    """``--sign`` and ``--shared-scale``: how maps are drawn."""
    p.add_argument("--sign", choices=("auto", "absolute", "positive", "negative", "all"),
                   default="auto",
                   help="draw |map|, its positive or negative part, or all of it on a diverging "
                        "colour map centred on 0 (default auto: all for signed methods such as "
                        "integrated_gradients or lrp, absolute for the others)")
    p.add_argument("--shared-scale", action="store_true",
                   help="one colour scale for every map drawn (default: one per map)")


# ----------------------------------------------------------------------------- model, names


def resolve_device(name: str):
    """``auto`` (CUDA if available) or a torch device name -> ``torch.device``."""
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
    """Load the classifier the model options name (:func:`add_model_args`); errors become one
    CLIError line."""
    from ..models import ModelLoadError, load_model

    try:
        clf = load_model(args.model, weights=args.weights, device=resolve_device(args.device),
                         num_classes=getattr(args, "num_classes", None),
                         class_names=getattr(args, "class_names", None))
    except ModelLoadError as e:
        raise CLIError(str(e)) from None
    check_logits(clf, args.model, named=getattr(args, "class_names", None) is not None)
    return clf


def check_logits(clf, name: str, named: bool = True) -> None:
    """One forward pass of a blank input: the model must run and return class logits (the
    command line explains classes); otherwise one CLIError line that says what it returned.
    A module whose head the defaults misnamed (``named`` False) gets ``class <i>`` names."""
    import torch

    from .. import forward_logits
    from ..targets import describe_output, is_logits

    x = torch.zeros((1, 3, *clf.preprocessing.input_size), device=clf.device, dtype=clf.dtype)
    try:
        out = forward_logits(clf, x)
    except (ValueError, RuntimeError, TypeError) as e:
        line = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CLIError(f"--model {name}: {line}") from None
    if is_logits(out) and out.shape[1] != len(clf.class_names) and not named:
        clf.class_names = [f"class {i}" for i in range(out.shape[1])]
    if not is_logits(out) or out.shape[1] != len(clf.class_names):
        what = (f"{out.shape[1]} class logits for {len(clf.class_names)} class names"
                if is_logits(out) else f"{describe_output(out)}, not class logits Tensor[B, K]")
        raise CLIError(f"--model {name} returns {what}; the command line explains classes (from "
                       "Python, aim at any output with a target callable such as "
                       "deepinside.region_score, or read logits with load_model(..., output=f))")


def target_from_args(clf, text: str | None):
    """``--target`` read by :func:`deepinside.targets.parse_target` against the model's class
    names; a bad one -> CLIError."""
    from ..targets import parse_target

    try:
        return parse_target(text, clf)
    except (ValueError, TypeError) as e:
        raise CLIError(f"--target {text!r}: {e}") from None


def lookup(get: Callable, name: str):
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


# ----------------------------------------------------------------------------- progress, failures


def progress(total: int, desc: str, unit: str = "img"):
    """A tqdm bar on stderr, shown when there is more than a handful of items."""
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, disable=total < PROGRESS_MIN,
                file=sys.stderr, dynamic_ncols=True)


class Failures:
    """Inputs that failed: each reported as one line on stderr (safe beside a progress bar)."""

    def __init__(self) -> None:
        self.items: list[tuple[str, str]] = []

    def __call__(self, item: object, reason: str) -> None:
        self.say(item, reason)
        self.items.append((str(item), reason))

    @staticmethod
    def say(item: object, text: str) -> None:
        """One line on stderr about an input, without counting it as failed."""
        from tqdm import tqdm

        tqdm.write(f"deepinside: {item}: {text}", file=sys.stderr)

    def __bool__(self) -> bool:
        return bool(self.items)

    def __len__(self) -> int:
        return len(self.items)


def photo_batches(
    inputs: Sequence[str], batch_size: int, failures: Failures
) -> tuple[int, Iterator]:
    """Expand files, directories and globs, and load their photos in batches.

    Returns:
        ``(total, batches)``: how many files were found, and an iterator of
        :class:`deepinside.images.PhotoBatch` (inputs that match nothing or cannot be read
        go to ``failures``).
    """
    from ..images import expand_inputs, iter_photo_batches

    paths, problems = expand_inputs(inputs)
    for item, reason in problems:
        failures(item, reason)
    return len(paths), iter_photo_batches(paths, batch_size, failures)


def claim_batch(batch, outputs: Callable[[Path], list[Path]], taken: dict[Path, Path],
                overwrite: bool, failures: Failures) -> list:
    """The ``(path, photo)`` pairs of a batch whose outputs may be written; the others fail.

    Args:
        batch: a :class:`deepinside.images.PhotoBatch` of paths.
        outputs: ``f(path) -> list[Path]``, the files a photo's results go to.
        taken: outputs claimed so far in this run (updated).
        overwrite: existing files may be replaced.
        failures: gets ``(path, reason)`` for each photo refused.
    """
    keep = []
    for path, photo in zip(batch.items, batch.photos):
        why = _claim(outputs(path), taken, path, overwrite)
        if why:
            failures(path, why)
        else:
            keep.append((path, photo))
    return keep


def _claim(paths: list[Path], taken: dict[Path, Path], source: Path, overwrite: bool) -> str:
    """Why these outputs must not be written (existing file, or another input's), or ``""``."""
    for p in paths:
        if p in taken:
            return f"output {p} would also be written for {taken[p]} (rename one of them)"
        if p.exists() and not overwrite:
            return f"output {p} exists (use --overwrite to replace it)"
    for p in paths:
        taken[p] = source
    return ""


def output_dir(path: str) -> Path:
    """The output folder, created if needed and checked writable (else one-line CLIError)."""
    out = Path(path)
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".deepinside-write-test-{os.getpid()}"
        probe.touch()
        probe.unlink()
    except FileExistsError:
        raise CLIError(f"--out {path}: exists and is not a directory") from None
    except NotADirectoryError:
        raise CLIError(f"--out {path}: a part of the path is a file, not a directory") from None
    except OSError as e:
        raise CLIError(f"--out {path}: cannot write there ({e.strerror or e})") from None
    return out


def count_done(taken: dict[Path, Path]) -> int:
    """How many inputs had their outputs written."""
    return len({src for p, src in taken.items() if p.exists()})
