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

from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse

from .bodies import json_body
from .context import Server
from .photos import png
from .problems import Problem, responses
from .worker import Cancelled, Work

__all__ = ["Job", "JobStore", "router"]

log = logging.getLogger("deepinside.serve")
MODES = ("lucid", "paper", "pixel")
ENDED = ("done", "error", "cancelled")

CLASSMODEL_BODY = {
    "required": True,
    "content": {"application/json": {"schema": {
        "type": "object", "required": ["classes"], "additionalProperties": False,
        "properties": {
            "classes": {"type": "array", "minItems": 1, "maxItems": 10,
                        "items": {"anyOf": [{"type": "string", "maxLength": 200},
                                            {"type": "integer", "minimum": 0}]},
                        "description": "class names or indices (see /v1/classes)"},
            "mode": {"type": "string", "enum": list(MODES), "default": "lucid"},
            "steps": {"type": "integer", "minimum": 1, "default": 64,
                      "description": "ascent steps (at most the server's limit)"}}}}},
}
JOB_SCHEMA = {
    "type": "object", "required": ["state", "step", "total", "images", "evolution", "error"],
    "properties": {
        "state": {"type": "string", "enum": ["queued", "running", *ENDED]},
        "step": {"type": "integer"}, "total": {"type": "integer"},
        "images": {"type": "array", "items": {"type": "object"}},
        "evolution": {"type": "array", "items": {"type": "object"}},
        "error": {"type": ["string", "null"]}},
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

    def status(self) -> dict:
        return {"state": self.state, "step": self.step, "total": self.total,
                "images": self.images, "evolution": self.evolution, "error": self.error}


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


def router(server: Server) -> APIRouter:
    """The routes of class-model jobs."""
    import deepinside
    from deepinside.render import uint8_images

    api = APIRouter(tags=["class models"])
    clf, limits, worker = server.clf, server.limits, server.worker
    store = JobStore(limits.job_ttl, limits.jobs_per_client)
    worker.on_idle.append(store.purge)
    fast = server.engine.get("fast", True)

    def run_job(job: Job) -> None:
        if job.state == "cancelled":
            return
        job.state = "running"

        def progress(n: int) -> None:
            job.step += n
            worker.between_steps()  # waiting requests go first; stop if cancelled

        try:
            r = deepinside.class_model(clf, job.classes, mode=job.mode, steps=job.total,
                                       snapshots=min(6, job.total), progress=progress,
                                       fast=fast)
            images = [{"class": c, "name": clf.short_name(c), "png": png(a)}
                      for c, a in zip(job.classes, uint8_images(r.images))]
            evolution = [{"step": k, "png": [png(a) for a in uint8_images(snap)]}
                         for k, snap in zip(r.snapshot_steps, r.snapshots)]
            if job.state != "cancelled":
                job.images, job.evolution, job.state = images, evolution, "done"
        except Cancelled:
            if job.state != "cancelled":
                job.state, job.error = "error", (f"stopped after {limits.job_timeout:g} s "
                                                 "(the server's time limit for a job)")
        except Exception as e:  # noqa: BLE001 - the job reports an id; the log has the rest
            error_id = uuid.uuid4().hex[:12]
            log.error("error %s in a class-model job", error_id, exc_info=e)
            job.state, job.error = "error", f"an unexpected error (error id {error_id})"
        finally:
            job.ended = time.monotonic()

    @api.post("/v1/classmodel", status_code=202, openapi_extra={"requestBody": CLASSMODEL_BODY},
              responses={202: {"description": "the job is queued", "content": {
                  "application/json": {"schema": {"type": "object", "required": ["job"],
                                                  "properties": {"job": {"type": "string"}}}}}},
                         **responses(413, 415, 422, 429, 503)})
    async def classmodel(request: Request):
        """Start a class-model job (Simonyan et al. 2013, section 2)."""
        body = await json_body(request, limits.max_json_depth)
        if not isinstance(body, dict):
            raise Problem(422, "Bad request", "the body must be a JSON object")
        unknown = set(body) - {"classes", "mode", "steps"}
        if unknown:
            raise Problem(422, "Bad request", f"{sorted(unknown)[0][:40]}: unknown field (the "
                                              "body has classes, mode, steps)")
        names, mode, steps = body.get("classes"), body.get("mode", "lucid"), body.get("steps", 64)
        if not isinstance(names, list) or not 1 <= len(names) <= 10:
            raise Problem(422, "Bad request", "classes: must be a list of 1 to 10 class names "
                                              "or indices")
        if mode not in MODES:
            raise Problem(422, "Bad request", f"mode: must be one of {', '.join(MODES)}")
        if not isinstance(steps, int) or isinstance(steps, bool):
            raise Problem(422, "Bad request", "steps: must be an integer")
        if not 1 <= steps <= limits.max_classmodel_steps:
            raise Problem(422, "Parameter out of bounds",
                          f"steps: must be between 1 and {limits.max_classmodel_steps}")
        idx = []
        for i, n in enumerate(names):
            if isinstance(n, bool) or not isinstance(n, (int, str)):
                raise Problem(422, "Bad request", f"classes.{i}: must be a name or an index")
            try:
                idx.append(clf.class_index(n if isinstance(n, int) else n.strip()[:200]))
            except ValueError as e:  # names the class and offers close matches
                raise Problem(422, "Unknown class", f"classes.{i}: {e}") from None
        job = Job(idx, mode, steps, client=request.client.host if request.client else "")
        job_id = store.add(job)
        try:
            job.work = worker.submit(run_job, job, kind="job", seconds=limits.job_timeout)
        except Problem:
            store.jobs.pop(job_id, None)
            raise
        return {"job": job_id}

    @api.get("/v1/jobs/{job_id}", responses={200: {"description": "the job's state and result",
                                                   "content": {"application/json": {
                                                       "schema": JOB_SCHEMA}}},
                                              **responses(404)})
    async def job_status(job_id: str):
        """A job's state, and its images once done."""
        return store.get(job_id).status()

    @api.delete("/v1/jobs/{job_id}", status_code=204, response_class=Response,
                responses={204: {"description": "the job is stopped and forgotten"},
                           **responses(404)})
    async def job_delete(job_id: str):
        """Stop a job (at its next step if it runs) and forget it and its result."""
        store.cancel(job_id)
        return Response(status_code=204)

    @api.get("/v1/jobs/{job_id}/events", response_class=StreamingResponse,
             responses={200: {"description": "server-sent events: data: {state, step, total}",
                              "content": {"text/event-stream": {"schema": {"type": "string"}}}},
                        **responses(404)})
    async def job_events(job_id: str):
        """The job's progress as server-sent events, until it ends."""
        job = store.get(job_id)

        async def stream():
            last = None
            while True:
                now = {"state": job.state, "step": job.step, "total": job.total}
                if now != last:
                    yield f"data: {json.dumps(now)}\n\n"
                    last = now
                if job.state in ENDED:
                    return
                await asyncio.sleep(0.1)

        return StreamingResponse(stream(), media_type="text/event-stream")

    return api
