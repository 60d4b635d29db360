"""The stages of an evaluation, the same in every backend.

Localisation: :func:`fit_record_boxes` (a record's boxes on its photo), :func:`map_tasks` (a
batch of photos -> maps -> :class:`.scoring.ScoreTask`; the segmentation and the scores are
:func:`.scoring.score_photo`). Comparison of methods: :func:`score_methods` (records ->
a :class:`MethodScores` row per method; rows of batches scored elsewhere add up with
:meth:`MethodScores.merge`). Methods scored by registered metrics (``evaluate compare
--metrics``): :func:`score_metrics` (a batch of photos -> a :class:`MetricsLine` per photo and
method), the stage of a :class:`.backend.LinesSpec`.
"""

from __future__ import annotations

import hashlib
import inspect
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from ..images import iter_photo_batches, model_batch, resize_maps_to
from ..localize import Recipe, get_recipe, recipe_maps, segment_map
from ..methods import get_method
from ..models import Classifier
from .datasets import Record, label_problem
from .faithfulness import deletion_insertion, randomization_test
from .metrics import fit_boxes, gt_known_hit, map_peak, pointing_hit
from .ray_connect import DEFAULT_TIMEOUT
from .scoring import ScoreTask

__all__ = ["CompareSpec", "MethodScores", "MetricsLine", "fit_record_boxes", "map_tasks",
           "photo_seed", "score_methods", "score_metrics"]


@dataclass(frozen=True)
class CompareSpec:
    """The settings of a comparison of methods (see :func:`.compare.compare_methods`; the
    ``ray`` ones as in :class:`.backend.RunSpec`)."""

    batch_size: int = 16
    steps: int = 16
    recipe: str = "gradcam-30"
    smooth: float = 0.04
    deletion: bool = True
    randomization: bool = True
    workers: int = 1
    address: str | None = None
    ray_timeout: float = DEFAULT_TIMEOUT
    actor_cpus: float | None = None
    actor_gpus: float | None = None


def fit_record_boxes(record: Record, photo) -> tuple[list, list[str], str]:
    """``(boxes, notes, reason)``: a record's boxes clipped to its photo, the notes on them, and
    why the photo cannot be scored (``""`` if it can)."""
    kept, notes = fit_boxes(record.boxes, photo.width, photo.height)
    if not kept:
        return [], [], "none of its boxes lies on the photo"
    return kept, list(notes), ""


def map_tasks(model, items: Sequence[Record], photos: Sequence, boxes: Sequence[list],
              rec: Recipe, method: str, hashes: dict[str, str], seed: int, batch_size: int,
              fail: Callable[[Record, str], None]) -> list[tuple[Record, ScoreTask]]:
    """The maps of a batch of photos, as :class:`ScoreTask`s; if the batch fails, photo by
    photo, and ``fail(record, reason)`` for each photo whose map fails (what both backends
    run on the model's device)."""
    def maps_of(items, photos):
        try:
            maps, logits = recipe_maps(model, photos, [r.label for r in items], rec, method,
                                       batch_size=batch_size)
            return list(items), list(photos), maps, logits
        except Exception as e:  # noqa: BLE001 - one bad photo must not stop the run
            if len(items) == 1:
                fail(items[0], f"cannot compute its map: {e}")
                return [], [], [], None
        kept = [maps_of([r], [p]) for r, p in zip(items, photos)]
        kept = [k for k in kept if k[0]]
        if not kept:
            return [], [], [], None
        return ([k[0][0] for k in kept], [k[1][0] for k in kept], [k[2][0] for k in kept],
                torch.cat([k[3] for k in kept]))

    t0 = time.perf_counter()
    ok, photos_ok, maps, logits = maps_of(items, photos)
    if not ok:
        return []
    box_of = {id(r): b for r, b in zip(items, boxes)}
    per = (time.perf_counter() - t0) / len(ok)
    top5 = logits.topk(min(5, logits.shape[1]), dim=1).indices.tolist()
    return [(r, ScoreTask(key=r.key, record_hash=hashes[r.key], photo=np.asarray(photo), map=m,
                          boxes=box_of[id(r)], label=r.label, top5=t5, recipe=rec, seed=seed,
                          map_seconds=per))
            for r, photo, m, t5 in zip(ok, photos_ok, maps, top5)]


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
        """Add per-photo values of the column ``key``; the column becomes their mean."""
        self._accumulate(key, float(np.sum(values)), len(values))

    def merge(self, other: MethodScores) -> None:
        """Add the photos of another row of the same method (a batch scored elsewhere): its
        sums and counts add up, and the time per image is weighted by the images."""
        for key, (total, count) in other._sums.items():
            self._accumulate(key, total, count)
        if other.images:
            ms = (self.ms_per_image * self.images if self.images else 0.0)
            ms += other.ms_per_image * other.images
            self.images += other.images
            self.ms_per_image = ms / self.images

    def _accumulate(self, key: str, total: float, count: int) -> None:
        s, n = self._sums.get(key, (0.0, 0))
        self._sums[key] = (s + total, n + count)
        setattr(self, key, self._sums[key][0] / self._sums[key][1])

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("_sums")
        return d


def score_methods(
    model: Classifier,
    records: Sequence,
    methods: Sequence[str],
    spec: CompareSpec,
    on_batch: Callable[[int], None] | None = None,
    on_failure: Callable[[object, str], None] | None = None,
) -> list[MethodScores]:
    """Score each method on the records, in this process (see
    :func:`.compare.compare_methods` for the columns and the callbacks)."""
    fns = {name: get_method(name) for name in methods}
    rec = get_recipe(spec.recipe, smooth=spec.smooth)
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
    for batch in iter_photo_batches(records, spec.batch_size, on_failure, source=lambda r: r.path):
        photos, items = batch.photos, batch.items
        if photos:
            x = model_batch(model, photos, crop=False)
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
                _score_maps(scores[name], model, fn, x, labels, maps, photos, items, rec, spec)
                s = scores[name]
                s.images += len(items)
                s.ms_per_image = 1000.0 * elapsed[name] / s.images
        if on_batch is not None:
            on_batch(len(items) + batch.failed)
    return [scores[n] for n in methods]


def _score_maps(s: MethodScores, model: Classifier, fn: Callable, x: torch.Tensor,
                labels: torch.Tensor, maps: torch.Tensor, photos: Sequence, items: Sequence,
                rec: Recipe, spec: CompareSpec) -> None:
    """Add one batch's pointing, localisation, deletion / insertion and randomisation
    columns of one method to ``s``."""
    point, loc = [], []
    for photo, mp, r in zip(photos, resize_maps_to(maps, photos), items):
        point.append(float(pointing_hit(map_peak(mp), r.boxes)))
        _, box, _ = segment_map(np.asarray(photo), mp, rec)
        loc.append(float(gt_known_hit(box, r.boxes)))
    s.add("pointing", point)
    s.add("gt_known_loc", loc)
    if spec.deletion:
        c = deletion_insertion(model, x, maps, labels, steps=spec.steps)
        s.add("deletion_auc", c.deletion_auc.tolist())
        s.add("insertion_auc", c.insertion_auc.tolist())
    if spec.randomization:
        rt = randomization_test(model, x, method=fn, target=labels, points=1, original=maps)
        s.add("randomization_corr", rt.final.tolist())


@dataclass
class MetricsLine:
    """One line of an ``evaluate compare --metrics`` run: a photo's scores with one method.

    Attributes:
        key: the photo's key. record_hash: :func:`.rundir.record_hash` of its record.
        method: the attribution method. scores: metric name -> value (``None``: undefined on
            this photo, NaN in the metric). map_ms: milliseconds per photo of the method's map
            (its batch's time over its photos). metric_ms: the same for each metric.
    """

    key: str
    record_hash: str
    method: str
    scores: dict[str, float | None]
    map_ms: float
    metric_ms: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict:
        return {"key": self.key, "record_hash": self.record_hash, "method": self.method,
                "scores": self.scores, "map_ms": self.map_ms, "metric_ms": self.metric_ms}


def photo_seed(seed: int, key: str) -> int:
    """The seed of one photo's random draws: a hash of the run's ``seed`` and the photo's key
    (so a photo's draws do not depend on the photos beside it in a batch, on the backend or
    on a resume, and differ from photo to photo)."""
    digest = hashlib.sha256(f"{int(seed)}:{key}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


def _boxes_on_input(boxes: Sequence, photo, size: tuple[int, int]) -> list[tuple[float, ...]]:
    """Boxes in a photo's pixels -> in the model input's pixels (the photo is resized whole)."""
    h, w = size
    sx, sy = w / photo.width, h / photo.height
    return [(b[0] * sx, b[1] * sy, b[2] * sx, b[3] * sy) for b in boxes]


def score_metrics(model: Classifier, records: Sequence[Record], photos: Sequence,
                  boxes: Sequence[list], hashes: dict[str, str],
                  fail: Callable[[Record, str], None], *, methods: Sequence[str],
                  metrics: Sequence[str], seed: int = 0,
                  done: frozenset[tuple[str, str]] = frozenset()) -> Iterator[MetricsLine]:
    """Score a batch of photos: for each method, its maps for the true classes (of the photos
    whose ``(key, method)`` is not in ``done``: nothing written is computed again) and every
    metric of ``metrics`` on them; one :class:`MetricsLine` per photo and method, yielded as
    each method is done (the local backend writes them then).

    The photos are resized whole to the model's input (no crop) and their ``boxes`` (photo
    pixels, clipped to the photo) follow. A metric that draws at random (one with a ``seed``
    option) is called one photo at a time with :func:`photo_seed`, so its value does not depend
    on the batch; the others are called on the batch. ``fail`` is unused: a method or metric
    that raises stops the run (the lines written stay; a resumed run goes on from them).
    The stage of :class:`.backend.LinesSpec` (bind the keywords with ``functools.partial``).
    """
    from ..metrics import list_metrics

    infos = list_metrics()
    x = model_batch(model, photos, crop=False)
    t = torch.tensor([r.label for r in records], device=x.device)
    size = (int(x.shape[-2]), int(x.shape[-1]))
    on_input = [_boxes_on_input(b, p, size) for b, p in zip(boxes, photos)]
    for method in methods:
        want = [i for i, r in enumerate(records) if (r.key, method) not in done]
        if not want:
            continue
        xs, ts = x[want], t[want]
        t0 = time.perf_counter()
        maps = get_method(method)(model, xs, ts).detach()
        if xs.device.type == "cuda":
            torch.cuda.synchronize(xs.device)
        ms = 1000.0 * (time.perf_counter() - t0) / len(want)
        scores: dict[str, list[float]] = {}
        metric_ms: dict[str, float] = {}
        bx = [on_input[i] for i in want]
        for name in metrics:
            t0 = time.perf_counter()
            info = infos[name]
            opts: dict = {"method": method} if "method" in info.needs else {}
            if "seed" in inspect.signature(info.fn).parameters:
                scores[name] = [float(info.fn(
                    model, xs[j:j + 1], maps[j:j + 1], ts[j:j + 1], seed=photo_seed(
                        seed, records[i].key), **opts,
                    **({"boxes": bx[j:j + 1]} if "boxes" in info.needs else {}))[0])
                    for j, i in enumerate(want)]
            else:
                if "boxes" in info.needs:
                    opts["boxes"] = bx
                scores[name] = info.fn(model, xs, maps, ts, **opts).double().tolist()
            metric_ms[name] = 1000.0 * (time.perf_counter() - t0) / len(want)
        for j, i in enumerate(want):
            r = records[i]
            yield MetricsLine(r.key, hashes[r.key], method,
                              {n: (None if math.isnan(v[j]) else v[j]) for n, v in scores.items()},
                              ms, metric_ms)
