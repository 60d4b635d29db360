"""Deprecated since 0.2.0: ``deepinside.saliency`` is the function, not this module.

The paper's map lives in :mod:`deepinside.methods.gradient` (``deepinside.saliency`` and the
registered method ``gradient``), the channel reductions in :mod:`deepinside.ops`. This module
keeps ``from deepinside.saliency import reduce_channels`` working for one release, with a
``DeprecationWarning``.
"""

from __future__ import annotations

from ._lazy import deprecated_names

__getattr__ = deprecated_names(__name__, {
    "saliency": "deepinside.methods.gradient:saliency",
    "reduce_channels": "deepinside.ops:reduce_channels",
    "Reduce": "deepinside.ops:Reduce",
})
