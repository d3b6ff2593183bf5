"""The shapes that cross a boundary: search results and the HTTP API's answers, declared once.

``Searcher`` returns these structs in-process, the service sends them as JSON (their field
docs are the OpenAPI schema's), and ``poshuk.Client`` decodes the JSON back into them; so
in-process and remote code see the same types, and a change here is a change of the
HTTP contract. Everything here is plain msgspec: no FAISS, numpy or SQLite, so a client
that only talks HTTP imports none of them. Every field added later gets a default
(msgspec's schema-evolution rule).

Request bodies stay with the service (``service.schemas``): only the service decodes them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, get_args

import msgspec

from poshuk.documents import Article
from poshuk.filters import Filters

Mode = Literal["dense", "lexical", "hybrid"]
MODES: tuple[str, ...] = get_args(Mode)
CANDIDATES = 200  # passages each retriever contributes; pages are cut from this pool
Sort = Literal["relevance", "newest", "oldest"]
SORTS: tuple[str, ...] = get_args(Sort)
Facet = Literal["source", "section", "lang", "tags", "month"]
FACETS: tuple[str, ...] = get_args(Facet)

HighlightKind = Literal["terms", "sentence"]


def _doc(text: str, **extra: Any) -> msgspec.Meta:
    return msgspec.Meta(description=text, **extra)


class Span(msgspec.Struct, frozen=True):
    """Characters `start` (inclusive) to `end` (exclusive) of the hit's `text`."""

    start: int
    end: int


class Hit(msgspec.Struct, frozen=True, kw_only=True):
    """One ranked passage with its article's metadata and where it matches."""

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
        list[Span], _doc("Where the passage matches: `text[start:end]` for each span, in order.")
    ] = []
    highlight_kind: Annotated[
        HighlightKind | None,
        _doc("`terms`: query words found; `sentence`: no words matched, the sentence closest in meaning."),
    ] = None
    other_matches: Annotated[
        int, _doc("With `collapse`: how many other passages of this article matched (0 without).")
    ] = 0
    cluster: Annotated[
        str | None, _doc("The story's cluster: the id of the first indexed article of the same story.")
    ] = None
    page: Annotated[int | None, _doc("The page the passage is on, for a document with pages (null for articles).")] = (
        None
    )
    other_pages: Annotated[
        list[int],
        _doc(
            "With `collapse`, for a document with pages: the pages its other matching passages are on, best "
            "first, each once, without this hit's `page` (at most 10; empty without)."
        ),
    ] = []


class FacetBucket(msgspec.Struct, frozen=True, kw_only=True):
    """One value of a facet: how many of the search's articles have it, and the filter that keeps them."""

    value: Annotated[str, _doc("The source, section, language, tag, or month (`2023-08`).")]
    count: Annotated[int, _doc("Articles of the search's candidate pool with this value, each once.")]
    filters: Annotated[
        dict[str, list[str] | str],
        _doc('Fields of the request\'s `filters` that apply this bucket, e.g. `{"source": ["Укрінформ"]}`.'),
    ]


class SearchResult(msgspec.Struct, frozen=True, kw_only=True):
    """The answer to one search."""

    query: Annotated[str, _doc("The query as searched (normalised, trimmed).")]
    took_ms: Annotated[float, _doc("Time spent searching, in milliseconds.")]
    model: Annotated[str, _doc("Name of the embedding model that encoded the query.")]
    hits: Annotated[list[Hit], _doc("Passages, best first.")]
    mode: Annotated[Mode, _doc("The retrieval mode used.")] = "hybrid"
    offset: Annotated[int, _doc("Hits skipped before the first one; the first hit's rank is `offset + 1`.")] = 0
    sort: Annotated[
        Sort, _doc("The order of the hits: `relevance`, or `newest`/`oldest` (the most relevant, by date).")
    ] = "relevance"
    facets: Annotated[
        dict[str, list[FacetBucket]],
        _doc("Counts per requested facet over the search's candidate pool (see the request's `facets`)."),
    ] = {}


class IndexStats(msgspec.Struct, frozen=True, kw_only=True):
    """Counts and identity of the open index."""

    documents: int
    passages: int
    model: str
    version: str


class PassageOut(msgspec.Struct, kw_only=True, frozen=True):
    """One passage of an article."""

    passage_id: str
    ordinal: Annotated[int, _doc("Position of the passage in its article, from 0.")]
    text: str
    page: Annotated[int | None, _doc("Its page, for a document with pages.")] = None


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

    def article(self) -> Article:
        """The article itself, as the library's ``Article``."""
        return Article(
            id=self.id,
            title=self.title,
            text=self.text,
            url=self.url,
            source=self.source,
            published_at=self.published_at,
            lang=self.lang,
            section=self.section,
            tags=tuple(self.tags),
        )


class WriteResult(msgspec.Struct, kw_only=True, frozen=True):
    """A durable write: it survives a crash from the moment this answer is sent, and searches see it."""

    ids: Annotated[list[str], _doc("Ids of the articles written (or deleted), in request order.")]
    passages: Annotated[int, _doc("Passages the written articles were cut into (0 for a delete).")]
    seq: Annotated[int, _doc("The index's change sequence number after this write.")]


MatchedBy = Literal["meaning", "words", "both"]


class Alert(msgspec.Struct, frozen=True, kw_only=True):
    """A saved search: new articles that match it become its matches (and webhook notifications)."""

    id: Annotated[str, _doc("The alert's id: also the secret part of its matches' and feed's addresses.")]
    query: Annotated[str, _doc("The saved query, as searched.")]
    mode: Annotated[
        Mode,
        _doc(
            "`dense`: a new article matches when a passage is at least `threshold` close in meaning; "
            "`lexical`: when it holds every query word; `hybrid`: either."
        ),
    ] = "hybrid"
    filters: Annotated[Filters | None, _doc("Only articles passing these filters match.")] = None
    threshold: Annotated[float, _doc("Cosine between the query and an article's best passage needed to match.")]
    webhook: Annotated[str | None, _doc("Where each match is POSTed (JSON, with an `Idempotency-Key`).")] = None
    top_k: Annotated[
        int | None,
        _doc("Set when the threshold was derived from the alert's own search: the cosine of its top_k-th article."),
    ] = None
    created_at: Annotated[datetime, _doc("When it was saved: only articles written after it match.")]
    matches: Annotated[int, _doc("Articles matched so far.")] = 0


class AlertMatch(msgspec.Struct, frozen=True, kw_only=True):
    """A new article that matched an alert, as it was when it matched."""

    doc_id: str
    title: str
    url: str | None = None
    source: str | None = None
    published_at: datetime | None = None
    lang: str | None = None
    passage_id: Annotated[str | None, _doc("The article's passage closest to the query.")] = None
    text: Annotated[str, _doc("That passage's text.")] = ""
    score: Annotated[float, _doc("Cosine between the query and that passage.")]
    matched_by: Annotated[MatchedBy, _doc("What matched: the meaning, every query word, or both.")]
    matched_at: Annotated[datetime, _doc("When the match was found (soon after the article was written).")]


class AlertMatches(msgspec.Struct, frozen=True, kw_only=True):
    """An alert's matches, best first."""

    alert: Alert
    matches: list[AlertMatch]


class WebhookNotification(msgspec.Struct, frozen=True, kw_only=True):
    """The JSON body POSTed to an alert's webhook for each match; ``key`` is also the `Idempotency-Key` header,
    the same on every retry, so a receiver that keeps the keys it has seen processes each match once."""

    key: str
    alert_id: str
    query: str
    match: AlertMatch


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
