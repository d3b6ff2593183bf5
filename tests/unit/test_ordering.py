"""Order and freshness: newest/oldest first within the relevance floor, and the recency boost."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path

import pytest

from poshuk.encoder import HashEncoder
from poshuk.errors import InvalidQueryError
from poshuk.index import Index
from poshuk.ordering import DATE_POOL, Ordering, reorder
from poshuk.search import Searcher
from poshuk.shards import ShardedIndex, split_index
from tests.support.news import NEWS_BY_ID, build_news_index

DAY = 86_400.0
NOW = datetime(2024, 1, 31, tzinfo=UTC)


def test_newest_orders_the_most_relevant_by_date_with_undated_last() -> None:
    ranked = [(1, 0.9), (2, 0.8), (3, 0.7), (4, 0.6), (5, 0.5)]
    published = {1: 10 * DAY, 2: None, 3: 30 * DAY, 4: 10 * DAY, 5: 20 * DAY}
    newest = reorder(ranked, published, Ordering(sort="newest"))
    assert newest == [(3, 0.7), (5, 0.5), (1, 0.9), (4, 0.6), (2, 0.8)]  # 1 and 4 tie: relevance order
    oldest = reorder(ranked, published, Ordering(sort="oldest"))
    assert oldest == [(1, 0.9), (4, 0.6), (5, 0.5), (3, 0.7), (2, 0.8)]
    assert reorder(ranked, {r: published[r] for r in (1, 3)}, Ordering(sort="newest")) == [(3, 0.7), (1, 0.9)]


def test_a_date_order_covers_only_the_relevance_pool() -> None:
    ranked = [(row, 1.0 - row / 1000) for row in range(1, 3 * DATE_POOL)]  # close scores: the pool decides
    published = {row: float(row) for row, _ in ranked}  # the least relevant are the newest
    newest = reorder(ranked, published, Ordering(sort="newest"))
    assert len(newest) == DATE_POOL and newest[0][0] == DATE_POOL and newest[-1][0] == 1
    spread = [(1, 1.0), (2, 0.6), (3, 0.5), (4, 0.49), (5, 0.1)]  # below half the best: left out
    assert [row for row, _ in reorder(spread, {r: float(r) for r, _ in spread}, Ordering(sort="newest"))] == [3, 2, 1]


def test_the_recency_boost_halves_a_score_per_half_life_and_counts_undated_as_the_oldest() -> None:
    moment = NOW.timestamp()
    ranked = [(1, 1.0), (2, 0.9), (3, 0.8)]
    published = {1: moment - 2 * DAY, 2: moment, 3: None}
    boosted = reorder(ranked, published, Ordering(recency_half_life_days=1.0), now=NOW)
    assert [row for row, _ in boosted] == [2, 1, 3]
    scores = dict(boosted)
    assert scores[2] == pytest.approx(0.9) and scores[1] == pytest.approx(0.25)
    assert scores[3] == pytest.approx(0.8 * 0.25)  # as old as the oldest dated candidate (row 1)
    future = reorder([(1, 1.0)], {1: moment + 9 * DAY}, Ordering(recency_half_life_days=1.0), now=NOW)
    assert future == [(1, 1.0)]  # a date after the request's time is not boosted above its score


@pytest.mark.parametrize(
    ("ordering", "message"),
    [
        (Ordering(sort="latest"), "sort must be one of relevance, newest, oldest, got 'latest'"),  # type: ignore[arg-type]
        (Ordering(recency_half_life_days=0.0), "recency_half_life_days must be above 0"),
        (Ordering(recency_half_life_days=-3.0), "recency_half_life_days must be above 0"),
        (Ordering(recency_half_life_days=math.nan), "recency_half_life_days must be above 0"),
        (Ordering(recency_half_life_days=1e9), "at most 36500"),
        (Ordering(sort="newest", recency_half_life_days=7.0), "applies to sort=relevance only"),
    ],
)
def test_bad_orderings_are_refused(ordering: Ordering, message: str) -> None:
    with pytest.raises(InvalidQueryError, match=message):
        ordering.checked()


@pytest.fixture
def news_index(tmp_path: Path, hash_encoder: HashEncoder) -> Path:
    return build_news_index(tmp_path / "news", hash_encoder)


def _dates(result: object) -> list[datetime | None]:
    return [NEWS_BY_ID[hit.doc_id].published_at for hit in result.hits]  # type: ignore[attr-defined]


def test_a_search_sorted_newest_lists_relevant_articles_by_date(news_index: Path, hash_encoder: HashEncoder) -> None:
    searcher = Searcher(Index.open(news_index), hash_encoder)
    relevance = searcher.search("дрони", k=DATE_POOL)
    newest = searcher.search("дрони", k=10, sort="newest", collapse=True)
    assert newest.sort == "newest" and relevance.sort == "relevance"
    dates = _dates(newest)
    dated = [d for d in dates if d is not None]
    assert dated == sorted(dated, reverse=True) and len(dated) >= 2
    assert dates[-1] is None and dates.count(None) == 1  # the undated article comes last
    assert len({h.doc_id for h in newest.hits}) == len(newest.hits)  # collapse still applies
    assert {h.doc_id for h in newest.hits} <= {h.doc_id for h in relevance.hits}
    oldest = searcher.search("дрони", k=10, sort="oldest", collapse=True)
    assert [d for d in _dates(oldest) if d is not None] == sorted(dated)
    narrow = searcher.search("дрони атакували", k=10, sort="newest", collapse=True)
    assert [h.doc_id for h in narrow.hits] == ["uk-war-1"]  # the one article scoring near the best
    with pytest.raises(InvalidQueryError, match="applies to sort=relevance only"):
        searcher.search("дрони", sort="oldest", recency_half_life_days=3.0)


def test_the_recency_boost_lifts_newer_articles_and_a_sharded_archive_orders_alike(
    news_index: Path, hash_encoder: HashEncoder, tmp_path: Path
) -> None:
    searcher = Searcher(Index.open(news_index), hash_encoder)
    plain = searcher.search("дрони атакували", k=10, collapse=True)
    boosted = searcher.search("дрони атакували", k=10, collapse=True, recency_half_life_days=3.0, now=NOW)
    assert [h.doc_id for h in boosted.hits] != [h.doc_id for h in plain.hits]
    assert [h.score for h in boosted.hits] == sorted((h.score for h in boosted.hits), reverse=True)
    split_index(news_index, tmp_path / "archive", 2)
    sharded = Searcher(ShardedIndex.open(tmp_path / "archive"), hash_encoder)
    for kwargs in ({"sort": "newest"}, {"sort": "oldest", "dedupe": True}, {"recency_half_life_days": 3.0}):
        one = searcher.search("дрони атакували", k=10, now=NOW, **kwargs)
        many = sharded.search("дрони атакували", k=10, now=NOW, **kwargs)
        assert [(h.passage_id, h.score) for h in one.hits] == [(h.passage_id, h.score) for h in many.hits]
