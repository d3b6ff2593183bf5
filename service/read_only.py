"""A read-only deployment (``service.read_only``, ``poshuk serve --read-only``): writes refused with 405.

The index is opened so that no file in its folder is created or changed (``Index(read_only=True)``),
so the routes that write articles cannot work. They stay in the app (and its OpenAPI schema, which
is the same for every deployment) but answer 405 problem+json before anything else, keys included:

- 405, not 403: the method is not supported by this resource in this deployment, whoever asks;
  403 would send the client (or its operator) looking for a better API key, which cannot help.
- The ``Allow`` header lists the route's methods that still work (``GET, HEAD`` for
  ``/v1/documents/{id}``; none for ``POST /v1/documents``, an empty ``Allow`` as RFC 9110 says).
- It comes before the key check, so the refusal says the real reason to every client; it tells
  nothing a client could misuse.

``POST /v1/admin/reload`` is kept: switching versions writes nothing in a read-only service.
"""

from __future__ import annotations

from typing import Any

from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler
from litestar.routes import HTTPRoute

from service.errors import ServiceProblem

WRITES_INDEX = "writes_index"
"""A route handler's ``opt`` key: True where the handler changes the index (refused when read-only)."""

_WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_ORDER = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def allowed_methods(connection: ASGIConnection[Any, Any, Any, Any]) -> str:
    """The ``Allow`` value for the request's route in a read-only service: its methods that read."""
    template = connection.scope.get("path_template")
    methods: set[str] = set()
    for route in connection.app.routes:
        if isinstance(route, HTTPRoute) and route.path_format == template:
            methods |= {str(m) for m in route.methods} - _WRITE_METHODS
    return ", ".join(sorted(methods, key=lambda m: _ORDER.index(m) if m in _ORDER else len(_ORDER)))


def make_read_only_guard(read_only: bool) -> Any:
    """A Litestar guard: in a read-only service, 405 problem+json for every handler that writes the index
    (a coroutine, so that Litestar does not hand it to a thread; see ``service.auth.make_guard``)."""

    async def guard(connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> None:
        if read_only and handler.opt.get(WRITES_INDEX):
            method = connection.scope.get("method")
            raise ServiceProblem(
                405,
                "read-only",
                "Read-only service",
                f"this service is read-only (service.read_only): {method} is not accepted here; "
                "write with a service or `poshuk index` that opens the index writable",
                headers={"Allow": allowed_methods(connection)},
            )

    return guard
