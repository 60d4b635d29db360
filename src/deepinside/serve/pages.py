"""The page (``/``, ``/static/``) and a ``deepinside paper`` report (``/report/``).

Neither needs the token: the page asks for it, and the report is static figures.
"""

from __future__ import annotations

import mimetypes
from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from .problems import Problem

__all__ = ["mount_pages"]

STATIC = Path(__file__).parent / "static"
# module scripts load only with a JavaScript type; some systems' tables (the Windows registry)
# map .js to text/plain
mimetypes.add_type("text/javascript", ".js")


def mount_pages(app: FastAPI, report: str | Path | None) -> None:
    """Serve the page, its files and (if given) a report folder."""
    if report is not None:
        app.mount("/report", StaticFiles(directory=str(report), html=True), name="report")
    if STATIC.is_dir():
        app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")
    pages = APIRouter()

    @pages.get("/", include_in_schema=False)
    async def index():
        page = STATIC / "index.html"
        if not page.is_file():
            raise Problem(404, "No page", "the page's files are not installed")
        return FileResponse(page)

    app.include_router(pages)
