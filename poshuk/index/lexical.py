"""BM25 retrieval over SQLite FTS5: passages, and article units (all the terms of an article's
passages, or of one page's passages in a document with pages).

When the index holds its postings in memory at the search's snapshot
(``poshuk.index.lexical_mirror``), they answer instead: the same rows and scores, without
FTS5's page reads or reading the candidates' terms back for their evidence.

Each retriever answers in one call with the candidates and the query terms each one
contains, which is all fusion needs (coverage weighting) and all a shard must send.
A broad filter (at least half the archive) ranks unfiltered and keeps the allowed rows,
reading a few times the wanted number; a narrow one joins the filter into the query.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import NDArray

from poshuk.bm25 import phrases_of
from poshuk.candidates import Candidate
from poshuk.index.db import has_articles, page_column, select_in
from poshuk.index.lexical_mirror import LexicalState
from poshuk.index.plan import FilterPlan
from poshuk.index.postings import TablePostings, Weights, mirrorable
from poshuk.index.row_units import RowUnits
from poshuk.query import QueryTerms


def _ranked_among(
    conn: sqlite3.Connection,
    sql: str,
    match: str,
    limit: int,
    broad: tuple[NDArray[np.int64], int],
    row_of: Callable[[Any], int],
) -> list[Any] | None:
    """The first ``limit`` rows of an unfiltered ranking whose row is allowed, reading a few
    times ``limit`` rows; None when that many do not suffice (the caller joins instead)."""
    allowed, total = broad
    fetch = int(limit * 1.5 * total / max(len(allowed), 1)) + 10
    rows = conn.execute(sql, [match, fetch]).fetchall()
    ids = np.fromiter((row_of(r) for r in rows), dtype=np.int64, count=len(rows))
    position = np.searchsorted(allowed, ids)
    keep = (position < len(allowed)) & (allowed[np.minimum(position, len(allowed) - 1)] == ids)
    kept = [r for r, ok in zip(rows, keep.tolist(), strict=True) if ok]
    if len(kept) >= limit or len(rows) < fetch:
        return kept[:limit]
    return None


def passage_bm25(
    plan: FilterPlan,
    terms: QueryTerms,
    limit: int,
    *,
    evidence: bool = True,
    pages: bool = False,
    memory: LexicalState | None = None,
) -> list[Candidate]:
    """The best ``limit`` passages by BM25, with their article, page and the query terms each
    contains (without ``evidence``: rows and scores only, for a lexical-only ranking); ``pages``:
    whether the database has ``passages.page``; ``memory``: the postings at the plan's snapshot,
    which answer instead of FTS5 when they can (the same rows and scores)."""
    if terms.empty:
        return []
    if memory is not None and _answers(memory.passages, terms):
        return _from_postings(plan, terms, limit, memory.passages, memory.units, evidence=evidence)
    conn, match = plan.conn, terms.match_expression()
    rows: list[Any] | None = None
    broad = plan.broad()
    if broad is not None:
        plain = (
            "SELECT l.rowid, -bm25(lexical) AS score FROM lexical l "
            "WHERE lexical MATCH ? ORDER BY bm25(lexical), l.rowid LIMIT ?"
        )
        rows = _ranked_among(conn, plain, match, limit, broad, lambda r: int(r[0]))
    if rows is None:
        join = ""
        if not plan.unfiltered:
            join = " JOIN passages p ON p.row_id = l.rowid JOIN documents d ON d.doc_id = p.doc_id"
        sql = (
            f"SELECT l.rowid, -bm25(lexical) AS score FROM lexical l{join} "
            f"WHERE lexical MATCH ? AND {plan.condition} ORDER BY bm25(lexical), l.rowid LIMIT ?"
        )
        rows = conn.execute(sql, [match, *plan.params, limit]).fetchall()
    if not evidence:
        return [Candidate(int(r), "", float(score)) for r, score in rows]
    found = select_in(
        conn,
        f"SELECT l.rowid, l.terms, p.doc_id, {page_column(pages)} FROM lexical l "
        "JOIN passages p ON p.row_id = l.rowid WHERE l.rowid IN ({})",
        [int(r) for r, _ in rows],
    )
    indexed = {int(r): (str(t), str(doc), page) for r, t, doc, page in found}
    units_in = terms.finder()
    out = []
    for r, score in rows:
        words, doc, page = indexed.get(int(r), ("", "", None))
        if doc:
            out.append(Candidate(int(r), doc, float(score), units_in(words), page))
    return out


def article_bm25(
    plan: FilterPlan,
    terms: QueryTerms,
    limit: int,
    *,
    evidence: bool = True,
    pages: bool = False,
    memory: LexicalState | None = None,
) -> list[Candidate]:
    """The best ``limit`` article units by BM25 over all their terms (each as the row of its first
    passage), with their article, page and the query terms each contains (without ``evidence``:
    rows and scores only); [] for an index without article terms. ``memory`` as for passages."""
    if terms.empty:
        return []
    if memory is not None and _answers(memory.articles, terms):
        assert memory.articles is not None
        return _from_postings(plan, terms, limit, memory.articles, memory.units, evidence=evidence)
    conn, match = plan.conn, terms.match_expression()
    try:
        rows: list[Any] | None = None
        broad = plan.broad()
        if broad is not None:
            plain = (
                "SELECT p.doc_id, a.rowid, -bm25(article_lexical) AS score FROM article_lexical a "
                "JOIN passages p ON p.row_id = a.rowid "
                "WHERE article_lexical MATCH ? ORDER BY bm25(article_lexical), a.rowid LIMIT ?"
            )
            rows = _ranked_among(conn, plain, match, limit, broad, lambda r: int(r[1]))
        if rows is None:
            join = "" if plan.unfiltered else " JOIN documents d ON d.doc_id = p.doc_id"
            sql = (
                "SELECT p.doc_id, a.rowid, -bm25(article_lexical) AS score FROM article_lexical a "
                f"JOIN passages p ON p.row_id = a.rowid{join} "
                f"WHERE article_lexical MATCH ? AND {plan.condition} ORDER BY bm25(article_lexical), a.rowid LIMIT ?"
            )
            rows = conn.execute(sql, [match, *plan.params, limit]).fetchall()
    except sqlite3.OperationalError:
        if has_articles(conn):
            raise
        return []
    if not evidence:
        return [Candidate(int(r), "", float(score)) for _, r, score in rows]
    found = select_in(
        conn,
        f"SELECT a.rowid, a.terms, {page_column(pages)} FROM article_lexical a "
        "JOIN passages p ON p.row_id = a.rowid WHERE a.rowid IN ({})",
        [int(r) for _, r, _ in rows],
    )
    indexed = {int(r): (str(t), page) for r, t, page in found}
    units_in = terms.finder()
    out = []
    for doc, r, score in rows:
        words, page = indexed.get(int(r), ("", None))
        out.append(Candidate(int(r), str(doc), float(score), units_in(words), page))
    return out


def _answers(postings: TablePostings | None, terms: QueryTerms) -> bool:
    """Whether ``postings`` give FTS5's answer for ``terms`` (every term and phrase one FTS5 token)."""
    return postings is not None and postings.exact and mirrorable(phrases_of(terms))


def weighted_bm25(
    plan: FilterPlan, terms: QueryTerms, limit: int, memory: LexicalState, *, articles: bool, stats: Weights
) -> list[Candidate] | None:
    """The best ``limit`` rows of one table by BM25 with statistics given by the caller (a sharded
    archive's: the scores one index over all shards would give), with their evidence; None when the
    postings cannot answer as FTS5 would (the caller scores FTS5's rows again instead)."""
    postings = memory.articles if articles else memory.passages
    if not _answers(postings, terms):
        return None
    assert postings is not None
    return _from_postings(plan, terms, limit, postings, memory.units, evidence=True, stats=stats)


def _from_postings(
    plan: FilterPlan,
    terms: QueryTerms,
    limit: int,
    postings: TablePostings,
    units: RowUnits,
    *,
    evidence: bool,
    stats: Weights | None = None,
) -> list[Candidate]:
    """FTS5's answer from the postings in memory; the evidence (which units a row contains) comes
    from the phrases each row matched, not from reading its terms back (``UnitFinder``'s answer:
    a unit is its term, or any of its prefixes)."""
    allowed = plan.allowed()
    if allowed is not None and not len(allowed):
        return []
    ranked = postings.top(phrases_of(terms), limit, allowed, stats)
    if not evidence:
        return [Candidate(r, "", s) for r, s in zip(ranked.rows, ranked.scores, strict=True)]
    unit_of = units.of(ranked.rows)
    prefixes = terms.prefixes
    phrase_sets = [[i] + [len(terms.units) + prefixes.index(p) for p in u.prefixes] for i, u in enumerate(terms.units)]
    contains = np.stack([ranked.matched[:, ps].any(axis=1) for ps in phrase_sets], axis=1)
    # Few distinct combinations of matched units: each one's tuple is made once.
    codes = [row.tobytes() for row in np.packbits(contains, axis=1)]
    names = [u.term for u in terms.units]
    matched: dict[bytes, tuple[str, ...]] = {}
    out = []
    for n, (row, score) in enumerate(zip(ranked.rows, ranked.scores, strict=True)):
        found = unit_of.get(row)
        if found is not None:
            code = codes[n]
            held = matched.get(code)
            if held is None:
                held = matched[code] = tuple(t for t, hit in zip(names, contains[n].tolist(), strict=True) if hit)
            out.append(Candidate(row, found[0], score, held, found[1]))
    return out
