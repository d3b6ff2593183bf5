"""Assembles the Litestar app; holds no logic of its own beyond loading the index.

``create_app(settings, index_dir)`` builds a fresh app each call: no module-level app,
no settings read at import. On startup a background thread opens the index and loads
the model (seconds for a real model) so the process answers ``/healthz`` at once and
``/readyz`` turns 200 when searches can be served; until then search routes answer 503.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TypeVar

from litestar import Litestar
from litestar.datastructures import State
from litestar.di import Provide
from litestar.middleware import DefineMiddleware
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin
from litestar.openapi.spec import Components

from poshuk.encoder import Encoder
from poshuk.onnx_encoder import physical_cores
from poshuk.search import IndexReader
from poshuk.settings import Settings
from service.alert_worker import AlertWorker
from service.auth import SECURITY_SCHEMES, KeyRing, make_guard
from service.bodies import check_json_body
from service.errors import problem_handler
from service.fair_gate import GATE_KEY, FairGate
from service.lifecycle import Lifecycle
from service.limits import Limits, LimitsMiddleware
from service.metrics import Metrics, MetricsController, ObservabilityMiddleware
from service.openapi_strict import StrictStructSchemaPlugin
from service.read_only import make_read_only_guard
from service.routes.alerts import AlertsController, alerts_provider
from service.routes.documents_write import write_controllers
from service.routes.feeds import FeedController
from service.routes.health import HealthController
from service.routes.page import PageController
from service.routes.search import SearchController
from service.routes.similar import SimilarController
from service.state import STATE_KEY, ServiceState
from service.unmatched import LIMITS_KEY, limit_unmatched, unmatched_before_send

T = TypeVar("T")

LIFECYCLE_KEY = "poshuk.lifecycle"  # on the app's state for tests; routes get it injected
ALERT_WORKER_KEY = "poshuk.alert_worker"  # on the app's state for tests


def _lifespan(
    service_state: ServiceState, lifecycle: Lifecycle, alert_worker: AlertWorker
) -> Callable[[Litestar], AbstractAsyncContextManager[None]]:
    """Load the index in the background on startup; the upkeep thread (``service.lifecycle``) and the
    saved searches' threads (``service.alert_worker``) run while the app does and stop before the index
    closes."""

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        service_state.start_loading()
        lifecycle.start()
        alert_worker.start()
        try:
            yield
        finally:
            alert_worker.stop()
            lifecycle.stop()
            service_state.close()

    return lifespan


def _provider(value: T) -> Provide:
    """A dependency that is always ``value`` (one per app, made in ``create_app``)."""

    def provide() -> T:
        return value

    return Provide(provide, use_cache=True, sync_to_thread=False)


def _package_version() -> str:
    try:
        return version("poshuk")
    except PackageNotFoundError:  # running from a source tree that is not installed
        return "0+unknown"


def create_app(
    settings: Settings,
    index_dir: Path,
    *,
    encoder: Encoder | None = None,
    reader: Callable[[], IndexReader] | None = None,
) -> Litestar:
    """A new Poshuk HTTP app over the index at ``index_dir``.

    ``encoder`` replaces the model named in ``settings`` (tests pass a ``HashEncoder``);
    ``reader`` opens what searches read in place of ``index_dir`` (the shards of an archive
    served on Ray, ``service.ray_serving``).
    """
    service_state = ServiceState(index_dir, settings, encoder, reader)
    ring = KeyRing(settings.auth)
    limits = Limits(settings.service, ring)
    metrics = Metrics(service_state)
    lifecycle = Lifecycle(service_state)
    lifecycle.write_listeners.append(metrics.written)
    alert_worker = AlertWorker(service_state)
    gate = FairGate(settings.service.search_slots or physical_cores(), share=settings.service.client_time_share)
    return Litestar(
        route_handlers=[
            SearchController,
            FeedController,
            AlertsController,
            SimilarController,
            HealthController,
            PageController,
            MetricsController,
            *write_controllers(settings.service),  # DocumentsController's reads with the writes
        ],
        guards=[make_read_only_guard(settings.service.read_only), make_guard(ring)],  # 405 before keys
        middleware=[
            DefineMiddleware(ObservabilityMiddleware, metrics=metrics),  # outermost: sees every answer
            DefineMiddleware(LimitsMiddleware, shared=limits),
        ],
        dependencies={
            "searcher": Provide(service_state.require_searcher, sync_to_thread=False),
            "limits": _provider(settings.service),
            "lifecycle": _provider(lifecycle),
            "metrics": _provider(metrics),
            "gate": _provider(gate),
            "alerts": Provide(alerts_provider(service_state, settings.service), sync_to_thread=False),
        },
        state=State(
            {
                STATE_KEY: service_state,
                LIFECYCLE_KEY: lifecycle,
                ALERT_WORKER_KEY: alert_worker,
                LIMITS_KEY: limits,
                GATE_KEY: gate,
            }
        ),
        before_send=[unmatched_before_send(metrics)],  # 404/405 without a route: counted and logged
        lifespan=[_lifespan(service_state, lifecycle, alert_worker)],
        before_request=check_json_body,  # JSON depth and strict types, before any route decodes a body
        plugins=[StrictStructSchemaPlugin()],  # OpenAPI: additionalProperties false where unknown fields are 400
        exception_handlers={Exception: limit_unmatched(problem_handler)},
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
