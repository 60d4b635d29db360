"""``package.module:factory``: a model built by an importable function of the user's.

The factory is called without arguments (with ``num_classes=N`` when one is asked for) and
returns an ``nn.Module`` (its preprocessing and names then come from ``load_model``'s options)
or a :class:`~deepinside.Classifier`. The current folder is importable, as with ``python -m``.
"""

from __future__ import annotations

import importlib
import os
import re
import sys

from torch import nn

from .classifier import Classifier
from .errors import ModelLoadError

__all__ = ["is_factory", "load_factory"]

_FACTORY = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


def is_factory(name: str) -> bool:
    """Whether ``name`` reads ``package.module:function``."""
    return bool(_FACTORY.match(name))


def load_factory(name: str, num_classes: int | None = None) -> nn.Module | Classifier:
    """What the factory ``package.module:function`` returns.

    Raises:
        ModelLoadError: the module cannot be imported, has no such function, or the function
            fails or returns something that is not a model.
    """
    module_name, _, attr = name.partition(":")
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.append(os.getcwd())
    try:
        obj = importlib.import_module(module_name)
    except ImportError as e:
        raise ModelLoadError(f"--model {name}: cannot import {module_name!r} ({e})") from None
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ModelLoadError(f"--model {name}: {module_name!r} has no {attr!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise ModelLoadError(f"--model {name}: {attr!r} is not callable")
    try:
        built = obj() if num_classes is None else obj(num_classes=num_classes)
    except Exception as e:  # noqa: BLE001 - the user's code: one line, whatever it raised
        raise ModelLoadError(f"--model {name}: the factory failed "
                             f"({type(e).__name__}: {e})") from None
    if not isinstance(built, (nn.Module, Classifier)):
        raise ModelLoadError(f"--model {name}: the factory returned {type(built).__name__}, "
                             "not an nn.Module or a deepinside Classifier")
    return built
