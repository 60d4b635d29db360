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

from collections.abc import Callable, Sequence

from ..models import Classifier
from . import local_backend, ray_backend  # noqa: F401 - each registers its backend
from .backend import CompareSpec, get_backend
from .ray_connect import DEFAULT_TIMEOUT
from .stages import MethodScores

__all__ = ["MethodScores", "compare_methods"]


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
    ray_timeout: float = DEFAULT_TIMEOUT,
    actor_cpus: float | None = None,
    actor_gpus: float | None = None,
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
            ``ray_address`` or a local Ray; any backend registered in :mod:`.backend`.
        workers: ``ray`` only: the model actors.
        ray_address, ray_timeout, actor_cpus, actor_gpus: ``ray`` only: see
            :func:`.runner.run_localization`.

    Returns:
        One :class:`MethodScores` per method, in the order given.
    """
    where = get_backend(backend)
    where.check()
    spec = CompareSpec(batch_size=batch_size, steps=steps, recipe=recipe, smooth=smooth,
                       deletion=deletion, randomization=randomization, workers=workers,
                       address=ray_address, ray_timeout=ray_timeout, actor_cpus=actor_cpus,
                       actor_gpus=actor_gpus)
    return where.compare(model, records, methods, spec, on_batch, on_failure)
