"""Assembles the Litestar app; holds no logic of its own beyond loading the index.

``create_app(settings, index_dir)`` builds a fresh app each call: no module-level app,
no settings read at import. On startup a background thread opens the index and loads
the model (seconds for a real model) so the process answers ``/healthz`` at once and
``/readyz`` turns 200 when searches can be served; until then search routes answer 503.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from litestar import Litestar
from litestar.datastructures import State
from litestar.di import Provide
from litestar.middleware import DefineMiddleware
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin
from litestar.openapi.spec import Components

from poshuk.encoder import Encoder
from poshuk.errors import PoshukError
from poshuk.index import live_version
from poshuk.integrity import check_integrity
from poshuk.models import load_encoder
from poshuk.query_encoding import for_serving
from poshuk.search import Searcher
from poshuk.settings import ServiceSettings, Settings
from service.auth import SECURITY_SCHEMES, KeyRing, make_guard
from service.bodies import check_json_body
from service.errors import IndexNotReadyError, problem_handler
from service.lifecycle import LIFECYCLE_KEY, Lifecycle
from service.limits import Limits, LimitsMiddleware
from service.metrics import METRICS_KEY, Metrics, MetricsController, ObservabilityMiddleware
from service.openapi_strict import StrictStructSchemaPlugin
from service.routes.documents_write import write_controllers
from service.routes.health import HealthController
from service.routes.page import PageController
from service.routes.search import SearchController
from service.routes.similar import SimilarController
from service.unmatched import LIMITS_KEY, unmatched_before_send

logger = logging.getLogger("poshuk.service")

_STATE_KEY = "poshuk"


class ServiceState:
    """The running service's one piece of state: the searcher once loaded, or why it failed.

    Thread-safe: the loader thread writes it, request threads read it.
    """

    def __init__(self, index_dir: Path, settings: Settings, encoder: Encoder | None = None) -> None:
        self.index_dir = index_dir
        self.settings = settings
        self._encoder = encoder
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._searcher: Searcher | None = None
        self._error: str | None = None
        self._closed = False
        self._thread: threading.Thread | None = None

    @classmethod
    def of(cls, state: State) -> ServiceState:
        """The ``ServiceState`` stored on a Litestar app's ``state``."""
        found = state.get(_STATE_KEY)
        if not isinstance(found, cls):
            raise RuntimeError("app state holds no ServiceState; build the app with create_app()")
        return found

    def start_loading(self) -> None:
        """Open the index and load the model in a background thread."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._load, name="poshuk-index-loader", daemon=True)
        self._thread.start()

    def _load(self) -> None:
        searcher: Searcher | None = None
        error: str | None = None
        try:
            encoder = self._encoder if self._encoder is not None else load_encoder(self.settings, serving=True)
            encoder = for_serving(
                encoder,
                cache_size=self.settings.query_cache_size,
                batching=self.settings.service.batch_queries,
            )
            # A damaged page lets SQLite open the file and fails only the queries that reach it:
            # check every page first, so /readyz says what is wrong instead of "ready".
            check_integrity(live_version(self.index_dir))
            searcher = Searcher.open(self.index_dir, self.settings, encoder=encoder)
            # One search before /readyz says yes: the model's first run allocates its buffers, so
            # the first real query would otherwise pay for it.
            searcher.search("warm-up", k=1, semantic_highlights=False)
        except PoshukError as exc:
            error = exc.one_line()
            logger.error("cannot load index %s: %s", self.index_dir, error)
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            logger.exception("cannot load index %s", self.index_dir)
        with self._lock:
            closed = self._closed
            if not closed:
                self._searcher, self._error = searcher, error
        if closed and searcher is not None:
            searcher.close()
        elif searcher is not None:
            stats = searcher.stats()
            logger.info(
                "index %s %s ready: %d documents, %d passages, model %s",
                self.index_dir,
                stats.version,
                stats.documents,
                stats.passages,
                stats.model,
            )
        self._done.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until loading finished (well or not); False on timeout."""
        return self._done.wait(timeout)

    def require_searcher(self) -> Searcher:
        """The loaded searcher; ``IndexNotReadyError`` while loading or after a failure."""
        with self._lock:
            if self._searcher is not None:
                return self._searcher
            if self._error is not None:
                raise IndexNotReadyError(f"index failed to load: {self._error}")
            if self._closed:
                raise IndexNotReadyError("service is shutting down")
        raise IndexNotReadyError("index is loading")

    def current(self) -> Searcher | None:
        """The searcher in service now, or None while loading (or after a failure)."""
        with self._lock:
            return self._searcher

    def swap(self, searcher: Searcher) -> Searcher | None:
        """Serve ``searcher`` from now on; returns the one it replaces (the caller closes it later)."""
        with self._lock:
            old, self._searcher = self._searcher, searcher
            self._error = None
        return old

    def close(self) -> None:
        """Close the searcher; a load still running closes its own result when it ends."""
        with self._lock:
            self._closed = True
            searcher, self._searcher = self._searcher, None
        if searcher is not None:
            searcher.close()


def _provide_searcher(state: State) -> Searcher:
    return ServiceState.of(state).require_searcher()


def _provide_limits(state: State) -> ServiceSettings:
    return ServiceState.of(state).settings.service


@asynccontextmanager
async def _upkeep(app: Litestar) -> AsyncIterator[None]:
    """The live index's upkeep thread (``service.lifecycle``); stops (and snapshots) before the index closes."""
    lifecycle = Lifecycle.of(app.state)
    lifecycle.start()
    try:
        yield
    finally:
        lifecycle.stop()


@asynccontextmanager
async def _lifespan(app: Litestar) -> AsyncIterator[None]:
    service_state = ServiceState.of(app.state)
    service_state.start_loading()
    try:
        yield
    finally:
        service_state.close()


def _package_version() -> str:
    try:
        return version("poshuk")
    except PackageNotFoundError:  # running from a source tree that is not installed
        return "0+unknown"


def create_app(settings: Settings, index_dir: Path, *, encoder: Encoder | None = None) -> Litestar:
    """A new Poshuk HTTP app over the index at ``index_dir``.

    ``encoder`` replaces the model named in ``settings`` (tests pass a ``HashEncoder``).
    """
    service_state = ServiceState(index_dir, settings, encoder)
    ring = KeyRing(settings.auth)
    limits = Limits(settings.service, ring)
    metrics = Metrics(service_state)
    lifecycle = Lifecycle(service_state)
    lifecycle.write_listeners.append(metrics.written)
    return Litestar(
        route_handlers=[
            SearchController,
            SimilarController,
            HealthController,
            PageController,
            MetricsController,
            *write_controllers(settings.service),  # DocumentsController's reads with the writes
        ],
        guards=[make_guard(ring)],
        middleware=[
            DefineMiddleware(ObservabilityMiddleware, metrics=metrics),  # outermost: sees every answer
            DefineMiddleware(LimitsMiddleware, shared=limits),
        ],
        dependencies={
            "searcher": Provide(_provide_searcher, sync_to_thread=False),
            "limits": Provide(_provide_limits, sync_to_thread=False),
        },
        state=State({_STATE_KEY: service_state, LIFECYCLE_KEY: lifecycle, METRICS_KEY: metrics, LIMITS_KEY: limits}),
        before_send=[unmatched_before_send(metrics)],  # 404/405 without a route: counted and logged
        lifespan=[_lifespan, _upkeep],
        before_request=check_json_body,  # JSON depth and strict types, before any route decodes a body
        plugins=[StrictStructSchemaPlugin()],  # OpenAPI: additionalProperties false where unknown fields are 400
        exception_handlers={Exception: problem_handler},
        request_max_body_size=settings.service.max_body_bytes,
        openapi_config=OpenAPIConfig(
            title="Poshuk",
            version=_package_version(),
            description="Semantic search over Ukrainian and English news: ranked passages, their articles.",
            path="/schema",
            render_plugins=[JsonRenderPlugin(path=["/", "/openapi.json"])],
            components=Components(security_schemes=SECURITY_SCHEMES),
        ),
        logging_config=None,
        debug=False,
    )
