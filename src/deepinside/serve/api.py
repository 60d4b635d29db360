"""The model's routes: health, models, classes, methods, classify, explain, KServe explain.

Every call of the network runs in the model worker under the request's time limit; the work
checks its cancel flag between stages (and the worker before every module's forward pass).
"""

from __future__ import annotations

import base64
import binascii
import logging
import time
from typing import Any

import numpy as np
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from PIL import Image

from .bodies import json_body, multipart_form, parse_json
from .context import Server
from .figures import overlay_and_scale, read_sign, shown_map, sign_options
from .params import check_params
from .photos import check_upload, decode_photo, map_f32, map_png, png
from .problems import Problem, responses
from .worker import Cancelled, check_cancelled

__all__ = ["router"]

log = logging.getLogger("deepinside.serve")
LOCALIZE_SIDE = 1024  # the box is found on the map scaled to at most this many pixels a side
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
            "params": {"type": "object"}}}}}}}}


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


def router(server: Server) -> APIRouter:
    """The routes over the model."""
    import deepinside
    from deepinside.localize import get_recipe, segment_map

    api = APIRouter()
    clf, limits, worker = server.clf, server.limits, server.worker
    box_recipe = get_recipe("gradcam-30", smooth=0.04)  # as evaluate compare boxes any map
    engine_of = {name: {k: v for k, v in server.engine.items()
                        if k in _keywords(deepinside.get_method(name))}
                 for name in server.specs}

    def warm_up() -> None:
        """Build, outside any time limit, what the first request would build under its own:
        the model's fast copy (compiled with ``--compile``). A build stopped by a time limit
        would start again at the next request, and again be stopped."""
        h, w = clf.preprocessing.input_size
        try:
            deepinside.photo_maps(clf, [Image.new("RGB", (w, h), (128, 128, 128))], None,
                                  method="gradient", **engine_of["gradient"])
        except Cancelled:
            pass  # the server is stopping
        except Exception as e:  # noqa: BLE001 - the requests will say what is wrong
            log.warning("the warm-up failed: %s", e)

    worker.submit(warm_up, kind="internal")

    def classify(data: bytes, k: int) -> list[dict]:
        photo = decode_photo(data, limits)
        check_cancelled()
        x = deepinside.photos_to_batch([photo], clf.preprocessing, crop=True)
        fast = server.engine.get("fast", True)
        logits = deepinside.forward_logits(clf, x.to(clf.device, clf.dtype), fast=fast)
        return clf.top_classes(logits, k)[0]

    def locate(m: np.ndarray) -> tuple[list[float], np.ndarray]:
        """The box and mask of a map, found on the map scaled to LOCALIZE_SIDE at most."""
        h, w = m.shape
        scale = min(1.0, LOCALIZE_SIDE / max(h, w))
        small = m if scale == 1.0 else np.asarray(Image.fromarray(m.astype(np.float32)).resize(
            (max(1, round(w * scale)), max(1, round(h * scale))), Image.BILINEAR))
        mask, box, _ = segment_map(np.zeros((*small.shape, 3), np.uint8), small, box_recipe)
        sx, sy = w / small.shape[1], h / small.shape[0]
        box = [float(box[0]) * sx, float(box[1]) * sy, float(box[2]) * sx, float(box[3]) * sy]
        mask = np.asarray(Image.fromarray((mask * 255).astype(np.uint8)).resize(
            (w, h), Image.NEAREST)) if scale != 1.0 else (mask * 255).astype(np.uint8)
        return box, mask

    def classes_of(t) -> list[int]:
        """The classes a resolved target explains (one, k for top<k>, a sum's)."""
        return t.reshape(-1).tolist() if hasattr(t, "reshape") else list(getattr(t, "classes",
                                                                                  []))

    def explain(data: bytes, method: str, target, params: dict, localize: bool,
                what: str = "image", values: bool = False, sign: str | None = None) -> dict:
        t0 = time.perf_counter()
        sign = sign or read_sign(None, server.infos[method].signed)
        photo = decode_photo(data, limits, what)
        check_cancelled()
        full = photo.size
        if photo.width * photo.height > limits.max_render_pixels:  # drawn smaller: see Limits
            s = (limits.max_render_pixels / (photo.width * photo.height)) ** 0.5
            photo = photo.resize((max(1, int(photo.width * s)), max(1, int(photo.height * s))),
                                 Image.BILINEAR, reducing_gap=2.0)
            check_cancelled()
        try:  # one forward pass resolves the top-1 class and the logits
            [m], t, logits = deepinside.photo_maps(clf, [photo], target, method=method,
                                                   **engine_of[method], **params)
        except (ValueError, KeyError) as e:
            if "layer" in params:  # a layer whose output the method cannot use
                raise Problem(422, "Bad params", f"params.layer: {method} cannot use the "
                              f"layer {params['layer']!r} (its output is not a feature "
                              "map)") from None
            if _from_library(e):  # the library's own sentence about its input
                text = e.args[0] if e.args and isinstance(e.args[0], str) else str(e)
                raise Problem(422, "Bad params", f"params: {text.splitlines()[0][:300]}") \
                    from None
            raise
        check_cancelled()
        classes, logits = classes_of(t), logits[0]
        t2 = time.perf_counter()
        raw = m[0] if m.ndim == 3 else m  # with its sign: the values, overlay and scale
        # top<k>: the best class's map, then the others'
        shown = [shown_map(x, sign) for x in (m if m.ndim == 3 else [m])]
        m = shown[0]
        sums = not hasattr(t, "reshape") and len(classes) > 1
        named = {"class": classes[0] if classes else None,
                 "name": " + ".join(clf.short_name(c) for c in classes) if sums
                 else clf.short_name(classes[0]) if classes else str(target)}
        size = {"width": photo.width, "height": photo.height}
        out: dict[str, Any] = {
            "model": clf.name, "method": method, "params": params,
            "target": named if not sums else {**named, "classes": classes},
            "top": clf.top_classes(logits[None])[0],
            "map": {**size, "png": map_png(m)}, "box": None, "mask_png": None}
        if values:
            out["map"]["f32"] = map_f32(raw)
        if len(shown) > 1:
            out["more"] = [{"class": c, "name": clf.short_name(c),
                            "map": {**size, "png": map_png(mm)}}
                           for c, mm in zip(classes[1:], shown[1:])]
        check_cancelled()
        blend, out["scale"] = overlay_and_scale(photo, raw, sign)
        out["overlay_png"] = png(blend)
        if localize:
            check_cancelled()
            box, mask = locate(m)
            sx, sy = full[0] / photo.width, full[1] / photo.height  # in the photo's pixels
            out["box"] = [box[0] * sx, box[1] * sy, box[2] * sx, box[3] * sy]
            out["mask_png"] = png(mask)
        t3 = time.perf_counter()
        out["timing_ms"] = {"map": round(1e3 * (t2 - t0), 1),
                            "render": round(1e3 * (t3 - t2), 1)}
        return out

    def method_and_params(method: str, params: object) -> tuple[str, dict]:
        if method not in server.specs:
            raise Problem(422, "Unknown method", f"method: unknown method {method[:40]!r}"
                          f"{deepinside.registry.did_you_mean(method, server.specs)} (known: "
                          f"{', '.join(server.specs)})")
        roles = {p.name: p.role for p in server.infos[method].params}
        return method, check_params(method, params, server.specs[method], roles)

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
        """The attribution methods, each with the parameters a request may set."""
        return {"methods": [{"name": n, "description": i.description, "paper": i.paper,
                             "signed": i.signed, "params": server.specs[n]}
                            for n, i in server.infos.items()]}

    @api.post("/v1/classify", tags=["model"], openapi_extra={"requestBody": CLASSIFY_BODY},
              responses=responses(403, *WORKER_ERRORS))
    async def classify_route(request: Request):
        """The top classes of a photo (as ``deepinside classify --json``)."""
        form = await multipart_form(request, files={"image"}, fields={"top_k"})
        if "image" not in form:
            raise Problem(422, "Bad request", "image: a photo file is required")
        top_k = _int(form.get("top_k", "5"), "top_k", 1, 100)
        data = await form["image"].read()
        check_upload(data, limits)
        return {"top": await worker.run(classify, data, top_k)}

    @api.post("/v1/explain", tags=["model"], openapi_extra={"requestBody": EXPLAIN_BODY},
              responses={**EXPLAIN_ANSWER, **responses(403, *WORKER_ERRORS)})
    async def explain_route(request: Request):
        """A method's map of a photo, its overlay and (``localize``) the object's box."""
        form = await multipart_form(request, files={"image"},
                                    fields={"method", "target", "params", "localize",
                                            "values", "sign"})
        if "image" not in form:
            raise Problem(422, "Bad request", "image: a photo file is required")
        raw = form.get("params") or ""
        given = parse_json(raw, "params", limits.max_json_depth) if raw.strip() else {}
        method, opts = method_and_params(form.get("method") or "gradient", given)
        signed = server.infos[method].signed
        sign = read_sign(form.get("sign"), signed)
        opts = sign_options(signed, server.specs[method], opts, sign)
        target = server.target_of(form.get("target"))
        localize = _bool(form.get("localize", "false"), "localize")
        values = _bool(form.get("values", "false"), "values")
        data = await form["image"].read()
        check_upload(data, limits)
        # the answer is JSON already: no need for FastAPI's encoder to walk its PNG strings
        return JSONResponse(await worker.run(explain, data, method, target, opts, localize,
                                             "image", values, sign))

    @api.post("/v1/models/{name}:explain", tags=["model"],
              openapi_extra={"requestBody": KSERVE_BODY},
              responses=responses(403, 404, *WORKER_ERRORS))
    async def kserve_explain(name: str, request: Request):
        """KServe v1 explain: the instances' top classes and maps, under one time limit."""
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
        method, opts = method_and_params(str(parameters.get("method", "gradient")),
                                         parameters.get("params") or {})
        target = parameters.get("target")
        if isinstance(target, bool) or not isinstance(target, (str, int, type(None))):
            raise Problem(422, "Bad request", "parameters.target: must be a class name or index")
        c = server.target_of(None if target is None else str(target), "parameters.target")
        photos = []
        for i, inst in enumerate(instances):
            try:
                data = base64.b64decode(inst["image_b64"], validate=True)
            except (TypeError, KeyError, ValueError, binascii.Error):
                raise Problem(422, "Bad instance", f"instances.{i}.image_b64: must be a base64 "
                                                   "photo") from None
            check_upload(data, limits, f"instances.{i}.image_b64")
            photos.append(data)

        def explain_all() -> list[dict]:
            out = []
            for i, data in enumerate(photos):
                check_cancelled()
                out.append(explain(data, method, c, opts, True, f"instances.{i}.image_b64"))
            return out

        answers = await worker.run(explain_all)
        return {"predictions": [{"top": r["top"]} for r in answers],
                "explanations": [{k: r[k] for k in ("method", "target", "map", "box",
                                                    "timing_ms")} for r in answers]}

    return api


def _from_library(e: BaseException) -> bool:
    """Whether deepinside itself raised ``e`` (a sentence about a bad input, by design), not
    a library below it (whose text could say anything)."""
    import traceback
    from pathlib import Path

    import deepinside

    frames = traceback.extract_tb(e.__traceback__)
    return bool(frames) and Path(frames[-1].filename).is_relative_to(
        Path(deepinside.__file__).parent)


def _keywords(fn) -> set[str]:
    import inspect

    return set(inspect.signature(fn).parameters)
