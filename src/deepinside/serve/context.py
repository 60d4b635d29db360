"""What the routers share: the model, the limits, the worker, the server's engine options."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .problems import Problem
from .worker import Limits, ModelWorker

__all__ = ["MAX_TOP_K", "Server"]

MAX_TOP_K = 10  # "top<k>" explains the photo k times


@dataclass
class Server:
    """The state of one ``deepinside serve``.

    Attributes:
        clf: the :class:`deepinside.Classifier`, loaded once.
        limits: see :class:`Limits`.
        worker: the one :class:`ModelWorker`.
        engine: the engine switches every method call gets where the method takes them
            (``fast``, ``amp``, ``compiled``): the server's options, never a request's.
        infos: each method's ``MethodInfo``, by name.
        specs: the parameters each method accepts (``/v1/methods``).
    """

    clf: Any
    limits: Limits
    worker: ModelWorker
    engine: dict[str, Any] = field(default_factory=dict)
    infos: dict[str, Any] = field(default_factory=dict)
    specs: dict[str, dict] = field(default_factory=dict)
    _engine_of: dict[str, dict] = field(default_factory=dict, repr=False)

    def engine_for(self, method: str) -> dict[str, Any]:
        """The engine switches ``method`` takes (of ``fast``, ``amp``, ``compiled``)."""
        if method not in self._engine_of:
            import inspect

            import deepinside

            keywords = inspect.signature(deepinside.get_method(method)).parameters
            self._engine_of[method] = {k: v for k, v in self.engine.items() if k in keywords}
        return self._engine_of[method]

    def target_of(self, text: str | None, field_name: str = "target"):
        """A request's target, read as the command line reads ``--target`` (an index, a name,
        ``top<k>``, classes separated by commas, summed); empty: the photo's top-1 class."""
        import deepinside
        from deepinside.targets import is_top_k

        if text is not None and len(text) > 2000:
            raise Problem(422, "Unknown class", f"{field_name}: longer than any target")
        try:
            k = is_top_k(text)
            if k is not None and k > min(MAX_TOP_K, len(self.clf.class_names)):
                raise ValueError(f"top<k> explains at most "
                                 f"{min(MAX_TOP_K, len(self.clf.class_names))} classes")
            return deepinside.parse_target(text, self.clf)
        except (ValueError, TypeError) as e:  # the message names the class, offers matches
            raise Problem(422, "Unknown class", f"{field_name}: {e}") from None
