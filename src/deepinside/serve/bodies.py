"""Request bodies, bounded and kept in memory: JSON with a depth bound, multipart forms.

The :class:`~.guard.Guard` has already read the whole body (at most ``max_body`` bytes, whatever
the transfer encoding); here it is parsed without a temporary file and without recursion.
"""

from __future__ import annotations

import json
import re
from typing import Any

import numpy as np
from starlette.datastructures import FormData, UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import Request

from .problems import Problem

__all__ = ["json_body", "multipart_form", "parse_json"]

_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)


def json_depth(data: bytes) -> int:
    """How deeply arrays and objects nest in JSON text (strings skipped), without parsing it."""
    a = np.frombuffer(_STRING.sub(b'""', data), dtype=np.uint8)
    step = np.zeros(a.shape, dtype=np.int32)
    step[(a == ord("[")) | (a == ord("{"))] = 1
    step[(a == ord("]")) | (a == ord("}"))] = -1
    return int(np.cumsum(step).max()) if a.size else 0


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def parse_json(data: bytes | str, what: str, max_depth: int) -> Any:
    """JSON text -> Python, or a 422 :class:`Problem` that names ``what``.

    ``NaN`` / ``Infinity`` (not JSON) are refused; nesting deeper than ``max_depth`` is refused
    before parsing (no recursion error).
    """
    raw = data.encode() if isinstance(data, str) else data
    if json_depth(raw) > max_depth:
        raise Problem(422, "Bad JSON", f"{what}: JSON nested more than {max_depth} deep")
    try:
        return json.loads(raw, parse_constant=_no_constant)
    except (ValueError, RecursionError) as e:  # UnicodeDecodeError is a ValueError
        reason = str(e) if "JSON number" in str(e) or "digits" in str(e) else "not valid JSON"
        raise Problem(422, "Bad JSON", f"{what}: {reason}") from None


async def json_body(request: Request, max_depth: int) -> Any:
    """The request's JSON body (415 unless its Content-Type is JSON)."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/json":
        raise Problem(415, "Unsupported media type", "the body must be JSON "
                      "(Content-Type: application/json)")
    return parse_json(await request.body(), "the body", max_depth)


class _InMemoryParser(MultiPartParser):
    spool_max_size = 2**62  # a SpooledTemporaryFile that never rolls over to disk


async def multipart_form(request: Request, *, files: set[str], fields: set[str],
                         max_field: int = 65536) -> FormData:
    """The request's form (multipart, or URL-encoded when it has no file), files in memory (the
    body is already bounded).

    Raises:
        Problem: 415 (not multipart), 422 (malformed, unknown field, a file where a field
            belongs or the reverse).
    """
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if not kind and not await request.body():
        return FormData()  # no form at all: the routes say which field is missing
    if kind not in ("multipart/form-data", "application/x-www-form-urlencoded"):
        raise Problem(415, "Unsupported media type", "the body must be multipart/form-data")
    try:
        if kind == "multipart/form-data":
            form = await _InMemoryParser(request.headers, request.stream(), max_files=len(files),
                                         max_fields=len(fields) + len(files),
                                         max_part_size=max_field).parse()
        else:  # a form without a file
            form = await request.form(max_files=0, max_fields=len(fields) + len(files))
    except MultiPartException as e:
        raise Problem(422, "Bad form", f"the form cannot be read ({e.message})") from None
    except UnicodeDecodeError:
        raise Problem(422, "Bad form", "a form field is not UTF-8 text") from None
    for key, value in form.multi_items():
        if key not in files | fields:
            raise Problem(422, "Bad form", f"{key}: unknown field (this form has: "
                          f"{', '.join(sorted(files | fields))})")
        if (key in files) != isinstance(value, UploadFile):
            raise Problem(422, "Bad form", f"{key}: must be "
                          f"{'a file' if key in files else 'a text field, not a file'}")
        if len(form.getlist(key)) > 1:
            raise Problem(422, "Bad form", f"{key}: given more than once")
    return form
