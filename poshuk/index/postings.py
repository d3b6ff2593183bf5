"""FTS5's BM25 over postings held in memory: the same rows in the same order with the same scores.

FTS5 reads its postings from SQLite's b-tree pages on every query; at 100k passages that was
a third of a hybrid search's time (issue 14's profile: 9.2 ms for the passages' top 200, 3.4
ms for the article units'). Here one table's terms are held as sorted postings in numpy
arrays and scored with FTS5's own expression in FTS5's order of operations
(``poshuk.bm25``), so IEEE doubles give FTS5's value to the last bit: the top 200 of 300 real
queries over 107,560 passages were the same rows with bit-equal scores, in 0.82 ms instead of
FTS5's 7.15 (article units: 0.52 ms instead of 3.19). Scores add up in an array by row place,
not over a sorted union of the phrases' rows (that union was half the time).

Postings live in immutable segments (as in Lucene): a change adds a segment for its new rows
and marks its removed rows dead, adjacent segments of similar size are merged, so a write
costs about its own size and readers keep whatever ``TablePostings`` they picked up -- no
reader ever waits.

Exactness holds while every indexed term is one FTS5 token, spelled as FTS5 keeps it
(``unicode61``: case folded, diacritics kept): the analyzer's terms are. A table holding a term that is not (or a query
phrase that is not) is answered by FTS5 instead (``exact`` / ``mirrorable``).
"""

from __future__ import annotations

import bisect
import itertools
import re
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache

import numpy as np
from numpy.typing import NDArray

from poshuk.bm25 import K1, B, Phrase, idf

BUILD_CHUNK = 10_000  # rows split into tokens at a time while building

# Characters FTS5 keeps as they are inside a token: ASCII digits, lower-case ASCII, Latin-1 and
# Cyrillic letters (Ukrainian's among them). A term with any other is checked by FTS5 itself.
_PLAIN_TOKEN = re.compile(r"[0-9a-z\u00df-\u00f6\u00f8-\u00ff\u0430-\u045f\u0491]+")


@lru_cache(maxsize=4096)  # bounded: query phrases come from anyone
def _one_token(term: str) -> bool:
    """Whether FTS5's ``unicode61 remove_diacritics 0`` reads ``term`` as one token, itself."""
    conn = sqlite3.connect(":memory:")
    try:
        conn.execute('CREATE VIRTUAL TABLE t USING fts5(x, tokenize = "unicode61 remove_diacritics 0")')
        conn.execute("CREATE VIRTUAL TABLE v USING fts5vocab(t, 'instance')")
        conn.execute("INSERT INTO t (x) VALUES (?)", (term,))
        found = [str(t) for (t,) in conn.execute("SELECT term FROM v")]
    finally:
        conn.close()
    return found == [term]


def is_token(term: str) -> bool:
    """Whether ``term`` is exactly one FTS5 token, spelled as FTS5 keeps it."""
    return _PLAIN_TOKEN.fullmatch(term) is not None or (bool(term) and _one_token(term))


def mirrorable(phrases: Sequence[Phrase]) -> bool:
    """Whether postings can answer these phrases as FTS5 does (each is one token)."""
    return all(is_token(p.text) for p in phrases)


_EMPTY_INT = np.zeros(0, dtype=np.int64)
_EMPTY_FLOAT = np.zeros(0, dtype=np.float64)


@dataclass(frozen=True)
class Segment:
    """Postings of some rows of one table, sorted by term then row; never changed once built."""

    rows: NDArray[np.int64]  # row ids, ascending; a posting's slot indexes them
    lengths: NDArray[np.int64]  # tokens in each row (FTS5's document length)
    vocab: list[str]  # distinct terms, sorted
    starts: NDArray[np.int64]  # postings of vocab[i]: starts[i]:starts[i + 1]
    slots: NDArray[np.int32]
    counts: NDArray[np.int32]  # occurrences of the term in the row

    @classmethod
    def build(cls, pairs: Iterable[tuple[int, str]]) -> Segment:
        """Postings of (row id, space-separated terms) pairs (a term FTS5 would fold or split makes
        its table ``exact=False``: FTS5 then answers). Read
        ``BUILD_CHUNK`` rows at a time: splitting all of them at once held every token as a
        Python string (RSS +355 MB over 107,560 passages, for ~50 MB of postings)."""
        where: dict[str, int] = {}
        rows: list[int] = []
        lengths: list[NDArray[np.int64]] = []
        terms: list[NDArray[np.int32]] = []
        stream = iter(pairs)
        while chunk := list(itertools.islice(stream, BUILD_CHUNK)):
            split = [str(text).split() for _, text in chunk]
            rows.extend(int(row) for row, _ in chunk)
            lengths.append(np.fromiter(map(len, split), dtype=np.int64, count=len(split)))
            tokens = list(itertools.chain.from_iterable(split))
            for term in set(tokens).difference(where):
                where[term] = len(where)
            terms.append(np.fromiter(map(where.__getitem__, tokens), dtype=np.int32, count=len(tokens)))
        vocab = sorted(where)
        rank = np.empty(len(vocab), dtype=np.int64)
        rank[np.fromiter(map(where.__getitem__, vocab), dtype=np.int64, count=len(vocab))] = np.arange(len(vocab))
        # Fresh copies, side by side in memory: the split strings sit among every chunk's freed
        # tokens and would keep their memory from going back (RSS +140 MB instead of ~40 MB).
        vocab = "\n".join(vocab).split("\n") if vocab else []
        del where
        length = np.concatenate(lengths) if lengths else _EMPTY_INT
        ids = rank[np.concatenate(terms)] if terms else _EMPTY_INT
        slots = np.repeat(np.arange(len(rows), dtype=np.int64), length)
        return cls._from_pairs(np.asarray(rows, dtype=np.int64), length, vocab, ids, slots)

    @classmethod
    def _from_pairs(
        cls,
        rows: NDArray[np.int64],
        lengths: NDArray[np.int64],
        vocab: list[str],
        terms: NDArray[np.int64],
        slots: NDArray[np.int64],
        counts: NDArray[np.int64] | None = None,
    ) -> Segment:
        """A segment from one (term, slot[, count]) pair per token (or per posting, with counts);
        rows in any order (sorted here: removals look rows up by bisection)."""
        order = np.argsort(rows, kind="stable")
        if len(order) and np.any(order != np.arange(len(order))):
            position = np.empty_like(order)
            position[order] = np.arange(len(order))
            rows, lengths, slots = rows[order], lengths[order], position[slots]
        width = max(len(rows), 1)
        keys, found = np.unique(terms * width + slots, return_counts=True)
        if counts is not None:
            found = np.bincount(np.searchsorted(keys, terms * width + slots), weights=counts, minlength=len(keys))
        term_of = keys // width
        starts = np.searchsorted(term_of, np.arange(len(vocab) + 1)).astype(np.int64)
        return cls(
            rows=rows,
            lengths=lengths,
            vocab=vocab,
            starts=starts,
            slots=(keys % width).astype(np.int32),
            counts=np.asarray(found, dtype=np.int32),
        )

    @property
    def postings(self) -> int:
        return len(self.slots)

    def span(self, phrase: Phrase) -> tuple[int, int]:
        """The postings of ``phrase``: one term's, or every term it prefixes (adjacent, as sorted)."""
        text = phrase.text
        lo = bisect.bisect_left(self.vocab, text)
        if not phrase.prefix:
            hit = lo < len(self.vocab) and self.vocab[lo] == text
            return (int(self.starts[lo]), int(self.starts[lo + 1])) if hit else (0, 0)
        hi = bisect.bisect_left(self.vocab, text[:-1] + chr(ord(text[-1]) + 1), lo) if text else len(self.vocab)
        return int(self.starts[lo]), int(self.starts[hi])

    def matches(self, phrase: Phrase, alive: NDArray[np.bool_] | None) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
        """(slots, occurrences) of the live rows containing ``phrase``; a row once."""
        lo, hi = self.span(phrase)
        if lo == hi:
            return _EMPTY_INT, _EMPTY_FLOAT
        slots = self.slots[lo:hi].astype(np.int64)
        counts = self.counts[lo:hi].astype(np.float64)
        if phrase.prefix:  # several terms: one row may hold more than one of them
            slots, inverse = np.unique(slots, return_inverse=True)
            counts = np.asarray(np.bincount(inverse, weights=counts, minlength=len(slots)), dtype=np.float64)
        if alive is not None:
            keep = alive[slots]
            slots, counts = slots[keep], counts[keep]
        return slots, counts

    def merged(self, other: Segment, alive: tuple[NDArray[np.bool_] | None, NDArray[np.bool_] | None]) -> Segment:
        """One segment holding both segments' live rows."""
        parts = [(self, alive[0]), (other, alive[1])]
        vocab = sorted(set(self.vocab).union(other.vocab))
        where = {t: i for i, t in enumerate(vocab)}
        rows, lengths, terms, slots, counts = [], [], [], [], []
        offset = 0
        for segment, live in parts:
            keep = np.ones(len(segment.rows), dtype=bool) if live is None else live
            renumber = np.cumsum(keep) - 1 + offset
            mapping = np.fromiter((where[t] for t in segment.vocab), dtype=np.int64, count=len(segment.vocab))
            term_of = np.repeat(mapping, np.diff(segment.starts))
            posted = keep[segment.slots]
            rows.append(segment.rows[keep])
            lengths.append(segment.lengths[keep])
            terms.append(term_of[posted])
            slots.append(renumber[segment.slots[posted]])
            counts.append(segment.counts[posted].astype(np.int64))
            offset += int(keep.sum())
        used = np.unique(np.concatenate(terms)) if offset else _EMPTY_INT
        if len(used) < len(vocab):  # terms only dead rows held
            remap = np.full(len(vocab), -1, dtype=np.int64)
            remap[used] = np.arange(len(used))
            vocab = [vocab[i] for i in used.tolist()]
            terms = [remap[t] for t in terms]
        return Segment._from_pairs(
            np.concatenate(rows),
            np.concatenate(lengths),
            vocab,
            np.concatenate(terms),
            np.concatenate(slots),
            np.concatenate(counts),
        )


@dataclass(frozen=True)
class Weights:
    """BM25 statistics given from outside a table: each phrase's IDF, in the query's order, and the
    average row length."""

    idfs: tuple[float, ...]
    avgdl: float


@dataclass(frozen=True)
class Ranked:
    """A table's best rows for a query, with which of the query's phrases each row contains."""

    rows: list[int]
    scores: list[float]
    matched: NDArray[np.bool_]  # (rows, phrases)


@dataclass(frozen=True)
class TablePostings:
    """One FTS5 table in memory at one change of the index: segments, dead rows, FTS5's totals."""

    segments: tuple[Segment, ...]
    alive: tuple[NDArray[np.bool_] | None, ...]  # per segment; None: every row live
    rows: int  # live rows (FTS5's N)
    tokens: int  # tokens in them (FTS5's total, over N its average length)
    exact: bool  # every term is one FTS5 token
    # Derived: the segments' rows one after another (a row's *place*), and where each segment starts.
    row_ids: NDArray[np.int64] = field(init=False, repr=False, compare=False)
    offsets: tuple[int, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        sizes = [len(s.rows) for s in self.segments]
        object.__setattr__(self, "offsets", tuple(int(o) for o in np.cumsum([0, *sizes])[:-1]))
        rows = np.concatenate([s.rows for s in self.segments]) if self.segments else _EMPTY_INT
        object.__setattr__(self, "row_ids", rows)

    @classmethod
    def build(cls, pairs: Iterable[tuple[int, str]]) -> TablePostings:
        """From (row id, space-separated terms) pairs."""
        empty = cls(segments=(), alive=(), rows=0, tokens=0, exact=True)
        return empty._changed(_EMPTY_INT, Segment.build(pairs), None)  # read as a stream (Segment.build)

    def changed(
        self,
        removed: NDArray[np.int64],
        rows: Sequence[int],
        texts: Sequence[str],
        *,
        merge_up_to: int | None = None,
    ) -> TablePostings:
        """These postings after rows ``removed`` left and ``rows`` (ids never held before) arrived
        with their terms; ``self`` is unchanged (readers may hold it). ``merge_up_to``: merge no
        segments whose merge would hold more postings (a write's own thread merges small ones only;
        ``compacted`` does the rest)."""
        return self._changed(removed, Segment.build(zip(rows, texts, strict=True)), merge_up_to)

    def _changed(self, removed: NDArray[np.int64], segment: Segment, merge_up_to: int | None) -> TablePostings:
        segments, alive = list(self.segments), list(self.alive)
        count, tokens = self.rows, self.tokens
        if len(removed):
            for i, old in enumerate(segments):
                slots = np.searchsorted(old.rows, removed[_member(removed, old.rows)])
                if not len(slots):
                    continue
                held = alive[i]
                live = np.ones(len(old.rows), dtype=bool) if held is None else held.copy()
                slots = slots[live[slots]]
                live[slots] = False
                count -= len(slots)
                tokens -= int(old.lengths[slots].sum())
                alive[i] = live
        exact = self.exact
        if len(segment.rows):
            segments.append(segment)
            alive.append(None)
            count += len(segment.rows)
            tokens += int(segment.lengths.sum())
            exact = exact and all(is_token(t) for t in segment.vocab)
        return TablePostings(tuple(segments), tuple(alive), count, tokens, exact).compacted(merge_up_to)

    def compacted(self, merge_up_to: int | None = None) -> TablePostings:
        """Merge the newest two segments while the older is at most twice the newer (a segment
        count logarithmic in the rows, each posting merged a logarithmic number of times), and
        while the merge holds at most ``merge_up_to`` postings; ``self`` when nothing merges."""
        segments, alive = list(self.segments), list(self.alive)
        while len(segments) > 1 and segments[-2].postings <= 2 * max(segments[-1].postings, 1):
            if merge_up_to is not None and segments[-2].postings + segments[-1].postings > merge_up_to:
                break
            merged = segments[-2].merged(segments[-1], (alive[-2], alive[-1]))
            segments[-2:] = [merged]
            alive[-2:] = [None]
        if len(segments) == len(self.segments):
            return self
        return replace(self, segments=tuple(segments), alive=tuple(alive))

    @property
    def postings(self) -> int:
        return sum(s.postings for s in self.segments)

    def hits(self, phrases: Sequence[Phrase]) -> tuple[int, ...]:
        """Live rows containing each phrase: FTS5's ``count(*) ... MATCH phrase`` (a sharded archive's
        global IDFs sum them over the shards)."""
        return tuple(
            sum(len(segment.matches(phrase, live)[0]) for segment, live in zip(self.segments, self.alive, strict=True))
            for phrase in phrases
        )

    def top(
        self,
        phrases: Sequence[Phrase],
        limit: int,
        allowed: NDArray[np.int64] | None = None,
        stats: Weights | None = None,
    ) -> Ranked:
        """The ``limit`` best live rows (among ``allowed``, sorted row ids, when given) by FTS5's
        BM25, best first, equal scores by row id: what ``ORDER BY bm25(t), rowid LIMIT ?`` gives.
        ``stats``: the phrases' IDFs and the average length to score with instead of this table's
        (a sharded archive's, over all its shards: then these are the scores one index would give)."""
        width = len(self.row_ids)
        scores = np.zeros(width, dtype=np.float64)  # by place: no union of the phrases' rows to sort
        touched = np.zeros(width, dtype=bool)
        places = []
        if self.rows:
            avgdl = float(self.tokens) / float(self.rows) if stats is None else stats.avgdl
            for n, phrase in enumerate(phrases):
                found, tf, lengths = [], [], []
                for offset, segment, live in zip(self.offsets, self.segments, self.alive, strict=True):
                    slots, counts = segment.matches(phrase, live)
                    found.append(slots + offset)
                    tf.append(counts)
                    lengths.append(segment.lengths[slots])
                at = np.concatenate(found) if found else _EMPTY_INT
                freq = np.concatenate(tf) if tf else _EMPTY_FLOAT
                d = (np.concatenate(lengths) if lengths else _EMPTY_INT).astype(np.float64)
                weight = idf(self.rows, len(at)) if stats is None else stats.idfs[n]
                # Summed phrase by phrase, in the query's order, as FTS5 does (a row once per phrase).
                scores[at] += weight * ((freq * (K1 + 1.0)) / (freq + K1 * (1 - B + B * d / avgdl)))
                touched[at] = True
                places.append(at)
        every = np.flatnonzero(touched)
        if allowed is not None:
            every = every[_member(self.row_ids[every], allowed)]
        rows, points = self.row_ids[every], scores[every]
        chosen = np.arange(len(every))
        if len(every) > limit:
            kth = np.partition(-points, limit - 1)[limit - 1]
            chosen = np.flatnonzero(-points <= kth)  # every row tied with the limit-th, for the row order
        order = chosen[np.lexsort((rows[chosen], -points[chosen]))][:limit]
        picked = every[order]
        by_place = np.argsort(picked)
        placed = picked[by_place]
        matched = np.zeros((len(order), len(places)), dtype=bool)
        for i, at in enumerate(places):
            held = _member(at, placed)
            matched[by_place[np.searchsorted(placed, at[held])], i] = True
        return Ranked(rows=rows[order].tolist(), scores=points[order].tolist(), matched=matched)


def _member(values: NDArray[np.int64], sorted_ids: NDArray[np.int64]) -> NDArray[np.bool_]:
    """Which of ``values`` are in ``sorted_ids`` (ascending), by bisection."""
    if not len(sorted_ids):
        return np.zeros(len(values), dtype=bool)
    at = np.minimum(np.searchsorted(sorted_ids, values), len(sorted_ids) - 1)
    return np.asarray(sorted_ids[at] == values)
