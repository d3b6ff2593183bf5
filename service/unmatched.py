"""Requests no route answers (404 no route, 405 wrong method): counted, logged and rate-limited too.

Litestar's router refuses them before any route's middleware runs, so the access log,
``/metrics`` and the rate limit (``service.limits``) never saw them: a scanner could send
unlimited requests to made-up paths, unseen. Two small hooks close that gap:

* ``before_send`` (``unmatched_before_send``), which Litestar calls for every answer, counts
  and logs those without a route under the route label ``unmatched`` (methods outside the
  HTTP set are labelled ``other``, so a client cannot grow the metric's label set);
* ``limit_unmatched`` wraps the error handler: for those requests it first asks
  ``unmatched_refusal``, which spends a token from the same buckets the routes use and
  answers 429 once the client's are gone.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from litestar import Request, Response
from litestar.datastructures import State
from litestar.enums import ScopeType
from litestar.exceptions import HTTPException
from litestar.types import Message, Scope

from service.errors import ServiceProblem
from service.limits import UNLIMITED_PATHS, Limits, LimitsMiddleware
from service.metrics import Metrics

LIMITS_KEY = "poshuk_limits"
UNMATCHED = "unmatched"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "CONNECT"})

access_logger = logging.getLogger("poshuk.access")


def _method(scope: Scope) -> str:
    method = str(scope.get("method", "GET"))
    return method if method in _METHODS else "other"


def unmatched_before_send(metrics: Metrics) -> Any:
    """The ``before_send`` hook: count and log each answer that no route handled."""

    async def before_send(message: Message, scope: Scope) -> None:
        if scope["type"] != ScopeType.HTTP or message["type"] != "http.response.start" or "route_handler" in scope:
            return
        status, method = int(message["status"]), _method(scope)
        metrics.requests.labels(route=UNMATCHED, method=method, status=str(status)).inc()
        access_logger.info(
            "%s %s %d",
            method,
            UNMATCHED,
            status,
            extra={"method": method, "route": UNMATCHED, "status": status, "at": time.time()},
        )

    return before_send


def unmatched_refusal(request: Request[Any, Any, Any]) -> ServiceProblem | None:
    """For a request no route matched: the 429 refusal if its client is over the rate, else None."""
    scope: Any = request.scope
    if "route_handler" in scope or scope.get("path") in UNLIMITED_PATHS:
        return None
    state: State = request.app.state
    limits = state.get(LIMITS_KEY)
    if not isinstance(limits, Limits) or limits.buckets is None:
        return None
    try:
        middleware = LimitsMiddleware(app=_no_app, shared=limits)
        middleware._check_rate(*middleware.identify(scope))
    except ServiceProblem as refusal:
        return refusal
    return None


async def _no_app(scope: Any, receive: Any, send: Any) -> None:  # the check above never calls through
    raise AssertionError("unreachable")


def limit_unmatched(
    handler: Callable[[Request[Any, Any, Any], Exception], Response[Any]],
) -> Callable[[Request[Any, Any, Any], Exception], Response[Any]]:
    """``handler`` (the app's problem handler), first refusing with 429 a no-route 404/405 over the rate."""

    def handle(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
        if isinstance(exc, HTTPException) and exc.status_code in (404, 405):
            refusal = unmatched_refusal(request)
            if refusal is not None:
                return handler(request, refusal)
        return handler(request, exc)

    return handle
