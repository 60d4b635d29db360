"""Evaluation of what saliency maps are good for: dataset readers, metrics, and the runner.

- :mod:`.datasets`: :func:`read_dataset` (JSON, ILSVRC / PASCAL VOC XML, CSV of boxes).
- :mod:`.metrics`: box arithmetic, localisation accuracies, the pointing game, energy in boxes.
- :mod:`.runner`: :func:`run_localization`, streaming and resumable, GrabCut in worker processes.
"""

from .datasets import DatasetError, Record, read_dataset
from .metrics import box_iou, energy_in_boxes, pointing_hit, top5_loc_error
from .runner import format_table, run_localization, summarize

__all__ = [
    "DatasetError",
    "Record",
    "box_iou",
    "energy_in_boxes",
    "format_table",
    "pointing_hit",
    "read_dataset",
    "run_localization",
    "summarize",
    "top5_loc_error",
]
