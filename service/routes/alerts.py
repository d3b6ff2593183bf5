"""``/v1/alerts``: saved searches that alert on new articles (``poshuk.alerts``), over HTTP.

Saving, listing, reading and deleting an alert need an API key, and a key sees only the
alerts it saved. An alert's matches and its Atom feed are read by the alert's id alone (a
random 128-bit id: the secret part of the address, as a private calendar feed's), so a feed
reader that cannot send headers can subscribe; with ``auth.read_requires_key`` they need a key
too, like every read. A read-only service keeps no alerts: every route here answers 405.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any

import anyio.to_thread
from litestar import Controller, Request, Response, delete, get, post
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import Body, Parameter

from poshuk.alerts import MAX_MATCHES, Alerts
from poshuk.settings import ServiceSettings
from poshuk.shards.layout import is_sharded
from poshuk.wire import Alert, AlertMatches
from service.atom import MEDIA_TYPE, alert_feed
from service.auth import KEYED, OWNER, owner_of
from service.errors import ServiceProblem, problem_responses
from service.read_only import WRITES_INDEX
from service.schemas import AlertRequest
from service.state import ServiceState

_OWNER_OPT: dict[str, Any] = {"access": OWNER, WRITES_INDEX: True}
ID_DOC = "The alert's id, as `POST /v1/alerts` answered it."
MATCHES_DOC = f"How many matches to list (1..{MAX_MATCHES})."


def alerts_provider(state: ServiceState, limits: ServiceSettings) -> Callable[[], Alerts]:
    """The ``alerts`` dependency: the index's saved searches, or 405 in a read-only service."""

    def provide() -> Alerts:
        if limits.read_only:
            raise ServiceProblem(
                405,
                "read-only",
                "Read-only service",
                "this service is read-only (service.read_only) and keeps no saved searches; "
                "use a service that opens the index writable",
                headers={"Allow": ""},
            )
        if is_sharded(state.index_dir):  # writable since issue 12's sharded writes, but matching reads one index
            raise ServiceProblem(
                405,
                "read-only",
                "No saved searches here",
                "a sharded archive keeps no saved searches yet; save them on an unsharded index",
                headers={"Allow": ""},
            )
        return state.alerts()

    return provide


class AlertsController(Controller):
    path = "/v1/alerts"
    tags = ("alerts",)

    @post(
        "/",
        summary="Save a search as an alert",
        description="Articles written from now on (by any write path: this API, `poshuk index`) that match the "
        "query become the alert's matches, within about a second of their write; with a `webhook`, each match is "
        "also POSTed there, retried with backoff until a 2xx answer, under the same `Idempotency-Key`. Meaning is "
        "compared across languages: an English alert matches a Ukrainian article on the same event.",
        status_code=201,
        opt=_OWNER_OPT,
        security=KEYED,
        responses=problem_responses(400, 401, 403, 405, 413, 429, 503),
    )
    async def create(
        self,
        request: Request[Any, Any, Any],
        data: Annotated[AlertRequest, Body(description="The query to watch for, and how to match and notify.")],
        alerts: NamedDependency[Alerts],
    ) -> Alert:
        owner = owner_of(request)
        filters = None if data.filters is None else data.filters.to_filters()

        def save() -> Alert:
            return alerts.create(
                data.query,
                mode=data.mode,
                filters=filters,
                threshold=data.threshold,
                webhook=data.webhook,
                owner=owner,
                top_k=data.top_k,
            )

        return await anyio.to_thread.run_sync(save)  # the query's vector; the webhook host's addresses

    @get(
        "/",
        summary="List your alerts",
        description="The alerts saved with this request's API key, newest first.",
        opt=_OWNER_OPT,
        security=KEYED,
        responses=problem_responses(401, 403, 405, 429, 503),
    )
    async def list_alerts(self, request: Request[Any, Any, Any], alerts: NamedDependency[Alerts]) -> list[Alert]:
        owner = owner_of(request)
        return await anyio.to_thread.run_sync(lambda: alerts.alerts(owner=owner))

    @get(
        "/{alert_id:str}",
        summary="Get an alert",
        description="One of this key's alerts; 404 for an id it did not save.",
        opt=_OWNER_OPT,
        security=KEYED,
        responses=problem_responses(401, 403, 404, 405, 429, 503),
    )
    async def get_alert(
        self,
        request: Request[Any, Any, Any],
        alerts: NamedDependency[Alerts],
        alert_id: Annotated[str, Parameter(description=ID_DOC)],
    ) -> Alert:
        owner = owner_of(request)
        return await anyio.to_thread.run_sync(lambda: alerts.get(alert_id, owner=owner))

    @delete(
        "/{alert_id:str}",
        summary="Delete an alert",
        description="Deletes the alert, its matches and its notifications not yet delivered.",
        opt=_OWNER_OPT,
        security=KEYED,
        responses=problem_responses(401, 403, 404, 405, 429, 503),
    )
    async def delete_alert(
        self,
        request: Request[Any, Any, Any],
        alerts: NamedDependency[Alerts],
        alert_id: Annotated[str, Parameter(description=ID_DOC)],
    ) -> None:
        owner = owner_of(request)
        await anyio.to_thread.run_sync(lambda: alerts.delete(alert_id, owner=owner))

    @get(
        "/{alert_id:str}/matches",
        summary="An alert's matches",
        description="The articles written after the alert that matched it, best first (`newest`: latest first), "
        "each as it was when it matched. Addressed by the alert's id alone (see the feed).",
        responses=problem_responses(400, 404, 405, 429, 503),
    )
    async def matches(
        self,
        request: Request[Any, Any, Any],
        alerts: NamedDependency[Alerts],
        alert_id: Annotated[str, Parameter(description=ID_DOC)],
        limit: Annotated[int, Parameter(description=MATCHES_DOC)] = 20,
        newest: Annotated[bool, Parameter(description="Latest matches first instead of best first.")] = False,
    ) -> AlertMatches:
        return await anyio.to_thread.run_sync(lambda: alerts.matches(alert_id, limit=limit, newest=newest))

    @get(
        "/{alert_id:str}/feed.atom",
        summary="An alert's matches as an Atom feed",
        description="The latest matches first, one entry per article (its id is the article's, as in "
        "`/v1/search.atom`). The alert's id is the feed's secret: anyone with the address can read it, so share "
        "it as you would the alert itself.",
        responses={
            200: ResponseSpec(data_container=str, media_type=MEDIA_TYPE, description="An Atom 1.0 feed."),
            **problem_responses(400, 404, 405, 429, 503),
        },
        media_type=MEDIA_TYPE,
    )
    async def feed(
        self,
        request: Request[Any, Any, Any],
        alerts: NamedDependency[Alerts],
        alert_id: Annotated[str, Parameter(description=ID_DOC)],
        limit: Annotated[int, Parameter(description=MATCHES_DOC)] = 20,
    ) -> Response[bytes]:
        found = await anyio.to_thread.run_sync(lambda: alerts.matches(alert_id, limit=limit, newest=True))
        base = str(request.base_url).rstrip("/")
        body = alert_feed(found, self_url=str(request.url), base_url=base, now=datetime.now(UTC))
        return Response(content=body, media_type=MEDIA_TYPE)
