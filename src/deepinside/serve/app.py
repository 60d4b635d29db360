"""The HTTP API and the page of ``deepinside serve`` (FastAPI), over the public API.

One classifier, loaded once; every call of the network runs in one model worker thread behind
a bounded queue (503 with ``Retry-After`` when it is full) and a per-request time limit (504).
Photos are checked by content (JPEG, PNG, WebP, GIF's first frame; else 415), size (413) and
pixel count (413). Every error is ``application/problem+json`` with a sentence in ``detail``.
Nothing is written to disk.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import queue
import threading
import time
import uuid
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import numpy as np
from fastapi import FastAPI, File, Form, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles
from PIL import Image
from starlette.exceptions import HTTPException as StarletteHTTPException

__all__ = ["Limits", "ModelWorker", "Problem", "create_app"]

STATIC = Path(__file__).parent / "static"


@dataclass
class Limits:
    """What one request may ask for.

    Attributes:
        max_body: bytes of a request body (413 above).
        max_pixels: pixels of a photo (413 above).
        queue: requests waiting for the model worker (503 above).
        timeout: seconds a request may take, waiting included (504 above).
        max_classmodel_steps: ascent steps of one class-model job.
    """

    max_body: int = 10 * 2**20
    max_pixels: int = 40_000_000
    queue: int = 32
    timeout: float = 60.0
    max_classmodel_steps: int = 500


class Problem(Exception):
    """An error answered as ``application/problem+json``."""

    def __init__(self, status: int, title: str, detail: str, headers: dict | None = None):
        super().__init__(detail)
        self.status, self.title, self.detail, self.headers = status, title, detail, headers


def _problem(status: int, title: str, detail: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"type": "about:blank", "title": title, "status": status,
                         "detail": detail}, status_code=status,
                        media_type="application/problem+json", headers=headers)


def _png(array: np.ndarray) -> str:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG", compress_level=1)  # fast; ~10% larger
    return base64.b64encode(buf.getvalue()).decode()


def map_png(m: np.ndarray) -> str:
    """A map as a base64 16-bit grey PNG, scaled to its maximum."""
    m = np.nan_to_num(np.asarray(m, dtype=np.float64))
    top = float(m.max()) if m.size else 0.0
    scaled = np.clip(m / top, 0, 1) if top > 0 else np.zeros_like(m)
    return _png((scaled * 65535 + 0.5).astype(np.uint16))


def _sniff(data: bytes) -> str | None:
    if data[:3] == b"\xff\xd8\xff":
        return "jpeg"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "png"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return None


def read_photo(data: bytes, limits: Limits) -> Image.Image:
    """Bytes of an upload -> an RGB photo (the photo pipeline's ``decode_image``), or a
    :class:`Problem` (413 / 415 / 422)."""
    from ..images import ImageLoadError, ImageTooLargeError, decode_image

    if not data:
        raise Problem(422, "Empty image", "the uploaded file is empty")
    if len(data) > limits.max_body:
        raise Problem(413, "Image too large", f"the file has {len(data)} bytes; at most "
                                              f"{limits.max_body} are accepted")
    kind = _sniff(data)
    if kind is None:
        raise Problem(415, "Unsupported image type",
                      "the file is not a JPEG, PNG, WebP or GIF image")
    try:
        return decode_image(data, "the image", limits.max_pixels)  # a GIF's first frame
    except ImageTooLargeError as e:
        raise Problem(413, "Image has too many pixels", str(e)) from None
    except ImageLoadError as e:
        reason = str(e).removeprefix("the image: ")
        raise Problem(422, "Unreadable image", f"the {kind.upper()} file cannot be decoded "
                                               f"({reason})") from None


def method_params(info) -> dict[str, dict]:
    """The options a request may set for a method (its :class:`MethodInfo`), with types,
    defaults, bounds and choices."""
    return {name: p.spec() for name, p in info.request_params().items()}


def check_params(method: str, given: object, specs: dict[str, dict]) -> dict:
    """Validate a request's ``params`` against :func:`method_params` (422 otherwise)."""
    if not isinstance(given, dict):
        raise Problem(422, "Bad params", "params must be a JSON object")
    out = {}
    for name, value in given.items():
        spec = specs.get(name)
        if spec is None:
            raise Problem(422, "Bad params", f"{method} has no parameter {name!r} (it has: "
                                             f"{', '.join(specs) or 'none'})")
        kind = spec["type"]
        ok = {"bool": isinstance(value, bool),
              "int": isinstance(value, int) and not isinstance(value, bool),
              "float": isinstance(value, (int, float)) and not isinstance(value, bool),
              "str": isinstance(value, str)}[kind]
        if not ok:
            raise Problem(422, "Bad params", f"{name} must be of type {kind}, got {value!r}")
        if "min" in spec and not spec["min"] <= value <= spec["max"]:
            raise Problem(422, "Parameter out of bounds",
                          f"{name} must be between {spec['min']} and {spec['max']}, got {value}")
        if "choices" in spec and value not in spec["choices"]:
            raise Problem(422, "Bad params", f"{name} must be one of {spec['choices']}")
        out[name] = float(value) if kind == "float" else value
    return out


class ModelWorker:
    """One thread runs every call of the network; a bounded number of requests may wait.

    By default the worker is a thread of its own. ``deepinside serve`` instead runs it in the
    process's main thread (:meth:`serve`), with the HTTP server in another: torch runs
    markedly faster there (46 against 68 ms for a lite0 map on this machine).
    """

    def __init__(self, limits: Limits, *, thread: bool = True) -> None:
        self.limits = limits
        self.jobs: queue.Queue = queue.Queue()
        self.waiting = 0
        self.lock = threading.Lock()
        if thread:
            threading.Thread(target=self.serve, name="deepinside-model", daemon=True).start()

    def serve(self, stop: threading.Event | None = None) -> None:
        """Run the queued calls in this thread, until ``stop`` is set."""
        while stop is None or not stop.is_set():
            try:
                fut, fn, args = self.jobs.get(timeout=0.2)
            except queue.Empty:
                continue
            try:
                if fut.set_running_or_notify_cancel():
                    try:
                        fut.set_result(fn(*args))
                    except BaseException as e:  # noqa: BLE001 - handed to the request
                        fut.set_exception(e)
            finally:
                with self.lock:
                    self.waiting -= 1

    def submit(self, fn, *args) -> Future:
        with self.lock:
            if self.waiting >= self.limits.queue:
                raise Problem(503, "Busy", f"{self.waiting} requests are waiting for the model; "
                                           "try again shortly", headers={"Retry-After": "1"})
            self.waiting += 1
        fut: Future = Future()
        self.jobs.put((fut, fn, args))
        return fut

    async def run(self, fn, *args):
        fut = self.submit(fn, *args)
        try:
            return await asyncio.wait_for(asyncio.wrap_future(fut), self.limits.timeout)
        except asyncio.TimeoutError:
            fut.cancel()
            raise Problem(504, "Timed out", f"the request took more than "
                                            f"{self.limits.timeout:g} s") from None


@dataclass
class Job:
    """A class-model job."""

    classes: list[int]
    mode: str
    total: int
    state: str = "queued"
    step: int = 0
    images: list = field(default_factory=list)
    evolution: list = field(default_factory=list)
    error: str | None = None

    def status(self) -> dict:
        return {"state": self.state, "step": self.step, "total": self.total,
                "images": self.images, "evolution": self.evolution, "error": self.error}


def create_app(classifier, *, token: str | None = None, limits: Limits | None = None,
               report: str | Path | None = None, worker: ModelWorker | None = None) -> FastAPI:
    """The FastAPI application serving ``classifier``.

    Args:
        classifier: a :class:`deepinside.Classifier` (loaded once by the caller).
        token: if given, every ``/v1`` call needs ``Authorization: Bearer <token>``.
        limits: see :class:`Limits`.
        report: a ``deepinside paper`` folder to serve at ``/report/``.
        worker: the :class:`ModelWorker` (default: a new one in a thread of its own).
    """
    import deepinside
    from deepinside.localize import get_recipe, segment_map
    from deepinside.render import overlay

    limits = limits or Limits()
    clf = classifier
    worker = worker or ModelWorker(limits)
    jobs: dict[str, Job] = {}
    infos = deepinside.list_methods()
    specs = {name: method_params(info) for name, info in infos.items()}
    box_recipe = get_recipe("gradcam-30", smooth=0.04)  # as evaluate compare boxes any map
    app = FastAPI(title="deepinside", version=deepinside.__version__,
                  description="What an image classifier looks at (Simonyan et al. 2013, "
                              "https://arxiv.org/abs/1312.6034, and beyond).")

    @app.exception_handler(Problem)
    async def _on_problem(_req, e: Problem):
        return _problem(e.status, e.title, e.detail, e.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _on_http(_req, e: StarletteHTTPException):
        return _problem(e.status_code, "Error", str(e.detail))

    @app.exception_handler(RequestValidationError)
    async def _on_validation(_req, e: RequestValidationError):
        first = e.errors()[0] if e.errors() else {}
        where = ".".join(str(x) for x in first.get("loc", ()) if x != "body")
        return _problem(422, "Bad request", f"{where}: {first.get('msg', 'invalid')}")

    @app.exception_handler(Exception)
    async def _on_error(_req, e: Exception):
        return _problem(500, "Internal error", f"{type(e).__name__}: {e}")

    @app.middleware("http")
    async def _guard(request: Request, call_next):
        if request.url.path.startswith("/v1"):
            if token is not None and request.headers.get("authorization") != f"Bearer {token}":
                return _problem(401, "Unauthorized", "this server needs the header "
                                "'Authorization: Bearer <token>'",
                                {"WWW-Authenticate": "Bearer"})
            size = request.headers.get("content-length")
            if size is not None and size.isdigit() and int(size) > limits.max_body + 65536:
                return _problem(413, "Request too large",
                                f"the body has {size} bytes; at most {limits.max_body}")
        return await call_next(request)

    def target_of(text: str | None) -> int | None:
        if text is None or text.strip() == "":
            return None  # the photo's top-1 class
        try:
            return clf.class_index(text.strip())
        except ValueError as e:
            raise Problem(422, "Unknown class", str(e)) from None

    def classify(photo: Image.Image, k: int) -> list[dict]:
        x = deepinside.photos_to_batch([photo], clf.preprocessing, crop=True)
        return clf.top_classes(deepinside.forward_logits(clf, x.to(clf.device, clf.dtype)), k)[0]

    def explain(photo: Image.Image, method: str, target: str | None, params: dict,
                localize: bool) -> dict:
        t0 = time.perf_counter()
        c = target_of(target)  # one forward pass resolves the top-1 class and the logits
        [m], t, logits = deepinside.photo_maps(clf, [photo], c, method=method, **params)
        c, logits = int(t[0]), logits[0]
        t2 = time.perf_counter()
        m = np.clip(m, 0, None) if infos[method].signed else m
        out = {"model": clf.name, "method": method, "params": params,
               "target": {"class": c, "name": clf.short_name(c)},
               "top": clf.top_classes(logits[None])[0],
               "map": {"width": photo.width, "height": photo.height, "png": map_png(m)},
               "overlay_png": _png(overlay(photo, m)), "box": None, "mask_png": None}
        if localize:
            mask, box, _ = segment_map(np.asarray(photo), m, box_recipe)
            out["box"] = [float(v) for v in box]
            out["mask_png"] = _png((mask * 255).astype(np.uint8))
        t3 = time.perf_counter()
        out["timing_ms"] = {"map": round(1e3 * (t2 - t0), 1),
                            "render": round(1e3 * (t3 - t2), 1)}
        return out

    def parse_params(method: str, params: str | None) -> dict:
        if method not in specs:
            raise Problem(422, "Unknown method", f"unknown method {method!r}"
                          f"{deepinside.registry.did_you_mean(method, specs)} (known: "
                          f"{', '.join(specs)})")
        try:
            given = json.loads(params) if params else {}
        except ValueError:
            raise Problem(422, "Bad params", "params must be a JSON object") from None
        return check_params(method, given, specs[method])

    @app.get("/healthz")
    async def healthz():
        return {"status": "ok", "model": clf.name}

    @app.get("/v1/models")
    async def models():
        return {"models": [{"name": clf.name, "classes": len(clf.class_names),
                            "input_size": list(clf.preprocessing.input_size)}]}

    @app.get("/v1/classes")
    async def classes():
        return {"classes": [clf.short_name(i) for i in range(len(clf.class_names))]}

    @app.get("/v1/methods")
    async def methods():
        return {"methods": [{"name": n, "description": i.description, "paper": i.paper,
                             "params": specs[n]}
                            for n, i in deepinside.list_methods().items()]}

    @app.post("/v1/classify")
    async def classify_route(image: Annotated[UploadFile, File()],
                             top_k: Annotated[int, Form()] = 5):
        if not 1 <= top_k <= 100:
            raise Problem(422, "Bad top_k", "top_k must be between 1 and 100")
        photo = read_photo(await image.read(), limits)
        return {"top": await worker.run(classify, photo, top_k)}

    @app.post("/v1/explain")
    async def explain_route(image: Annotated[UploadFile, File()],
                            method: Annotated[str, Form()] = "gradient",
                            target: Annotated[str | None, Form()] = None,
                            params: Annotated[str | None, Form()] = None,
                            localize: Annotated[bool, Form()] = False):
        opts = parse_params(method, params)
        photo = read_photo(await image.read(), limits)
        # the answer is JSON already: no need for FastAPI's encoder to walk its PNG strings
        return JSONResponse(await worker.run(explain, photo, method, target, opts, localize))

    @app.post("/v1/models/{name}:explain")
    async def kserve_explain(name: str, request: Request):
        if name != clf.name:
            raise Problem(404, "Unknown model", f"this server serves {clf.name!r}, not {name!r}")
        try:
            body = await request.json()
            instances = body["instances"]
            parameters = body.get("parameters") or {}
            assert isinstance(instances, list) and instances and isinstance(parameters, dict)
        except Exception:  # noqa: BLE001 - any malformed body is a 422
            raise Problem(422, "Bad request", "the body must be {\"instances\": "
                          "[{\"image_b64\": ...}], \"parameters\": {...}}") from None
        method = str(parameters.get("method", "gradient"))
        opts = parse_params(method, json.dumps(parameters.get("params") or {}))
        target = parameters.get("target")
        preds, expls = [], []
        for inst in instances:
            try:
                data = base64.b64decode(inst["image_b64"], validate=True)
            except Exception:  # noqa: BLE001
                raise Problem(422, "Bad instance", "each instance needs a base64 "
                                                   "'image_b64'") from None
            r = await worker.run(explain, read_photo(data, limits), method,
                                 None if target is None else str(target), opts, True)
            preds.append({"top": r["top"]})
            expls.append({k: r[k] for k in ("method", "target", "map", "box", "timing_ms")})
        return {"predictions": preds, "explanations": expls}

    def run_job(job_id: str) -> None:
        from deepinside.render import uint8_images

        job = jobs[job_id]
        job.state = "running"

        def progress(n: int) -> None:
            job.step += n

        try:
            r = deepinside.class_model(clf, job.classes, mode=job.mode, steps=job.total,
                                       snapshots=min(6, job.total), progress=progress)
            job.images = [{"class": c, "name": clf.short_name(c), "png": _png(a)}
                          for c, a in zip(job.classes, uint8_images(r.images))]
            job.evolution = [{"step": k, "png": [_png(a) for a in uint8_images(snap)]}
                             for k, snap in zip(r.snapshot_steps, r.snapshots)]
            job.state = "done"
        except Exception as e:  # noqa: BLE001 - the job reports it
            job.state, job.error = "error", f"{type(e).__name__}: {e}"

    @app.post("/v1/classmodel", status_code=202)
    async def classmodel(request: Request):
        try:
            body = await request.json()
            names = body["classes"]
            mode = body.get("mode", "lucid")
            steps = body.get("steps", 64)
            assert isinstance(names, list) and names and len(names) <= 10
            assert mode in ("lucid", "paper", "pixel")
            assert isinstance(steps, int) and not isinstance(steps, bool)
        except Exception:  # noqa: BLE001
            raise Problem(422, "Bad request", "the body must be {\"classes\": [1 to 10 names "
                          "or indices], \"mode\": \"lucid\"|\"paper\"|\"pixel\", \"steps\": "
                          "n}") from None
        if not 1 <= steps <= limits.max_classmodel_steps:
            raise Problem(422, "Parameter out of bounds",
                          f"steps must be between 1 and {limits.max_classmodel_steps}")
        try:
            idx = [clf.class_index(str(n)) for n in names]
        except ValueError as e:
            raise Problem(422, "Unknown class", str(e)) from None
        job_id = uuid.uuid4().hex[:12]
        jobs[job_id] = Job(idx, mode, steps)
        worker.submit(run_job, job_id)
        return {"job": job_id}

    def job_of(job_id: str) -> Job:
        if job_id not in jobs:
            raise Problem(404, "Unknown job", f"no job {job_id!r}")
        return jobs[job_id]

    @app.get("/v1/jobs/{job_id}")
    async def job_status(job_id: str):
        return job_of(job_id).status()

    @app.get("/v1/jobs/{job_id}/events")
    async def job_events(job_id: str):
        job = job_of(job_id)

        async def stream():
            last = None
            while True:
                now = {"state": job.state, "step": job.step, "total": job.total}
                if now != last:
                    yield f"data: {json.dumps(now)}\n\n"
                    last = now
                if job.state in ("done", "error"):
                    return
                await asyncio.sleep(0.1)

        return StreamingResponse(stream(), media_type="text/event-stream")

    if report is not None:
        app.mount("/report", StaticFiles(directory=str(report), html=True), name="report")
    if STATIC.is_dir():
        app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")

    @app.get("/", include_in_schema=False)
    async def index():
        page = STATIC / "index.html"
        if not page.is_file():
            raise Problem(404, "No page", "the page's files are not installed")
        return FileResponse(page)

    return app
