"""``deepinside saliency``: a map per photo (the paper's by default), as PNG, overlay and .npy."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .common import (
    Failures,
    add_batch_size,
    add_model_args,
    add_sign_args,
    add_target_arg,
    claim_batch,
    count_done,
    lookup,
    model_from_args,
    nonnegative_int,
    output_dir,
    photo_batches,
    progress,
    target_from_args,
)

OUTPUTS = ("_saliency.png", "_overlay.png", "_saliency.npy")


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``saliency`` subcommand."""
    p = sub.add_parser("saliency", help="the paper's saliency maps for photos")
    p.add_argument("images", nargs="+", help="files, directories or glob patterns")
    add_model_args(p)
    add_target_arg(p)
    p.add_argument("--method", default="gradient",
                   help="attribution method (default: gradient, the paper's)")
    p.add_argument("--out", "-o", default="deepinside-saliency", help="output directory")
    add_batch_size(p)
    p.add_argument("--max-side", type=nonnegative_int, default=0, metavar="PX",
                   help="write maps and overlays at most PX pixels on their longer side "
                        "(default 0: at each photo's own size)")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    add_sign_args(p)
    p.set_defaults(func=run)


def outputs(out: Path, stem: str, k: int = 1) -> list[Path]:
    """The files written for one photo (``k`` maps: ``<stem>_top<j>...`` for each)."""
    stems = [stem] if k == 1 else [f"{stem}_top{j}" for j in range(1, k + 1)]
    return [out / f"{s}{suffix}" for s in stems for suffix in OUTPUTS]


def shrink(photo, max_side: int):
    """The photo resized (area filter) so that its longer side is at most ``max_side``."""
    from PIL import Image

    w, h = photo.size
    if max(w, h) <= max_side:
        return photo
    s = max_side / max(w, h)
    return photo.resize((max(1, round(w * s)), max(1, round(h * s))), Image.Resampling.BOX)


def draw(photo, m, label: str, png: Path, ovl: Path, sign: str,
         limit: float | None = None) -> None:
    """The map's PNG (with a colour bar of its values) and its overlay on the photo."""
    import numpy as np

    from ..render import colourize, label_image, overlay, save_png, signed_overlay, with_colour_bar

    todays_look = sign == "absolute" and limit is None
    rgb, limit, cmap = colourize(m, sign, limit)
    save_png(with_colour_bar(rgb, -limit if sign == "all" else 0.0, limit, cmap), png)
    blend = overlay(photo, np.abs(m)) if todays_look else signed_overlay(photo, m, sign, limit)
    save_png(label_image(blend, label), ovl)


def run(args: argparse.Namespace) -> int:
    import numpy as np
    from torch import Tensor

    from ..methods import get_method, list_methods
    from ..photomaps import photo_maps
    from ..targets import is_top_k

    method = lookup(get_method, args.method)
    info = list_methods()[args.method]
    sign = info.default_sign if args.sign == "auto" else args.sign
    options = info.sign_options(sign)  # keep the sign where the method has one
    out = output_dir(args.out)
    clf = model_from_args(args)
    target = target_from_args(clf, args.target)
    k = min(is_top_k(target) or 1, len(clf.class_names))
    failures = Failures()
    taken: dict[Path, Path] = {}
    written: list = []
    total, batches = photo_batches(args.images, args.batch_size, failures)
    with progress(total, "saliency") as bar:
        for batch in batches:
            keep = claim_batch(batch, lambda p: outputs(out, p.stem, k), taken, args.overwrite,
                               failures)
            if keep:
                if args.max_side:
                    keep = [(path, shrink(photo, args.max_side)) for path, photo in keep]
                photos = [p for _, p in keep]
                maps, targets, _ = photo_maps(clf, photos, target, method=method,
                                              batch_size=len(photos), **options)
                labels = ([[clf.short_name(c) for c in row] for row in targets.reshape(
                    len(keep), -1).tolist()] if isinstance(targets, Tensor)
                          else [[args.target]] * len(keep))  # a sum of classes: as written
                for (path, photo), ms, names in zip(keep, maps, labels):
                    files = outputs(out, path.stem, k)
                    try:
                        for j, m in enumerate(ms if ms.ndim == 3 else [ms]):
                            png, ovl, npy = files[3 * j : 3 * j + 3]
                            np.save(npy, m.astype(np.float32, copy=False))  # with its sign
                            draw(photo, m, names[j], png, ovl, sign)
                            if args.shared_scale:
                                written.append((photo, names[j], png, ovl, npy))
                    except OSError as e:
                        failures(path, f"cannot write {e.filename or out}: {e.strerror or e}")
            bar.update(len(batch.items) + batch.failed)
    if written:  # again, at the largest limit of the run
        from ..render import map_limit, sign_part

        limit = max(map_limit(sign_part(np.load(w[4]), sign)) for w in written)
        for photo, label, png, ovl, npy in written:
            draw(photo, np.load(npy), label, png, ovl, sign, limit)
    print(f"wrote maps for {count_done(taken)} of {total} images to {out}", file=sys.stderr)
    return 1 if failures or not total else 0
