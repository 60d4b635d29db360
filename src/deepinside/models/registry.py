"""The model registries: named models (``efficientnet_lite0``) and loaders by prefix
(``timm:``, ``torchvision:``, ``hf:``).

A builder is ``f(weights_path_or_None) -> Classifier`` (it may take ``num_classes=`` too); a
loader is ``f(spec, weights_path_or_None, num_classes_or_None) -> Classifier`` for names
``<prefix>:<spec>``. Each registers itself in its own module; ``deepinside models`` lists them.
"""

from __future__ import annotations

from collections.abc import Callable

from ..registry import Registry
from .classifier import Classifier

__all__ = ["LOADERS", "MODELS", "list_loaders", "list_models", "register_loader",
           "register_model"]

Builder = Callable[..., Classifier]
Loader = Callable[[str, "str | None", "int | None"], Classifier]

MODELS: Registry[tuple[Builder, str]] = Registry(
    "model", hint="or timm:<name>, torchvision:<name>, hf:<folder>, package.module:factory")
LOADERS: Registry[tuple[Loader, str]] = Registry("model loader")


def register_model(name: str, description: str) -> Callable[[Builder], Builder]:
    """Register a builder ``f(weights_path_or_None) -> Classifier`` under ``name``."""
    return MODELS.decorator(name, lambda fn: (fn, description))


def register_loader(prefix: str, description: str) -> Callable[[Loader], Loader]:
    """Register ``f(spec, weights, num_classes) -> Classifier`` for names ``<prefix>:<spec>``."""
    return LOADERS.decorator(prefix, lambda fn: (fn, description))


def list_models(pattern: str | None = None) -> dict[str, str]:
    """Named models (besides the ``<prefix>:`` loaders, :func:`list_loaders`) and their
    description, those matching a glob ``pattern`` if one is given."""
    return {k: MODELS[k][1] for k in MODELS.list(pattern)}


def list_loaders() -> dict[str, str]:
    """``"<prefix>:"`` -> what names after it load (``timm:``, ``torchvision:``, ``hf:``)."""
    return {f"{k}:": LOADERS[k][1] for k in LOADERS.list()}
