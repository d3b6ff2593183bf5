"""``/v1/similar/{doc_id}``: articles closest in meaning to one article ("more like this").

The older ``/v1/documents/{doc_id}/similar`` is answered by the document route with the same
``similar_response`` (``service.routes.ids``).
"""

from __future__ import annotations

from functools import partial
from typing import Annotated, Any

from litestar import Controller, Request, get
from litestar.di import NamedDependency
from litestar.params import PathParameter, QueryParameter

from poshuk.errors import InvalidQueryError
from poshuk.search import Searcher
from poshuk.settings import ServiceSettings
from poshuk.wire import SearchResult
from service.errors import problem_responses
from service.fair_gate import FairGate
from service.limits import client_of
from service.routes.ids import route_id
from service.schemas import DATE_DOC, build_filters


def similar_response(
    searcher: Searcher,
    limits: ServiceSettings,
    doc_id: str,
    *,
    k: int,
    lang: list[str] | None,
    source: list[str] | None,
    published_from: str | None,
    published_to: str | None,
) -> SearchResult:
    """The similar articles of ``doc_id`` (already normalised), filters checked as on ``GET /v1/search``."""
    if not 1 <= k <= limits.max_k:
        raise InvalidQueryError(f"k must be between 1 and {limits.max_k}, got {k}")
    filters = build_filters(
        lang=lang,
        source=source,
        published_from=published_from,
        published_to=published_to,
        from_name="from",
        to_name="to",
    )
    return searcher.similar(doc_id, k=k, filters=filters)


class SimilarController(Controller):
    path = "/v1/similar"
    tags = ("documents",)

    @get(
        "/{doc_id:path}",
        summary="Similar articles",
        description="Articles closest in meaning to this one, best first, each article once and never the article "
        "itself. The same response shape as a search (`mode` is `dense`, `query` is `similar:{doc_id}`, no "
        "highlights). Optional filters as in `GET /v1/search`. 404 if the index holds no article with this id. "
        "The id may contain `/` (as is or `%2F`). The older `/v1/documents/{doc_id}/similar` answers the same.",
        responses=problem_responses(400, 404, 429, 503),
    )
    async def similar(
        self,
        doc_id: Annotated[
            str, PathParameter(description="Article id as given at indexing, e.g. `uk-001` or `world/2023/kirby`.")
        ],
        request: Request[Any, Any, Any],
        searcher: NamedDependency[Searcher],
        limits: NamedDependency[ServiceSettings],
        gate: NamedDependency[FairGate],
        k: Annotated[int, QueryParameter(description="How many articles to return, best first.")] = 10,
        lang: Annotated[
            list[str] | None, QueryParameter(description="Only articles in any of these languages.")
        ] = None,
        source: Annotated[
            list[str] | None, QueryParameter(description="Only articles from any of these sources.")
        ] = None,
        published_from: Annotated[
            str | None, QueryParameter(name="from", description="Published at or after this. " + DATE_DOC)
        ] = None,
        published_to: Annotated[
            str | None, QueryParameter(name="to", description="Published at or before this. " + DATE_DOC)
        ] = None,
    ) -> SearchResult:
        work = partial(
            similar_response,
            searcher,
            limits,
            route_id(doc_id),
            k=k,
            lang=lang,
            source=source,
            published_from=published_from,
            published_to=published_to,
        )
        return await gate.run(client_of(request.scope), work)
