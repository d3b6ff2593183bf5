"""``/v1/search``: ranked passages for a free-text query (POST with JSON, or GET)."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from functools import partial
from typing import Annotated, Any

from litestar import Controller, Request, get, post
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import Example
from litestar.params import Body, Parameter, QueryParameter

from poshuk.errors import InvalidQueryError
from poshuk.filters import Filters
from poshuk.search import Searcher
from poshuk.settings import ServiceSettings
from poshuk.wire import Facet, Hit, Mode, SearchResult, Sort, Span
from service.errors import problem_responses
from service.fair_gate import FairGate
from service.limits import client_of
from service.metrics import Metrics
from service.schemas import (
    DATE_DOC,
    FACETS_DOC,
    MODE_DOC,
    OFFSET_DOC,
    RECENCY_DOC,
    SEMANTIC_HIGHLIGHTS_DOC,
    SORT_DOC,
    SearchRequest,
    link_filters,
)

logger = logging.getLogger("poshuk.service.search")

UK_QUERY = "переговори Росії та Північної Кореї про постачання зброї"
EN_QUERY = "Russia North Korea arms talks"

_REQUEST_EXAMPLES = [
    Example(summary="Ukrainian query", value={"query": UK_QUERY, "k": 5}),
    Example(summary="English query", value={"query": EN_QUERY, "k": 5}),
    Example(
        summary="Filters and collapse",
        description="Ukrainian articles from August 2023 in the `світ` section, each article once.",
        value={
            "query": EN_QUERY,
            "k": 5,
            "mode": "hybrid",
            "filters": {
                "lang": ["uk"],
                "section": ["світ"],
                "published_from": "2023-08-01",
                "published_to": "2023-08-31",
            },
            "collapse": True,
        },
    ),
    Example(summary="Second page, words only", value={"query": UK_QUERY, "k": 5, "offset": 5, "mode": "lexical"}),
]

_EXAMPLE_TEXT = (
    "Переговори про продаж зброї між Росією та Північною Кореєю активно просуваються, "
    "заявив координатор Ради національної безпеки США Джон Кірбі."
)


def _spans(text: str, *words: str) -> list[Span]:
    return [Span(start=text.index(w), end=text.index(w) + len(w)) for w in words]


_RESPONSE_EXAMPLE = SearchResult(
    query=EN_QUERY,
    took_ms=12.417,
    model="multilingual-e5-small",
    mode="hybrid",
    offset=0,
    hits=[
        Hit(
            rank=1,
            score=0.032787,
            passage_id="uk-001#0",
            doc_id="uk-001",
            title="Кірбі: Росія та КНДР активно просувають переговори про зброю",
            text=_EXAMPLE_TEXT,
            url="https://example.com/news/uk-001",
            source="Example News",
            published_at=datetime(2023, 8, 31, 9, 15, tzinfo=UTC),
            lang="uk",
            highlights=_spans(_EXAMPLE_TEXT, "Росією", "Північною Кореєю"),
            highlight_kind="terms",
            other_matches=2,
        )
    ],
)

_RESPONSES: dict[int, ResponseSpec] = {
    200: ResponseSpec(
        data_container=SearchResult,
        description="Passages (or, with `collapse`, articles) ranked best first.",
        generate_examples=False,
        examples=[Example(summary="One hit, collapsed, with highlights", value=_RESPONSE_EXAMPLE)],
    ),
    **problem_responses(400, 413, 429, 503),
}


def check_request(query: str, k: int, limits: ServiceSettings) -> None:
    """Reject what the service's limits forbid, before any encoding work."""
    if not query.strip():
        raise InvalidQueryError("query is empty")
    if len(query) > limits.max_query_chars:
        raise InvalidQueryError(f"query is {len(query)} characters long; the limit is {limits.max_query_chars}")
    if not 1 <= k <= limits.max_k:
        raise InvalidQueryError(f"k must be between 1 and {limits.max_k}, got {k}")


def admitted(query: str, k: int, limits: ServiceSettings, filters: Filters | None) -> Filters | None:
    """Refuse a request past a limit before it queues at the gate; returns the filters, checked."""
    check_request(query, k, limits)
    return None if filters is None else filters.checked()


def run_search(
    searcher: Searcher,
    limits: ServiceSettings,
    metrics: Metrics,
    query: str,
    k: int,
    *,
    mode: Mode,
    filters: Filters | None,
    collapse: bool,
    offset: int,
    highlight: bool,
    dedupe: bool = False,
    semantic_highlights: bool = False,
    sort: Sort = "relevance",
    recency_half_life_days: float | None = None,
    facets: Sequence[str] = (),
) -> SearchResult:
    """The search itself, in a worker thread; the request was admitted (``admitted``) before it queued."""
    if limits.log_queries:
        logger.info("search %r", query, extra={"query": query, "k": k, "mode": mode})
    started = time.perf_counter()
    result = searcher.search(
        query,
        k=k,
        mode=mode,
        filters=filters,
        collapse=collapse,
        offset=offset,
        highlight=highlight,
        dedupe=dedupe,
        semantic_highlights=semantic_highlights,
        sort=sort,
        recency_half_life_days=recency_half_life_days,
        facets=facets,
    )
    metrics.observe_search(mode, time.perf_counter() - started)
    return result


_LIST_DOC = "Repeat the parameter for several values; any of them matches."


class SearchController(Controller):
    path = "/v1/search"
    tags = ("search",)

    @post(
        "/",
        status_code=200,
        summary="Search (JSON body)",
        description="Find the `k` best passages for the query, each with its article's metadata and where it "
        "matches. Ukrainian and English queries search the same index. `mode` picks meaning, words or both; "
        "`filters` restrict the articles (the answer is the top `k` among matching ones); `collapse` returns "
        "each article once; `offset` pages through the results.",
        responses=_RESPONSES,
    )
    async def search_post(
        self,
        request: Request[Any, Any, Any],
        data: Annotated[
            SearchRequest,
            Body(
                description="The query, how many hits, and optionally mode, filters, collapse, offset.",
                examples=_REQUEST_EXAMPLES,
            ),
        ],
        searcher: NamedDependency[Searcher],
        limits: NamedDependency[ServiceSettings],
        metrics: NamedDependency[Metrics],
        gate: NamedDependency[FairGate],
    ) -> SearchResult:
        filters = admitted(data.query, data.k, limits, None if data.filters is None else data.filters.to_filters())
        search = partial(
            run_search,
            searcher,
            limits,
            metrics,
            data.query,
            data.k,
            mode=data.mode,
            filters=filters,
            collapse=data.collapse,
            offset=data.offset,
            highlight=data.highlight,
            semantic_highlights=data.semantic_highlights,
            dedupe=data.dedupe,
            sort=data.sort,
            recency_half_life_days=data.recency_half_life_days,
            facets=data.facets,
        )
        return await gate.run(client_of(request.scope), search)

    @get(
        "/",
        summary="Search (query string)",
        description="The same search as `POST /v1/search` as a link: the query in `q`, filters as repeatable "
        "`lang`, `source`, `section` and `tag` parameters and the dates in `from` and `to`.",
        responses=_RESPONSES,
    )
    async def search_get(
        self,
        request: Request[Any, Any, Any],
        searcher: NamedDependency[Searcher],
        limits: NamedDependency[ServiceSettings],
        metrics: NamedDependency[Metrics],
        gate: NamedDependency[FairGate],
        q: Annotated[
            str,
            Parameter(
                description="What to look for, in Ukrainian or English.",
                examples=[
                    Example(summary="Ukrainian query", value=UK_QUERY),
                    Example(summary="English query", value=EN_QUERY),
                ],
            ),
        ],
        k: Annotated[int, Parameter(description="How many passages to return, best first.")] = 10,
        mode: Annotated[Mode, Parameter(description=MODE_DOC)] = "hybrid",
        lang: Annotated[list[str] | None, Parameter(description="Language. " + _LIST_DOC)] = None,
        source: Annotated[list[str] | None, Parameter(description="Source. " + _LIST_DOC)] = None,
        section: Annotated[list[str] | None, Parameter(description="Section. " + _LIST_DOC)] = None,
        tag: Annotated[
            list[str] | None, Parameter(description="Tag; repeat it to require several (all must match).")
        ] = None,
        published_from: Annotated[
            str | None, QueryParameter(name="from", description="Published at or after this. " + DATE_DOC)
        ] = None,
        published_to: Annotated[
            str | None, QueryParameter(name="to", description="Published at or before this. " + DATE_DOC)
        ] = None,
        collapse: Annotated[bool, Parameter(description="Return each article once.")] = False,
        offset: Annotated[int, Parameter(description=OFFSET_DOC)] = 0,
        highlight: Annotated[bool, Parameter(description="Mark where each passage matches.")] = True,
        semantic_highlights: Annotated[bool, Parameter(description=SEMANTIC_HIGHLIGHTS_DOC)] = False,
        dedupe: Annotated[bool, Parameter(description="Return each story once (one hit per cluster).")] = False,
        sort: Annotated[Sort, Parameter(description=SORT_DOC)] = "relevance",
        recency_half_life_days: Annotated[float | None, Parameter(description=RECENCY_DOC)] = None,
        facet: Annotated[
            list[Facet] | None, Parameter(description="A facet to count; repeat for several. " + FACETS_DOC)
        ] = None,
    ) -> SearchResult:
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
            collapse=collapse,
            offset=offset,
            highlight=highlight,
            dedupe=dedupe,
            semantic_highlights=semantic_highlights,
            sort=sort,
            recency_half_life_days=recency_half_life_days,
            facets=facet or (),
        )
        return await gate.run(client_of(request.scope), search)
