"""Wire schemas of the HTTP API that only the service needs: request bodies, health answers.

The answers a client decodes (``SearchResult``, ``DocumentResponse``, ``WriteResult``,
``Problem``) are declared once in ``poshuk.wire``, shared with ``poshuk.Client``. All are
msgspec Structs, kw_only and frozen; every field added later gets a default.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from typing import Annotated, Any

import msgspec

from poshuk.errors import InvalidQueryError
from poshuk.filters import Filters, timestamp
from poshuk.index import StoredDocument
from poshuk.ordering import DATE_POOL
from poshuk.wire import CANDIDATES, DocumentResponse, Facet, IndexStats, Mode, PassageOut, Sort


def _doc(text: str, **extra: Any) -> msgspec.Meta:
    return msgspec.Meta(description=text, **extra)


def parse_when(value: str, *, end_of_day: bool = False, name: str = "date") -> datetime:
    """An ISO 8601 date or date-time; a bare date is the day's first (or, ``end_of_day``, last) instant in UTC.

    A date-time without a zone is taken as UTC. Raises ``InvalidQueryError`` naming ``name``.
    """
    text = value.strip()
    try:
        day = date.fromisoformat(text)
    except ValueError:
        pass
    else:
        return datetime.combine(day, time.max if end_of_day else time.min, tzinfo=UTC)
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise InvalidQueryError(
            f"{name} must be an ISO 8601 date or date-time such as 2023-08-31 or 2023-08-31T09:15:00Z, got {value!r}"
        ) from None


def build_filters(
    *,
    lang: list[str] | None = None,
    source: list[str] | None = None,
    section: list[str] | None = None,
    tags: list[str] | None = None,
    published_from: str | None = None,
    published_to: str | None = None,
    from_name: str = "published_from",
    to_name: str = "published_to",
) -> Filters | None:
    """The core's ``Filters`` from wire values (None when nothing filters); bad dates raise ``InvalidQueryError``."""
    start = None if published_from is None else parse_when(published_from, name=from_name)
    end = None if published_to is None else parse_when(published_to, end_of_day=True, name=to_name)
    if start is not None and end is not None and timestamp(start) > timestamp(end):
        raise InvalidQueryError(f"{from_name} ({published_from}) is after {to_name} ({published_to})")
    filters = Filters(
        lang=tuple(lang or ()),
        source=tuple(source or ()),
        section=tuple(section or ()),
        tags=tuple(tags or ()),
        published_from=start,
        published_to=end,
    )
    return None if filters.is_empty() else filters


def link_filters(
    lang: list[str] | None,
    source: list[str] | None,
    section: list[str] | None,
    tag: list[str] | None,
    published_from: str | None,
    published_to: str | None,
) -> Filters | None:
    """The filters of a search as a link (``GET /v1/search``, its Atom feed): repeatable ``lang``,
    ``source``, ``section`` and ``tag``, the dates in ``from`` and ``to``."""
    return build_filters(
        lang=lang,
        source=source,
        section=section,
        tags=tag,
        published_from=published_from,
        published_to=published_to,
        from_name="from",
        to_name="to",
    )


DATE_DOC = (
    "ISO 8601 date (`2023-08-31`) or date-time (`2023-08-31T09:15:00Z`; no zone means UTC). Inclusive: "
    "a bare date as the upper bound includes that whole day. Articles without a date are excluded."
)


class FiltersIn(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """Which articles may answer; empty or absent fields do not filter. Lists only, even for one value."""

    lang: Annotated[list[str], _doc('Any of these languages, e.g. `["uk"]`.')] = []
    source: Annotated[list[str], _doc("Any of these sources.")] = []
    section: Annotated[list[str], _doc("Any of these sections.")] = []
    tags: Annotated[list[str], _doc("Every one of these tags.")] = []
    published_from: Annotated[str | None, _doc("Published at or after this. " + DATE_DOC)] = None
    published_to: Annotated[str | None, _doc("Published at or before this. " + DATE_DOC)] = None

    def to_filters(self) -> Filters | None:
        return build_filters(
            lang=self.lang,
            source=self.source,
            section=self.section,
            tags=self.tags,
            published_from=self.published_from,
            published_to=self.published_to,
        )


MODE_DOC = (
    "`hybrid` (default): meaning and words, fused; `dense`: closeness in meaning only; "
    "`lexical`: matching words only (BM25)."
)
OFFSET_DOC = f"Skip this many hits (articles, with `collapse`) to page through results; 0..{CANDIDATES - 1}."


SEMANTIC_HIGHLIGHTS_DOC = (
    "Opt-in. With `highlight`: for the top 3 hits that match no query word (found by meaning only), mark "
    "the sentence closest to the query (`highlight_kind: sentence`). Off by default because it costs a model "
    "call over their sentences, several times the rest of a search; a page can search without it, show the "
    "hits, then ask again with it."
)


SORT_DOC = (
    f"`relevance` (default): best first. `newest` / `oldest`: the passages among the {DATE_POOL} most relevant "
    "(after filters) that score at least half of the best one, ordered by their article's `published_at`; ties "
    "keep relevance order, articles without a date come last, `score` stays the relevance score. The floor keeps "
    "the order about the query: by date over every candidate, the newest barely related article would come first."
)
FACETS_DOC = (
    "Count the articles of this search by `source`, `section`, `lang`, `tags` and/or `month` (each at most once). "
    "Counted: every article with a passage among the candidates the retrievers returned for the query after the "
    "filters (up to 200 per retriever), each once, before `k`, `offset`, `collapse`, `dedupe` and `sort`: the set "
    "the ranking draws from. Each facet lists its 20 most frequent values with the `filters` that apply them."
)
RECENCY_DOC = (
    "Relevance order only, off by default: multiply each score by 0.5^(age in days / this), age counted from "
    "the request's time (an article without a date counts as old as the oldest dated candidate). "
    "Above 0, at most 36500."
)


class SearchRequest(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """A search: free text in Ukrainian or English, how many hits, and how to find and shape them."""

    query: Annotated[str, _doc("What to look for, in any language the model knows.")]
    k: Annotated[int, _doc("How many passages to return, best first.")] = 10
    mode: Annotated[Mode, _doc(MODE_DOC)] = "hybrid"
    filters: Annotated[FiltersIn | None, _doc("Restrict the search to matching articles.")] = None
    collapse: Annotated[bool, _doc("Return each article once (its best passage), with `other_matches`.")] = False
    offset: Annotated[int, _doc(OFFSET_DOC)] = 0
    highlight: Annotated[bool, _doc("Mark where each passage matches in `highlights`.")] = True
    semantic_highlights: Annotated[bool, _doc(SEMANTIC_HIGHLIGHTS_DOC)] = False
    dedupe: Annotated[
        bool, _doc("Return each story once: one hit per cluster of copies, edited copies and translations.")
    ] = False
    sort: Annotated[Sort, _doc(SORT_DOC)] = "relevance"
    recency_half_life_days: Annotated[float | None, _doc(RECENCY_DOC)] = None
    facets: Annotated[list[Facet], _doc(FACETS_DOC)] = []


ALERT_MODE_DOC = (
    "`hybrid` (default): a new article matches by meaning (a passage at least `threshold` close to the query) "
    "or by words (it holds every query word); `dense`: by meaning only; `lexical`: by words only."
)


class AlertRequest(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """A saved search: articles written from now on that match it become its matches."""

    query: Annotated[str, _doc("What to watch for, in any language the model knows.")]
    mode: Annotated[Mode, _doc(ALERT_MODE_DOC)] = "hybrid"
    filters: Annotated[FiltersIn | None, _doc("Only articles passing these filters match.")] = None
    threshold: Annotated[
        float | None,
        _doc(
            "Cosine (0..1) between the query and an article's best passage needed to match by meaning; "
            "default: the service's `alerts.threshold`."
        ),
    ] = None
    top_k: Annotated[
        int | None,
        _doc(
            "Instead of `threshold`: match an article that would have ranked among the `top_k` (1..100) best "
            "articles of this alert's own search (by meaning, with its filters) over the archive now; the "
            "threshold becomes that article's cosine."
        ),
    ] = None
    webhook: Annotated[
        str | None,
        _doc(
            "An http(s) URL each match is POSTed to (a `WebhookNotification`, with an `Idempotency-Key` header); "
            "internal addresses are refused unless the service allows them."
        ),
    ] = None


def document_response(stored: StoredDocument) -> DocumentResponse:
    """The wire form of a stored article and its passages."""
    a = stored.article
    return DocumentResponse(
        id=a.id,
        title=a.title,
        text=a.text,
        url=a.url,
        source=a.source,
        published_at=a.published_at,
        lang=a.lang,
        section=a.section,
        tags=list(a.tags),
        passages=[
            PassageOut(passage_id=p.passage_id, ordinal=p.ordinal, text=p.text, page=p.page) for p in stored.passages
        ],
    )


class HealthResponse(msgspec.Struct, kw_only=True, frozen=True):
    """The process is up (says nothing about the index)."""

    status: str = "ok"


class ReadyResponse(msgspec.Struct, kw_only=True, frozen=True):
    """The index is loaded and searches will be answered."""

    status: str = "ready"
    documents: Annotated[int, _doc("Articles in the live index version.")]
    passages: Annotated[int, _doc("Passages in the live index version.")]
    model: Annotated[str, _doc("Embedding model the index was built with.")]
    version: Annotated[str, _doc("Live index version, e.g. `v000003`.")]
    read_only: Annotated[
        bool, _doc("The service is read-only (`service.read_only`): writes get 405, searches are served.")
    ] = False
    lexical_in_memory: Annotated[
        bool,
        _doc(
            "BM25 is answered from postings in memory (setting `lexical_in_memory`); false for the first seconds "
            "after a start or a reload while they are built, when the setting is off, and for a sharded archive: "
            "SQLite's FTS5 answers then, with the same results, more slowly."
        ),
    ] = False

    @classmethod
    def from_stats(
        cls, stats: IndexStats, *, read_only: bool = False, lexical_in_memory: bool = False
    ) -> ReadyResponse:
        return cls(
            documents=stats.documents,
            passages=stats.passages,
            model=stats.model,
            version=stats.version,
            read_only=read_only,
            lexical_in_memory=lexical_in_memory,
        )
