"""Errors as ``application/problem+json`` (RFC 9457): a sentence for a human, never a traceback.

A bad request is a :class:`Problem` (4xx) whose ``detail`` names the field; an unexpected error
is a 500 whose ``detail`` gives an id that the server's log has next to the traceback.
"""

from __future__ import annotations

import logging
import uuid

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import BaseRoute, Match

__all__ = ["PROBLEM", "Problem", "install_handlers", "problem_response", "responses"]

log = logging.getLogger("deepinside.serve")

# the schema of every error body, and the sentence OpenAPI gives each status
PROBLEM_SCHEMA = {
    "type": "object", "required": ["type", "title", "status", "detail"],
    "properties": {"type": {"type": "string"}, "title": {"type": "string"},
                   "status": {"type": "integer"}, "detail": {"type": "string"}},
}
PROBLEM = {"content": {"application/problem+json": {"schema": PROBLEM_SCHEMA}}}
STATUS_TEXT = {
    400: "the Host header names no address this server answers to",
    401: "no or a wrong 'Authorization: Bearer <token>' (only when the server has a token)",
    403: "a state-changing request from another site (Origin) that --cors-origin does not allow",
    404: "no such model, job or file",
    413: "the body, the photo or the number of instances is over the server's limits",
    415: "the body's Content-Type, or the upload's image type, is not accepted",
    422: "a field is missing, of the wrong type, out of bounds or unknown; detail names it",
    429: "this client already has as many class-model jobs as it may",
    500: "an unexpected error; detail gives the id the server's log has",
    503: "the queue is full; Retry-After says when to try again",
    504: "the request took longer than the server's time limit; its work was stopped",
}


def responses(*statuses: int) -> dict[int | str, dict]:
    """OpenAPI ``responses`` for these error statuses (problem+json), for a route decorator."""
    return {s: {"description": STATUS_TEXT[s], **PROBLEM} for s in statuses}


class Problem(Exception):
    """An error answered as ``application/problem+json``."""

    def __init__(self, status: int, title: str, detail: str, headers: dict | None = None):
        super().__init__(detail)
        self.status, self.title, self.detail, self.headers = status, title, detail, headers


def problem_response(status: int, title: str, detail: str,
                     headers: dict | None = None) -> JSONResponse:
    """The JSON response of an error."""
    return JSONResponse({"type": "about:blank", "title": title, "status": status,
                         "detail": detail}, status_code=status,
                        media_type="application/problem+json", headers=headers)


def _allowed_methods(routes: list[BaseRoute], scope: dict) -> list[str]:
    """The methods of every route that matches the path (several routes may share a path)."""
    methods: set[str] = set()
    for route in routes:
        match, _ = route.matches({**scope, "method": "__none__"})
        if match is not Match.NONE:
            methods |= set(getattr(route, "methods", None) or ())
    if "GET" in methods:
        methods.add("HEAD")
    return sorted(methods)


def install_handlers(app: FastAPI, routes: list[BaseRoute]) -> None:
    """Answer every error as problem+json: Problems, HTTP errors (405 with ``Allow``, from
    ``routes``), validation errors (422 naming the field) and anything else (500 with a logged
    id)."""

    @app.exception_handler(Problem)
    async def _on_problem(_req: Request, e: Problem):
        return problem_response(e.status, e.title, e.detail, e.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _on_http(req: Request, e: StarletteHTTPException):
        headers = dict(e.headers or {})
        if e.status_code == 405:
            headers["Allow"] = ", ".join(_allowed_methods(routes, req.scope))
            return problem_response(405, "Method not allowed", f"{req.method} is not allowed "
                                    f"here; allowed: {headers['Allow']}", headers)
        detail = "no such page or route" if e.status_code == 404 else str(e.detail)
        return problem_response(e.status_code, "Error", detail, headers or None)

    @app.exception_handler(RequestValidationError)
    async def _on_validation(_req: Request, e: RequestValidationError):
        first = e.errors()[0] if e.errors() else {}
        where = ".".join(str(x) for x in first.get("loc", ()) if x not in ("body", "path"))
        return problem_response(422, "Bad request", f"{where or 'the request'}: "
                                                    f"{first.get('msg', 'invalid')}")

    @app.exception_handler(Exception)
    async def _on_error(req: Request, e: Exception):
        error_id = uuid.uuid4().hex[:12]
        log.error("error %s on %s %s", error_id, req.method, req.url.path, exc_info=e)
        return problem_response(500, "Internal error", f"an unexpected error on the server "
                                f"(error id {error_id}: its log has the details)")
