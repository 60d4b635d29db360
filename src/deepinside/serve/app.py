"""The HTTP API and the page of ``deepinside serve`` (FastAPI), over the public API.

One classifier, loaded once; every call of the network runs in one model worker behind bounded
queues (503 with ``Retry-After`` when full) and a per-request time limit (504, and the work
stops). Every request passes the :class:`~.guard.Guard` (Host, Origin, token, body size) first.
Photos are checked by content (JPEG, PNG, WebP, GIF's first frame; else 415), size (413) and
pixel count (413). Every error is ``application/problem+json`` with a sentence in ``detail``.
Nothing is written to disk: bodies and uploads stay in memory.

The routes live in :mod:`.api` (the model; the work they hand the worker in :mod:`.explain`,
what it draws in :mod:`.figures`), :mod:`.jobs` (class-model and unit jobs; units read in
:mod:`.units`) and :mod:`.pages` (the page: ES modules under ``static/``).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.utils import get_openapi

from . import api, jobs
from .context import Server
from .guard import Guard
from .pages import mount_pages
from .params import method_params
from .photos import map_png, png
from .problems import Problem, install_handlers, responses
from .worker import Limits, ModelWorker

__all__ = ["Limits", "ModelWorker", "Problem", "create_app", "map_png", "png"]

LOCAL_HOSTS = ("localhost", "127.0.0.1", "[::1]")
MULTIPART_SLACK = 65536  # a multipart body's headers and fields, beyond the photo


def create_app(classifier, *, token: str | None = None, limits: Limits | None = None,
               report: str | Path | None = None, worker: ModelWorker | None = None,
               allowed_hosts: Iterable[str] | None = None, cors_origins: Iterable[str] = (),
               engine: dict[str, Any] | None = None) -> FastAPI:
    """The FastAPI application serving ``classifier``.

    Args:
        classifier: a :class:`deepinside.Classifier` (loaded once by the caller).
        token: if given, every ``/v1`` call needs ``Authorization: Bearer <token>``.
        limits: see :class:`Limits`.
        report: a ``deepinside paper`` folder to serve at ``/report/``.
        worker: the :class:`ModelWorker` (default: a new one in a thread of its own).
        allowed_hosts: the names the ``Host`` header may give (default: ``localhost``,
            ``127.0.0.1``, ``[::1]``; ``"*"``: any).
        cors_origins: other sites (``https://example.org``) whose browsers may call the API
            (CORS) and send state-changing requests; ``"*"``: any.
        engine: engine switches for every method call (``fast``, ``amp``, ``compiled``), where
            the method takes them; the server's options, never a request's.
    """
    import deepinside

    if (engine or {}).get("compiled"):  # the worker's hook is global on purpose
        warnings.filterwarnings("ignore", message=r"Using `torch.compile\(module\)` when "
                                r"there are global hooks")
    limits = limits or Limits()
    worker = worker or ModelWorker(limits)
    layers = [n for n, _ in classifier.module.named_modules() if n]
    infos = deepinside.list_methods()
    server = Server(classifier, limits, worker, dict(engine or {}), infos,
                    {name: method_params(info, layers) for name, info in infos.items()})
    app = FastAPI(title="deepinside", version=deepinside.__version__,
                  description="What an image classifier looks at (Simonyan et al. 2013, "
                              "https://arxiv.org/abs/1312.6034, and beyond).",
                  docs_url=None, redoc_url=None,  # they would load their scripts from a CDN
                  responses=responses(400, 500))
    routers = [api.router(server), jobs.router(server)]
    install_handlers(app, [r for router in routers for r in router.routes])
    for router in routers:
        app.include_router(router)
    mount_pages(app, report)
    app.openapi = lambda: _openapi(app, token is not None)

    hosts = list(allowed_hosts) if allowed_hosts is not None else list(LOCAL_HOSTS)
    origins = list(cors_origins)
    app.add_middleware(Guard, allowed_hosts=hosts, cors_origins=origins, token=token,
                       max_body=limits.max_body + MULTIPART_SLACK)
    if origins:  # outermost: answers the preflight, adds the headers to every answer
        app.add_middleware(CORSMiddleware, allow_origins=origins,
                           allow_methods=["GET", "POST", "DELETE"],
                           allow_headers=["Authorization", "Content-Type"])
    return app


def _openapi(app: FastAPI, secured: bool) -> dict:
    """The schema, with the bearer scheme on ``/v1`` when the server has a token."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(title=app.title, version=app.version, description=app.description,
                         routes=app.routes)
    if secured:
        schema.setdefault("components", {})["securitySchemes"] = {
            "bearer": {"type": "http", "scheme": "bearer"}}
        for path, ops in schema["paths"].items():
            if path.startswith("/v1"):
                for op in ops.values():
                    op["security"] = [{"bearer": []}]
                    op["responses"].update(responses(401))
    for ops in schema["paths"].values():
        for method, op in ops.items():
            if method in ("post", "put", "patch", "delete"):
                op["responses"].update(responses(403, 413))
    app.openapi_schema = schema
    return schema
