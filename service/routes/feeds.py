"""``/v1/search.atom``: a search as an Atom feed, newest articles first (issue 16)."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import partial
from typing import Annotated, Any

from litestar import Controller, Request, Response, get
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import Parameter, QueryParameter

from poshuk.search import Searcher
from poshuk.settings import ServiceSettings
from poshuk.wire import Mode, Sort
from service.atom import MEDIA_TYPE, search_feed
from service.errors import problem_responses
from service.fair_gate import FairGate
from service.limits import client_of
from service.metrics import Metrics
from service.routes.search import admitted, run_search
from service.schemas import DATE_DOC, MODE_DOC, link_filters

FEED_K = 20  # entries of a feed unless `k` says otherwise


class FeedController(Controller):
    path = "/v1/search.atom"
    tags = ("search",)

    @get(
        "/",
        summary="Search as an Atom feed",
        description="The articles of a search as an Atom feed a feed reader can subscribe to: `GET /v1/search`'s "
        "parameters, one entry per article (collapsed), newest first by default (`sort`, as in the search: the "
        "most relevant articles by date). An entry's id is its article's, so a reader shows an article once.",
        responses={
            200: ResponseSpec(data_container=str, media_type=MEDIA_TYPE, description="An Atom 1.0 feed."),
            **problem_responses(400, 429, 503),
        },
        media_type=MEDIA_TYPE,
    )
    async def feed(
        self,
        request: Request[Any, Any, Any],
        searcher: NamedDependency[Searcher],
        limits: NamedDependency[ServiceSettings],
        metrics: NamedDependency[Metrics],
        gate: NamedDependency[FairGate],
        q: Annotated[str, Parameter(description="What to look for, in Ukrainian or English.")],
        k: Annotated[int, Parameter(description="How many articles the feed lists.")] = FEED_K,
        mode: Annotated[Mode, Parameter(description=MODE_DOC)] = "hybrid",
        lang: Annotated[list[str] | None, Parameter(description="Language; repeat for several.")] = None,
        source: Annotated[list[str] | None, Parameter(description="Source; repeat for several.")] = None,
        section: Annotated[list[str] | None, Parameter(description="Section; repeat for several.")] = None,
        tag: Annotated[list[str] | None, Parameter(description="Tag; repeat to require several.")] = None,
        published_from: Annotated[
            str | None, QueryParameter(name="from", description="Published at or after this. " + DATE_DOC)
        ] = None,
        published_to: Annotated[
            str | None, QueryParameter(name="to", description="Published at or before this. " + DATE_DOC)
        ] = None,
        sort: Annotated[Sort, Parameter(description="The entries' order (default: newest first).")] = "newest",
    ) -> Response[bytes]:
        filters = admitted(q, k, limits, link_filters(lang, source, section, tag, published_from, published_to))
        search = partial(
            run_search,
            searcher,
            limits,
            metrics,
            q,
            k,
            mode=mode,
            filters=filters,
            collapse=True,
            offset=0,
            highlight=False,
            sort=sort,
        )
        result = await gate.run(client_of(request.scope), search)
        base = str(request.base_url).rstrip("/")
        body = search_feed(result, self_url=str(request.url), base_url=base, now=datetime.now(UTC))
        return Response(content=body, media_type=MEDIA_TYPE)
