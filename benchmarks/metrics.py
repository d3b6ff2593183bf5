"""Ranking metrics with binary relevance, pure functions over ranked id lists; and ``percentile``.

Definitions (``k`` is the cut-off, ``R`` the set of relevant ids of one query):

- ``recall_at_k``: ``|R ∩ top k| / |R|``. With one relevant id (every set here) this is
  1 when it is in the top ``k`` and 0 otherwise, so its mean is the fraction of queries
  answered in the top ``k`` ("hit rate", "success@k").
- ``mrr_at_k``: ``1 / rank`` of the first relevant id in the top ``k``, else 0.
- ``ndcg_at_k``: DCG with gain 1 per relevant id at rank ``r`` discounted by
  ``1 / log2(r + 1)``, divided by the DCG of an ideal ranking (``min(|R|, k)`` hits first).

"Any-of" relevance (UNLP's gold page ± 1): the query is answered by *any one* of the
ids, so ``any_of`` collapses them to one virtual relevant item at its first occurrence
before the metrics above are applied (a query then counts as fully recalled with one hit).

``percentile`` is the one definition the latency reports use (p50/p95/p99 in every result file).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

_ANY = "\x00any-of-relevant"


def percentile(values: Sequence[float], percent: float) -> float:
    """The ``percent``-th percentile (0..100) of ``values``: linear between the two closest ranks.

    The same definition as ``numpy.percentile``'s default, so p50 is the median.
    """
    if not values:
        raise ValueError("percentile of no values")
    if not 0 <= percent <= 100:
        raise ValueError(f"percent must be within 0..100, got {percent}")
    ordered = sorted(values)
    position = (len(ordered) - 1) * percent / 100
    below = math.floor(position)
    above = min(below + 1, len(ordered) - 1)
    return ordered[below] + (ordered[above] - ordered[below]) * (position - below)


def collapse_to_docs(doc_ids: Iterable[str]) -> list[str]:
    """Passage hits' doc ids (best first) -> documents ranked by their best passage."""
    seen: set[str] = set()
    out: list[str] = []
    for doc_id in doc_ids:
        if doc_id not in seen:
            seen.add(doc_id)
            out.append(doc_id)
    return out


def any_of(ranking: Sequence[str], relevant: Iterable[str]) -> tuple[list[str], frozenset[str]]:
    """Rewrite ``ranking`` so the ids in ``relevant`` count as one item (see module doc)."""
    members = frozenset(relevant)
    out: list[str] = []
    found = False
    for doc_id in ranking:
        if doc_id in members:
            if not found:
                out.append(_ANY)
                found = True
        else:
            out.append(doc_id)
    return out, frozenset({_ANY}) if members else frozenset()


def recall_at_k(ranking: Sequence[str], relevant: frozenset[str], k: int) -> float:
    if not relevant:
        return 0.0
    return len(relevant.intersection(ranking[:k])) / len(relevant)


def mrr_at_k(ranking: Sequence[str], relevant: frozenset[str], k: int) -> float:
    for rank, doc_id in enumerate(ranking[:k], start=1):
        if doc_id in relevant:
            return 1.0 / rank
    return 0.0


def ndcg_at_k(ranking: Sequence[str], relevant: frozenset[str], k: int) -> float:
    if not relevant:
        return 0.0
    dcg = sum(1.0 / math.log2(rank + 1) for rank, d in enumerate(ranking[:k], start=1) if d in relevant)
    ideal = sum(1.0 / math.log2(rank + 1) for rank in range(1, min(len(relevant), k) + 1))
    return dcg / ideal


METRICS = ("recall_at_1", "recall_at_10", "mrr_at_10", "ndcg_at_10")


def score_query(ranking: Sequence[str], relevant: Iterable[str], *, any_relevant: bool = False) -> dict[str, float]:
    """The four reported metrics of one ranked document list."""
    if any_relevant:
        ranking, rel = any_of(ranking, relevant)
    else:
        rel = frozenset(relevant)
    return {
        "recall_at_1": recall_at_k(ranking, rel, 1),
        "recall_at_10": recall_at_k(ranking, rel, 10),
        "mrr_at_10": mrr_at_k(ranking, rel, 10),
        "ndcg_at_10": ndcg_at_k(ranking, rel, 10),
    }


def mean_scores(per_query: Sequence[dict[str, float]]) -> dict[str, float]:
    """Macro-average over queries (0.0 for each metric when there are none)."""
    n = len(per_query)
    return {m: (sum(q[m] for q in per_query) / n if n else 0.0) for m in METRICS}
