"""``deepinside serve``: a web page and an HTTP API over the library (see :mod:`.app`)."""

from .app import Limits, ModelWorker, Problem, create_app

__all__ = ["Limits", "ModelWorker", "Problem", "create_app"]
