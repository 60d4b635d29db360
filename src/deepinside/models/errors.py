"""The one error of model loading."""

from __future__ import annotations

__all__ = ["ModelLoadError"]


class ModelLoadError(RuntimeError):
    """A model or its weights could not be loaded; the message says why in one line."""
