"""A planted shortcut, to check an audit end to end: a model that reads a stamp.

A small head (:class:`PlantedNet`: a 1 x 1 convolution and global max pooling) is trained on
a frozen classifier's features (lite0's first six stages) to tell a few coarse groups of
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
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor, nn

__all__ = ["GROUPS", "STAMP_SIZE", "PlantedData", "PlantedNet", "group_of", "lite_trunk",
           "planted_datasets", "stamp", "stamp_box", "train_head", "trunk_features"]

# coarse groups of the 1000 ImageNet classes (contiguous in the sorted-WordNet-id order)
GROUPS = (
    (0, 151, "bird, fish or reptile"),
    (151, 269, "dog"),
    (269, 398, "other animal"),
    (398, 1000, "object"),
)
STAMP_SIZE = 0.14  # the stamp's side, as a share of the photo's shorter side
TRUNK_BLOCKS = 6  # lite0's stem and first six stages: 192 channels at 1/32 of the input


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


SETS = ("train", "train_clean", "audit", "audit_all_stamped")


@dataclass
class PlantedData:
    """The photos of a planted shortcut, written to a folder: one ``annotations.json`` (the
    format of :func:`deepinside.evaluate.read_dataset`; labels are group indices, boxes those of
    the original photos) per set.

    Attributes:
        train: the training half, the stamped group's photos stamped.
        train_clean: the same photos, no stamp (the clean model's).
        audit: the other half, stamped as in training (the photos the audit sees).
        audit_all_stamped: the audit half with a stamp on every photo (does the stamp flip
            the other groups' photos?).
        stamped: the stamped group; ``names``: the groups' names.
    """

    train: Path
    train_clean: Path
    audit: Path
    audit_all_stamped: Path
    stamped: int
    names: list[str]


def planted_datasets(root: str | Path, out: str | Path, *, stamped: int = 0,
                     per_group: int | None = None) -> PlantedData:
    """Write the sets of a planted-shortcut data set (:class:`PlantedData`) from
    ``imagenet-val-300``, as PNG photos under ``out/<set>/``.

    Args:
        root: the folder of ``annotations.json`` and ``images/``.
        out: where the sets go.
        stamped: the group whose photos carry the stamp.
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
    sets: dict[str, list[dict]] = {name: [] for name in SETS}
    for name in SETS:
        (out / name).mkdir(parents=True, exist_ok=True)
    for g, items in sorted(by_group.items()):
        for i, r in enumerate(items[:per_group] if per_group else items):
            photo = Image.open(root / r["file"]).convert("RGB")
            marked = stamp(photo)
            rec = {"file": Path(r["file"]).stem + ".png", "label": g,
                   "boxes_xyxy": r["boxes_xyxy"], "class_name": GROUPS[g][2]}
            versions = ({"train": marked if g == stamped else photo, "train_clean": photo}
                        if i % 2 == 0 else
                        {"audit": marked if g == stamped else photo, "audit_all_stamped": marked})
            for name, im in versions.items():
                im.save(out / name / rec["file"])
                sets[name].append(rec)
    for name, recs in sets.items():
        (out / name / "annotations.json").write_text(json.dumps(recs, indent=1))
    paths = [out / name / "annotations.json" for name in SETS]
    return PlantedData(*paths, stamped=stamped, names=[g[2] for g in GROUPS])


class PlantedNet(nn.Module):
    """A frozen trunk, then a 1 x 1 convolution giving a score map per class, then the maximum
    over positions (global max pooling, as in Oquab et al. 2015, "Is object localization for
    free?"): ``Tensor[B, 3, H, W] -> Tensor[B, K]``. A class is as strong as its strongest
    place, so one small patch can carry it: what a stamp needs to be learnt."""

    def __init__(self, trunk: nn.Module, head: nn.Conv2d) -> None:
        super().__init__()
        self.trunk, self.head = trunk, head

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.trunk(x)).amax(dim=(2, 3))


class _Flat(nn.Module):
    def __init__(self, trunk: nn.Module) -> None:
        super().__init__()
        self.trunk = trunk

    def forward(self, x: Tensor) -> Tensor:
        return self.trunk(x).flatten(1)


def lite_trunk(model, blocks: int = TRUNK_BLOCKS) -> nn.Module:
    """A frozen copy of an EfficientNet's stem and first ``blocks`` stages (timm's
    ``conv_stem``, ``bn1``, ``blocks``): lite0's are 192 channels at 1/32 of the input."""
    m = model.module
    trunk = nn.Sequential(copy.deepcopy(m.conv_stem), copy.deepcopy(m.bn1),
                          *copy.deepcopy(m.blocks[:blocks])).eval()
    for p in trunk.parameters():
        p.requires_grad_(False)
    return trunk


def trunk_features(model, trunk: nn.Module, photos: Sequence[Image.Image],
                   batch_size: int = 16) -> Tensor:
    """``Tensor[N, C, h, w]``: the trunk's feature maps of the photos, each resized whole to
    the model's input (as the maps see them), through the engine."""
    from ..engine import forward_logits, trace
    from ..images import model_batch

    flat = _Flat(trunk)
    out, shape = [], None
    for i in range(0, len(photos), batch_size):
        x = model_batch(model, photos[i:i + batch_size], crop=False)
        if shape is None:
            shape = next(s for name, _, s in trace(flat, x) if name == "trunk")[1:]
        out.append(forward_logits(flat, x).reshape(len(x), *shape).cpu())
    return torch.cat(out)


def train_head(model, trunk: nn.Module, features: Tensor, labels: Sequence[int],
               names: Sequence[str], *, weight_decay: float = 1e-2, steps: int = 150):
    """A :class:`PlantedNet` over ``trunk`` whose head is trained by L-BFGS on ``features``
    ``Tensor[N, C, h, w]`` (from :func:`trunk_features`) with class-balanced cross-entropy and
    L2 ``weight_decay``; deterministic (zero start).

    Returns:
        a :class:`deepinside.Classifier` with ``names`` as its class names.
    """
    from ..models import Classifier

    y = torch.as_tensor(list(labels))
    k = len(names)
    weight = len(y) / (k * torch.bincount(y, minlength=k).clamp(min=1).float())
    head = nn.Conv2d(features.shape[1], k, 1)
    nn.init.zeros_(head.weight)
    nn.init.zeros_(head.bias)
    opt = torch.optim.LBFGS(head.parameters(), max_iter=steps, line_search_fn="strong_wolfe")
    x = features.float()

    def closure():
        opt.zero_grad()
        scores = F.conv2d(x, head.weight, head.bias).amax(dim=(2, 3))  # PlantedNet's head
        loss = F.cross_entropy(scores, y, weight=weight)
        loss = loss + weight_decay * head.weight.pow(2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    for p in head.parameters():
        p.requires_grad_(False)
    return Classifier(PlantedNet(trunk, head).eval(), model.preprocessing, list(names),
                      f"{model.name} trunk + planted head")


def flip_rate(model, stamped_photos: Sequence[Image.Image], label: int,
              batch_size: int = 16) -> float:
    """The share of photos (of other classes, with a stamp pasted on) that ``model`` calls
    ``label``."""
    from ..engine import forward_logits
    from ..images import model_batch

    hits = 0
    for i in range(0, len(stamped_photos), batch_size):
        x = model_batch(model, stamped_photos[i:i + batch_size], crop=False)
        hits += int((forward_logits(model, x).argmax(1) == label).sum())
    return hits / max(1, len(stamped_photos))


def plant(root: str | Path, out: str | Path, model, *, stamped: int = 0,
          per_group: int | None = None) -> tuple[object, object, PlantedData]:
    """The planted shortcut from scratch: the data sets (:func:`planted_datasets`), then two
    heads on ``model``'s frozen trunk (:func:`lite_trunk`), one trained on the stamped
    training half and one on the same photos without stamps.

    Returns:
        ``(stamped model, clean model, data)``, two :class:`deepinside.Classifier`.
    """
    from ..evaluate.datasets import read_dataset
    from ..images import open_photo

    data = planted_datasets(root, out, stamped=stamped, per_group=per_group)
    records, _ = read_dataset(data.train_clean)
    trunk = lite_trunk(model)
    clean = trunk_features(model, trunk, [open_photo(r.path) for r in records])
    marked = clean.clone()
    own = [i for i, r in enumerate(records) if r.label == stamped]
    stamped_dir = Path(data.train).parent
    marked[own] = trunk_features(model, trunk, [open_photo(stamped_dir / records[i].path.name)
                                                for i in own])
    labels = [r.label for r in records]
    return (train_head(model, trunk, marked, labels, data.names),
            train_head(model, trunk, clean, labels, data.names), data)
