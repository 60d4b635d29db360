"""``deepinside visualize``: what a channel, a neuron, a layer or a direction responds to.

Feature visualisation (Olah et al. 2017, https://distill.pub/2017/feature-visualization/): the
image that maximises the unit, by the class-model ascent (Simonyan et al. 2013, section 2), and
with ``--dataset`` the photos that excite the unit most, each with its patch and its saliency
for the unit. Writes to ``--out``: ``unit.png`` (``unit_<i>.png`` for ``--diversity N``),
``grid.png``, with ``--dataset`` ``top_<rank>.png`` (the photo as the model saw it),
``top_<rank>_patch.png``, ``top_<rank>_saliency.png`` and ``top.png`` (patches over saliency),
and ``unit.json``: the objective, its value on each generated image, and the top photos
(``file``, ``value``, ``box``), best first.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from .common import (
    CLIError,
    Failures,
    add_batch_size,
    add_model_args,
    model_from_args,
    output_dir,
    positive_int,
    progress,
)

__all__ = ["register"]

DIVERSITY_WEIGHT = 10.0  # the diversity term's weight (see docs/visualize.md)


def register(subparsers) -> None:
    """Add the ``visualize`` subcommand."""
    from ..classmodel import MODES

    p = subparsers.add_parser(
        "visualize",
        help="what a channel, neuron, layer or direction of the network responds to",
        description="Feature visualisation (Olah et al. 2017, https://distill.pub/2017/"
                    "feature-visualization/): the image that maximises a unit, and the photos "
                    "of a data set that excite it most.",
    )
    unit = p.add_mutually_exclusive_group(required=True)
    unit.add_argument("--unit", metavar="LAYER:K",
                      help="channel K of a layer (the mean over positions), e.g. blocks.5:17")
    unit.add_argument("--neuron", metavar="LAYER:K[:X:Y]",
                      help="channel K at grid position X, Y (default: the centre)")
    unit.add_argument("--layer", metavar="LAYER",
                      help="a whole layer (DeepDream's mean square); with --direction, the "
                           "layer the direction lives in")
    p.add_argument("--direction", metavar="FILE",
                   help="a direction of --layer's channels: .npy, .pt or numbers in a text file")
    p.add_argument("--diversity", type=positive_int, default=1, metavar="N",
                   help="make N images pushed apart by Lucid's diversity term (default 1)")
    p.add_argument("--mode", choices=MODES, default="lucid", help="the ascent (default lucid)")
    p.add_argument("--steps", type=positive_int, default=None, help="ascent steps (default: "
                   "the mode's, as class models)")
    p.add_argument("--size", type=positive_int, default=None, help="image size in pixels")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--dataset", "-d", nargs="+", metavar="PATH",
                   help="photos (files, directories, patterns) to search for the top photos")
    p.add_argument("--top", type=positive_int, default=9, metavar="K",
                   help="how many top photos (default 9)")
    add_batch_size(p)
    add_model_args(p)
    p.add_argument("--out", "-o", default="deepinside-visualize", help="output directory")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.set_defaults(func=run)


def _vector(path: str):
    import numpy as np
    import torch

    p = Path(path)
    if not p.is_file():
        raise CLIError(f"--direction: no such file {path}")
    try:
        if p.suffix == ".npy":
            v = torch.from_numpy(np.load(p))
        elif p.suffix in (".pt", ".pth"):
            v = torch.load(p, map_location="cpu", weights_only=True)
        else:
            v = torch.tensor([float(s) for s in p.read_text().replace(",", " ").split()])
    except Exception as e:  # noqa: BLE001 - any unreadable file is one line
        raise CLIError(f"--direction: cannot read {path}: {e}") from None
    if not hasattr(v, "dim") or v.dim() != 1 or v.numel() == 0:
        raise CLIError(f"--direction: {path} must hold one vector of channel weights")
    return v.float()


def objective_from_args(args: argparse.Namespace):
    """The objective the flags describe (with the diversity term for ``--diversity N``)."""
    from ..classmodel import channel, direction, diversity, layer, neuron, parse_unit

    if args.direction and not args.layer:
        raise CLIError("--direction needs --layer (the layer the direction lives in)")
    if args.unit or args.neuron:
        flag, text = ("--unit", args.unit) if args.unit else ("--neuron", args.neuron)
        try:
            name, k, x, y = parse_unit(text, position=bool(args.neuron))
        except ValueError as e:
            raise CLIError(f"{flag}: {e}") from None
        obj = channel(name, k) if args.unit else neuron(name, k, x, y)
        where = name
    elif args.direction:
        obj, where = direction(args.layer, _vector(args.direction)), args.layer
    else:
        obj, where = layer(args.layer), args.layer
    if args.diversity > 1:
        obj = obj + diversity(where, DIVERSITY_WEIGHT)
    return obj


def _planned(out: Path, n: int, top: int) -> list[Path]:
    names = ["unit.png"] if n == 1 else [f"unit_{i}.png" for i in range(n)]
    names += ["grid.png", "unit.json"]
    if top:
        names += ["top.png"] + [f"top_{r}{s}.png" for r in range(1, top + 1)
                                for s in ("", "_patch", "_saliency")]
    return [out / nm for nm in names]


def run(args: argparse.Namespace) -> int:
    import numpy as np
    from PIL import Image

    from ..classmodel import mode_defaults, top_photos, visualize
    from ..images import expand_inputs
    from ..render import grid_image, overlay, save_png, uint8_images

    out = output_dir(args.out)
    objective = objective_from_args(args)
    top = args.top if args.dataset else 0
    if not args.overwrite:
        existing = [p for p in _planned(out, args.diversity, top) if p.exists()]
        if existing:
            raise CLIError(f"output {existing[0]} exists (use --overwrite to replace it)")
    clf = model_from_args(args)
    paths: list[Path] = []
    if args.dataset:
        paths, problems = expand_inputs(args.dataset)
        for item, why in problems:
            Failures.say(item, why)
        if not paths:
            raise CLIError("--dataset: no photos found")
    steps = args.steps or mode_defaults(args.mode, units=True)["steps"]
    t0 = time.perf_counter()
    try:
        with progress(steps, f"visualize ({args.mode})", unit="step") as bar:
            r = visualize(clf, objective, batch=args.diversity, mode=args.mode, steps=steps,
                          size=args.size, seed=args.seed, progress=bar.update)
    except ValueError as e:  # a layer that does not exist, a channel out of range
        raise CLIError(str(e)) from None
    images = uint8_images(r.images)
    names = ["unit.png"] if len(images) == 1 else [f"unit_{i}.png" for i in range(len(images))]
    written = [save_png(img, out / nm) for img, nm in zip(images, names)]
    written.append(save_png(grid_image(images, [f"{v:.3g}" for v in r.values.tolist()]),
                            out / "grid.png"))
    record = {"objective": str(objective), "model": clf.name, "mode": args.mode,
              "steps": steps, "seed": args.seed, "values": r.values.tolist(), "top": []}
    if paths:
        failures = Failures()
        unit = objective if args.diversity == 1 else _without_diversity(args)
        with progress(len(paths), "top photos") as bar:
            best = top_photos(clf, unit, [str(p) for p in paths], args.top,
                              batch_size=args.batch_size, on_failure=failures,
                              progress=bar.update)
        cells, labels = [], []
        for rank, t in enumerate(best, 1):
            h, w = t.image.shape[:2]
            patch = np.asarray(Image.fromarray(t.patch).resize((w, h), Image.Resampling.BICUBIC))
            sal = overlay(t.image, t.saliency)
            written += [save_png(t.image, out / f"top_{rank}.png"),
                        save_png(t.patch, out / f"top_{rank}_patch.png"),
                        save_png(sal, out / f"top_{rank}_saliency.png")]
            cells.append((patch, sal))
            labels.append(f"{rank}: {t.value:.3g}")
            record["top"].append({"file": str(t.item), "value": t.value,
                                  "box": [int(v) for v in t.box]})
        if cells:
            grid = [c[0] for c in cells] + [c[1] for c in cells]
            written.append(save_png(grid_image(grid, labels + [Path(str(t.item)).name
                                                               for t in best],
                                               columns=len(cells)), out / "top.png"))
    (out / "unit.json").write_text(json.dumps(record, indent=2) + "\n")
    written.append(out / "unit.json")
    print(f"{objective}: " + ", ".join(f"{v:.4g}" for v in r.values.tolist()))
    for t in record["top"]:
        print(f"  {t['value']:.4g}  {t['file']}")
    print(f"wrote {len(written)} files to {out} in {time.perf_counter() - t0:.0f} s",
          file=sys.stderr)
    return 0


def _without_diversity(args: argparse.Namespace):
    """The unit alone (a photo's value), without the diversity term of the batch."""
    return objective_from_args(argparse.Namespace(**{**vars(args), "diversity": 1}))
