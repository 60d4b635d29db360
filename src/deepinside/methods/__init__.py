"""Attribution methods by name.

Every method has the call shape of :func:`deepinside.saliency`::

    f(model, images: Tensor[B, C, H, W], target=None, **options) -> Tensor[B, H, W]

``get_method(name)`` returns it; ``list_methods()`` describes them (``deepinside methods``).
The paper's gradient map is registered as ``"gradient"``; every other method lives in a
submodule of its own (``gradient_x_input``, ``deconvnet``, ``guided_backprop``, ``smoothgrad``,
``integrated_gradients``, ``gradcam``, ``gradcam_pp``, ``occlusion``), with the shared parts in
``relu_rules`` (backward rules of rectifiers), ``cam`` (layer capture) and ``_common``.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass

from ..saliency import saliency

__all__ = ["MethodInfo", "get_method", "list_methods", "register_method"]


@dataclass(frozen=True)
class MethodInfo:
    """A registered attribution method."""

    name: str
    fn: Callable
    description: str
    paper: str


_METHODS: dict[str, MethodInfo] = {}


def register_method(name: str, description: str, paper: str) -> Callable[[Callable], Callable]:
    """Register ``fn(model, images, target=None, **options) -> Tensor[B, H, W]`` under ``name``."""

    def deco(fn: Callable) -> Callable:
        _METHODS[name] = MethodInfo(name, fn, description, paper)
        return fn

    return deco


def get_method(name: str) -> Callable:
    """The method registered under ``name``.

    Raises:
        KeyError: unknown name; the message offers close matches.
    """
    if name not in _METHODS:
        close = difflib.get_close_matches(name, list(_METHODS), n=3)
        hint = f"; did you mean {', '.join(close)}" if close else ""
        raise KeyError(f"unknown method {name!r}{hint} (known: {', '.join(_METHODS)})")
    return _METHODS[name].fn


def list_methods() -> dict[str, MethodInfo]:
    """All registered methods, by name."""
    return dict(_METHODS)


register_method(
    "gradient",
    "the paper's saliency: max over colour channels of |dS_c/dI|",
    "Simonyan, Vedaldi & Zisserman 2013, https://arxiv.org/abs/1312.6034",
)(saliency)


# Each submodule registers its method on import.
from . import (  # noqa: E402, F401
    deconvnet,
    gradcam,
    gradcam_pp,
    gradient_x_input,
    guided_backprop,
    integrated_gradients,
    occlusion,
    smoothgrad,
)
