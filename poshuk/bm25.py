"""FTS5's BM25 (``fts5_aux.c``'s ``fts5Bm25Function``) as Python: the constants, the query's
phrases in FTS5's order, idf and the score of one row, in FTS5's order of operations -- IEEE
doubles then give the value the C code gives, to the last bit.

Two things score rows outside FTS5 with it: a sharded archive's router (statistics summed
over shards, ``poshuk.shards.bm25``) and the postings in memory (``poshuk.index.postings``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from poshuk.query import QueryTerms

K1 = 1.2
B = 0.75
MIN_IDF = 1e-6  # FTS5's floor for a phrase in more than half the rows


@dataclass(frozen=True)
class Phrase:
    """One phrase of the FTS5 query, in ``QueryTerms.match_expression``'s order."""

    text: str
    prefix: bool

    @property
    def match(self) -> str:
        return f'"{self.text}"*' if self.prefix else f'"{self.text}"'


def phrases_of(terms: QueryTerms) -> list[Phrase]:
    return [Phrase(t, False) for t in terms.terms] + [Phrase(p, True) for p in terms.prefixes]


def idf(rows: int, hits: int) -> float:
    value = math.log((rows - hits + 0.5) / (hits + 0.5))
    return value if value > 0.0 else MIN_IDF


def score(idfs: Sequence[float], freqs: Sequence[float], length: int, avgdl: float) -> float:
    """FTS5's ``-bm25()`` of one row, its terms in FTS5's order (``fts5Bm25Function``)."""
    d = float(length)
    value = 0.0
    for weight, tf in zip(idfs, freqs, strict=True):
        value += weight * ((tf * (K1 + 1.0)) / (tf + K1 * (1 - B + B * d / avgdl)))
    return value  # what ``-bm25(table)`` gives: FTS5 returns -1.0 * value
