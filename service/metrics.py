"""``/metrics`` (Prometheus text format) and the per-request access log line.

Each app gets its own ``CollectorRegistry`` (tests build many apps; the process-wide
default registry would reject the second). ``ObservabilityMiddleware`` is the app's
outermost middleware, so it also sees the 401/429/503 answers of auth and limits:

- it takes the request id from ``X-Request-ID`` (or makes one) and echoes it;
- it counts requests by route template and status and times them per route;
- it logs one line per request (``poshuk.access``) with id, method, route, status and
  duration; the JSON formatter (``service.logging_setup``) writes the extra fields.

Index size is read when ``/metrics`` is scraped; writes are counted by ``Lifecycle``'s
write listeners; search time is observed by the search route (``Metrics.observe_search``).
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Iterator
from typing import Any

from litestar import Controller, Response, get
from litestar.di import NamedDependency
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from service.state import ServiceState

METRICS_PATH = "/metrics"
_VALID_ID = re.compile(r"^[A-Za-z0-9._:/+=-]{1,128}$")

access_logger = logging.getLogger("poshuk.access")

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class _IndexCollector(Collector):
    """Documents and passages of the index in service, read at scrape time."""

    def __init__(self, state: ServiceState) -> None:
        self._state = state

    def collect(self) -> Iterator[GaugeMetricFamily]:
        documents = GaugeMetricFamily("poshuk_index_documents", "Articles in the index in service.")
        passages = GaugeMetricFamily("poshuk_index_passages", "Passages in the index in service.")
        searcher = self._state.current()
        if searcher is not None:
            stats = searcher.stats()
            documents.add_metric([], stats.documents)
            passages.add_metric([], stats.passages)
        yield documents
        yield passages


class Metrics:
    """One app's metrics, in a registry of its own."""

    def __init__(self, state: ServiceState) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "poshuk_http_requests",
            "HTTP requests answered, by route template, method and status.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "poshuk_http_request_duration_seconds",
            "Time to answer an HTTP request, by route template.",
            ["route"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.search_seconds = Histogram(
            "poshuk_search_seconds",
            "Time spent in the searcher (encoding, FAISS, lexical, fusion) per search, by mode.",
            ["mode"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.writes = Counter(
            "poshuk_writes", "Articles written through the service, by operation.", ["op"], registry=self.registry
        )
        self.registry.register(_IndexCollector(state))

    def observe_search(self, mode: str, seconds: float) -> None:
        self.search_seconds.labels(mode=mode).observe(seconds)

    def written(self, upserts: int, deletes: int) -> None:
        """A write listener for ``Lifecycle``: counts applied upserts and deletes."""
        if upserts:
            self.writes.labels(op="upsert").inc(upserts)
        if deletes:
            self.writes.labels(op="delete").inc(deletes)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class MetricsController(Controller):
    path = METRICS_PATH
    include_in_schema = False

    @get("/", sync_to_thread=False)
    def render_metrics(self, metrics: NamedDependency[Metrics]) -> Response[bytes]:
        return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)


def _request_id(scope: Scope) -> str:
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id":
            text = value.decode("latin-1").strip()
            if _VALID_ID.match(text):
                return text
            break
    return uuid.uuid4().hex


def _status_of(exc: Exception) -> int:
    """The status the problem handler answers an exception raised by an inner middleware with."""
    status = getattr(exc, "status", None)  # ServiceProblem (the rate and time limits)
    if not isinstance(status, int):
        status = getattr(exc, "status_code", None)  # Litestar's HTTPException
    return status if isinstance(status, int) and 400 <= status < 600 else 500


class ObservabilityMiddleware:
    """Request id, request metrics and the access log line for every HTTP request."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self.app(scope, receive, send)
            return
        request_id = _request_id(scope)
        state: dict[str, Any] = scope.setdefault("state", {})
        state["request_id"] = request_id
        status = 500
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", ()))
                headers.append((b"x-request-id", request_id.encode("latin-1")))
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception as exc:  # answered outside (the app's problem handler): count what it will send
            status = _status_of(exc)
            raise
        finally:
            duration = time.perf_counter() - started
            route = scope.get("path_template") or "unmatched"
            method = str(scope.get("method", "GET"))
            self.metrics.requests.labels(route=route, method=method, status=str(status)).inc()
            self.metrics.latency.labels(route=route).observe(duration)
            if route != METRICS_PATH:
                access_logger.info(
                    "%s %s %d %.1f ms",
                    method,
                    route,
                    status,
                    duration * 1000,
                    extra={
                        "request_id": request_id,
                        "method": method,
                        "route": route,
                        "status": status,
                        "duration_ms": round(duration * 1000, 3),
                    },
                )
