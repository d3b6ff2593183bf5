"""The service's one exception handler: every error becomes RFC 9457 problem+json.

Routes raise domain errors (``poshuk.errors``) or ``ServiceProblem`` (a refusal the service
decides: keys, limits, a batch too large, an id mismatch, a failed reload), or let Litestar raise
its own; this handler is the one place where any of them becomes a response. The mapping:

=========================================  ======  ==============================
exception                                  status  ``type``
=========================================  ======  ==============================
``InvalidQueryError``                      400     ``.../problems/invalid-query``
other ``InputError``                       400     ``.../problems/invalid-input``
Litestar ``ValidationException`` and      400     ``.../problems/invalid-request``
other 400 ``ClientException`` (wrong
types, unknown fields, bad JSON, missing
parameters)
``NotFoundError``                          404     ``.../problems/not-found``
route not found                            404     ``about:blank``
method not allowed                         405     ``about:blank`` (+ ``Allow``)
body over ``service.max_body_bytes``       413     ``.../problems/body-too-large``
``IndexNotReadyError``                     503     ``.../problems/not-ready``
``IndexBusyError``, ``IndexRetiredError``  503     ``.../problems/index-busy``
``ShardUnavailableError``                  503     ``.../problems/shard-unavailable``
``StorageFullError`` (disk full)           507     ``.../problems/storage-full``
``ServiceProblem`` (keys and limits:       its     ``.../problems/<its slug>``
401, 403, 405 read-only + ``Allow``,
413 batch, 429, 503 timeout)
other Litestar ``HTTPException``           its     ``about:blank``
anything else                              500     ``about:blank`` (logged, generic)
=========================================  ======  ==============================

Details of 5xx answers never name a server path (a client has no use for it, an attacker
does): absolute paths in them are replaced by ``<server path>``; the log keeps them.

Validation problems are 400, not 422: the request is malformed for this API whatever the
reason, and one status keeps clients simple.
"""

from __future__ import annotations

import logging
import math
import re
from http import HTTPStatus
from typing import Any

from litestar import Request, Response
from litestar.exceptions import (
    ClientException,
    HTTPException,
    InternalServerException,
    SerializationException,
    ValidationException,
)
from litestar.exceptions.http_exceptions import RequestEntityTooLarge
from litestar.openapi.datastructures import ResponseSpec

from poshuk.errors import (
    IndexBusyError,
    IndexReadOnlyError,
    IndexRetiredError,
    InputError,
    InvalidQueryError,
    NotFoundError,
    ShardUnavailableError,
    StorageFullError,
)
from poshuk.wire import FieldProblem, Problem

CLIENT_GONE = "client disconnected prematurely"  # Litestar's detail when the body never finished
PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_BASE = "https://poshuk.dev/problems/"

logger = logging.getLogger("poshuk.service")

# An absolute path of two or more parts (``/srv/index/v000001/meta.sqlite``), as error messages quote them.
_SERVER_PATH = re.compile(r"(?<![\w./])~?/(?:[^\s'\"`():,;/]+/)+[^\s'\"`():,;/]*")


def redact_paths(detail: str) -> str:
    """``detail`` with every absolute filesystem path replaced by ``<server path>``."""
    return _SERVER_PATH.sub("<server path>", detail)


class IndexNotReadyError(Exception):
    """The index is still loading, or failed to load; the service cannot answer yet."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class ServiceProblem(Exception):
    """A refusal the service itself decides (keys, limits): its status, problem slug and headers."""

    def __init__(
        self, status: int, slug: str, title: str, detail: str, *, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.slug = slug
        self.title = title
        self.detail = detail
        self.headers = headers


def too_many_requests(reason: str, wait: float) -> ServiceProblem:
    """The 429 refusal of a limit: ``reason``, then when to retry (whole seconds, at least 1)."""
    retry = max(1, math.ceil(wait))
    return ServiceProblem(
        429, "rate-limited", "Too many requests", f"{reason}; retry in {retry} s", headers={"Retry-After": str(retry)}
    )


def _problem(
    request: Request[Any, Any, Any],
    status: int,
    detail: str,
    *,
    slug: str | None = None,
    title: str | None = None,
    errors: list[FieldProblem] | None = None,
    headers: dict[str, str] | None = None,
) -> Response[Problem]:
    body = Problem(
        type=PROBLEM_BASE + slug if slug else "about:blank",
        title=title or HTTPStatus(status).phrase,
        status=status,
        detail=redact_paths(detail) if status >= 500 else detail,
        instance=request.url.path,
        errors=errors or None,
    )
    return Response(content=body, status_code=status, media_type=PROBLEM_MEDIA_TYPE, headers=headers)


def _field_problems(extra: Any) -> list[FieldProblem]:
    items = extra if isinstance(extra, list) else [extra] if isinstance(extra, dict) else []
    out: list[FieldProblem] = []
    for item in items:
        if isinstance(item, dict):
            key, source = item.get("key"), item.get("source")
            source = getattr(source, "value", source)  # Litestar's ParamType enum -> "query"
            if source == "body" and key == "data":  # the whole body: Litestar's name, not the client's
                key = None
            out.append(
                FieldProblem(
                    message=str(item.get("message", "")),
                    key=None if key is None else str(key),
                    source=None if source is None else str(source),
                )
            )
    return out


def _validation_detail(problems: list[FieldProblem], fallback: str) -> str:
    parts = []
    for p in problems:
        if p.key and p.key not in p.message:
            parts.append(f"{p.key}: {p.message}")
        else:
            parts.append(p.message)
    return "; ".join(parts) or fallback


def _http_detail(request: Request[Any, Any, Any], exc: HTTPException) -> str:
    """Litestar's routing errors carry only the status phrase; say what was asked instead."""
    if exc.detail != HTTPStatus(exc.status_code).phrase:
        return exc.detail
    if exc.status_code == 404:
        return f"no route matches {request.url.path}"
    if exc.status_code == 405:
        allowed = (exc.headers or {}).get("allow", "")
        return f"method {request.method} is not allowed on {request.url.path}" + (
            f"; allowed: {allowed}" if allowed else ""
        )
    return exc.detail


def problem_handler(request: Request[Any, Any, Any], exc: Exception) -> Response[Problem]:
    """Map any exception raised while handling ``request`` to a problem+json response."""
    if isinstance(exc, InvalidQueryError):
        return _problem(request, 400, exc.one_line(), slug="invalid-query", title="Invalid query")
    if isinstance(exc, InputError):
        return _problem(request, 400, exc.one_line(), slug="invalid-input", title="Invalid input")
    if isinstance(exc, NotFoundError):
        return _problem(request, 404, exc.one_line(), slug="not-found", title="Not found")
    if isinstance(exc, ServiceProblem):
        return _problem(request, exc.status, exc.detail, slug=exc.slug, title=exc.title, headers=exc.headers)
    if isinstance(exc, StorageFullError):
        logger.error("write refused, storage full: %s", exc.one_line())
        return _problem(
            request,
            507,
            "the server's disk is full: nothing was written; retry once space has been freed",
            slug="storage-full",
            title="Insufficient storage",
        )
    if isinstance(exc, IndexReadOnlyError):  # the read-only guard refuses first; this is its backstop
        return _problem(request, 405, exc.one_line(), slug="read-only", title="Read-only deployment")
    if isinstance(exc, ShardUnavailableError):  # a whole answer or none: never the other shards' part
        return _problem(
            request,
            503,
            exc.one_line(),
            slug="shard-unavailable",
            title="Shard unavailable",
            headers={"Retry-After": "1"},
        )
    if isinstance(exc, IndexBusyError | IndexRetiredError):
        return _problem(
            request, 503, exc.one_line(), slug="index-busy", title="Index busy", headers={"Retry-After": "1"}
        )
    if isinstance(exc, IndexNotReadyError):
        return _problem(
            request, 503, exc.detail, slug="not-ready", title="Index not ready", headers={"Retry-After": "5"}
        )
    if isinstance(exc, ValidationException) or (isinstance(exc, ClientException) and exc.status_code == 400):
        problems = _field_problems(exc.extra)
        detail = _validation_detail(problems, exc.detail)
        if isinstance(exc.__cause__, SerializationException):  # the body could not be decoded at all
            detail = f"request body is not valid JSON: {detail}"
        return _problem(
            request,
            400,
            detail,
            slug="invalid-request",
            title="Invalid request",
            errors=problems,
        )
    if isinstance(exc, RequestEntityTooLarge):
        limit = request.route_handler.resolve_request_max_body_size()
        detail = f"request body is larger than {limit} bytes" if limit else exc.detail
        return _problem(request, 413, detail, slug="body-too-large", title="Request body too large")
    if isinstance(exc, HTTPException) and exc.status_code < 500:
        return _problem(request, exc.status_code, _http_detail(request, exc), headers=exc.headers)
    if isinstance(exc, InternalServerException) and exc.detail == CLIENT_GONE:
        # The client hung up while sending its body (a slow-body attacker does so by the hundred): nobody reads
        # this answer, and it is no server error worth a traceback in the log.
        logger.info("client disconnected while sending %s %s", request.method, request.url.path)
        return _problem(request, 400, "the client disconnected before its request body arrived", slug="client-gone")
    logger.error(
        "unhandled error on %s %s",
        request.method,
        request.url.path,
        exc_info=(type(exc), exc, exc.__traceback__),
    )
    return _problem(request, 500, "the server failed to answer this request; the error was logged")


def problem_responses(*statuses: int) -> dict[int, ResponseSpec]:
    """OpenAPI declarations of the problem+json answers a route can give."""
    return {
        status: ResponseSpec(
            data_container=Problem,
            description=_RESPONSE_DOCS.get(status, HTTPStatus(status).phrase),
            media_type=PROBLEM_MEDIA_TYPE,
            generate_examples=False,
        )
        for status in statuses
    }


_RESPONSE_DOCS = {
    400: "Invalid request: empty or over-long query, k out of range, wrong types, unknown fields, bad JSON.",
    404: "No such document.",
    401: "No API key was given (`Authorization: Bearer <key>` or `X-API-Key`).",
    403: "The API key is not valid here, or no keys are configured (writes are then refused).",
    409: "The body's `id` differs from the one in the path.",
    413: "Request body larger than the service's limit, or a batch with too many articles.",
    429: "Too many requests from this key (or client); `Retry-After` says when to try again.",
    503: "The index is still loading or failed to load, is busy, a shard of it did not answer, or the request "
    "ran out of time "
    "(the detail says which; `Retry-After` when retrying helps).",
    507: "The server's disk is full; nothing was written.",
}
