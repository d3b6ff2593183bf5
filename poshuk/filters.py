"""Search filters on article metadata, turned into one SQL condition.

Both retrieval paths use the same condition: the lexical path inside its SQL query,
the dense path to build the set of allowed FAISS ids. So a filtered search returns
exactly the top-k among matching passages, not top-k filtered down to fewer.

Every list is bounded (``MAX_FILTER_VALUES`` values of at most ``MAX_FILTER_VALUE_CHARS``
characters) before anything is planned: a request with a thousand tags once cost a
thousand subqueries per article row. The condition's cost no longer grows with the list:
a tag filter is one subquery per row, whatever the number of tags.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import msgspec

from poshuk.errors import InvalidQueryError

MAX_FILTER_VALUES = 64
MAX_FILTER_VALUE_CHARS = 200

_Value = Annotated[str, msgspec.Meta(max_length=MAX_FILTER_VALUE_CHARS)]
_Values = Annotated[tuple[_Value, ...], msgspec.Meta(max_length=MAX_FILTER_VALUES)]


class Filters(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Which articles may answer. Empty fields do not filter.

    ``lang``, ``source`` and ``section`` match any of the listed values; ``tags``
    requires every listed tag; ``published_from``/``published_to`` are inclusive and
    exclude articles without a date.
    """

    lang: _Values = ()
    source: _Values = ()
    section: _Values = ()
    tags: _Values = ()
    published_from: datetime | None = None
    published_to: datetime | None = None

    def is_empty(self) -> bool:
        return self == Filters()

    def checked(self) -> Filters:
        """These filters with each list de-duplicated; ``InvalidQueryError`` past a bound.

        Decoding from JSON enforces the same bounds; this covers filters built in Python
        (the library, the CLI's repeated flags).
        """
        lists: dict[str, tuple[str, ...]] = {}
        for name in ("lang", "source", "section", "tags"):
            values: tuple[str, ...] = tuple(dict.fromkeys(getattr(self, name)))
            if len(values) > MAX_FILTER_VALUES:
                raise InvalidQueryError(
                    f"filter {name!r} lists {len(values)} values; at most {MAX_FILTER_VALUES} are allowed"
                )
            for value in values:
                if len(value) > MAX_FILTER_VALUE_CHARS:
                    raise InvalidQueryError(
                        f"a {name!r} filter value is {len(value)} characters long; "
                        f"at most {MAX_FILTER_VALUE_CHARS} are allowed"
                    )
            lists[name] = values
        return msgspec.structs.replace(self, **lists)


def admits(
    filters: Filters | None,
    *,
    lang: str | None,
    source: str | None,
    section: str | None,
    tags: tuple[str, ...] | list[str],
    published_ts: float | None,
) -> bool:
    """Whether one article passes ``filters``: ``where_clause``'s rule, in Python, for the few
    new articles a saved search (``poshuk.alerts``) is matched against."""
    if filters is None or filters.is_empty():
        return True
    for name, value in (("lang", lang), ("source", source), ("section", section)):
        allowed: tuple[str, ...] = getattr(filters, name)
        if allowed and value not in allowed:
            return False
    if filters.tags and not set(filters.tags) <= set(tags):
        return False
    start, end = filters.published_from, filters.published_to
    if (start is not None or end is not None) and published_ts is None:
        return False
    if start is not None and published_ts is not None and published_ts < timestamp(start):
        return False
    return not (end is not None and published_ts is not None and published_ts > timestamp(end))


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
    tags = tuple(dict.fromkeys(filters.tags))
    if tags:  # every listed tag present: one subquery per row, however many tags
        marks = ",".join("?" * len(tags))
        parts.append(f"(SELECT count(DISTINCT value) FROM json_each({alias}.tags) WHERE value IN ({marks})) = ?")
        params.extend([*tags, len(tags)])
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
