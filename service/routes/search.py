"""``/v1/search``: ranked passages for a free-text query (POST with JSON, or GET)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from litestar import Controller, get, post
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import Example
from litestar.params import Body, Parameter

from poshuk.errors import InvalidQueryError
from poshuk.search import Searcher
from poshuk.settings import ServiceSettings
from service.errors import problem_responses
from service.schemas import HitOut, SearchRequest, SearchResponse

UK_QUERY = "переговори Росії та Північної Кореї про постачання зброї"
EN_QUERY = "Russia North Korea arms talks"

_REQUEST_EXAMPLES = [
    Example(summary="Ukrainian query", value={"query": UK_QUERY, "k": 5}),
    Example(summary="English query", value={"query": EN_QUERY, "k": 5}),
]

_RESPONSE_EXAMPLE = SearchResponse(
    query=EN_QUERY,
    took_ms=12.417,
    model="multilingual-e5-small",
    hits=[
        HitOut(
            rank=1,
            score=0.873214,
            passage_id="uk-001#0",
            doc_id="uk-001",
            title="Кірбі: Росія та КНДР активно просувають переговори про зброю",
            text="Переговори про продаж зброї між Росією та Північною Кореєю активно просуваються, "
            "заявив координатор Ради національної безпеки США Джон Кірбі.",
            url="https://example.com/news/uk-001",
            source="Example News",
            published_at=datetime(2023, 8, 31, 9, 15, tzinfo=UTC),
            lang="uk",
        )
    ],
)

_RESPONSES: dict[int, ResponseSpec] = {
    200: ResponseSpec(
        data_container=SearchResponse,
        description="Passages ranked by closeness in meaning, best first.",
        generate_examples=False,
        examples=[Example(summary="One hit", value=_RESPONSE_EXAMPLE)],
    ),
    **problem_responses(400, 413, 503),
}


def check_request(query: str, k: int, limits: ServiceSettings) -> None:
    """Reject what the service's limits forbid, before any encoding work."""
    if not query.strip():
        raise InvalidQueryError("query is empty")
    if len(query) > limits.max_query_chars:
        raise InvalidQueryError(f"query is {len(query)} characters long; the limit is {limits.max_query_chars}")
    if not 1 <= k <= limits.max_k:
        raise InvalidQueryError(f"k must be between 1 and {limits.max_k}, got {k}")


def _search(searcher: Searcher, limits: ServiceSettings, query: str, k: int) -> SearchResponse:
    check_request(query, k, limits)
    return SearchResponse.from_result(searcher.search(query, k=k))


class SearchController(Controller):
    path = "/v1/search"
    tags = ("search",)

    @post(
        "/",
        status_code=200,
        sync_to_thread=True,
        summary="Search (JSON body)",
        description="Encode the query with the index's model and return the `k` closest passages, "
        "each with its article's metadata. Ukrainian and English queries search the same index.",
        responses=_RESPONSES,
    )
    def search_post(
        self,
        data: Annotated[
            SearchRequest,
            Body(description="The query and how many passages to return.", examples=_REQUEST_EXAMPLES),
        ],
        searcher: NamedDependency[Searcher],
        limits: NamedDependency[ServiceSettings],
    ) -> SearchResponse:
        return _search(searcher, limits, data.query, data.k)

    @get(
        "/",
        sync_to_thread=True,
        summary="Search (query string)",
        description="The same search as `POST /v1/search`, with the query in `q` and the count in `k`.",
        responses=_RESPONSES,
    )
    def search_get(
        self,
        searcher: NamedDependency[Searcher],
        limits: NamedDependency[ServiceSettings],
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
    ) -> SearchResponse:
        return _search(searcher, limits, q, k)
