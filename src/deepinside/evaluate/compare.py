"""Every attribution method on one labelled data set, in one table.

For each method: the pointing game (the map's peak within ``POINTING_TOLERANCE`` pixels of a
ground-truth box of the true class; TorchRay's protocol, Zhang et al. 2016,
https://arxiv.org/abs/1608.00507), GT-known localisation accuracy (the localisation
pipeline's :func:`deepinside.localize.segment_map` on the map, blurred, thresholded at 30% of
its range, largest component; IoU >= 0.5 with a true box),
deletion and insertion areas (RISE), the rank correlation with the map of the fully randomised
model (Adebayo et al. 2018), and milliseconds per image for the map alone. Every map explains
the true class; each photo is resized whole to the model's input (no crop), as for
localisation.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from ..images import iter_photo_batches, photos_to_batch, resize_maps_to
from ..localize import get_recipe, segment_map
from ..methods import get_method
from ..models import Classifier
from .datasets import label_problem
from .faithfulness import deletion_insertion, randomization_test
from .metrics import gt_known_hit, map_peak, pointing_hit

__all__ = ["MethodScores", "compare_methods"]


@dataclass
class MethodScores:
    """One method's row of the comparison (fractions in [0, 1]; NaN where not measured)."""

    method: str
    images: int = 0
    pointing: float = float("nan")
    gt_known_loc: float = float("nan")
    deletion_auc: float = float("nan")
    insertion_auc: float = float("nan")
    randomization_corr: float = float("nan")
    ms_per_image: float = float("nan")
    _sums: dict = field(default_factory=dict, repr=False)

    def add(self, key: str, values: Sequence[float]) -> None:
        s, n = self._sums.get(key, (0.0, 0))
        self._sums[key] = (s + float(np.sum(values)), n + len(values))
        setattr(self, key, self._sums[key][0] / self._sums[key][1])

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("_sums")
        return d


def compare_methods(
    model: Classifier,
    records: Sequence,
    methods: Sequence[str],
    *,
    batch_size: int = 16,
    steps: int = 16,
    recipe: str = "gradcam-30",
    smooth: float = 0.04,
    deletion: bool = True,
    randomization: bool = True,
    on_batch: Callable[[int], None] | None = None,
    on_failure: Callable[[object, str], None] | None = None,
    backend: str = "local",
    workers: int = 1,
    ray_address: str | None = None,
    ray_options=None,
) -> list[MethodScores]:
    """Score each method on the records (see the module docstring for the columns).

    Args:
        model: the classifier.
        records: items with ``.path``, ``.label``, ``.boxes`` (photo pixels).
        methods: registered method names (default options each).
        batch_size: photos per batch (every method sees the same batches).
        steps: deletion / insertion steps.
        recipe: the localisation recipe whose segmentation turns a map into a box (its map
            method, combination and mirroring are not used: the map is the method's). The
            default thresholds at 30% of the map's range and keeps the largest component.
        smooth: Gaussian blur of every map before segmentation, sigma as a fraction of the
            photo's shorter side (the localisation study found 4% makes speckled gradient maps
            usable; smooth maps such as Grad-CAM's barely change).
        deletion: also compute the deletion / insertion curves (2 * (steps + 1) forward
            passes per image).
        randomization: also run the randomisation test (one more map per image).
        on_batch: called with the number of photos done after each batch.
        on_failure: called with (path, reason) for each unreadable photo.
        backend: ``"local"`` (this process) or ``"ray"``: batches of records in a pool of
            ``workers`` model actors (:func:`.ray_backend.compare_ray`), on the cluster at
            ``ray_address`` or a local Ray.
        workers: ``ray`` only: the model actors.
        ray_address: ``ray`` only: see :func:`.runner.run_localization`.
        ray_options: ``ray`` only: a :class:`.ray_backend.RayOptions` (join timeout, the
            actors' CPUs and GPUs); ``ray_address``, if given, replaces its address.

    Returns:
        One :class:`MethodScores` per method, in the order given.
    """
    if backend == "ray":
        from .ray_backend import compare_ray, ray_options_with, require_ray

        require_ray()
        return compare_ray(model, records, methods, workers=workers,
                           ray_options=ray_options_with(ray_options, ray_address),
                           on_batch=on_batch, on_failure=on_failure, batch_size=batch_size,
                           steps=steps, recipe=recipe, smooth=smooth, deletion=deletion,
                           randomization=randomization)
    if backend != "local":
        raise ValueError(f"unknown backend {backend!r}; choose local or ray")
    fns = {name: get_method(name) for name in methods}
    rec = get_recipe(recipe, smooth=smooth)
    scores = {name: MethodScores(name) for name in methods}
    elapsed = dict.fromkeys(methods, 0.0)
    warm = set()
    usable = []
    for r in records:  # a label the model does not have is that record's problem only
        why = label_problem(r, model)
        if not why:
            usable.append(r)
        elif on_failure is not None:
            on_failure(r.path, why)
    if len(usable) < len(records) and on_batch is not None:
        on_batch(len(records) - len(usable))
    records = usable
    for batch in iter_photo_batches(records, batch_size, on_failure, source=lambda r: r.path):
        photos, items = batch.photos, batch.items
        if photos:
            x = photos_to_batch(photos, model.preprocessing, crop=False)
            x = x.to(model.device, model.dtype)
            labels = torch.tensor([r.label for r in items], device=x.device)
            for name, fn in fns.items():
                if name not in warm:  # first call builds caches (fast copy, layer search)
                    fn(model, x[:1], labels[:1])
                    warm.add(name)
                t0 = time.perf_counter()
                maps = fn(model, x, labels).detach().float()
                if x.device.type == "cuda":
                    torch.cuda.synchronize(x.device)
                elapsed[name] += time.perf_counter() - t0
                s = scores[name]
                point, loc = [], []
                for photo, mp, r in zip(photos, resize_maps_to(maps, photos), items):
                    point.append(float(pointing_hit(map_peak(mp), r.boxes)))
                    _, box, _ = segment_map(np.asarray(photo), mp, rec)
                    loc.append(float(gt_known_hit(box, r.boxes)))
                s.add("pointing", point)
                s.add("gt_known_loc", loc)
                if deletion:
                    c = deletion_insertion(model, x, maps, labels, steps=steps)
                    s.add("deletion_auc", c.deletion_auc.tolist())
                    s.add("insertion_auc", c.insertion_auc.tolist())
                if randomization:
                    rt = randomization_test(model, x, fn, labels, points=1, original=maps)
                    s.add("randomization_corr", rt.final.tolist())
                s.images += len(items)
                s.ms_per_image = 1000.0 * elapsed[name] / s.images
        if on_batch is not None:
            on_batch(len(items) + batch.failed)
    return [scores[n] for n in methods]
