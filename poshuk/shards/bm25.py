"""FTS5's ``bm25()`` with statistics summed over shards, reproduced to the last bit (the formula
itself: ``poshuk.bm25``).

FTS5 scores a row with table-wide statistics whatever the ``WHERE``: N rows, their average
length, and for each phrase of the query the rows containing it (``fts5_aux.c``). A shard
knows only its own, so its scores differ from one index's. The router sums each shard's
statistics and scores every candidate again with FTS5's own expression, in FTS5's order of
operations, from the candidate's term frequencies and length (its stored terms: word
characters only, one FTS5 token each) -- IEEE doubles then give the same value as the C code.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass

from poshuk.bm25 import MIN_IDF as MIN_IDF
from poshuk.bm25 import Phrase as Phrase
from poshuk.bm25 import idf as idf
from poshuk.bm25 import phrases_of as phrases_of
from poshuk.bm25 import score as score
from poshuk.index.db import select_in


@dataclass(frozen=True)
class TableStats:
    """What FTS5's BM25 reads of one table: rows, tokens in them, rows containing each phrase."""

    rows: int
    tokens: int
    hits: tuple[int, ...]

    @property
    def avgdl(self) -> float:
        return float(self.tokens) / float(self.rows)

    def idf(self) -> list[float]:
        return [idf(self.rows, n) for n in self.hits]


def total(stats: Sequence[TableStats]) -> TableStats:
    """The statistics of all shards together: what one index over all of them would read."""
    width = len(stats[0].hits) if stats else 0
    return TableStats(
        rows=sum(s.rows for s in stats),
        tokens=sum(s.tokens for s in stats),
        hits=tuple(sum(s.hits[i] for s in stats) for i in range(width)),
    )


def _varint(blob: bytes, at: int) -> tuple[int, int]:
    """SQLite's variable-length integer at ``at``: (value, next offset)."""
    value = 0
    for n in range(8):
        byte = blob[at + n]
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            return value, at + n + 1
    return (value << 8) | blob[at + 8], at + 9


def table_stats(conn: sqlite3.Connection, table: str, phrases: Sequence[Phrase]) -> TableStats:
    """One shard's statistics for ``table`` (``lexical`` or ``article_lexical``): the row and token
    counts from FTS5's averages record, and a count of the rows matching each phrase."""
    found = conn.execute(f"SELECT block FROM {table}_data WHERE id = 1").fetchone()
    rows = tokens = 0
    if found is not None and found[0]:
        rows, at = _varint(found[0], 0)
        tokens, _ = _varint(found[0], at)
    hits = tuple(
        int(conn.execute(f"SELECT count(*) FROM {table} WHERE {table} MATCH ?", (p.match,)).fetchone()[0])
        if rows
        else 0
        for p in phrases
    )
    return TableStats(rows=rows, tokens=tokens, hits=hits)


def needles(phrases: Sequence[Phrase]) -> list[str]:
    """What ``frequencies`` looks for: `` term `` for a term, `` prefix`` for a prefix."""
    return [f" {p.text.lower()}" if p.prefix else f" {p.text.lower()} " for p in phrases]


def frequencies(indexed: str, wanted: Sequence[str]) -> list[float]:
    """Occurrences of each phrase (its ``needles``) among a row's space-separated indexed
    terms. Counted on the string, every token between two spaces of its own: splitting long
    article terms into tokens cost most of a sharded search."""
    spaced = " " + indexed.lower().replace(" ", "  ") + " "  # unicode61 folds case, terms and query alike
    return [float(spaced.count(needle)) for needle in wanted]


def lengths(conn: sqlite3.Connection, table: str, rows: Sequence[int]) -> dict[int, int]:
    """Tokens in each row, as FTS5 counted them (its ``docsize`` record)."""
    found = select_in(conn, f"SELECT id, sz FROM {table}_docsize WHERE id IN ({{}})", rows)
    return {int(row): _varint(blob, 0)[0] if blob else 0 for row, blob in found}
