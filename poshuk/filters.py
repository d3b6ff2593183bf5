"""Search filters on article metadata, turned into one SQL condition.

Both retrieval paths use the same condition: the lexical path inside its SQL query,
the dense path to build the set of allowed FAISS ids. So a filtered search returns
exactly the top-k among matching passages, not top-k filtered down to fewer.
"""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec

from poshuk.errors import InvalidQueryError


class Filters(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Which articles may answer. Empty fields do not filter.

    ``lang``, ``source`` and ``section`` match any of the listed values; ``tags``
    requires every listed tag; ``published_from``/``published_to`` are inclusive and
    exclude articles without a date.
    """

    lang: tuple[str, ...] = ()
    source: tuple[str, ...] = ()
    section: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    published_from: datetime | None = None
    published_to: datetime | None = None

    def is_empty(self) -> bool:
        return self == Filters()


def timestamp(value: datetime) -> float:
    """Seconds since the epoch; a date without a zone is taken as UTC."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.timestamp()


def where_clause(filters: Filters | None, alias: str = "d") -> tuple[str, list[object]]:
    """SQL condition over the ``documents`` table (as ``alias``) and its parameters."""
    if filters is None or filters.is_empty():
        return "1", []
    parts: list[str] = []
    params: list[object] = []
    for column in ("lang", "source", "section"):
        values: tuple[str, ...] = getattr(filters, column)
        if values:
            parts.append(f"{alias}.{column} IN ({','.join('?' * len(values))})")
            params.extend(values)
    for tag in filters.tags:
        parts.append(f"EXISTS (SELECT 1 FROM json_each({alias}.tags) WHERE value = ?)")
        params.append(tag)
    start, end = filters.published_from, filters.published_to
    if start is not None and end is not None and timestamp(start) > timestamp(end):
        raise InvalidQueryError("published_from is after published_to")
    if start is not None:
        parts.append(f"{alias}.published_ts >= ?")
        params.append(timestamp(start))
    if end is not None:
        parts.append(f"{alias}.published_ts <= ?")
        params.append(timestamp(end))
    return " AND ".join(parts), params
