"""The parameters a request may set for a method, and their check (422 naming the field).

What a method accepts is what it says about itself (:class:`deepinside.methods.MethodInfo`:
its :class:`~deepinside.methods.Param` s, with kinds, bounds, choices and roles); the server
keeps no list of them. Engine switches (``fast``, ``amp``, ``compiled``) are the server's
options, never a request's. Layer names are checked against the served model. The server draws
one map per class, so ``reduce="none"`` (a map per channel) is not offered.
"""

from __future__ import annotations

import math
from typing import Any

from .problems import Problem

__all__ = ["check_params", "method_params"]

NOT_SERVED = {"reduce": {"none"}}  # values the server cannot draw


def method_params(info, layers: list[str] | None = None) -> dict[str, dict]:
    """The options a request may set for a method (its ``MethodInfo``): ``{name: {"type",
    "default"[, "min", "max"][, "choices"]}}``; a layer's choices are the model's ``layers``."""
    out: dict[str, dict[str, Any]] = {}
    for name, p in info.request_params().items():
        spec = p.spec()
        if p.kind == "layer" and layers is not None:
            spec["choices"] = list(layers)
        if "choices" in spec and name in NOT_SERVED:
            spec["choices"] = [c for c in spec["choices"] if c not in NOT_SERVED[name]]
        out[name] = spec
    return out


def check_params(method: str, given: object, specs: dict[str, dict],
                 roles: dict[str, str] | None = None) -> dict:
    """Validate a request's ``params`` against :func:`method_params` (a 422 :class:`Problem`
    naming the field otherwise); ``roles``: the method's other options by name (``"engine"``:
    the server's switches; ``"output"``, ``"callback"``), each refused with its reason.
    Numbers must be finite."""
    if not isinstance(given, dict):
        raise Problem(422, "Bad params", "params: must be a JSON object")
    out = {}
    for name, value in given.items():
        spec = specs.get(name)
        field = f"params.{str(name)[:40]}"
        if spec is None:
            role = (roles or {}).get(name)
            why = ("is the server's option, not a request's" if role == "engine" else
                   "is not a request's option" if role is not None else
                   f"{method} has no such parameter (it has: {', '.join(specs) or 'none'})")
            raise Problem(422, "Bad params", f"{field}: {why}")
        if value is None and spec["default"] is None:
            continue  # the method's own default
        kind = spec["type"]
        ok = {"bool": isinstance(value, bool),
              "int": isinstance(value, int) and not isinstance(value, bool),
              "float": isinstance(value, (int, float)) and not isinstance(value, bool),
              "str": isinstance(value, str)}[kind]
        if not ok:
            raise Problem(422, "Bad params", f"{field}: must be {_article(kind)}, got "
                                             f"{_show(value)}")
        if kind == "float":
            try:
                value = float(value)
            except OverflowError:
                value = math.inf
            if not math.isfinite(value):
                raise Problem(422, "Bad params", f"{field}: must be a finite number")
        if "min" in spec and not spec["min"] <= value <= spec["max"]:
            raise Problem(422, "Parameter out of bounds", f"{field}: must be between "
                          f"{spec['min']} and {spec['max']}, got {_show(value)}")
        if "choices" in spec and value not in spec["choices"]:
            shown = spec["choices"] if len(spec["choices"]) <= 12 else \
                spec["choices"][:12] + ["..."]
            raise Problem(422, "Bad params", f"{field}: must be one of {', '.join(shown)}; got "
                                             f"{_show(value)}")
        out[name] = value
    return out


def _article(kind: str) -> str:
    return {"int": "an integer", "float": "a number", "bool": "true or false",
            "str": "a string"}[kind]


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
