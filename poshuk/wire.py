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
