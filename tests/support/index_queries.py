"""One retriever at a time over an open ``Index`` (tests ask narrow questions; searches ask all at once)."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from poshuk.filters import Filters
from poshuk.index import Index, RetrievalQuery
from poshuk.query import QueryTerms, Unit

NO_TERMS = QueryTerms(units=())


def terms(*words: str) -> QueryTerms:
    """Query terms matching any of ``words`` (FTS5: ``"a" OR "b"``)."""
    return QueryTerms(units=tuple(Unit(w) for w in words))


def dense(index: Index, vector: NDArray[np.float32], k: int, filters: Filters | None = None) -> list[tuple[int, float]]:
    found = index.retrieve(RetrievalQuery(terms=NO_TERMS, vector=vector, filters=filters, limit=k))
    return [(c.row, c.score) for c in found.dense]


def lexical(index: Index, words: QueryTerms, k: int, filters: Filters | None = None) -> list[tuple[int, float]]:
    found = index.retrieve(RetrievalQuery(terms=words, filters=filters, limit=k, lexical=True))
    return [(c.row, c.score) for c in found.passages]


def articles(index: Index, words: QueryTerms, k: int, filters: Filters | None = None) -> list[tuple[str, int, float]]:
    found = index.retrieve(RetrievalQuery(terms=words, filters=filters, limit=k, articles=True))
    return [(c.doc_id, c.row, c.score) for c in found.articles]


def allowed_rows(index: Index, filters: Filters) -> NDArray[np.int64]:
    """The row ids ``filters`` allow, through the index's own cache (as a search plans them)."""
    from poshuk.index.plan import FilterPlan

    allowed = FilterPlan(index.read(), filters, index.allowed_cache).allowed()
    assert allowed is not None
    return allowed


def article_terms(index: Index, row: int) -> str:
    (found,) = index.read().execute("SELECT terms FROM article_lexical WHERE rowid = ?", (row,)).fetchone()
    return str(found)


def passage_terms(index: Index, rows: list[int]) -> dict[int, list[str]]:
    found = (
        index.read()
        .execute(f"SELECT rowid, terms FROM lexical WHERE rowid IN ({','.join('?' * len(rows))})", rows)
        .fetchall()
    )
    return {int(r): str(t).split() for r, t in found}
