"""What the routers share: the model, the limits, the worker, the server's engine options."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .problems import Problem
from .worker import Limits, ModelWorker

__all__ = ["Server"]


@dataclass
class Server:
    """The state of one ``deepinside serve``.

    Attributes:
        clf: the :class:`deepinside.Classifier`, loaded once.
        limits: see :class:`Limits`.
        worker: the one :class:`ModelWorker`.
        engine: the engine switches every method call gets where the method takes them
            (``fast``, ``amp``, ``compiled``): the server's options, never a request's.
        specs: the parameters each method accepts (``/v1/methods``).
    """

    clf: Any
    limits: Limits
    worker: ModelWorker
    engine: dict[str, Any] = field(default_factory=dict)
    specs: dict[str, dict] = field(default_factory=dict)

    def target_of(self, text: str | None) -> int | None:
        """A request's target (a class name or index) -> a class index; None: the top-1."""
        if text is None or text.strip() == "":
            return None
        if len(text) > 200:
            raise Problem(422, "Unknown class", "target: longer than any class name")
        try:
            return self.clf.class_index(text.strip())
        except ValueError as e:  # the message names the class and offers close matches
            raise Problem(422, "Unknown class", f"target: {e}") from None
