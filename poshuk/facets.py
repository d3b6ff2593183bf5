"""Facets (issue 16): how the articles a search draws from split by source, section, language,
tag and month, each bucket with the filter that applies it.

What is counted: the articles of the search's candidate pool, each once: every article with a
passage among the candidates the retrievers returned for the query after the filters (up to 200
per retriever: the dense, passage BM25 and, in hybrid, article BM25 lists), before ``k``,
``offset``, ``collapse``, ``dedupe`` and ``sort`` shape the page. That is the set the ranking
considers related: counting every lexical match instead would count any article sharing one
common word with the query (BM25 matches any term), and meaning has no cut-off of its own. So a
count answers "of the articles this search found, how many are from X", and applying a bucket's
filter searches again within X.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, timedelta

from poshuk.candidates import ArticleFacts
from poshuk.errors import InvalidQueryError
from poshuk.wire import FACETS, FacetBucket

MAX_BUCKETS = 20  # per facet: the most frequent values (ties by value), enough for a side panel


def checked(facets: Sequence[str]) -> tuple[str, ...]:
    """The requested facets, or ``InvalidQueryError`` naming an unknown or repeated one."""
    for name in facets:
        if name not in FACETS:
            raise InvalidQueryError(f"facets must be among {', '.join(FACETS)}, got {name!r}")
    if len(set(facets)) != len(facets):
        raise InvalidQueryError("facets lists a facet twice")
    return tuple(facets)


def _month(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m")


def _month_filters(month: str) -> dict[str, list[str] | str]:
    first = date.fromisoformat(f"{month}-01")
    last = (first.replace(day=28) + timedelta(days=4)).replace(day=1) - timedelta(days=1)
    return {"published_from": first.isoformat(), "published_to": last.isoformat()}


def count_facets(articles: Iterable[ArticleFacts], wanted: Sequence[str]) -> dict[str, list[FacetBucket]]:
    """Per wanted facet, its buckets: most articles first (ties by value), at most ``MAX_BUCKETS``.
    An article without the value (no source, no date, ...) is in no bucket of that facet."""
    counts: dict[str, Counter[str]] = {name: Counter() for name in wanted}
    for facts in articles:
        for name, counter in counts.items():
            if name == "tags":
                counter.update(set(facts.tags))
            elif name == "month":
                if facts.published_ts is not None:
                    counter[_month(facts.published_ts)] += 1
            else:
                value = getattr(facts, name)
                if value:
                    counter[value] += 1
    out: dict[str, list[FacetBucket]] = {}
    for name, counter in counts.items():
        ranked = sorted(counter.items(), key=lambda item: (-item[1], item[0]))[:MAX_BUCKETS]
        out[name] = [
            FacetBucket(
                value=value,
                count=count,
                filters=_month_filters(value) if name == "month" else {name: [value]},
            )
            for value, count in ranked
        ]
    return out
