"""The parameters a request may set for a method, and their check (422 naming the field).

What a method accepts is read from the method itself: its keyword-only parameters, their
annotations (``Literal[...]`` gives the choices) and defaults, plus the bounds below. Engine
switches (``fast``, ``amp``, ``compiled``) are the server's options, never a request's;
``progress`` is a callback. Layer names are checked against the served model.
"""

from __future__ import annotations

import inspect
import math
import typing
from typing import Any, Literal

from .problems import Problem

__all__ = ["ENGINE", "check_params", "method_params"]

ENGINE = {"fast", "amp", "compiled"}
HIDDEN = ENGINE | {"upsample_to_input", "progress"}
# Bounds of the numbers a request may set (others: any finite value of their type).
BOUNDS: dict[str, tuple[float, float]] = {
    "steps": (1, 256), "samples": (1, 64), "noise": (0.0, 1.0), "window": (1, 1024),
    "stride": (1, 1024), "batch_size": (1, 256), "energy": (0.0, 1.0), "seed": (0, 2**31 - 1),
    "masks": (1, 8000), "grid": (2, 64), "p": (0.0, 1.0), "iterations": (1, 1000),
    "area": (0.0, 1.0), "levels": (1, 16), "step": (1, 64), "momentum": (0.0, 1.0),
    "eps": (0.0, 1.0), "sigma": (0.0, 100.0), "max_blur": (0.0, 100.0),
    "learning_rate": (0.0, 1.0), "area_weight": (0.0, 1e4), "area_growth": (1.0, 1.1),
}
# Choices of text parameters not spelt as a Literal; reduce="none" gives a map per channel,
# not the one map per photo that the server draws.
CHOICES: dict[str, list[str]] = {
    "reduce": ["max_abs", "sum_abs", "sum"],
    "baseline": ["zero", "black", "white", "mean", "blur"],
    "baselines": ["zero", "black", "white", "mean", "blur"],
    "score": ["probability", "logit"],
    "variant": ["preserve", "delete"],
    "rule": ["gausslegendre", "riemann_middle", "riemann_trapezoid", "riemann_left",
             "riemann_right"],
    "base": ["gradient", "gradient_x_input", "guided_backprop", "deconvnet",
             "integrated_gradients"],
}


def _kind(hint: Any, default: Any) -> tuple[str | None, list | None]:
    """``(type name, Literal choices)`` of an annotation; ``None`` for a type JSON cannot give."""
    if typing.get_origin(hint) is Literal:
        return "str", list(typing.get_args(hint))
    args = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, _UnionType) \
        else (hint,)
    names = {bool: "bool", int: "int", float: "float", str: "str"}
    if type(default) in names and type(default) in args:
        return names[type(default)], None
    for t in (bool, int, float, str):  # the first of these the annotation allows
        if t in args:
            return names[t], None
    if default is not None and type(default) in names:
        return names[type(default)], None
    return None, None


_UnionType = type(int | None)


def method_params(fn, layers: list[str] | None = None) -> dict[str, dict]:
    """The options a request may set for a method: ``{name: {"type", "default", "min", "max",
    "choices"}}`` (``min`` / ``max`` / ``choices`` where they apply); a ``layer`` is one of
    ``layers`` (the model's module names)."""
    try:
        hints = typing.get_type_hints(fn)
    except Exception:  # noqa: BLE001 - an unresolvable annotation: fall back to defaults
        hints = {}
    out = {}
    for p in inspect.signature(fn).parameters.values():
        if p.kind is not p.KEYWORD_ONLY or p.name in HIDDEN:
            continue
        kind, choices = _kind(hints.get(p.name, type(p.default)), p.default)
        if kind is None:
            continue
        spec: dict[str, Any] = {"type": kind, "default": p.default}
        if p.name in BOUNDS and kind in ("int", "float"):
            spec["min"], spec["max"] = BOUNDS[p.name]
        choices = CHOICES.get(p.name, choices)
        if p.name == "layer" and layers is not None:
            choices = layers
        if choices is not None and kind == "str":
            spec["choices"] = [c for c in choices if c != "none" or p.name != "reduce"]
        out[p.name] = spec
    return out


def check_params(method: str, given: object, specs: dict[str, dict]) -> dict:
    """Validate a request's ``params`` against :func:`method_params` (a 422 :class:`Problem`
    naming the field otherwise)."""
    if not isinstance(given, dict):
        raise Problem(422, "Bad params", "params: must be a JSON object")
    out = {}
    for name, value in given.items():
        spec = specs.get(name)
        field = f"params.{name}"
        if spec is None:
            why = ("is the server's option, not a request's" if name in ENGINE else
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
