"""The in-memory postings of an index's two FTS5 tables, kept current by replaying the changes log.

Like the FAISS mirror (``poshuk.index.mirror``), it is derived: built from SQLite's terms and
brought up to date from ``changes``, so it follows writes from this process and others. It
answers a search only when it stands at the very change the search's read snapshot stands at
(``at``); otherwise -- not built yet, or a change not yet replayed -- FTS5 answers, with the
same result. Building runs outside any lock and replaying swaps in a new immutable state, so
neither a search nor a write ever waits for it.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from dataclasses import dataclass

import numpy as np

from poshuk.index.db import has_articles, last_seq, select_in
from poshuk.index.postings import TablePostings
from poshuk.index.row_units import RowUnits
from poshuk.memory import release_free_memory

# The most postings a write's own thread merges (~0.35 us each on the AVX-512 machine: ~90 ms);
# larger merges wait for the upkeep thread (a merge over 107,560 passages took 1.5 s in a write).
WRITE_MERGE_POSTINGS = 250_000


@dataclass(frozen=True)
class LexicalState:
    """Both tables' postings, and every row's article and page, as of change ``seq``."""

    seq: int
    passages: TablePostings
    articles: TablePostings | None  # None: an index without article terms
    units: RowUnits

    def compacted(self, merge_up_to: int | None = None) -> LexicalState:
        """With both tables' segments merged as far as ``merge_up_to`` allows; ``self`` when none merge."""
        passages = self.passages.compacted(merge_up_to)
        articles = None if self.articles is None else self.articles.compacted(merge_up_to)
        if passages is self.passages and articles is self.articles:
            return self
        return LexicalState(self.seq, passages, articles, self.units)


class LexicalMirror:
    """The current ``LexicalState`` (None until built); one replay at a time, readers lock-free."""

    def __init__(self, *, pages: bool) -> None:
        self.pages = pages  # whether the database has ``passages.page``
        self._state: LexicalState | None = None
        self._replay = threading.Lock()
        self._building = threading.Lock()

    def at(self, seq: int) -> LexicalState | None:
        """The postings if they stand exactly at change ``seq`` (a search's snapshot), else None."""
        state = self._state
        return state if state is not None and state.seq == seq else None

    @property
    def loaded(self) -> bool:
        return self._state is not None

    def load(self, conn: sqlite3.Connection) -> bool:
        """Build the postings from ``conn``'s tables (its own read transaction); False when already
        built or being built by another thread (which is not waited for)."""
        if self._state is not None or not self._building.acquire(blocking=False):
            return False
        try:
            conn.execute("BEGIN")
            try:
                seq = last_seq(conn)
                passages = TablePostings.build(conn.execute("SELECT rowid, terms FROM lexical"))
                articles = None
                if has_articles(conn):
                    articles = TablePostings.build(conn.execute("SELECT rowid, terms FROM article_lexical"))
                units = RowUnits.read(conn, pages=self.pages)
            finally:
                conn.execute("COMMIT")
            with self._replay:
                if self._state is None:
                    self._state = LexicalState(seq, passages, articles, units)
            release_free_memory()  # the build's temporaries (poshuk.memory)
            return True
        finally:
            self._building.release()

    def refresh(self, conn: sqlite3.Connection, *, merge_up_to: int | None = None, wait: bool = True) -> int:
        """Replay the changes committed since the postings' change (``conn`` inside one read
        snapshot), then merge segments; returns how many changes. Nothing to do before the postings
        are built. A write's own thread passes ``merge_up_to`` (``WRITE_MERGE_POSTINGS``) and
        ``wait=False``: it neither merges large segments nor waits while the upkeep thread does
        (searches meanwhile read FTS5, which holds the write)."""
        if self._state is None:
            return 0
        if not self._replay.acquire(blocking=wait):
            return 0
        try:
            state = self._state
            changes = conn.execute(
                "SELECT seq, removed, added FROM changes WHERE seq > ? ORDER BY seq", (state.seq,)
            ).fetchall()
            if not changes:
                self._state = state.compacted(merge_up_to)
                return 0
            removed = np.unique(np.asarray([r for _, rem, _ in changes for r in json.loads(rem)], dtype=np.int64))
            added = [int(r) for _, _, add in changes for r in json.loads(add)]
            # Rows added and removed again within these changes are no longer in SQLite: not read.
            passages = self._replayed(conn, state.passages, "lexical", removed, added, merge_up_to)
            articles = None
            if state.articles is not None:
                articles = self._replayed(conn, state.articles, "article_lexical", removed, added, merge_up_to)
            units = state.units.changed(conn, removed, added, pages=self.pages)
            self._state = LexicalState(int(changes[-1][0]), passages, articles, units)
        finally:
            self._replay.release()
        return len(changes)

    @staticmethod
    def _replayed(
        conn: sqlite3.Connection,
        postings: TablePostings,
        table: str,
        removed: np.ndarray,
        added: list[int],
        merge_up_to: int | None,
    ) -> TablePostings:
        found = select_in(conn, f"SELECT rowid, terms FROM {table} WHERE rowid IN ({{}})", added)
        rows, texts = [int(r) for r, _ in found], [str(t) for _, t in found]
        return postings.changed(removed, rows, texts, merge_up_to=merge_up_to)
