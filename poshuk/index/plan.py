"""A query's filters compiled once: the SQL condition, and the passages it allows.

Every retriever of one search uses the same plan: the lexical ones put the condition
in their SQL (or, for a broad filter, keep the allowed rows of an unfiltered ranking),
the dense one hands the allowed row ids to FAISS. Reading a broad filter's row ids is
most of a filtered search's time, so an open index keeps the last few filters' answers
(``AllowedCache``) until the next logged change: every write appends to ``changes``,
whose sequence never repeats.
"""

from __future__ import annotations

import sqlite3
import threading
from collections import OrderedDict

import msgspec
import numpy as np
from numpy.typing import NDArray

from poshuk.filters import Filters, where_clause
from poshuk.index.db import last_seq

ALLOWED_CACHE = 16  # filters whose allowed row ids an open index keeps


class AllowedCache:
    """Allowed row ids by (filter, last change); its lock guards the dict only, never a query."""

    def __init__(self, size: int = ALLOWED_CACHE) -> None:
        self._size = size
        self._found: OrderedDict[tuple[bytes, int], NDArray[np.int64]] = OrderedDict()
        self._lock = threading.Lock()
        self._count: tuple[int, int] | None = None  # (last change, passages)

    def get(self, key: tuple[bytes, int]) -> NDArray[np.int64] | None:
        with self._lock:
            found = self._found.get(key)
            if found is not None:
                self._found.move_to_end(key)
            return found

    def put(self, key: tuple[bytes, int], rows: NDArray[np.int64]) -> None:
        with self._lock:
            self._found[key] = rows
            while len(self._found) > self._size:
                self._found.popitem(last=False)

    def passages(self, conn: sqlite3.Connection, seq: int) -> int:
        """Passages in SQLite at change ``seq``, counted again only after a logged change."""
        count = self._count
        if count is None or count[0] != seq:
            (passages,) = conn.execute("SELECT count(*) FROM passages").fetchone()
            count = self._count = (seq, int(passages))
        return count[1]


class FilterPlan:
    """One search's filters over one read snapshot (``conn`` inside a read transaction)."""

    def __init__(self, conn: sqlite3.Connection, filters: Filters | None, cache: AllowedCache) -> None:
        self.conn = conn
        self.filters = None if filters is None or filters.is_empty() else filters
        self.condition, self.params = where_clause(self.filters)
        self._cache = cache
        self._seq: int | None = None
        self._allowed: NDArray[np.int64] | None = None

    @property
    def unfiltered(self) -> bool:
        return self.filters is None

    def seq(self) -> int:
        if self._seq is None:
            self._seq = last_seq(self.conn)
        return self._seq

    def allowed(self) -> NDArray[np.int64] | None:
        """Sorted row ids of every passage whose article passes the filters (None: no filter)."""
        if self.filters is None:
            return None
        if self._allowed is None:
            key = (msgspec.json.encode(self.filters), self.seq())
            found = self._cache.get(key)
            if found is None:
                rows = self.conn.execute(
                    "SELECT p.row_id FROM passages p JOIN documents d ON d.doc_id = p.doc_id "
                    f"WHERE {self.condition} ORDER BY p.row_id",
                    self.params,
                ).fetchall()
                found = np.fromiter((r for (r,) in rows), dtype=np.int64, count=len(rows))
                found.setflags(write=False)
                self._cache.put(key, found)
            self._allowed = found
        return self._allowed

    def passages(self) -> int:
        return self._cache.passages(self.conn, self.seq())

    def dense_selector(self, vectors: int) -> NDArray[np.int64] | None:
        """The ids FAISS must keep to: None when the filter excludes nothing (FAISS's id
        selector tripled a search's time over 100k passages)."""
        allowed = self.allowed()
        if allowed is not None and len(allowed) == vectors == self.passages():
            return None
        return allowed

    def broad(self) -> tuple[NDArray[np.int64], int] | None:
        """(allowed rows, passages) for a filter that lets at least half of the passages through
        (post-filtering an unfiltered ranking is then cheaper than joining every match); else None."""
        allowed = self.allowed()
        if allowed is None:
            return None
        total = self.passages()
        if not total or len(allowed) * 2 < total:
            return None
        return allowed, total
