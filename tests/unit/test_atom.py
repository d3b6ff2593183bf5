"""A search as an Atom feed, read back with feedparser as a feed reader would."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import feedparser
import pytest
from litestar import Litestar
from litestar.testing import TestClient

from poshuk.encoder import HashEncoder
from poshuk.settings import Settings
from poshuk.wire import Hit, SearchResult
from service.app import create_app
from service.atom import MEDIA_TYPE, entry_id, search_feed
from tests.support.app import service_state
from tests.support.news import NEWS_BY_ID, build_news_index

NOW = datetime(2024, 1, 31, 8, 0, tzinfo=UTC)


def _hit(doc_id: str, title: str, **fields: object) -> Hit:
    return Hit(rank=1, score=1.0, passage_id=f"{doc_id}#0", doc_id=doc_id, title=title, text="Текст.", **fields)  # type: ignore[arg-type]


def test_a_feed_carries_every_article_once_and_survives_hostile_text() -> None:
    hostile = "<script>alert(1)</script> & \x00\x1b[31m «Дрони»\ufffe"
    result = SearchResult(
        query="дрони",
        took_ms=1.0,
        model="m",
        hits=[
            _hit(
                "uk/1",
                hostile,
                url="https://example.com/1",
                source="Укрінформ",
                published_at=datetime(2023, 9, 1, tzinfo=UTC),
            ),
            _hit("uk-2", "", url="javascript:alert(1)"),
        ],
    )
    body = search_feed(result, self_url="http://h/v1/search.atom?q=дрони", base_url="http://h", now=NOW)
    feed = feedparser.parse(body)
    assert not feed.bozo, feed.get("bozo_exception")
    assert feed.feed.title == "Poshuk: дрони" and feed.feed.updated == "2023-09-01T00:00:00Z"
    first, second = feed.entries
    assert first.title == "<script>alert(1)</script> & [31m «Дрони»"  # text, not markup; controls dropped
    assert first.id == entry_id("uk/1") == "urn:poshuk:article:uk%2F1" and first.link == "https://example.com/1"
    assert first.author == "Укрінформ" and first.summary == "Текст."
    assert second.title == "uk-2" and second.link == "http://h/v1/documents/uk-2"  # never a javascript: link
    assert second.updated == "2023-09-01T00:00:00Z"  # undated: the feed's own date


@pytest.fixture
def news(tmp_path: Path, settings: Settings) -> Iterator[TestClient[Litestar]]:
    app = create_app(settings, build_news_index(tmp_path / "news", HashEncoder()), encoder=HashEncoder())
    with TestClient(app) as client:
        assert service_state(app).wait(10), "the index never finished loading"
        yield client


def test_the_search_feed_lists_the_most_relevant_articles_newest_first(news: TestClient[Litestar]) -> None:
    answer = news.get("/v1/search.atom", params={"q": "дрони"})
    assert answer.status_code == 200 and answer.headers["content-type"] == MEDIA_TYPE
    feed = feedparser.parse(answer.content)
    assert not feed.bozo and feed.feed.id.endswith("/v1/search.atom?q=%D0%B4%D1%80%D0%BE%D0%BD%D0%B8")
    ids = [entry.id.removeprefix("urn:poshuk:article:") for entry in feed.entries]
    assert len(ids) == len(set(ids)) >= 2
    dates = [NEWS_BY_ID[i].published_at for i in ids]
    dated = [d for d in dates if d is not None]
    assert dated == sorted(dated, reverse=True) and all(d is not None for d in dates[: len(dated)])
    searched = news.get("/v1/search", params={"q": "дрони", "collapse": "true", "sort": "newest", "k": "20"})
    assert ids == [hit["doc_id"] for hit in searched.json()["hits"]]
    bad = news.get("/v1/search.atom", params={"q": " "})
    assert bad.status_code == 400 and bad.headers["content-type"].startswith("application/problem+json")
