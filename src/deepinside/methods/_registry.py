"""The method registry, and what a method says about itself (timm's ``_registry.py``).

Method files import this module, never their package, so registering causes no import cycle.
A method describes itself once, here, and every front end reads it (Captum's attribution
classes carry ``multiplies_by_inputs`` the same way):

- :class:`MethodInfo`: name, paper, whether its map is signed, its cost class, its parameters
  (:class:`Param`, read from the signature), the demo figure's options and its place there;
- :class:`Param`: a keyword option with its kind (``int`` / ``float`` / ``bool`` / ``str`` /
  ``choice`` / ``layer``), bounds, choices and role (a request option, or an engine switch
  such as ``fast`` that no request may set).

Bounds and choices come from the signature's annotations (``Annotated[int, Range(1, 256)]``,
``Literal["a", "b"]``), else from :data:`SHARED_RANGES` / :data:`SHARED_CHOICES`, the
vocabulary of option names the methods share.
"""

from __future__ import annotations

import fnmatch
import inspect
import math
import typing
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

from ..registry import Registry, did_you_mean

__all__ = ["COSTS", "METHODS", "MethodInfo", "Param", "Range", "get_method", "list_methods",
           "method_names", "register_method"]

Cost = Literal["fast", "moderate", "slow"]
# fast: one or a few passes a batch; moderate: tens; slow: thousands of passes a photo.
COSTS: tuple[str, ...] = ("fast", "moderate", "slow")
# Where a method stands in `deepinside paper`'s comparison: "" not there, "full" in the full
# report, "quick" in the --quick one too.
REPORTS: tuple[str, ...] = ("", "full", "quick")


@dataclass(frozen=True)
class Range:
    """Bounds of a number option: ``steps: Annotated[int, Range(1, 256)] = 32``."""

    min: float
    max: float


# Options that say how the engine runs, never what the map is: no request may set them.
ENGINE_SWITCHES = frozenset({"fast", "amp", "compiled"})
# Options that change the map's shape, not its content, and callbacks: not request fields.
OUTPUT_SWITCHES = frozenset({"upsample_to_input"})
CALLBACKS = frozenset({"progress"})

# Bounds and choices of the option names the methods share (a method's annotation wins).
SHARED_RANGES: Mapping[str, Range] = MappingProxyType({
    "steps": Range(1, 256), "samples": Range(1, 64), "noise": Range(0.0, 1.0),
    "window": Range(1, 1024), "stride": Range(1, 1024), "batch_size": Range(1, 256),
    "energy": Range(0.0, 1.0), "seed": Range(0, 2**31 - 1), "masks": Range(1, 8000),
    "grid": Range(2, 64), "p": Range(0.0, 1.0), "iterations": Range(1, 1000),
    "area": Range(0.0, 1.0), "levels": Range(1, 16), "step": Range(1, 64),
    "momentum": Range(0.0, 1.0),
})
_BASELINES = ("zero", "black", "white", "mean", "blur")
SHARED_CHOICES: Mapping[str, tuple[str, ...]] = MappingProxyType({
    "baseline": _BASELINES,
    "baselines": _BASELINES,
    "score": ("probability", "logit"),
    "variant": ("preserve", "delete"),
    "rule": ("gausslegendre", "riemann_middle", "riemann_trapezoid", "riemann_left",
             "riemann_right"),
})

_KINDS = {bool: "bool", int: "int", float: "float", str: "str"}


@dataclass(frozen=True)
class Param:
    """A keyword option of a method.

    Attributes:
        name: the keyword.
        kind: ``"int"``, ``"float"``, ``"bool"``, ``"str"``, ``"choice"`` (one of
            ``choices``) or ``"layer"`` (a layer name, checked against the model).
        default: the default value (``None``: the method decides, e.g. the default layer).
        min, max: bounds of a number (both or neither).
        choices: the accepted strings of a ``choice``.
        finite: a float must be finite (no NaN, no infinity).
        role: ``"option"`` (a request may set it), ``"engine"`` (how the engine runs:
            ``fast``, ``amp``, ``compiled``), ``"output"`` (the map's shape) or
            ``"callback"``.
    """

    name: str
    kind: str
    default: Any
    min: float | None = None
    max: float | None = None
    choices: tuple[str, ...] | None = None
    finite: bool = False
    role: str = "option"

    @property
    def request(self) -> bool:
        """Whether a request (HTTP, command line) may set it."""
        return self.role == "option"

    @property
    def json_type(self) -> str:
        """The JSON type of its value: ``int``, ``float``, ``bool`` or ``str``."""
        return "str" if self.kind in ("choice", "layer") else self.kind

    def check(self, value: Any, layers: Collection[str] | None = None) -> Any:
        """``value`` if this option accepts it (an int is accepted as a float), else a
        ``ValueError`` that says why in one line.

        Args:
            layers: the model's ``named_modules()`` names, to check a ``layer`` option (a
                name or a glob pattern that matches one of them); ``None``: not checked.
        """
        kind = self.kind
        is_int = isinstance(value, int) and not isinstance(value, bool)
        ok = {"bool": isinstance(value, bool), "int": is_int,
              "float": is_int or isinstance(value, float)}.get(kind, isinstance(value, str))
        if value is None and self.default is None:
            return None
        if not ok:
            raise ValueError(f"{self.name} must be of type {self.json_type}, got {value!r}")
        if kind == "float":
            value = float(value)
            if self.finite and not math.isfinite(value):
                raise ValueError(f"{self.name} must be a finite number, got {value!r}")
        if self.min is not None and not self.min <= value <= self.max:  # type: ignore[operator]
            raise ValueError(f"{self.name} must be between {self.min} and {self.max}, "
                             f"got {value}")
        if self.choices is not None and value not in self.choices:
            raise ValueError(f"{self.name} must be one of {', '.join(self.choices)}, "
                             f"got {value!r}")
        if kind == "layer" and layers is not None and not any(
                fnmatch.fnmatchcase(n, value) for n in layers):
            raise ValueError(f"no layer of the model matches {value!r}"
                             f"{did_you_mean(value, layers, n=5)}")
        return value

    def spec(self) -> dict[str, Any]:
        """``{"type", "default"[, "min", "max"][, "choices"]}``, as ``/v1/methods`` gives it."""
        out: dict[str, Any] = {"type": self.json_type, "default": self.default}
        if self.min is not None:
            out["min"], out["max"] = self.min, self.max
        if self.choices is not None:
            out["choices"] = list(self.choices)
        return out


def _annotations(fn: Callable) -> dict[str, Any]:
    try:
        return typing.get_type_hints(fn, include_extras=True)
    except Exception:  # noqa: BLE001 - a name only known to a type checker: no annotations
        return {}


def _marks(hint: Any) -> tuple[Range | None, tuple[str, ...] | None]:
    """A ``Range`` from ``Annotated[..., Range]`` and choices from a ``Literal`` in ``hint``."""
    rng, choices = None, None
    if typing.get_origin(hint) is typing.Annotated:
        base, *extra = typing.get_args(hint)
        rng = next((e for e in extra if isinstance(e, Range)), None)
        hint = base
    stack = [hint]
    while stack:
        h = stack.pop()
        if typing.get_origin(h) is Literal:
            args = typing.get_args(h)
            if all(isinstance(a, str) for a in args):
                choices = tuple(args)
        else:
            stack.extend(typing.get_args(h))
    return rng, choices


def _kind_of(hint: Any) -> str:
    """The JSON kind an annotation allows (``int | None`` -> ``int``); ``str`` by default."""
    stack, seen = [hint], set()
    while stack:
        h = stack.pop(0)
        if typing.get_origin(h) is typing.Annotated:
            h = typing.get_args(h)[0]
        if isinstance(h, type) and h in _KINDS:
            seen.add(h)
        stack.extend(typing.get_args(h) if typing.get_origin(h) is not Literal else ())
    return next((_KINDS[t] for t in (bool, int, float, str) if t in seen), "str")


def _role(name: str) -> str:
    if name in ENGINE_SWITCHES:
        return "engine"
    if name in OUTPUT_SWITCHES:
        return "output"
    return "callback" if name in CALLBACKS else "option"


def read_params(fn: Callable) -> tuple[Param, ...]:
    """The keyword-only options of ``fn`` whose default is ``None``, a bool, a number or a
    string, as :class:`Param` (others, such as ``**options``, are not described)."""
    hints = _annotations(fn)
    out = []
    for p in inspect.signature(fn).parameters.values():
        if p.kind is not p.KEYWORD_ONLY:
            continue
        d = p.default
        kind = _KINDS.get(type(d))
        if kind is None and d is not None:
            continue
        kind = kind or _kind_of(hints.get(p.name))  # None: the annotation says (int | None)
        rng, choices = _marks(hints.get(p.name))
        if rng is None and kind in ("int", "float"):
            rng = SHARED_RANGES.get(p.name)
        choices = choices or SHARED_CHOICES.get(p.name)
        if p.name == "layer":
            kind = "layer"
        elif choices is not None and kind == "str":
            kind = "choice"
        out.append(Param(p.name, kind, d,
                         min=rng.min if rng and kind in ("int", "float") else None,
                         max=rng.max if rng and kind in ("int", "float") else None,
                         choices=choices, finite=kind == "float", role=_role(p.name)))
    return tuple(out)


@dataclass(frozen=True)
class MethodInfo:
    """A registered attribution method and what the front ends need to know about it.

    Attributes:
        name, fn, description, paper: what ``deepinside methods`` lists.
        signed: its attribution has a sign (evidence for and against the class): the map
            has both signs with the default options, or with ``reduce="sum"`` where the
            method has that option (its default may take magnitudes); figures draw it on a
            diverging colour map centred on 0 (``--sign``).
        cost: ``"fast"`` (one or a few passes), ``"moderate"`` (tens) or ``"slow"``
            (thousands of passes a photo: left out of ``evaluate compare`` unless named).
        params: its keyword options (:class:`Param`), in signature order.
        demo: options of the demo figure (lighter settings for costly methods).
        order: its column in the demo figure and in ``evaluate compare`` (ties: registration
            order).
        report: ``""``, ``"full"`` or ``"quick"``: in ``deepinside paper``'s comparison
            (``quick``: also with ``--quick``).
    """

    name: str
    fn: Callable
    description: str
    paper: str
    signed: bool = False
    cost: str = "fast"
    params: tuple[Param, ...] = ()
    demo: Mapping[str, Any] = field(default_factory=dict)
    order: float = math.inf
    report: str = ""

    @property
    def default_sign(self) -> str:
        """How its map is drawn unless asked otherwise: ``"all"`` (both signs, a diverging
        colour map) if it is signed, else ``"absolute"``."""
        return "all" if self.signed else "absolute"

    @property
    def signs(self) -> tuple[str, ...]:
        """The signs its map has something to show in: ``("absolute", "positive",
        "negative", "all")`` if it is signed, else only ``("absolute",)`` (a map of
        magnitudes has no negative part). A figure of several methods drawn in one sign
        (the page's "Compare all methods") draws the others at :attr:`default_sign`."""
        return ("absolute", "positive", "negative", "all") if self.signed else ("absolute",)

    def sign_options(self, sign: str) -> dict[str, Any]:
        """The options that keep its sign when the map is drawn in ``sign``:
        ``{"reduce": "sum"}`` for a signed method with a ``reduce`` option (its default, e.g.
        ``"sum_abs"``, may drop the sign) drawn in any sign but ``"absolute"``; else nothing."""
        if sign != "absolute" and self.signed and "reduce" in self.request_params():
            return {"reduce": "sum"}
        return {}

    def request_params(self) -> dict[str, Param]:
        """The options a request may set, by name."""
        return {p.name: p for p in self.params if p.request}

    def check_options(self, options: Mapping[str, Any],
                      layers: Collection[str] | None = None) -> dict[str, Any]:
        """``options`` (from a request) checked against :meth:`request_params`: each a
        request option of this method, each value accepted by :meth:`Param.check`.

        Raises:
            ValueError: one line: an unknown option (the message lists the method's), an
                engine switch, or a value out of its type, bounds or choices.
        """
        params = {p.name: p for p in self.params}
        allowed = self.request_params()
        out = {}
        for name, value in options.items():
            if name in params and name not in allowed:
                raise ValueError(f"{name} is not an option a request may set for {self.name}")
            if name not in allowed:
                raise ValueError(f"{self.name} has no parameter {name!r} (it has: "
                                 f"{', '.join(allowed) or 'none'})")
            out[name] = allowed[name].check(value, layers)
        return out

    def to_json(self) -> dict[str, Any]:
        """What ``deepinside methods --json`` prints for it."""
        return {"name": self.name, "description": self.description, "paper": self.paper,
                "signed": self.signed, "cost": self.cost,
                "params": {n: p.spec() for n, p in self.request_params().items()}}


METHODS: Registry[MethodInfo] = Registry("method")


def register_method(
    name: str,
    description: str,
    paper: str,
    *,
    signed: bool = False,
    cost: Cost = "fast",
    demo: Mapping[str, Any] | None = None,
    order: float = math.inf,
    report: str = "",
) -> Callable[[Callable], Callable]:
    """Register ``fn(model, images, target=None, **options) -> Tensor[B, H, W]`` under ``name``.

    The keyword arguments are the facts of :class:`MethodInfo`; the parameters are read from
    ``fn``'s signature.
    """
    if cost not in COSTS:
        raise ValueError(f"cost must be one of {', '.join(COSTS)}, got {cost!r}")
    if report not in REPORTS:
        raise ValueError(f"report must be one of {REPORTS}, got {report!r}")
    return METHODS.decorator(name, lambda fn: MethodInfo(
        name, fn, description, paper, signed=signed, cost=cost, params=read_params(fn),
        demo=MappingProxyType(dict(demo or {})), order=order, report=report))


def get_method(name: str) -> Callable:
    """The method registered under ``name``.

    Raises:
        KeyError: unknown name; the message offers close matches.
    """
    return METHODS.get(name).fn


def list_methods(pattern: str | None = None) -> dict[str, MethodInfo]:
    """The registered methods by name (those matching a glob ``pattern`` if one is given)."""
    return {n: METHODS[n] for n in METHODS.list(pattern)}


def method_names(*, slow: bool = True, report: str | None = None) -> tuple[str, ...]:
    """Method names in figure order (:attr:`MethodInfo.order`).

    Args:
        slow: include the ``"slow"`` ones.
        report: ``"full"``: those in the full report's comparison; ``"quick"``: in the quick
            one; ``None``: all.
    """
    infos = sorted(METHODS.values(), key=lambda i: i.order)  # stable: registration order
    return tuple(i.name for i in infos
                 if (slow or i.cost != "slow")
                 and (report is None or i.report == "quick" or (report == "full" and i.report)))
