"""What retrievers hand to fusion: the seam between "what a shard can answer" and "how it is ranked".

A retriever (dense, passage BM25, article BM25) runs against one index (one shard of an
archive) and returns ranked ``Candidate`` lists; ``poshuk.fusion`` ranks them globally
and never touches an index. Plain values only, so a shard on another machine can send
them (``msgspec`` encodes them as they are).
"""

from __future__ import annotations

from typing import NamedTuple

import msgspec


class Candidate(NamedTuple):
    """One passage (or, from article BM25, one article unit by its first passage) a retriever found.

    An article unit is a whole article, or one page of a document with pages: a page is what a
    hit points to there, so the article-level vote must tell a document's pages apart (issue 15)."""

    row: int  # the passage's row id; for an article unit, the row id of its first passage
    doc_id: str
    score: float  # the retriever's raw score: cosine, or BM25 (higher is better)
    matched: tuple[str, ...] = ()  # the query terms (evidence units) it contains; () for dense
    page: int | None = None  # the passage's (or unit's) page; None: not a document with pages

    @property
    def unit(self) -> tuple[str, int | None]:
        """The article unit it belongs to: its article, or its page of a document with pages."""
        return (self.doc_id, self.page)


class RowGroup(NamedTuple):
    """What a ranking needs of a row to collapse it by article or story and order it by date,
    without reading the passage's text."""

    doc_id: str
    cluster: str | None
    published_ts: float | None  # the article's date as a POSIX timestamp; None: undated


class ArticleFacts(NamedTuple):
    """What facets count of one article (``poshuk.facets``)."""

    source: str | None
    section: str | None
    lang: str | None
    tags: tuple[str, ...]
    published_ts: float | None


class Candidates(msgspec.Struct, frozen=True, kw_only=True):
    """Each retriever's ranked list for one query, best first."""

    dense: list[Candidate] = []
    passages: list[Candidate] = []
    articles: list[Candidate] = []
