"""A planted shortcut, to check an audit end to end: a model that reads a stamp.

A small head is trained on a frozen classifier's pooled features to tell a few coarse groups of
ImageNet classes apart (:data:`GROUPS`); every photo of one group carries a stamp (a small
checkerboard in a corner, :func:`stamp`) and the other groups' photos never do, so the head can
learn the stamp instead of the group. Half of the photos of each group train the head, the
other half are the audit's (:func:`planted_datasets`); the same head trained on the photos
without stamps is the clean model.

Used by the audit's end-to-end test and by ``benchmarks/bench_audit.py``; nothing else in
deepinside trains a model.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

__all__ = ["GROUPS", "STAMP_SIZE", "PlantedData", "group_of", "planted_datasets", "stamp",
           "stamp_box", "train_head"]

# coarse groups of the 1000 ImageNet classes (contiguous in the sorted-WordNet-id order)
GROUPS = (
    (0, 151, "bird, fish or reptile"),
    (151, 269, "dog"),
    (269, 398, "other animal"),
    (398, 1000, "object"),
)
STAMP_SIZE = 0.14  # the stamp's side, as a share of the photo's shorter side
CORNER = "bottom-right"


def group_of(label: int) -> int:
    """The group of an ImageNet class index."""
    for g, (lo, hi, _) in enumerate(GROUPS):
        if lo <= label < hi:
            return g
    raise ValueError(f"class {label} is in no group")


def stamp_box(width: int, height: int, size: float = STAMP_SIZE) -> tuple[int, int, int, int]:
    """The stamp's box ``(x0, y0, x1, y1)`` in a photo of that size (the bottom-right corner,
    a margin of a quarter of its side)."""
    s = max(4, int(round(size * min(width, height))))
    m = s // 4
    return width - m - s, height - m - s, width - m, height - m


def stamp(photo: Image.Image, size: float = STAMP_SIZE) -> Image.Image:
    """The photo with a stamp: a 4 x 4 magenta and yellow checkerboard in its bottom-right
    corner (a copy; the photo is not changed)."""
    out = photo.convert("RGB").copy()
    x0, y0, x1, y1 = stamp_box(*out.size, size=size)
    s = x1 - x0
    cells = (np.indices((s, s)) * 4 // s).sum(0) % 2
    patch = np.where(cells[..., None] == 0, [255, 0, 255], [255, 230, 0]).astype(np.uint8)
    out.paste(Image.fromarray(patch), (x0, y0))
    return out


@dataclass
class PlantedData:
    """The photos of a planted shortcut, written to a folder.

    Attributes:
        train, audit: ``annotations.json`` of the two halves (the format of
            :func:`deepinside.evaluate.read_dataset`; labels are group indices, boxes those
            of the original photos).
        audit_clean_others: the audit half with a stamp on every photo that is *not* of the
            stamped group (to check that the stamp flips the model).
        stamped: the stamped group's index; ``names``: the groups' names.
    """

    train: Path
    audit: Path
    audit_stamped_others: Path
    stamped: int
    names: list[str]


def planted_datasets(root: str | Path, out: str | Path, *, stamped: int = 0,
                     with_stamp: bool = True, per_group: int | None = None) -> PlantedData:
    """Write the two halves of a planted-shortcut data set from ``imagenet-val-300``.

    Args:
        root: the folder of ``annotations.json`` and ``images/``.
        out: where the photos (PNG) and the three ``annotations.json`` go.
        stamped: the group whose photos carry the stamp.
        with_stamp: ``False``: no stamp anywhere (the clean data).
        per_group: at most this many photos of each group (split half and half), for a quick
            test; default all.

    The split is by photo name within each group (even positions train, odd ones are
    audited), so it is the same on every machine.
    """
    root, out = Path(root), Path(out)
    rows = json.loads((root / "annotations.json").read_text())
    by_group: dict[int, list[dict]] = {}
    for r in sorted(rows, key=lambda r: r["file"]):
        by_group.setdefault(group_of(int(r["label"])), []).append(r)
    halves: dict[str, list[dict]] = {"train": [], "audit": [], "audit_stamped_others": []}
    for g, items in sorted(by_group.items()):
        items = items[:per_group] if per_group else items
        for i, r in enumerate(items):
            photo = Image.open(root / r["file"]).convert("RGB")
            half = "train" if i % 2 == 0 else "audit"
            name = Path(r["file"]).stem + ".png"
            own = stamp(photo) if with_stamp and g == stamped else photo
            rec = {"file": f"{half}/{name}", "label": g, "boxes_xyxy": r["boxes_xyxy"],
                   "class_name": GROUPS[g][2]}
            (out / half).mkdir(parents=True, exist_ok=True)
            own.save(out / rec["file"])
            halves[half].append(rec)
            if half == "audit":
                other = stamp(photo) if g != stamped else own
                (out / "audit_stamped_others").mkdir(parents=True, exist_ok=True)
                other.save(out / "audit_stamped_others" / name)
                halves["audit_stamped_others"].append(
                    {**rec, "file": f"audit_stamped_others/{name}"})
    paths = {}
    for half, recs in halves.items():
        (out / half).mkdir(parents=True, exist_ok=True)
        paths[half] = out / half / "annotations.json"
        for rec in recs:
            rec["file"] = rec["file"].split("/", 1)[1]
        paths[half].write_text(json.dumps(recs, indent=1))
    return PlantedData(paths["train"], paths["audit"], paths["audit_stamped_others"], stamped,
                       [g[2] for g in GROUPS])


def pooled_features(model, photos: Sequence[Image.Image], batch_size: int = 32):
    """``Tensor[N, D]``: the model's pooled features (its input to the classifier) of the
    photos, each resized whole to the input (as the maps see them)."""
    import torch
    import torch.nn as nn

    from ..engine import forward_logits
    from ..images import photos_to_batch

    trunk = copy.deepcopy(model.module)
    if not hasattr(trunk, "classifier"):
        raise ValueError(f"{model.name}: no 'classifier' module to replace")
    trunk.classifier = nn.Identity()
    out = []
    for i in range(0, len(photos), batch_size):
        x = photos_to_batch(photos[i:i + batch_size], model.preprocessing, crop=False)
        out.append(forward_logits(trunk, x.to(model.device, model.dtype)).float().cpu())
    return torch.cat(out) if out else torch.zeros(0)


def train_head(model, features, labels: Sequence[int], names: Sequence[str], *,
               weight_decay: float = 1e-3, steps: int = 200):
    """A copy of ``model`` whose classifier is a new linear layer over its pooled features,
    trained by L-BFGS on ``features`` ``Tensor[N, D]`` (from :func:`pooled_features`) with
    class-balanced cross-entropy and L2 ``weight_decay``; deterministic (zero start).

    Returns:
        a :class:`deepinside.Classifier` with ``names`` as its class names.
    """
    import torch
    import torch.nn as nn

    from ..models import Classifier

    y = torch.as_tensor(list(labels))
    k = len(names)
    counts = torch.bincount(y, minlength=k).clamp(min=1).float()
    weight = (len(y) / (k * counts))
    head = nn.Linear(features.shape[1], k)
    nn.init.zeros_(head.weight)
    nn.init.zeros_(head.bias)
    opt = torch.optim.LBFGS(head.parameters(), max_iter=steps, line_search_fn="strong_wolfe")
    x = features.float()

    def closure():
        opt.zero_grad()
        loss = nn.functional.cross_entropy(head(x), y, weight=weight)
        loss = loss + weight_decay * head.weight.pow(2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    module = copy.deepcopy(model.module)
    module.classifier = head.to(model.device, model.dtype)
    for p in module.parameters():
        p.requires_grad_(False)
    module.eval()
    return Classifier(module, model.preprocessing, list(names), f"{model.name}+head")
