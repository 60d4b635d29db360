"""Evaluation of what saliency maps are good for: dataset readers, metrics, and the runner.

- :mod:`.datasets`: :func:`read_dataset` (JSON, ILSVRC / PASCAL VOC XML, CSV of boxes).
- :mod:`.metrics`: box arithmetic, localisation accuracies, the pointing game, energy in boxes
  (NumPy only).
- :mod:`.scoring`: one photo's map -> box -> per-image record (NumPy and OpenCV only: what a
  GrabCut worker process runs).
- :mod:`.runner`: :func:`run_localization`, streaming and resumable (the driver).
- :mod:`.rundir`: the run directory (identity, lock, resume, the one writer, the summary).
- :mod:`.stages`: what every backend runs (boxes, maps, the comparison of methods).
- :mod:`.backend`: the :class:`Backend` interface and its registry; :mod:`.local_backend`
  (this process, GrabCut in worker processes) and :mod:`.ray_backend` (a Ray Data pipeline,
  ``backend="ray"``; needs Ray).
- :mod:`.compare`: every attribution method on one data set, one table.
- :mod:`.faithfulness`: deletion / insertion curves and the randomisation test.
- :mod:`.tables`: the plain-text tables of the results.

Names are imported on first use, so a worker that imports :mod:`.scoring` does not load torch.
"""

from __future__ import annotations

from .._lazy import lazy_exports

_EXPORTS: dict[str, str] = {
    "DatasetError": "datasets",
    "Record": "datasets",
    "read_dataset": "datasets",
    "box_iou": "metrics",
    "energy_in_boxes": "metrics",
    "pointing_hit": "metrics",
    "top5_loc_error": "metrics",
    "ImageResult": "scoring",
    "summarize": "scoring",
    "localization_table": "tables",
    "methods_table": "tables",
    "run_localization": "runner",
    "get_backend": "runner",
    "Backend": "backend",
    "CompareSpec": "backend",
    "RunSpec": "backend",
    "RayConnectError": "ray_connect",
    "connect_ray": "ray_connect",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
