"""Wire schemas of the HTTP API: msgspec Structs, kw_only and frozen.

The service mirrors the core's result types here rather than exposing them directly, so
the HTTP contract (field docs, examples, evolution) is declared in one place and the core
can change shape without breaking clients. Every field added later gets a default.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec

from poshuk.search import Hit, IndexStats, SearchResult
from poshuk.store import StoredDocument


def _doc(text: str, **extra: Any) -> msgspec.Meta:
    return msgspec.Meta(description=text, **extra)


class SearchRequest(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """A search: free text in Ukrainian or English and how many passages to return."""

    query: Annotated[str, _doc("What to look for, in any language the model knows.")]
    k: Annotated[int, _doc("How many passages to return, best first.")] = 10


class HitOut(msgspec.Struct, kw_only=True, frozen=True):
    """One ranked passage with its article's metadata."""

    rank: Annotated[int, _doc("1 for the best passage, then 2, 3, ...")]
    score: Annotated[float, _doc("Cosine similarity between query and passage; higher is closer.")]
    passage_id: Annotated[str, _doc("Stable passage id, `{doc_id}#{ordinal}`.")]
    doc_id: Annotated[str, _doc("Id of the article the passage belongs to.")]
    title: Annotated[str, _doc("The article's title.")]
    text: Annotated[str, _doc("The passage text.")]
    url: str | None = None
    source: str | None = None
    published_at: datetime | None = None
    lang: str | None = None

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
        )


class SearchResponse(msgspec.Struct, kw_only=True, frozen=True):
    """The answer to one search."""

    query: Annotated[str, _doc("The query as searched (normalised, trimmed).")]
    took_ms: Annotated[float, _doc("Time spent searching, in milliseconds.")]
    model: Annotated[str, _doc("Name of the embedding model that encoded the query.")]
    hits: Annotated[list[HitOut], _doc("Passages, best first.")]

    @classmethod
    def from_result(cls, result: SearchResult) -> SearchResponse:
        return cls(
            query=result.query,
            took_ms=result.took_ms,
            model=result.model,
            hits=[HitOut.from_hit(h) for h in result.hits],
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
