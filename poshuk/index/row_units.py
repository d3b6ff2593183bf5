"""Each passage row's article and page, in memory, beside the postings (``poshuk.index.lexical_mirror``).

Fusion needs every candidate's article unit (article, page). Reading it from SQLite for the
~600 candidates of a hybrid search was a millisecond of its time at 9,746 passages and two at
107,560 (issue 14's profile); looked up here it is a bisection. Like the postings it is
immutable: a change makes a new one, readers keep theirs.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from poshuk.index.db import page_column, select_in

NO_PAGE = -1


class ArticleNames:
    """Article ids by number, appended only: every ``RowUnits`` of one mirror shares it, and a
    reader only reads numbers its own state holds."""

    def __init__(self) -> None:
        self.names: list[str] = []
        self._numbers: dict[str, int] = {}

    def numbers(self, doc_ids: Sequence[str]) -> NDArray[np.int64]:
        out = np.empty(len(doc_ids), dtype=np.int64)
        for i, doc in enumerate(doc_ids):
            number = self._numbers.get(doc)
            if number is None:
                number = self._numbers[doc] = len(self.names)
                self.names.append(doc)
            out[i] = number
        return out


@dataclass(frozen=True)
class RowUnits:
    """Rows (ascending) with their article's number in ``names`` and their page (``NO_PAGE``: none)."""

    rows: NDArray[np.int64]
    docs: NDArray[np.int64]
    pages: NDArray[np.int64]
    names: ArticleNames

    @classmethod
    def read(cls, conn: sqlite3.Connection, *, pages: bool) -> RowUnits:
        """Every passage of ``conn``'s snapshot; ``pages``: whether ``passages.page`` exists."""
        found = conn.execute(f"SELECT p.row_id, p.doc_id, {page_column(pages)} FROM passages p ORDER BY p.row_id")
        empty = cls(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64), ArticleNames())
        return empty._with(found.fetchall())

    def changed(
        self, conn: sqlite3.Connection, removed: NDArray[np.int64], added: Sequence[int], *, pages: bool
    ) -> RowUnits:
        """After rows ``removed`` left and the rows of ``added`` still in ``conn``'s snapshot arrived."""
        keep = ~np.isin(self.rows, removed) if len(removed) else np.ones(len(self.rows), dtype=bool)
        kept = RowUnits(self.rows[keep], self.docs[keep], self.pages[keep], self.names)
        found = select_in(
            conn, f"SELECT p.row_id, p.doc_id, {page_column(pages)} FROM passages p WHERE p.row_id IN ({{}})", added
        )
        return kept._with(found)

    def _with(self, found: Sequence[tuple[int, str, int | None]]) -> RowUnits:
        if not found:
            return self
        rows = np.fromiter((r for r, _, _ in found), dtype=np.int64, count=len(found))
        docs = self.names.numbers([str(d) for _, d, _ in found])
        pages = np.fromiter((NO_PAGE if p is None else p for _, _, p in found), dtype=np.int64, count=len(found))
        rows, docs, pages = (np.concatenate(p) for p in ((self.rows, rows), (self.docs, docs), (self.pages, pages)))
        order = np.argsort(rows, kind="stable")
        return RowUnits(rows[order], docs[order], pages[order], self.names)

    def of(self, rows: Sequence[int]) -> dict[int, tuple[str, int | None]]:
        """(article, page) of each of ``rows`` held here."""
        wanted = np.asarray(rows, dtype=np.int64)
        if not len(wanted) or not len(self.rows):
            return {}
        at = np.minimum(np.searchsorted(self.rows, wanted), len(self.rows) - 1)
        held = self.rows[at] == wanted
        names = self.names.names
        return {
            row: (names[doc], None if page == NO_PAGE else page)
            for row, doc, page in zip(
                wanted[held].tolist(), self.docs[at[held]].tolist(), self.pages[at[held]].tolist(), strict=True
            )
        }


def units_of(
    conn: sqlite3.Connection, rows: list[int], units: RowUnits | None, *, pages: bool
) -> dict[int, tuple[str, int | None]]:
    """(article, page) of each of ``rows``: from ``units`` in memory when given, else from SQLite."""
    if units is not None:
        return units.of(rows)
    found = select_in(
        conn, f"SELECT p.row_id, p.doc_id, {page_column(pages)} FROM passages p WHERE p.row_id IN ({{}})", rows
    )
    return {int(r): (str(doc), page) for r, doc, page in found}
