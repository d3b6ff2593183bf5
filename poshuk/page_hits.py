"""The other pages a collapsed hit's document matched on (issue 15): "p. 3, also p. 12, p. 40".

With ``collapse`` a document is one hit, its best passage; a long document's other matching
passages are often on other pages, and a reader wants those pages, not only a count. Only
hits with a page pay for this (news articles have none), and only for the best
``MAX_OTHER_PAGES`` other matches of each: at most that many rows read per hit.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from poshuk.index import StoredPassage

MAX_OTHER_PAGES = 10
"""Other matching passages read per collapsed hit, so at most this many other pages listed."""

ReadPassages = Callable[[list[int]], dict[int, StoredPassage]]


def other_pages(hits: Sequence[tuple[int | None, Sequence[int]]], read: ReadPassages) -> list[list[int]]:
    """For each hit, given its own page and its document's other matching rows (best first), the
    other pages they are on: best first, each once, without the hit's own page. One read for all."""
    wanted = [list(rows[:MAX_OTHER_PAGES]) if page is not None else [] for page, rows in hits]
    stored = read([row for rows in wanted for row in rows])
    out: list[list[int]] = []
    for (own, _), rows in zip(hits, wanted, strict=True):
        pages: list[int] = []
        for row in rows:
            passage = stored.get(row)  # deleted meanwhile: absent
            if passage is not None and passage.page is not None and passage.page != own and passage.page not in pages:
                pages.append(passage.page)
        out.append(pages)
    return out
