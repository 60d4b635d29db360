"""The model's routes: health, models, classes, methods, classify, explain, KServe explain.

Every call of the network runs in the model worker under the request's time limit (the work
itself is in :mod:`.explain`); here the requests are read and checked, each route a few lines.
"""

from __future__ import annotations

import base64
import binascii

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from .bodies import json_body, multipart_form, parse_json
from .context import Server
from .explain import classify, explain, warm_up
from .figures import read_sign
from .params import check_params
from .photos import check_upload
from .problems import Problem, responses
from .worker import check_cancelled

__all__ = ["router"]

WORKER_ERRORS = (413, 415, 422, 503, 504)


def _form_body(fields: dict[str, dict], required: list[str]) -> dict:
    return {"required": True, "content": {"multipart/form-data": {"schema": {
        "type": "object", "required": required, "additionalProperties": False,
        "properties": {"image": {"type": "string", "format": "binary",
                                 "description": "a JPEG, PNG, WebP or GIF photo"}, **fields}}}}}


CLASSIFY_BODY = _form_body({"top_k": {"type": "integer", "minimum": 1, "maximum": 100,
                                      "default": 5}}, ["image"])
EXPLAIN_BODY = _form_body({
    "method": {"type": "string", "default": "gradient", "description": "see /v1/methods"},
    "target": {"type": "string", "description": "a class name or index (default: the top-1)"},
    "params": {"type": "string", "description": "a JSON object of the method's parameters "
                                                "(see /v1/methods)"},
    "localize": {"type": "boolean", "default": False},
    "sign": {"type": "string", "enum": ["auto", "absolute", "positive", "negative", "all"],
             "default": "auto", "description": "how the overlay draws the map, as the command "
             "line's --sign (auto: all for a signed method, absolute otherwise); a signed "
             "method whose params leave reduce out then gets reduce=sum, which keeps the sign"},
    "values": {"type": "boolean", "default": False,
               "description": "also send the map's own values as map.f32 (base64 float32, "
                              "little-endian, row-major, height x width, with their sign)"}},
    ["image"])
_NUM = {"type": "number"}
EXPLAIN_ANSWER = {200: {"description": "the map, its overlay and colour scale", "content": {
    "application/json": {"schema": {
        "type": "object",
        "required": ["model", "method", "params", "target", "top", "map", "overlay_png",
                     "scale", "box", "mask_png", "timing_ms"],
        "properties": {
            "map": {"type": "object", "required": ["width", "height", "png"], "properties": {
                "width": {"type": "integer"}, "height": {"type": "integer"},
                "png": {"type": "string", "format": "byte",
                        "description": "16-bit grey PNG of the map's shown part, scaled to "
                                       "its maximum"},
                "f32": {"type": "string", "format": "byte",
                        "description": "with values=true: the map's own values, float32 "
                                       "little-endian, row-major, height x width, signed"}}},
            "overlay_png": {"type": "string", "format": "byte"},
            "scale": {"type": "object", "properties": {
                "sign": {"type": "string", "enum": ["absolute", "positive", "negative", "all"]},
                "low": _NUM, "high": _NUM, "max_abs": _NUM, "cmap": {"type": "string"},
                "bar_png": {"type": "string", "format": "byte",
                            "description": "the colour bar, 1 pixel wide, high at the top"}}},
            "box": {"type": ["array", "null"], "items": _NUM},
            "mask_png": {"type": ["string", "null"]},
            "timing_ms": {"type": "object"}}}}}}}
KSERVE_BODY = {"required": True, "content": {"application/json": {"schema": {
    "type": "object", "required": ["instances"], "additionalProperties": False,
    "properties": {
        "instances": {"type": "array", "minItems": 1, "items": {
            "type": "object", "required": ["image_b64"], "additionalProperties": False,
            "properties": {"image_b64": {"type": "string", "format": "byte"}}}},
        "parameters": {"type": "object", "additionalProperties": False, "properties": {
            "method": {"type": "string"},
            "target": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
            "params": {"type": "object"},
            "sign": {"type": "string",
                     "enum": ["auto", "absolute", "positive", "negative", "all"]}}}}}}}}


def _bool(text: str, field: str) -> bool:
    value = text.strip().lower()
    if value in ("true", "false"):
        return value == "true"
    raise Problem(422, "Bad request", f"{field}: must be true or false")


def _int(text: str, field: str, lo: int, hi: int) -> int:
    try:
        value = int(text.strip())
    except ValueError:
        raise Problem(422, "Bad request", f"{field}: must be an integer") from None
    if not lo <= value <= hi:
        raise Problem(422, "Bad request", f"{field}: must be between {lo} and {hi}")
    return value


def method_and_params(server: Server, method: str, params: object) -> tuple[str, dict]:
    """A request's method and its checked params (422 naming the field otherwise)."""
    import deepinside

    if method not in server.specs:
        raise Problem(422, "Unknown method", f"method: unknown method {method[:40]!r}"
                      f"{deepinside.registry.did_you_mean(method, server.specs)} (known: "
                      f"{', '.join(server.specs)})")
    roles = {p.name: p.role for p in server.infos[method].params}
    return method, check_params(method, params, server.specs[method], roles)


async def explain_request(server: Server, request: Request) -> JSONResponse:
    """``POST /v1/explain``: read the form, then explain in the worker."""
    form = await multipart_form(request, files={"image"}, fields={
        "method", "target", "params", "localize", "values", "sign"})
    if "image" not in form:
        raise Problem(422, "Bad request", "image: a photo file is required")
    raw = form.get("params") or ""
    given = parse_json(raw, "params", server.limits.max_json_depth) if raw.strip() else {}
    method, opts = method_and_params(server, form.get("method") or "gradient", given)
    info = server.infos[method]
    sign = read_sign(form.get("sign"), info.default_sign)
    opts = {**info.sign_options(sign), **opts}  # a reduce the request gives wins
    target = server.target_of(form.get("target"))
    localize = _bool(form.get("localize", "false"), "localize")
    values = _bool(form.get("values", "false"), "values")
    data = await form["image"].read()
    check_upload(data, server.limits)
    # the answer is JSON already: no need for FastAPI's encoder to walk its PNG strings
    return JSONResponse(await server.worker.run(explain, server, data, method, target, opts,
                                                localize, "image", values, sign))


def _kserve_photos(instances: list, server: Server) -> list[bytes]:
    photos = []
    for i, inst in enumerate(instances):
        try:
            data = base64.b64decode(inst["image_b64"], validate=True)
        except (TypeError, KeyError, ValueError, binascii.Error):
            raise Problem(422, "Bad instance", f"instances.{i}.image_b64: must be a base64 "
                                               "photo") from None
        check_upload(data, server.limits, f"instances.{i}.image_b64")
        photos.append(data)
    return photos


async def kserve_request(server: Server, name: str, request: Request) -> dict:
    """``POST /v1/models/{name}:explain``: every instance explained under one time limit."""
    clf, limits = server.clf, server.limits
    if name != clf.name:
        raise Problem(404, "Unknown model", f"name: this server serves {clf.name!r}, not "
                                            f"{name[:40]!r}")
    body = await json_body(request, limits.max_json_depth)
    if not isinstance(body, dict) or not isinstance(body.get("instances"), list) \
            or not body["instances"]:
        raise Problem(422, "Bad request", "instances: the body must be {\"instances\": "
                      "[{\"image_b64\": ...}], \"parameters\": {...}}")
    instances, parameters = body["instances"], body.get("parameters") or {}
    if len(instances) > limits.max_instances:
        raise Problem(413, "Too many instances", f"instances: {len(instances)} given; at "
                                                 f"most {limits.max_instances}")
    if not isinstance(parameters, dict):
        raise Problem(422, "Bad request", "parameters: must be an object")
    method, opts = method_and_params(server, str(parameters.get("method", "gradient")),
                                     parameters.get("params") or {})
    info = server.infos[method]
    given = parameters.get("sign")
    sign = read_sign(None if given is None else str(given), info.default_sign, "parameters.sign")
    opts = {**info.sign_options(sign), **opts}  # a reduce the request gives wins
    target = parameters.get("target")
    if isinstance(target, bool) or not isinstance(target, (str, int, type(None))):
        raise Problem(422, "Bad request", "parameters.target: must be a class name or index")
    c = server.target_of(None if target is None else str(target), "parameters.target")
    photos = _kserve_photos(instances, server)

    def explain_all() -> list[dict]:
        out = []
        for i, data in enumerate(photos):
            check_cancelled()
            out.append(explain(server, data, method, c, opts, True, f"instances.{i}.image_b64",
                               sign=sign))
        return out

    answers = await server.worker.run(explain_all)
    return {"predictions": [{"top": r["top"]} for r in answers],
            "explanations": [{k: r[k] for k in ("method", "params", "target", "map", "scale",
                                                "box", "timing_ms")} for r in answers]}


def _catalogue_routes(api: APIRouter, server: Server) -> None:
    """What the server serves: health, the model, its classes, the methods."""
    clf = server.clf

    @api.get("/healthz", tags=["server"])
    async def healthz():
        """200 once the model is loaded."""
        return {"status": "ok", "model": clf.name}

    @api.get("/v1/models", tags=["model"])
    async def models():
        """The model this server serves."""
        return {"models": [{"name": clf.name, "classes": len(clf.class_names),
                            "input_size": list(clf.preprocessing.input_size)}]}

    @api.get("/v1/classes", tags=["model"])
    async def classes():
        """The class names, by index."""
        return {"classes": [clf.short_name(i) for i in range(len(clf.class_names))]}

    @api.get("/v1/methods", tags=["model"])
    async def methods():
        """The attribution methods, each with the parameters a request may set and the signs
        its map is drawn in (``default_sign`` unless asked; ``signs``: those it has)."""
        return {"methods": [{"name": n, "description": i.description, "paper": i.paper,
                             "signed": i.signed, "default_sign": i.default_sign,
                             "signs": list(i.signs), "params": server.specs[n]}
                            for n, i in server.infos.items()]}


def _model_routes(api: APIRouter, server: Server) -> None:
    """The routes that run the model: classify, explain, KServe explain."""

    @api.post("/v1/classify", tags=["model"], openapi_extra={"requestBody": CLASSIFY_BODY},
              responses=responses(403, *WORKER_ERRORS))
    async def classify_route(request: Request):
        """The top classes of a photo (as ``deepinside classify --json``)."""
        form = await multipart_form(request, files={"image"}, fields={"top_k"})
        if "image" not in form:
            raise Problem(422, "Bad request", "image: a photo file is required")
        top_k = _int(form.get("top_k", "5"), "top_k", 1, 100)
        data = await form["image"].read()
        check_upload(data, server.limits)
        return {"top": await server.worker.run(classify, server, data, top_k)}

    @api.post("/v1/explain", tags=["model"], openapi_extra={"requestBody": EXPLAIN_BODY},
              responses={**EXPLAIN_ANSWER, **responses(403, *WORKER_ERRORS)})
    async def explain_route(request: Request):
        """A method's map of a photo, its overlay in a sign with its colour scale and
        (``localize``) the object's box."""
        return await explain_request(server, request)

    @api.post("/v1/models/{name}:explain", tags=["model"],
              openapi_extra={"requestBody": KSERVE_BODY},
              responses=responses(403, 404, *WORKER_ERRORS))
    async def kserve_explain(name: str, request: Request):
        """KServe v1 explain: the instances' top classes and maps, under one time limit."""
        return await kserve_request(server, name, request)


def router(server: Server) -> APIRouter:
    """The routes over the model; the worker warms the model up first."""
    api = APIRouter()
    server.worker.submit(warm_up, server, kind="internal")
    _catalogue_routes(api, server)
    _model_routes(api, server)
    return api
