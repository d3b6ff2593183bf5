"""``/``: the newsroom search page, plain HTML, CSS and JavaScript from ``service/static/``.

The page is a client of the public API like any other (``POST /v1/search``,
``GET /v1/documents/{id}/similar``); nothing here searches. Every response carries a
strict Content-Security-Policy: only this origin's scripts, styles and requests, no
inline code, no frames, so text from indexed articles can never run as script.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from litestar import Controller, Response, get, head
from litestar.exceptions import NotFoundException
from litestar.params import PathParameter

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)

PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}

# The files the page may load, and their types; anything else under /static is 404.
ASSETS = {
    "app.js": "text/javascript",
    "style.css": "text/css",
    "favicon.svg": "image/svg+xml",
}


def _file(name: str, media_type: str) -> Response[bytes]:
    return Response(content=(STATIC_DIR / name).read_bytes(), media_type=media_type, headers=PAGE_HEADERS)


class PageController(Controller):
    include_in_schema = False

    @get("/", sync_to_thread=False)
    def index(self) -> Response[bytes]:
        return _file("index.html", "text/html")

    @head("/", sync_to_thread=False)
    def index_head(self) -> Response[None]:
        """What ``GET /`` would answer, headers only: uptime checkers and link previews ask with HEAD."""
        size = (STATIC_DIR / "index.html").stat().st_size
        return Response(content=None, media_type="text/html", headers={**PAGE_HEADERS, "Content-Length": str(size)})

    @get("/static/{name:str}", sync_to_thread=False)
    def asset(self, name: Annotated[str, PathParameter(description="File name.")]) -> Response[bytes]:
        media_type = ASSETS.get(name)
        if media_type is None:
            raise NotFoundException(f"no static file {name!r}")
        return _file(name, media_type)
