"""Deletion / insertion and the randomisation test: :mod:`deepinside.metrics.perturbation`
(moved there, beside the metrics registry that scores them)."""

from ..metrics.perturbation import *  # noqa: F403
from ..metrics.perturbation import __all__  # noqa: F401
