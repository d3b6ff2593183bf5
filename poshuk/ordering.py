"""Order and freshness (issue 16): newest or oldest first, or relevance with a recency boost.

Both act on the relevance ranking a search has already made (after fusion and filters), so
every mode gets them the same way and a sharded archive orders exactly as one index does.

- ``newest`` / ``oldest``: the passages that are among the ``DATE_POOL`` most relevant and
  score at least ``RELEVANCE_FLOOR`` (half) of the best one, ordered by their article's
  ``published_at`` (ties keep relevance order; articles without a date come last). That floor
  is what keeps "newest first" about the query: over every candidate, the newest barely
  related article would come first (seen on the example articles: a search for ammunition
  talks opened with an IT-exports story). Half the best score is a rule of thumb, not fitted
  to any set: in hybrid (fused ranks) and lexical (BM25) it keeps what the retrievers agree
  on; dense scores (cosines) lie close together, so there the 50 best decide.
- ``recency_half_life_days`` (relevance order only): each score is multiplied by
  0.5 ** (age in days / half-life), age counted from the request's time; an article
  without a date counts as old as the oldest dated candidate, so it is neither favoured
  nor dropped. Scores in the answer are the boosted ones.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

import msgspec

from poshuk.errors import InvalidQueryError
from poshuk.wire import SORTS, Sort

DATE_POOL = 50  # a date order covers at most this many of the most relevant passages...
RELEVANCE_FLOOR = 0.5  # ...scoring at least this share of the best one
MAX_HALF_LIFE_DAYS = 36_500.0
SECONDS_PER_DAY = 86_400.0


class Ordering(msgspec.Struct, frozen=True, kw_only=True):
    """How a search's hits are ordered: by relevance (optionally boosted by recency) or by date."""

    sort: Sort = "relevance"
    recency_half_life_days: float | None = None

    @property
    def is_relevance(self) -> bool:
        return self.sort == "relevance" and self.recency_half_life_days is None

    def checked(self) -> Ordering:
        """The ordering, or ``InvalidQueryError`` saying which part is out of range."""
        if self.sort not in SORTS:
            raise InvalidQueryError(f"sort must be one of {', '.join(SORTS)}, got {self.sort!r}")
        half_life = self.recency_half_life_days
        if half_life is not None:
            if not 0.0 < half_life <= MAX_HALF_LIFE_DAYS:  # also refuses NaN
                raise InvalidQueryError(
                    f"recency_half_life_days must be above 0 and at most {MAX_HALF_LIFE_DAYS:g}, got {half_life}"
                )
            if self.sort != "relevance":
                raise InvalidQueryError("recency_half_life_days applies to sort=relevance only")
        return self


def reorder(
    ranked: list[tuple[int, float]],
    published: Mapping[int, float | None],
    ordering: Ordering,
    now: datetime | None = None,
) -> list[tuple[int, float]]:
    """``ranked`` (row, score; best first) in ``ordering``'s order. ``published`` holds each row's
    article date as a POSIX timestamp (None: undated; a row absent was deleted meanwhile)."""
    if ordering.is_relevance:
        return ranked
    if ordering.sort != "relevance":
        present = [(row, score) for row, score in ranked if row in published][:DATE_POOL]
        best = present[0][1] if present else 0.0
        pool = [(row, score) for row, score in present if best <= 0.0 or score >= RELEVANCE_FLOOR * best]
        dated = [(row, score) for row, score in pool if published[row] is not None]
        undated = [(row, score) for row, score in pool if published[row] is None]
        sign = -1.0 if ordering.sort == "newest" else 1.0
        dated.sort(key=lambda item: sign * float(published[item[0]] or 0.0))  # stable: ties keep relevance order
        return dated + undated
    half_life = float(ordering.recency_half_life_days or 0.0)
    moment = (now or datetime.now(UTC)).timestamp()
    oldest = min((when for row, _ in ranked if (when := published.get(row)) is not None), default=moment)

    def boosted(row: int, score: float) -> float:
        when = published.get(row)
        age_days = max(0.0, moment - (oldest if when is None else when)) / SECONDS_PER_DAY
        return score * float(0.5 ** (age_days / half_life))

    scored = [(row, boosted(row, score)) for row, score in ranked]
    return sorted(scored, key=lambda item: (-item[1], item[0]))
