"""Wire schemas of the HTTP API: msgspec Structs, kw_only and frozen.

The service mirrors the core's result types here rather than exposing them directly, so
the HTTP contract (field docs, examples, evolution) is declared in one place and the core
can change shape without breaking clients. Every field added later gets a default.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from typing import Annotated, Any, Literal

import msgspec

from poshuk.errors import InvalidQueryError
from poshuk.filters import Filters, timestamp
from poshuk.index import StoredDocument
from poshuk.search import CANDIDATES, Hit, IndexStats, Mode, SearchResult


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
    "With `highlight`: for the top 3 hits that match no query word (found by meaning only), mark the "
    "sentence closest to the query (`highlight_kind: sentence`). It costs a model call over their "
    "sentences, most of a search's time; a page can search without it, show the hits, then ask again with it."
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
    semantic_highlights: Annotated[bool, _doc(SEMANTIC_HIGHLIGHTS_DOC)] = True
    dedupe: Annotated[
        bool, _doc("Return each story once: one hit per cluster of copies, edited copies and translations.")
    ] = False


class SpanOut(msgspec.Struct, kw_only=True, frozen=True):
    """Characters `start` (inclusive) to `end` (exclusive) of the hit's `text`."""

    start: int
    end: int


class HitOut(msgspec.Struct, kw_only=True, frozen=True):
    """One ranked passage with its article's metadata."""

    rank: Annotated[int, _doc("1 for the best passage, then 2, 3, ...")]
    score: Annotated[
        float,
        _doc(
            "Higher is better; comparable within one response only. `dense`: cosine similarity; "
            "`lexical`: BM25; `hybrid`: the fused rank score."
        ),
    ]
    passage_id: Annotated[str, _doc("Stable passage id, `{doc_id}#{ordinal}`.")]
    doc_id: Annotated[str, _doc("Id of the article the passage belongs to.")]
    title: Annotated[str, _doc("The article's title.")]
    text: Annotated[str, _doc("The passage text.")]
    url: str | None = None
    source: str | None = None
    published_at: datetime | None = None
    lang: str | None = None
    highlights: Annotated[
        list[SpanOut], _doc("Where the passage matches: `text[start:end]` for each span, in order.")
    ] = []
    highlight_kind: Annotated[
        Literal["terms", "sentence"] | None,
        _doc("`terms`: query words found; `sentence`: no words matched, the sentence closest in meaning."),
    ] = None
    other_matches: Annotated[
        int, _doc("With `collapse`: how many other passages of this article matched (0 without).")
    ] = 0
    cluster: Annotated[
        str | None, _doc("The story's cluster: the id of the first indexed article of the same story.")
    ] = None

    @classmethod
    def from_hit(cls, hit: Hit) -> HitOut:
        return cls(
            rank=hit.rank,
            score=hit.score,
            passage_id=hit.passage_id,
            doc_id=hit.doc_id,
            title=hit.title,
            text=hit.text,
            url=hit.url,
            source=hit.source,
            published_at=hit.published_at,
            lang=hit.lang,
            highlights=[SpanOut(start=s.start, end=s.end) for s in hit.highlights],
            highlight_kind=hit.highlight_kind,
            other_matches=hit.other_matches,
            cluster=hit.cluster,
        )


class SearchResponse(msgspec.Struct, kw_only=True, frozen=True):
    """The answer to one search."""

    query: Annotated[str, _doc("The query as searched (normalised, trimmed).")]
    took_ms: Annotated[float, _doc("Time spent searching, in milliseconds.")]
    model: Annotated[str, _doc("Name of the embedding model that encoded the query.")]
    hits: Annotated[list[HitOut], _doc("Passages, best first.")]
    mode: Annotated[Mode, _doc("The retrieval mode used.")] = "hybrid"
    offset: Annotated[int, _doc("Hits skipped before the first one; the first hit's rank is `offset + 1`.")] = 0

    @classmethod
    def from_result(cls, result: SearchResult) -> SearchResponse:
        return cls(
            query=result.query,
            took_ms=result.took_ms,
            model=result.model,
            hits=[HitOut.from_hit(h) for h in result.hits],
            mode=result.mode,
            offset=result.offset,
        )


class PassageOut(msgspec.Struct, kw_only=True, frozen=True):
    """One passage of an article."""

    passage_id: str
    ordinal: Annotated[int, _doc("Position of the passage in its article, from 0.")]
    text: str


class DocumentResponse(msgspec.Struct, kw_only=True, frozen=True):
    """An indexed article with its passages in order."""

    id: str
    title: str
    text: str
    url: str | None = None
    source: str | None = None
    published_at: datetime | None = None
    lang: str | None = None
    section: str | None = None
    tags: list[str] = msgspec.field(default_factory=list)
    passages: list[PassageOut] = msgspec.field(default_factory=list)

    @classmethod
    def from_stored(cls, stored: StoredDocument) -> DocumentResponse:
        a = stored.article
        return cls(
            id=a.id,
            title=a.title,
            text=a.text,
            url=a.url,
            source=a.source,
            published_at=a.published_at,
            lang=a.lang,
            section=a.section,
            tags=list(a.tags),
            passages=[PassageOut(passage_id=p.passage_id, ordinal=p.ordinal, text=p.text) for p in stored.passages],
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

    @classmethod
    def from_stats(cls, stats: IndexStats) -> ReadyResponse:
        return cls(documents=stats.documents, passages=stats.passages, model=stats.model, version=stats.version)


class FieldProblem(msgspec.Struct, kw_only=True, frozen=True, omit_defaults=True):
    """One invalid field of a request."""

    message: str
    key: str | None = None
    source: str | None = None


class Problem(msgspec.Struct, kw_only=True, frozen=True, omit_defaults=True):
    """An RFC 9457 problem details object, sent as `application/problem+json`."""

    type: Annotated[str, _doc("A URI naming the kind of problem, or `about:blank`.")]
    title: Annotated[str, _doc("Short summary of the kind of problem.")]
    status: Annotated[int, _doc("The HTTP status code.")]
    detail: Annotated[str, _doc("What went wrong with this request.")]
    instance: Annotated[str | None, _doc("The request path.")] = None
    errors: Annotated[list[FieldProblem] | None, _doc("Per-field problems, when there are any.")] = None
