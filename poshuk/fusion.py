"""Hybrid ranking: reciprocal rank fusion, weighted by lexical evidence per passage and per article.

Plain RRF trusts BM25 as much as the embedding, which is right for a Ukrainian query
over Ukrainian text and badly wrong for an English query over Ukrainian text, where
BM25 can only match a stray number or name. So each lexical hit's vote is scaled by
its *coverage*: the share of the query's terms (and names) the passage contains.
A passage matching most query words keeps a full vote; one matching a single token
of a cross-lingual query keeps almost none. No language or data set is named.

A question's words are often spread over an article rather than packed into one
passage, so a third list ranks whole *articles* by BM25 over all their terms, its
votes scaled by the article's coverage; each vote goes to every candidate passage of
that article (or, when none is a candidate, to the article's first passage).
In a document with pages the unit of that vote is the page, not the document: a hit
points to a page, and a vote for a whole 100-page document would lift all its pages
alike (unlp2026 as documents with pages: page R@10 0.931 -> 0.937, no change elsewhere;
``benchmarks/results/ranking-experiments.md``).
"""

from __future__ import annotations

import msgspec

from poshuk.candidates import Candidate, Candidates


class FusionSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Constants of the fusion, chosen on the dev half of unlp2026 only (its first 230
    questions); the other sets and unlp2026's second half are held out.

    ``rrf_k``, ``lexical_weight`` and ``coverage_power`` came from a grid over rrf_k
    {10, 30, 60} x lexical_weight {0.5, 1, 2} x coverage_power {0, 1, 2, 3}
    (``coverage_power = 0`` is plain RRF); then, with those fixed, ``article_weight``
    and ``article_coverage_power`` from a grid over {0.5, 1, 2} x {1, 2}.
    ``article_weight = 0`` leaves articles out."""

    rrf_k: float = 10.0
    lexical_weight: float = 1.0
    coverage_power: float = 1.0
    article_weight: float = 1.0
    article_coverage_power: float = 2.0


def fuse(candidates: Candidates, units: int, settings: FusionSettings) -> list[tuple[int, float]]:
    """Row ids with fused scores, best first; ties broken by row id for stable pages.

    ``candidates`` are the retrievers' ranked lists; ``units`` is how many pieces of
    evidence the query offers, so a candidate's coverage is the share of them it contains.
    Only the candidates are read: the same call ranks one index's or many shards' lists.
    """
    scores: dict[int, float] = {}
    for rank, c in enumerate(candidates.dense, start=1):
        scores[c.row] = scores.get(c.row, 0.0) + 1.0 / (settings.rrf_k + rank)
    for rank, c in enumerate(candidates.passages, start=1):
        weight = settings.lexical_weight * _coverage(c, units) ** settings.coverage_power
        if weight > 0.0:
            scores[c.row] = scores.get(c.row, 0.0) + weight / (settings.rrf_k + rank)
    if candidates.articles and settings.article_weight > 0.0:
        unit_of = {c.row: c.unit for c in (*candidates.dense, *candidates.passages)}
        rows_of: dict[tuple[str, int | None], list[int]] = {}
        for row in scores:
            unit = unit_of.get(row)
            if unit is not None:
                rows_of.setdefault(unit, []).append(row)
        for rank, article in enumerate(candidates.articles, start=1):
            weight = settings.article_weight * _coverage(article, units) ** settings.article_coverage_power
            if weight <= 0.0:
                continue
            vote = weight / (settings.rrf_k + rank)
            for row in rows_of.get(article.unit) or [article.row]:
                scores[row] = scores.get(row, 0.0) + vote
    return sorted(scores.items(), key=lambda item: (-item[1], item[0]))


def _coverage(candidate: Candidate, units: int) -> float:
    """Share (0..1) of the query's evidence units the candidate contains."""
    return len(candidate.matched) / units if units else 0.0
