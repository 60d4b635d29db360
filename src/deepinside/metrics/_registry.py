"""The metric registry and what a metric says about itself (as :mod:`deepinside.methods._registry`).

Metric files import this module, never their package, so registering causes no import cycle.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..registry import Registry

__all__ = ["FAMILIES", "METRICS", "MetricInfo", "get_metric", "list_metrics", "register_metric",
           "resolve_metrics"]

FAMILIES = ("faithfulness", "robustness", "complexity", "randomisation", "localisation",
            "axiomatic")


@dataclass(frozen=True)
class MetricInfo:
    """A registered metric.

    Attributes:
        name: its name (Quantus's class name in snake case where Quantus has it).
        fn: ``fn(model, images, maps, target, *, boxes=None, **options) -> Tensor[B]``.
        family: one of :data:`FAMILIES`.
        description: one line.
        paper: who proposed it, with a link.
        higher_is_better: the direction of a better map.
        needs: what the metric needs besides the maps: ``"boxes"`` (ground truth),
            ``"method"`` (the attribution method, ``method=``, to recompute maps).
        cost: ``"cheap"`` (no or a few forward passes), ``"moderate"`` or ``"expensive"``
            (many forward passes or maps per photo).
    """

    name: str
    fn: Callable
    family: str
    description: str
    paper: str
    higher_is_better: bool
    needs: tuple[str, ...] = ()
    cost: str = "cheap"


METRICS: Registry[MetricInfo] = Registry("metric", hint="or a family: " + ", ".join(FAMILIES))


def register_metric(
    name: str,
    family: str,
    description: str,
    paper: str,
    *,
    higher_is_better: bool,
    needs: Sequence[str] = (),
    cost: str = "cheap",
) -> Callable[[Callable], Callable]:
    """Register ``fn(model, images, maps, target, *, boxes=None, **options) -> Tensor[B]``."""
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {', '.join(FAMILIES)}, got {family!r}")
    if cost not in ("cheap", "moderate", "expensive"):
        raise ValueError(f"cost must be cheap, moderate or expensive, got {cost!r}")
    return METRICS.decorator(name, lambda fn: MetricInfo(
        name, fn, family, description, paper, higher_is_better, tuple(needs), cost))


def get_metric(name: str) -> Callable:
    """The metric registered under ``name``.

    Raises:
        KeyError: unknown name; the message offers close matches.
    """
    return METRICS.get(name).fn


def list_metrics(pattern: str | None = None, family: str | None = None) -> dict[str, MetricInfo]:
    """The registered metrics by name (matching a glob ``pattern`` / of one ``family``)."""
    return {n: METRICS[n] for n in METRICS.list(pattern)
            if family is None or METRICS[n].family == family}


def resolve_metrics(spec: str | Sequence[str]) -> list[str]:
    """Metric names from names, families and ``"all"`` / ``"cheap"`` (comma-separated or a list).

    ``"cheap"`` is every metric whose cost is cheap; a family name stands for its metrics.
    Order is kept, duplicates dropped.

    Raises:
        KeyError: an unknown name (with close matches).
    """
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    out: list[str] = []
    for item in (i.strip() for i in items):
        if not item:
            continue
        if item == "all":
            names = METRICS.list()
        elif item == "cheap":
            names = [n for n in METRICS.list() if METRICS[n].cost == "cheap"]
        elif item in FAMILIES:
            names = [n for n in METRICS.list() if METRICS[n].family == item]
        else:
            names = [METRICS.get(item).name]
        out.extend(n for n in names if n not in out)
    return out
