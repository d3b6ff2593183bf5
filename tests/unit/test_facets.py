"""Facets: counts of the search's candidate articles by source, section, language, tag and month."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from poshuk.candidates import ArticleFacts
from poshuk.encoder import HashEncoder
from poshuk.errors import InvalidQueryError
from poshuk.facets import MAX_BUCKETS, checked, count_facets
from poshuk.filters import Filters
from poshuk.index import Index
from poshuk.search import Searcher
from poshuk.shards import ShardedIndex, split_index
from tests.support.news import NEWS_BY_ID, build_news_index


def _ts(year: int, month: int, day: int) -> float:
    return datetime(year, month, day, 12, tzinfo=UTC).timestamp()


def test_buckets_count_articles_most_first_with_the_filter_that_applies_them() -> None:
    articles = [
        ArticleFacts("A", "war", "uk", ("drones", "odesa", "drones"), _ts(2024, 2, 10)),
        ArticleFacts("B", "war", "uk", ("drones",), _ts(2024, 2, 29)),
        ArticleFacts("B", None, "en", (), _ts(2023, 12, 31)),
        ArticleFacts(None, "economy", None, (), None),
    ]
    facets = count_facets(articles, ["source", "section", "lang", "tags", "month"])
    assert [(b.value, b.count) for b in facets["source"]] == [("B", 2), ("A", 1)]  # the article without one: none
    assert facets["source"][0].filters == {"source": ["B"]}
    assert [(b.value, b.count) for b in facets["section"]] == [("war", 2), ("economy", 1)]
    assert [(b.value, b.count) for b in facets["lang"]] == [("uk", 2), ("en", 1)]
    assert [(b.value, b.count) for b in facets["tags"]] == [("drones", 2), ("odesa", 1)]  # a tag once per article
    assert facets["tags"][0].filters == {"tags": ["drones"]}
    assert [(b.value, b.count) for b in facets["month"]] == [("2024-02", 2), ("2023-12", 1)]
    assert facets["month"][0].filters == {"published_from": "2024-02-01", "published_to": "2024-02-29"}
    assert facets["month"][1].filters == {"published_from": "2023-12-01", "published_to": "2023-12-31"}
    many = [ArticleFacts(f"s{n:02d}", None, None, (), None) for n in range(MAX_BUCKETS + 5)]
    assert len(count_facets(many, ["source"])["source"]) == MAX_BUCKETS
    assert count_facets(articles, []) == {}


@pytest.mark.parametrize(
    ("facets", "message"),
    [
        (["author"], "facets must be among source, section, lang, tags, month, got 'author'"),
        (["lang", "lang"], "twice"),
    ],
)
def test_unknown_or_repeated_facets_are_refused(facets: list[str], message: str) -> None:
    with pytest.raises(InvalidQueryError, match=message):
        checked(facets)


def test_a_searchs_facets_count_its_candidate_articles_and_their_filters_apply(
    tmp_path: Path, hash_encoder: HashEncoder
) -> None:
    index = build_news_index(tmp_path / "news", hash_encoder)
    searcher = Searcher(Index.open(index), hash_encoder)
    result = searcher.search("дрони атакували", k=3, facets=["source", "month"])
    pool = searcher.search("дрони атакували", k=100, collapse=True)  # every candidate article, once
    sources = [NEWS_BY_ID[h.doc_id].source for h in pool.hits]
    assert sum(b.count for b in result.facets["source"]) == sum(1 for s in sources if s)
    assert len(result.hits) == 3  # k shapes the page, not the counts
    top = result.facets["source"][0]
    narrowed = searcher.search("дрони атакували", k=100, filters=Filters(source=tuple(top.filters["source"])))
    assert {h.source for h in narrowed.hits} == {top.value}
    assert len({h.doc_id for h in narrowed.hits}) == top.count
    with pytest.raises(InvalidQueryError, match="got 'author'"):
        searcher.search("дрони", facets=["author"])
    split_index(index, tmp_path / "archive", 3)
    sharded = Searcher(ShardedIndex.open(tmp_path / "archive"), hash_encoder)
    wanted = ["source", "section", "lang", "tags", "month"]
    for mode in ("hybrid", "dense", "lexical"):
        one = searcher.search("дрони атакували", mode=mode, facets=wanted)
        many = sharded.search("дрони атакували", mode=mode, facets=wanted)
        assert one.facets == many.facets and one.facets["lang"]
