"""The unit a job visualises: a channel, a neuron, a layer or a direction, read from a request.

The request names it as the command line does (``deepinside visualize``): ``unit``
``"LAYER:CHANNEL"``, ``neuron`` ``"LAYER:CHANNEL"`` or ``"LAYER:CHANNEL:X:Y"`` (one position of a
channel on the layer's grid; default its centre), ``layer`` ``"LAYER"`` (DeepDream's mean square)
and, with ``layer``, ``direction`` (the weights of the layer's channels). The objectives are the
library's (:mod:`deepinside.classmodel.objectives`); a bad layer is a 422 that offers the close
names, a channel, position or direction that does not fit the layer a 422 that says why.
"""

from __future__ import annotations

import math
from typing import Any

from .problems import Problem

__all__ = ["UNIT_FIELDS", "check_unit", "read_unit"]

UNIT_FIELDS = ("unit", "neuron", "layer")
MAX_DIRECTION = 16384  # channels of a direction


def _bad(field: str, text: str) -> Problem:
    return Problem(422, "Bad request", f"{field}: {text}")


def _direction(value: Any) -> list[float]:
    if not isinstance(value, list) or not 1 <= len(value) <= MAX_DIRECTION or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
            for v in value):
        raise _bad("direction", f"must be a list of 1 to {MAX_DIRECTION} finite numbers "
                                "(a weight per channel of the layer)")
    return [float(v) for v in value]


def _objective(field: str, text: str, body: dict):
    """(the objective, its name) of one unit field."""
    from deepinside.classmodel import channel, direction, layer, neuron, parse_unit

    if field == "layer":
        if "direction" in body:
            return direction(text, _direction(body["direction"])), f"{text} (direction)"
        return layer(text), text
    try:
        name, k, x, y = parse_unit(text, position=field == "neuron")
    except ValueError as e:
        raise _bad(field, str(e)) from None
    if field == "unit":
        return channel(name, k), f"{name}:{k}"
    return neuron(name, k, x, y), text


def read_unit(body: dict, clf) -> tuple[Any, str] | None:
    """The objective a job body names and its name, or ``None`` for a class-model job.

    Raises:
        Problem: 422, naming the field: two kinds given, a malformed unit, a layer the model
            does not have (with the close names).
    """
    given = [f for f in UNIT_FIELDS if body.get(f) is not None]
    if "direction" in body and "layer" not in given:
        raise _bad("direction", "needs layer (the layer whose channels it weighs)")
    if not given:
        return None
    field = given[0]
    if len(given) > 1 or body.get("classes") is not None:
        raise _bad(given[-1], "give one of classes, unit, neuron or layer")
    text = body[field]
    if not isinstance(text, str) or not text.strip() or len(text) > 200:
        raise _bad(field, "must be a layer name (named_modules()), at most 200 characters")
    objective, name = _objective(field, text.strip(), body)
    try:
        objective.check(clf)
    except ValueError as e:  # names the layer and offers close names
        raise Problem(422, "Unknown unit", f"{field}: {str(e)[:300]}") from None
    return objective, name


def check_unit(clf, objective, field: str, fast: bool = True) -> None:
    """Evaluate the objective once on a grey image (in the model worker): a channel, position or
    direction that does not fit the layer, or a layer that is no map, is a 422 before any job."""
    import torch

    from deepinside.classmodel import unit_values

    h, w = clf.preprocessing.input_size
    try:
        unit_values(clf, objective, torch.zeros(1, 3, h, w, device=clf.device, dtype=clf.dtype),
                    fast=fast)
    except ValueError as e:
        raise Problem(422, "Bad unit", f"{field}: {str(e).splitlines()[0][:300]}") from None
