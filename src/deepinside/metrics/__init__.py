"""Evaluation metrics of attribution maps by name, in Quantus's six families.

Every metric has one call shape::

    metric(model, images: Tensor[B, C, H, W], maps: Tensor[B, h, w], target,
           *, boxes=None, **options) -> Tensor[B]

one value per photo (NaN where it cannot be measured, e.g. a localisation metric without a
box). ``get_metric(name)`` returns it; ``list_metrics()`` describes them (family, paper,
whether higher is better, what the metric needs: ``boxes`` or ``method``, the attribution
method whose maps are recomputed on changed inputs or models). Names and defaults follow
Quantus 0.6 (Hedström et al. 2023, https://jmlr.org/papers/v24/22-0142.html) in snake case; each
metric's docstring says where and why it differs. ``docs/metrics.md`` lists them all.

A new metric is one file here that decorates its function with
:func:`~._registry.register_metric`; every module here is imported (and so registered) with the
package. ``perturbation`` holds the deletion / insertion curves and the randomisation test.
Networks are called through :mod:`deepinside.engine`.
"""

from __future__ import annotations

import importlib
import pkgutil

from ._registry import (
    FAMILIES,
    METRICS,
    MetricInfo,
    get_metric,
    list_metrics,
    register_metric,
    resolve_metrics,
)

__all__ = ["FAMILIES", "METRICS", "MetricInfo", "get_metric", "list_metrics", "register_metric",
           "resolve_metrics"]


def _import_all() -> None:
    """Import every submodule (each registers its metric)."""
    for m in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if not m.name.startswith("_"):
            importlib.import_module(f".{m.name}", __name__)


_import_all()
