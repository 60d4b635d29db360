"""The work of the model's routes, run in the model worker: warm-up, classify, explain.

Each function takes the :class:`~.context.Server` and checks the work's cancel flag between its
stages (the worker checks it before every module's forward pass too).
"""

from __future__ import annotations

import functools
import logging
import time
from typing import Any

import numpy as np
from PIL import Image

from .context import Server
from .figures import overlay_and_scale, shown_map
from .photos import decode_photo, map_f32, map_png, png
from .problems import Problem
from .worker import Cancelled, check_cancelled

__all__ = ["classify", "explain", "warm_up"]

log = logging.getLogger("deepinside.serve")
LOCALIZE_SIDE = 1024  # the box is found on the map scaled to at most this many pixels a side


def warm_up(server: Server) -> None:
    """Build, outside any time limit, what the first request would build under its own: the
    model's fast copy (compiled with ``--compile``). A build stopped by a time limit would
    start again at the next request, and again be stopped."""
    import deepinside

    h, w = server.clf.preprocessing.input_size
    try:
        deepinside.photo_maps(server.clf, [Image.new("RGB", (w, h), (128, 128, 128))], None,
                              method="gradient", **server.engine_for("gradient"))
    except Cancelled:
        pass  # the server is stopping
    except Exception as e:  # noqa: BLE001 - the requests will say what is wrong
        log.warning("the warm-up failed: %s", e)


def classify(server: Server, data: bytes, k: int) -> list[dict]:
    """The photo's top ``k`` classes (as ``deepinside classify --json``)."""
    import deepinside

    clf = server.clf
    photo = decode_photo(data, server.limits)
    check_cancelled()
    x = deepinside.photos_to_batch([photo], clf.preprocessing, crop=True)
    logits = deepinside.forward_logits(clf, x.to(clf.device, clf.dtype),
                                       fast=server.engine.get("fast", True))
    return clf.top_classes(logits, k)[0]


@functools.cache
def _box_recipe():
    from deepinside.localize import get_recipe

    return get_recipe("gradcam-30", smooth=0.04)  # as evaluate compare boxes any map


def locate(m: np.ndarray) -> tuple[list[float], np.ndarray]:
    """The box and mask (uint8 0/255) of a map, found on the map scaled to LOCALIZE_SIDE at
    most."""
    from deepinside.localize import segment_map

    h, w = m.shape
    scale = min(1.0, LOCALIZE_SIDE / max(h, w))
    small = m if scale == 1.0 else np.asarray(Image.fromarray(m.astype(np.float32)).resize(
        (max(1, round(w * scale)), max(1, round(h * scale))), Image.BILINEAR))
    mask, box, _ = segment_map(np.zeros((*small.shape, 3), np.uint8), small, _box_recipe())
    sx, sy = w / small.shape[1], h / small.shape[0]
    box = [float(box[0]) * sx, float(box[1]) * sy, float(box[2]) * sx, float(box[3]) * sy]
    mask = np.asarray(Image.fromarray((mask * 255).astype(np.uint8)).resize(
        (w, h), Image.NEAREST)) if scale != 1.0 else (mask * 255).astype(np.uint8)
    return box, mask


def _classes_of(t) -> list[int]:
    """The classes a resolved target explains (one, k for top<k>, a sum's)."""
    return t.reshape(-1).tolist() if hasattr(t, "reshape") else list(getattr(t, "classes", []))


def _from_library(e: BaseException) -> bool:
    """Whether deepinside itself raised ``e`` (a sentence about a bad input, by design), not
    a library below it (whose text could say anything)."""
    import traceback
    from pathlib import Path

    import deepinside

    frames = traceback.extract_tb(e.__traceback__)
    return bool(frames) and Path(frames[-1].filename).is_relative_to(
        Path(deepinside.__file__).parent)


def _drawn_size(photo: Image.Image, most: int) -> Image.Image:
    """The photo scaled down to ``most`` pixels if it has more (see ``Limits``)."""
    if photo.width * photo.height <= most:
        return photo
    s = (most / (photo.width * photo.height)) ** 0.5
    return photo.resize((max(1, int(photo.width * s)), max(1, int(photo.height * s))),
                        Image.BILINEAR, reducing_gap=2.0)


def _maps(server: Server, photo: Image.Image, method: str, target, params: dict):
    """``photo_maps`` of one photo; the library's sentences about bad input as 422s."""
    import deepinside

    try:  # one forward pass resolves the top-1 class and the logits
        [m], t, logits = deepinside.photo_maps(server.clf, [photo], target, method=method,
                                               **server.engine_for(method), **params)
    except (ValueError, KeyError) as e:
        if "layer" in params:  # a layer whose output the method cannot use
            raise Problem(422, "Bad params", f"params.layer: {method} cannot use the layer "
                          f"{params['layer']!r} (its output is not a feature map)") from None
        if _from_library(e):  # the library's own sentence about its input
            text = e.args[0] if e.args and isinstance(e.args[0], str) else str(e)
            raise Problem(422, "Bad params", f"params: {text.splitlines()[0][:300]}") from None
        raise
    return m, t, logits[0]


def _named(clf, classes: list[int], t, target) -> dict:
    """The answer's ``target``: the class and its name (a sum's names joined with +)."""
    sums = not hasattr(t, "reshape") and len(classes) > 1
    named = {"class": classes[0] if classes else None,
             "name": " + ".join(clf.short_name(c) for c in classes) if sums
             else clf.short_name(classes[0]) if classes else str(target)}
    return {**named, "classes": classes} if sums else named


def explain(server: Server, data: bytes, method: str, target, params: dict, localize: bool,
            what: str = "image", values: bool = False, sign: str | None = None) -> dict:
    """The answer of ``/v1/explain`` for one photo (see docs/serve.md)."""
    t0 = time.perf_counter()
    clf = server.clf
    sign = sign or server.infos[method].default_sign
    photo = decode_photo(data, server.limits, what)
    check_cancelled()
    full = photo.size
    photo = _drawn_size(photo, server.limits.max_render_pixels)
    check_cancelled()
    m, t, logits = _maps(server, photo, method, target, params)
    check_cancelled()
    classes = _classes_of(t)
    t2 = time.perf_counter()
    raw = m[0] if m.ndim == 3 else m  # with its sign: the values, overlay and scale
    shown = [shown_map(x, sign) for x in (m if m.ndim == 3 else [m])]  # top<k>: best first
    size = {"width": photo.width, "height": photo.height}
    out: dict[str, Any] = {
        "model": clf.name, "method": method, "params": params,
        "target": _named(clf, classes, t, target), "top": clf.top_classes(logits[None])[0],
        "map": {**size, "png": map_png(shown[0])}, "box": None, "mask_png": None}
    if values:
        out["map"]["f32"] = map_f32(raw)
    if len(shown) > 1:
        out["more"] = [{"class": c, "name": clf.short_name(c), "map": {**size, "png": map_png(s)}}
                       for c, s in zip(classes[1:], shown[1:])]
    check_cancelled()
    blend, out["scale"] = overlay_and_scale(photo, raw, sign)
    out["overlay_png"] = png(blend)
    if localize:
        check_cancelled()
        box, mask = locate(shown[0])
        sx, sy = full[0] / photo.width, full[1] / photo.height  # in the photo's pixels
        out["box"] = [box[0] * sx, box[1] * sy, box[2] * sx, box[3] * sy]
        out["mask_png"] = png(mask)
    out["timing_ms"] = {"map": round(1e3 * (t2 - t0), 1),
                        "render": round(1e3 * (time.perf_counter() - t2), 1)}
    return out
