"""Attribution methods by name.

Every method has the call shape of :func:`deepinside.saliency`::

    f(model, images: Tensor[B, C, H, W], target=None, **options) -> Tensor[B, H, W]

``get_method(name)`` returns it; ``list_methods()`` describes them (``deepinside methods``):
each :class:`MethodInfo` says whether the map is signed, its cost class, its parameters with
their kinds, bounds and choices, and its demo options, so no front end keeps a list of them.
The paper's gradient map is ``gradient``; every other method lives in a submodule of its own,
with the shared parts in ``cam`` (the CAM family's pipeline), ``relu_rules`` (backward rules of
rectifiers), ``_common`` and ``_registry`` (the registry). Every method calls the network
through :mod:`deepinside.engine` only.

A new method is one file here that decorates its function with :func:`register_method`
(from ``._registry``); every module of this package is imported when the package is, so it
is found without editing another file.
"""

from __future__ import annotations

import importlib
import pkgutil

from ._registry import (
    METHODS,
    MethodInfo,
    Param,
    Range,
    get_method,
    list_methods,
    method_names,
    register_method,
)

__all__ = ["METHODS", "MethodInfo", "Param", "Range", "get_method", "list_methods",
           "method_names", "register_method"]


def _import_all() -> None:
    """Import every submodule (each registers its methods); the paper's ``gradient`` first."""
    names = sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))
    for name in sorted(names, key=lambda n: n != "gradient"):
        importlib.import_module(f".{name}", __name__)


_import_all()
