"""Class-model jobs: ``POST /v1/classmodel``, ``GET`` / ``DELETE /v1/jobs/{id}``, events.

Jobs have their own bounded queue in the model worker (``Limits.jobs``, 503 above) and a cap
per client address (``Limits.jobs_per_client``, 429 above); a running job lets waiting
requests go first between two of its steps. A job stops when it is deleted or when it has run
``Limits.job_timeout`` seconds; a finished job is forgotten ``Limits.job_ttl`` seconds after it
ended, and its result's memory with it.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse

from .bodies import json_body
from .context import Server
from .photos import png
from .problems import Problem, responses
from .units import UNIT_FIELDS, check_unit, read_unit
from .worker import Cancelled, Work

__all__ = ["Job", "JobStore", "router"]

log = logging.getLogger("deepinside.serve")
MODES = ("lucid", "paper", "pixel")
ENDED = ("done", "error", "cancelled")

CLASSMODEL_BODY = {
    "required": True,
    "content": {"application/json": {"schema": {
        "type": "object", "additionalProperties": False,
        "properties": {
            "classes": {"type": "array", "minItems": 1, "maxItems": 10,
                        "items": {"anyOf": [{"type": "string", "maxLength": 200},
                                            {"type": "integer", "minimum": 0}]},
                        "description": "class names or indices (see /v1/classes)"},
            "mode": {"type": "string", "enum": list(MODES), "default": "lucid"},
            "unit": {"type": "string", "maxLength": 200,
                     "description": "LAYER:CHANNEL instead of classes: a channel's feature "
                                    "visualisation (docs/visualize.md)"},
            "neuron": {"type": "string", "maxLength": 200,
                       "description": "LAYER:CHANNEL or LAYER:CHANNEL:X:Y instead of classes: "
                                      "one position of a channel on the layer's grid "
                                      "(default its centre)"},
            "layer": {"type": "string", "maxLength": 200,
                      "description": "LAYER instead of classes: the whole layer (DeepDream's "
                                     "mean square), or with direction a direction of its "
                                     "channels"},
            "direction": {"type": "array", "items": {"type": "number"}, "minItems": 1,
                          "description": "with layer: a weight per channel of the layer"},
            "steps": {"type": "integer", "minimum": 1,
                      "description": "ascent steps (default: the library's, mode_defaults; "
                                     "at most the server's limit)"}}}}},
}
JOB_SCHEMA = {
    "type": "object", "required": ["state", "step", "total", "images", "evolution", "error"],
    "properties": {
        "state": {"type": "string", "enum": ["queued", "running", *ENDED]},
        "step": {"type": "integer"}, "total": {"type": "integer"},
        "images": {"type": "array", "items": {"type": "object"}},
        "evolution": {"type": "array", "items": {"type": "object"}},
        "error": {"type": ["string", "null"]},
        "seconds_per_step": {"type": ["number", "null"]}},
}


@dataclass(eq=False)
class Job:
    """A class-model job."""

    classes: list[int]
    mode: str
    total: int
    client: str = ""
    state: str = "queued"
    step: int = 0
    images: list = field(default_factory=list)
    evolution: list = field(default_factory=list)
    error: str | None = None
    ended: float | None = None  # time.monotonic() when it ended
    work: Work | None = None
    objective: Any = None  # a unit's visualisation (deepinside.classmodel.Objective)
    unit_name: str = ""
    seconds_per_step: float | None = None

    def status(self) -> dict:
        return {"state": self.state, "step": self.step, "total": self.total,
                "images": self.images, "evolution": self.evolution, "error": self.error,
                "seconds_per_step": self.seconds_per_step}


def _trim_memory() -> None:
    """Hand freed memory back to the system (glibc keeps it otherwise)."""
    gc.collect()
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


class JobStore:
    """The jobs by id; finished ones expire after ``ttl`` seconds."""

    def __init__(self, ttl: float, per_client: int) -> None:
        self.ttl, self.per_client = ttl, per_client
        self.jobs: dict[str, Job] = {}
        self.lock = threading.Lock()

    def add(self, job: Job) -> str:
        self.purge()
        with self.lock:
            mine = sum(j.client == job.client and j.state not in ENDED
                       for j in self.jobs.values())
            if mine >= self.per_client:
                raise Problem(429, "Too many jobs", f"this client already has {mine} class-model "
                              "jobs queued or running; wait for one or delete it",
                              headers={"Retry-After": "10"})
            job_id = uuid.uuid4().hex[:12]
            self.jobs[job_id] = job
        return job_id

    def get(self, job_id: str) -> Job:
        self.purge()
        job = self.jobs.get(job_id)
        if job is None:
            raise Problem(404, "Unknown job", f"job_id: no job {job_id[:40]!r} (or it expired)")
        return job

    def cancel(self, job_id: str) -> None:
        """Stop the job (now if queued, at its next step if running) and forget it."""
        job = self.get(job_id)
        with self.lock:
            self.jobs.pop(job_id, None)
        if job.state not in ENDED:
            job.state, job.error = "cancelled", "deleted by the client"
            if job.work is not None:
                job.work.cancel.set()
                job.work.future.cancel()
        job.images, job.evolution = [], []
        _trim_memory()

    def purge(self) -> None:
        """Forget the jobs that ended more than ``ttl`` seconds ago."""
        now = time.monotonic()
        with self.lock:
            old = [k for k, j in self.jobs.items()
                   if j.ended is not None and now - j.ended > self.ttl]
            for k in old:
                del self.jobs[k]
        if old:
            _trim_memory()


def run_job(server: Server, job: Job) -> None:
    """A job's work, in the model worker: its images and their evolution, or its error."""
    import deepinside
    from deepinside.classmodel import visualize
    from deepinside.render import uint8_images

    if job.state == "cancelled":
        return
    job.state = "running"
    t0 = time.perf_counter()

    def progress(n: int) -> None:
        job.step += n
        job.seconds_per_step = (time.perf_counter() - t0) / job.step
        server.worker.between_steps()  # waiting requests go first; stop if cancelled

    clf = server.clf
    try:
        opts = {"mode": job.mode, "steps": job.total, "snapshots": min(6, job.total),
                "progress": progress, "fast": server.engine.get("fast", True)}
        if job.objective is not None:
            r = visualize(clf, job.objective, **opts)
            images = [{"name": job.unit_name, "png": png(a)} for a in uint8_images(r.images)]
        else:
            r = deepinside.class_model(clf, job.classes, **opts)
            images = [{"class": c, "name": clf.short_name(c), "png": png(a)}
                      for c, a in zip(job.classes, uint8_images(r.images))]
        evolution = [{"step": k, "png": [png(a) for a in uint8_images(snap)]}
                     for k, snap in zip(r.snapshot_steps, r.snapshots)]
        if job.state != "cancelled":
            job.images, job.evolution, job.state = images, evolution, "done"
    except Cancelled:
        if job.state != "cancelled":
            job.state, job.error = "error", (f"stopped after {server.limits.job_timeout:g} s "
                                             "(the server's time limit for a job)")
    except Exception as e:  # noqa: BLE001 - the job reports an id; the log has the rest
        error_id = uuid.uuid4().hex[:12]
        log.error("error %s in a class-model job", error_id, exc_info=e)
        job.state, job.error = "error", f"an unexpected error (error id {error_id})"
    finally:
        job.ended = time.monotonic()


def _steps(body: dict, mode: str, units: bool, most: int) -> int:
    from deepinside.classmodel import mode_defaults

    steps = body.get("steps", mode_defaults(mode, units=units)["steps"])
    if not isinstance(steps, int) or isinstance(steps, bool):
        raise Problem(422, "Bad request", "steps: must be an integer")
    if not 1 <= steps <= most:
        raise Problem(422, "Parameter out of bounds", f"steps: must be between 1 and {most}")
    return steps


def _classes(names: object, clf) -> list[int]:
    if not isinstance(names, list) or not 1 <= len(names) <= 10:
        raise Problem(422, "Bad request", "classes: must be a list of 1 to 10 class names "
                                          "or indices (or give unit, neuron or layer)")
    idx = []
    for i, n in enumerate(names):
        if isinstance(n, bool) or not isinstance(n, (int, str)):
            raise Problem(422, "Bad request", f"classes.{i}: must be a name or an index")
        try:
            idx.append(clf.class_index(n if isinstance(n, int) else n.strip()[:200]))
        except ValueError as e:  # names the class and offers close matches
            raise Problem(422, "Unknown class", f"classes.{i}: {e}") from None
    return idx


async def read_job(body: object, server: Server, client: str) -> Job:
    """The job a ``POST /v1/classmodel`` body asks for, or a 422 :class:`Problem` naming the
    field; a unit is tried once on a grey image in the worker (under the request's limit)."""
    if not isinstance(body, dict):
        raise Problem(422, "Bad request", "the body must be a JSON object")
    unknown = set(body) - {"classes", "mode", "steps", "direction", *UNIT_FIELDS}
    if unknown:
        raise Problem(422, "Bad request", f"{sorted(unknown)[0][:40]}: unknown field (the "
                      "body has classes, or unit, neuron or layer [with direction]; mode, "
                      "steps)")
    mode = body.get("mode", "lucid")
    if mode not in MODES:
        raise Problem(422, "Bad request", f"mode: must be one of {', '.join(MODES)}")
    unit = read_unit(body, server.clf)
    steps = _steps(body, mode, unit is not None, server.limits.max_classmodel_steps)
    if unit is None:
        return Job(_classes(body.get("classes"), server.clf), mode, steps, client=client)
    field_name = next(f for f in UNIT_FIELDS if body.get(f) is not None)
    await server.worker.run(check_unit, server.clf, unit[0], field_name,
                            server.engine.get("fast", True))
    return Job([], mode, steps, client=client, objective=unit[0], unit_name=unit[1])


JOB_ANSWERS = {
    "post": {202: {"description": "the job is queued", "content": {"application/json": {
        "schema": {"type": "object", "required": ["job"],
                   "properties": {"job": {"type": "string"}}}}}},
             **responses(413, 415, 422, 429, 503, 504)},
    "get": {200: {"description": "the job's state and result",
                  "content": {"application/json": {"schema": JOB_SCHEMA}}}, **responses(404)},
    "delete": {204: {"description": "the job is stopped and forgotten"}, **responses(404)},
    "events": {200: {"description": "server-sent events: data: {state, step, total}",
                     "content": {"text/event-stream": {"schema": {"type": "string"}}}},
               **responses(404)},
}


async def _events(job: Job):
    """The job's progress as server-sent events, until it ends; the last one is its end.

    Whether it ended is read from the event just sent, not from the job again: the job may
    end while an event is being sent (the generator waits at its ``yield``), and the stream
    must not stop before it has said so. The state is read before the step, which the job
    counts before it ends, so an end's event has the last step.
    """
    last = None
    while True:
        now = {"state": job.state, "step": job.step, "total": job.total}
        if now != last:
            yield f"data: {json.dumps(now)}\n\n"
            last = now
        if now["state"] in ENDED:
            return
        await asyncio.sleep(0.1)


def router(server: Server) -> APIRouter:
    """The routes of class-model and unit jobs."""
    api = APIRouter(tags=["class models"])
    store = JobStore(server.limits.job_ttl, server.limits.jobs_per_client)
    server.worker.on_idle.append(store.purge)

    @api.post("/v1/classmodel", status_code=202, openapi_extra={"requestBody": CLASSMODEL_BODY},
              responses=JOB_ANSWERS["post"])
    async def classmodel(request: Request):
        """Start a class-model job (Simonyan et al. 2013, section 2), or a unit's (Olah et al.
        2017)."""
        body = await json_body(request, server.limits.max_json_depth)
        job = await read_job(body, server, request.client.host if request.client else "")
        job_id = store.add(job)
        try:
            job.work = server.worker.submit(run_job, server, job, kind="job",
                                            seconds=server.limits.job_timeout)
        except Problem:
            store.jobs.pop(job_id, None)
            raise
        return {"job": job_id}

    @api.get("/v1/jobs/{job_id}", responses=JOB_ANSWERS["get"])
    async def job_status(job_id: str):
        """A job's state, and its images once done."""
        return store.get(job_id).status()

    @api.delete("/v1/jobs/{job_id}", status_code=204, response_class=Response,
                responses=JOB_ANSWERS["delete"])
    async def job_delete(job_id: str):
        """Stop a job (at its next step if it runs) and forget it and its result."""
        store.cancel(job_id)
        return Response(status_code=204)

    @api.get("/v1/jobs/{job_id}/events", response_class=StreamingResponse,
             responses=JOB_ANSWERS["events"])
    async def job_events(job_id: str):
        """The job's progress as server-sent events, until it ends."""
        return StreamingResponse(_events(store.get(job_id)), media_type="text/event-stream")

    return api
