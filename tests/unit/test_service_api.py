"""The HTTP API through Litestar's TestClient, over a small index built with the HashEncoder."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from poshuk.documents import Article, Passage
from poshuk.encoder import HashEncoder, ModelIdentity, Vectors
from poshuk.errors import IndexNotFoundError, ModelError
from poshuk.index import IndexWriter
from poshuk.settings import ChunkingSettings, ServiceSettings, Settings
from service.app import create_app
from service.errors import IndexNotReadyError
from service.fair_gate import GATE_KEY, FairGate
from service.server import serve
from tests.support.api import BAD_REQUESTS, HIT_FIELDS, RESULT_FIELDS, BadRequest, assert_problem
from tests.support.app import ARTICLES, build_service_index, make_settings, service_state
from tests.support.news import NEWS_BY_ID, build_news_index, matching


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("service") / "index"
    build_service_index(folder, HashEncoder())
    return folder


@pytest.fixture
def client(settings: Settings, index_dir: Path) -> Iterator[TestClient[Litestar]]:
    app = create_app(settings, index_dir, encoder=HashEncoder())
    with TestClient(app) as test_client:
        assert service_state(app).wait(10), "the index never finished loading"
        yield test_client


class GatedEncoder:
    """A HashEncoder whose identity (read when the Searcher opens) waits for a gate: loading stalls."""

    def __init__(self, gate: threading.Event) -> None:
        self._inner = HashEncoder()
        self._gate = gate

    @property
    def identity(self) -> ModelIdentity:
        if not self._gate.wait(10):
            raise RuntimeError("gate never opened")
        return self._inner.identity

    def encode_queries(self, texts: Sequence[str]) -> Vectors:
        return self._inner.encode_queries(texts)

    def encode_passages(self, texts: Sequence[str]) -> Vectors:
        return self._inner.encode_passages(texts)

    def count_tokens(self, text: str) -> int:
        return self._inner.count_tokens(text)


class ExplodingEncoder(HashEncoder):
    """Fails while encoding a query, as a broken backend would."""

    def encode_queries(self, texts: Sequence[str]) -> Vectors:
        raise RuntimeError("secret internal failure detail")


# --- search ------------------------------------------------------------------------------------


def _check_hits(body: dict[str, Any], k: int) -> list[dict[str, Any]]:
    assert set(body) == RESULT_FIELDS
    assert body["model"] == "hash-test-encoder"
    assert isinstance(body["took_ms"], float)
    hits: list[dict[str, Any]] = body["hits"]
    assert 0 < len(hits) <= k
    assert [h["rank"] for h in hits] == list(range(1, len(hits) + 1))
    assert all(set(h) == HIT_FIELDS for h in hits)
    scores = [h["score"] for h in hits]
    assert scores == sorted(scores, reverse=True)
    return hits


def test_post_search_ranks_the_obvious_article_first(client: TestClient[Litestar]) -> None:
    response = client.post("/v1/search", json={"query": "  Кірбі переговори Росії та Північної Кореї ", "k": 3})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["query"] == "Кірбі переговори Росії та Північної Кореї"
    hits = _check_hits(body, 3)
    top = hits[0]
    assert top["passage_id"] == "uk-001#0"
    assert top["doc_id"] == "uk-001"
    assert top["title"].startswith("Кірбі")
    assert top["url"] == "https://example.com/uk-001"
    assert top["source"] == "Приклад"
    assert top["published_at"] == "2023-08-31T09:15:00Z"
    assert top["lang"] == "uk"


def test_get_search_matches_post(client: TestClient[Litestar]) -> None:
    query = "European Central Bank deposit rate inflation"
    got = client.get("/v1/search", params={"q": query, "k": 2})
    posted = client.post("/v1/search", json={"query": query, "k": 2})
    assert got.status_code == posted.status_code == 200
    hits = _check_hits(got.json(), 2)
    assert hits[0]["doc_id"] == "en-001"
    assert [h["passage_id"] for h in hits] == [h["passage_id"] for h in posted.json()["hits"]]


def test_k_defaults_to_ten_and_is_capped_by_the_index_size(client: TestClient[Litestar]) -> None:
    response = client.get("/v1/search", params={"q": "зерно Одеса"})
    assert response.status_code == 200
    hits = _check_hits(response.json(), 10)
    assert len(hits) == sum(len(texts) for texts in ARTICLES.values())
    assert hits[0]["doc_id"] == "uk-002"


# --- modes, filters, collapse, paging, highlights ------------------------------------------------


@pytest.fixture(scope="module")
def news_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_news_index(tmp_path_factory.mktemp("news") / "index", HashEncoder())


@pytest.fixture
def news(settings: Settings, news_dir: Path) -> Iterator[TestClient[Litestar]]:
    app = create_app(settings, news_dir, encoder=HashEncoder())
    with TestClient(app) as test_client:
        assert service_state(app).wait(10), "the index never finished loading"
        yield test_client


def _post(client: TestClient[Litestar], **body: Any) -> dict[str, Any]:
    response = client.post("/v1/search", json=body)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    assert set(result) == RESULT_FIELDS
    assert all(set(h) == HIT_FIELDS for h in result["hits"])
    return result


def _ids(body: dict[str, Any], key: str = "passage_id") -> list[str]:
    return [h[key] for h in body["hits"]]


@pytest.mark.parametrize("mode", ["dense", "lexical", "hybrid"])
def test_each_mode_answers(news: TestClient[Litestar], mode: str) -> None:
    posted = _post(news, query="дрони атакували", k=3, mode=mode)
    assert posted["mode"] == mode
    assert posted["offset"] == 0
    assert [h["rank"] for h in posted["hits"]] == [1, 2, 3]
    assert posted["hits"][0]["doc_id"] == "uk-war-1"
    got = news.get("/v1/search", params={"q": "дрони атакували", "k": 3, "mode": mode})
    assert got.status_code == 200, got.text
    assert got.json()["mode"] == mode
    assert _ids(got.json()) == _ids(posted)


def test_mode_defaults_to_hybrid(news: TestClient[Litestar]) -> None:
    assert _post(news, query="дрони")["mode"] == "hybrid"


def test_lexical_mode_finds_only_passages_with_the_words(news: TestClient[Litestar]) -> None:
    body = _post(news, query="inflation", k=10, mode="lexical")
    assert set(_ids(body, "doc_id")) == {"en-econ-1", "en-econ-2"}


FILTER_CASES: list[tuple[str, dict[str, Any], dict[str, Any], set[str]]] = [
    # name, POST filters, GET params, the articles that match
    ("lang", {"lang": ["uk"]}, {"lang": "uk"}, matching(lambda a: a.lang == "uk")),
    (
        "source any-of",
        {"source": ["Reuters", "Суспільне"]},
        {"source": ["Reuters", "Суспільне"]},
        matching(lambda a: a.source in {"Reuters", "Суспільне"}),
    ),
    ("section", {"section": ["війна"]}, {"section": "війна"}, matching(lambda a: a.section == "війна")),
    ("one tag", {"tags": ["дрони"]}, {"tag": "дрони"}, matching(lambda a: "дрони" in a.tags)),
    (
        "tags all-of",
        {"tags": ["rates", "inflation"]},
        {"tag": ["rates", "inflation"]},
        matching(lambda a: {"rates", "inflation"} <= set(a.tags)),
    ),
    (
        "date range, whole days",
        {"published_from": "2023-08-01", "published_to": "2023-08-20"},
        {"from": "2023-08-01", "to": "2023-08-20"},
        matching(
            lambda a: a.published_at is not None and "2023-08-01" <= a.published_at.date().isoformat() <= "2023-08-20"
        ),
    ),
    (
        "date-times",
        {"published_from": "2023-08-15T23:10:00Z", "published_to": "2023-09-01T12:00:00+00:00"},
        {"from": "2023-08-15T23:10:00Z", "to": "2023-09-01T12:00:00"},
        {"uk-war-2", "en-war-1", "uk-econ-1"},
    ),
    ("from only", {"published_from": "2023-09-01"}, {"from": "2023-09-01"}, {"uk-econ-1", "en-econ-1"}),
    (
        "combined",
        {"lang": ["uk"], "tags": ["дрони"], "published_to": "2023-08-15"},
        {"lang": "uk", "tag": "дрони", "to": "2023-08-15"},
        {"uk-war-1", "uk-war-2"},
    ),
    ("nothing matches", {"lang": ["pl"]}, {"lang": "pl"}, set()),
]


@pytest.mark.parametrize(("name", "filters", "params", "expected"), FILTER_CASES, ids=[c[0] for c in FILTER_CASES])
@pytest.mark.parametrize("mode", ["dense", "lexical", "hybrid"])
def test_filters_return_the_top_k_among_matching_passages(
    news: TestClient[Litestar],
    mode: str,
    name: str,
    filters: dict[str, Any],
    params: dict[str, Any],
    expected: set[str],
) -> None:
    query, k = "дрони атакували порт", 3
    everything = _post(news, query=query, k=100, mode=mode)
    filtered = _post(news, query=query, k=k, mode=mode, filters=filters)
    got = news.get("/v1/search", params={"q": query, "k": k, "mode": mode, **params})
    assert got.status_code == 200, got.text
    assert _ids(got.json()) == _ids(filtered)
    assert set(_ids(filtered, "doc_id")) <= expected
    candidates = [h for h in everything["hits"] if h["doc_id"] in expected]
    assert len(filtered["hits"]) == min(k, len(candidates))  # still k hits when enough match
    if mode != "hybrid":  # dense and BM25 scores do not depend on the filter, so the order is the same
        assert _ids(filtered) == [h["passage_id"] for h in candidates[:k]]
        assert [h["score"] for h in filtered["hits"]] == [h["score"] for h in candidates[:k]]


def test_filters_and_their_absence(news: TestClient[Litestar]) -> None:
    plain = _ids(_post(news, query="дрони", k=20))
    assert _ids(_post(news, query="дрони", k=20, filters={})) == plain
    assert _ids(_post(news, query="дрони", k=20, filters=None)) == plain
    empty_lists: dict[str, list[str]] = {"lang": [], "source": [], "section": [], "tags": []}
    assert _ids(_post(news, query="дрони", k=20, filters=empty_lists)) == plain


def test_articles_without_a_date_are_left_out_by_date_filters(news: TestClient[Litestar]) -> None:
    undated = matching(lambda a: a.published_at is None)
    assert undated
    body = _post(news, query="дрони", k=20, filters={"published_from": "1900-01-01"})
    assert not undated & set(_ids(body, "doc_id"))
    assert set(_ids(body, "doc_id")) == set(NEWS_BY_ID) - undated


@pytest.mark.parametrize("mode", ["dense", "lexical", "hybrid"])
def test_collapse_returns_each_article_once_with_its_other_matches(news: TestClient[Litestar], mode: str) -> None:
    query = "дрони атакували"
    passages = _post(news, query=query, k=100, mode=mode)
    articles = _post(news, query=query, k=100, mode=mode, collapse=True)
    doc_ids = _ids(articles, "doc_id")
    assert len(doc_ids) == len(set(doc_ids))
    order = list(dict.fromkeys(_ids(passages, "doc_id")))  # each article where its best passage ranks
    assert doc_ids == order
    best: dict[str, Any] = {}
    for hit in passages["hits"]:
        best.setdefault(hit["doc_id"], hit["passage_id"])
    counts = {doc: _ids(passages, "doc_id").count(doc) for doc in order}
    for hit in articles["hits"]:
        assert hit["passage_id"] == best[hit["doc_id"]]
        assert hit["other_matches"] == counts[hit["doc_id"]] - 1
    assert any(h["other_matches"] > 0 for h in articles["hits"])
    assert all(h["other_matches"] == 0 for h in passages["hits"])
    got = news.get("/v1/search", params={"q": query, "k": 100, "mode": mode, "collapse": "true"})
    assert got.json()["hits"] == articles["hits"]


def test_collapse_with_filters(news: TestClient[Litestar]) -> None:
    body = _post(news, query="дрони", k=2, collapse=True, filters={"lang": ["uk"], "section": ["війна"]})
    assert sorted(_ids(body, "doc_id")) == ["uk-war-1", "uk-war-2"]
    other = {h["doc_id"]: h["other_matches"] for h in body["hits"]}
    assert other["uk-war-2"] >= 1


@pytest.mark.parametrize("collapse", [False, True])
def test_offset_pages_do_not_overlap_and_match_one_longer_page(news: TestClient[Litestar], collapse: bool) -> None:
    query = "дрони атакували порт"
    whole = _post(news, query=query, k=4, collapse=collapse)
    first = _post(news, query=query, k=2, offset=0, collapse=collapse)
    second = _post(news, query=query, k=2, offset=2, collapse=collapse)
    assert first["offset"] == 0 and second["offset"] == 2
    assert not set(_ids(first)) & set(_ids(second))
    assert _ids(first) + _ids(second) == _ids(whole)
    assert [h["rank"] for h in second["hits"]] == [3, 4]
    assert first["hits"] + second["hits"] == whole["hits"]
    got = news.get("/v1/search", params={"q": query, "k": 2, "offset": 2, "collapse": str(collapse).lower()})
    assert got.json()["hits"] == second["hits"]


def test_sort_and_recency_through_post_and_get(news: TestClient[Litestar]) -> None:
    body = {"query": "дрони", "k": 10, "collapse": True, "sort": "newest"}
    posted = news.post("/v1/search", json=body)
    assert posted.status_code == 200 and posted.json()["sort"] == "newest"
    dates = [h["published_at"] for h in posted.json()["hits"] if h["published_at"]]
    assert len(dates) >= 2 and dates == sorted(dates, reverse=True)  # ISO 8601 in UTC sorts as text
    got = news.get("/v1/search", params={"q": "дрони", "collapse": "true", "sort": "newest"})
    assert [h["doc_id"] for h in got.json()["hits"]] == [h["doc_id"] for h in posted.json()["hits"]]
    boosted = news.post("/v1/search", json={"query": "дрони атакували", "recency_half_life_days": 30})
    assert boosted.status_code == 200 and boosted.json()["sort"] == "relevance"
    scores = [h["score"] for h in boosted.json()["hits"]]
    assert scores == sorted(scores, reverse=True)
    plain = news.post("/v1/search", json={"query": "дрони атакували"}).json()
    assert scores[0] < plain["hits"][0]["score"]  # the fixtures are from 2023: every score decays


def test_facets_through_post_and_get(news: TestClient[Litestar]) -> None:
    body = {"query": "дрони атакували", "k": 2, "facets": ["source", "month", "tags"]}
    posted = news.post("/v1/search", json=body)
    assert posted.status_code == 200, posted.text
    facets = posted.json()["facets"]
    assert set(facets) == {"source", "month", "tags"} and len(posted.json()["hits"]) == 2
    month = facets["month"][0]
    assert set(month) == {"value", "count", "filters"} and month["count"] >= 1
    assert set(month["filters"]) == {"published_from", "published_to"}
    narrowed = news.post("/v1/search", json={"query": "дрони атакували", "k": 100, "filters": month["filters"]})
    assert {h["published_at"][:7] for h in narrowed.json()["hits"]} == {month["value"]}
    got = news.get("/v1/search", params=[("q", "дрони атакували"), ("k", "2"), ("facet", "source"), ("facet", "month")])
    assert got.json()["facets"] == {name: facets[name] for name in ("source", "month")}
    assert news.post("/v1/search", json={"query": "дрони"}).json()["facets"] == {}  # none unless asked


def test_offset_past_the_end_is_an_empty_page(news: TestClient[Litestar]) -> None:
    total = len(_post(news, query="дрони", k=100, mode="lexical")["hits"])
    body = _post(news, query="дрони", k=5, mode="lexical", offset=total)
    assert body["hits"] == []
    assert body["offset"] == total


def test_term_highlights_point_at_the_matched_words(news: TestClient[Litestar]) -> None:
    body = _post(news, query="дрони атакували", k=100, mode="lexical")
    marked = [h for h in body["hits"] if h["highlight_kind"] == "terms"]
    assert len(marked) >= 5
    for hit in marked:
        assert hit["highlights"]
        ends = [0]
        for span in hit["highlights"]:
            assert ends[-1] <= span["start"] < span["end"] <= len(hit["text"])
            ends.append(span["end"])
            for word in hit["text"][span["start"] : span["end"]].split():
                assert word.casefold().startswith(("дрон", "атак")), (word, hit["text"])
    top = body["hits"][0]
    assert top["passage_id"] == "uk-war-1#0"
    assert [top["text"][s["start"] : s["end"]] for s in top["highlights"]] == ["дрони атакували"]
    for hit in body["hits"]:
        if hit["highlight_kind"] is None:
            assert hit["highlights"] == []


def test_passages_found_by_meaning_get_their_closest_sentence_when_asked(news: TestClient[Litestar]) -> None:
    body = _post(news, query="дрони атакували", k=100, mode="dense", semantic_highlights=True)
    sentences = [h for h in body["hits"] if h["highlight_kind"] == "sentence"]
    assert sentences
    for hit in sentences:
        [span] = hit["highlights"]
        sentence = hit["text"][span["start"] : span["end"]]
        assert sentence.strip() == sentence and sentence
        assert not any(word.casefold().startswith("дрон") for word in sentence.split())


class PassageCountingEncoder(HashEncoder):
    """Counts the texts sent through ``encode_passages``: the model work a search should not do."""

    def __init__(self) -> None:
        super().__init__()
        self.passage_texts = 0

    def encode_passages(self, texts: Sequence[str]) -> Vectors:
        self.passage_texts += len(texts)
        return super().encode_passages(texts)


def test_the_default_request_does_no_model_work_beyond_the_query(settings: Settings, tmp_path: Path) -> None:
    text = "Порт відновив роботу вранці. Судна вийшли в море. Зерно вантажать цілодобово."
    article = Article(id="port", title="Порт", text=text, lang="uk")
    passage = Passage(id="port#0", doc_id="port", ordinal=0, text=text, embed_text=f"Порт\n{text}")
    with IndexWriter(tmp_path / "index", HashEncoder().identity, ChunkingSettings()) as writer:
        writer.upsert(article, [passage], HashEncoder().encode_passages([passage.embed_text]))
    encoder = PassageCountingEncoder()
    with TestClient(create_app(settings, tmp_path / "index", encoder=encoder)) as http:
        assert service_state(http.app).wait(10)
        for query in ("ships at sea", "grain exports from Odesa"):  # no word of the text: found by meaning only
            got = http.get("/v1/search", params={"q": query, "k": 10}).json()["hits"]
            posted = http.post("/v1/search", json={"query": query}).json()["hits"]
            assert [h["highlight_kind"] for h in got + posted] == [None, None]
        assert encoder.passage_texts == 0
        asked = http.post("/v1/search", json={"query": "ships at sea", "semantic_highlights": True}).json()["hits"]
        assert asked[0]["highlight_kind"] == "sentence" and encoder.passage_texts == 3  # the opt-in is what costs


def test_searches_are_charged_to_their_client_at_the_fair_gate(client: TestClient[Litestar]) -> None:
    gate = client.app.state[GATE_KEY]
    assert isinstance(gate, FairGate) and gate.usage("ip:testclient") == 0.0
    assert client.get("/v1/search", params={"q": "Київ"}).status_code == 200
    assert client.post("/v1/search", json={"query": "Київ"}).status_code == 200
    assert gate.usage("ip:testclient") > 0.0 and gate.busy == 0


def test_a_client_past_its_share_of_search_time_gets_429_and_others_do_not(tmp_path: Path, index_dir: Path) -> None:
    settings = make_settings(tmp_path, service_client_time_share="0.001")  # steady use settles at 14 ms
    with TestClient(create_app(settings, index_dir, encoder=HashEncoder())) as http:
        assert service_state(http.app).wait(10)
        gate = http.app.state[GATE_KEY]
        assert http.get("/v1/search", params={"q": "Київ"}).status_code == 200  # admitted: nothing used before

        async def hold() -> None:  # 50 ms of search time, as a long search of this client would take
            async with gate.slot("ip:testclient"):
                time.sleep(0.05)

        with ThreadPoolExecutor(1) as pool:
            pool.submit(asyncio.run, hold()).result()
        refused = http.post("/v1/search", json={"query": "Київ"})
        body = assert_problem(refused, 429)
        assert "share of server time" in body["detail"] and int(refused.headers["Retry-After"]) >= 1
        assert gate.over_share("ip:testclient") > 0 and gate.over_share("key:someone-else") == 0.0
        assert_problem(http.get("/v1/similar/uk-001"), 429)  # "more like this" is a search too
        assert_problem(http.get("/v1/documents/uk-001/similar"), 429)  # ... in its older form as well
        assert http.get("/v1/documents/uk-001").status_code == 200  # reading an article is not charged
        assert http.get("/healthz").status_code == 200


def test_sentences_are_opt_in_and_word_marks_stay_the_same(news: TestClient[Litestar]) -> None:
    full = _post(news, query="дрони атакували", k=100, mode="dense", semantic_highlights=True)
    quick = _post(news, query="дрони атакували", k=100, mode="dense")
    assert [h["passage_id"] for h in quick["hits"]] == [h["passage_id"] for h in full["hits"]]
    assert not any(h["highlight_kind"] == "sentence" for h in quick["hits"])
    for before, after in zip(full["hits"], quick["hits"], strict=True):
        if before["highlight_kind"] == "terms":
            assert after["highlights"] == before["highlights"]
    got = news.get("/v1/search", params={"q": "дрони атакували", "mode": "dense"})
    assert not any(h["highlight_kind"] == "sentence" for h in got.json()["hits"])
    asked = news.get("/v1/search", params={"q": "дрони атакували", "mode": "dense", "semantic_highlights": "true"})
    assert any(h["highlight_kind"] == "sentence" for h in asked.json()["hits"])


def test_highlight_false_leaves_hits_unmarked(news: TestClient[Litestar]) -> None:
    for mode in ("dense", "lexical", "hybrid"):
        body = _post(news, query="дрони атакували", k=5, mode=mode, highlight=False)
        assert all(h["highlights"] == [] and h["highlight_kind"] is None for h in body["hits"])
    got = news.get("/v1/search", params={"q": "дрони", "highlight": "false"}).json()
    assert all(h["highlights"] == [] for h in got["hits"])


# --- documents ---------------------------------------------------------------------------------


def test_document_returns_the_article_and_its_passages(client: TestClient[Litestar]) -> None:
    response = client.get("/v1/documents/uk-001")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["id"] == "uk-001"
    assert body["title"].startswith("Кірбі")
    assert "Шойгу" in body["text"]
    assert body["url"] == "https://example.com/uk-001"
    assert body["source"] == "Приклад"
    assert body["published_at"] == "2023-08-31T09:15:00Z"
    assert body["lang"] == "uk"
    assert body["section"] == "світ"
    assert body["tags"] == ["КНДР", "Росія"]
    assert body["passages"] == [
        {"passage_id": "uk-001#0", "ordinal": 0, "text": ARTICLES_BY_ID["uk-001"][0], "page": None},
        {"passage_id": "uk-001#1", "ordinal": 1, "text": ARTICLES_BY_ID["uk-001"][1], "page": None},
    ]


ARTICLES_BY_ID = {a.id: texts for a, texts in ARTICLES.items()}


def test_unknown_document_is_404(client: TestClient[Litestar]) -> None:
    body = assert_problem(client.get("/v1/documents/uk-999"), 404, "not-found")
    assert "uk-999" in body["detail"]


# --- bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", BAD_REQUESTS, ids=[b.name for b in BAD_REQUESTS])
def test_bad_requests_get_problem_details(client: TestClient[Litestar], bad: BadRequest) -> None:
    bad.check(bad.send(client))


def test_field_errors_are_listed(client: TestClient[Litestar]) -> None:
    body = assert_problem(client.post("/v1/search", json={"query": "x", "k": "abc"}), 400, "invalid-request")
    assert body["errors"] == [{"message": "Expected `int`, got `str`", "key": "k", "source": "body"}]


def test_wrong_method_names_the_allowed_ones(client: TestClient[Litestar]) -> None:
    response = client.delete("/v1/search")
    assert_problem(response, 405)
    assert {m.strip() for m in response.headers["allow"].split(",")} >= {"GET", "POST"}


def test_limits_come_from_settings(index_dir: Path) -> None:
    settings = Settings(service=ServiceSettings(max_query_chars=20, max_k=5, max_body_bytes=1024))
    app = create_app(settings, index_dir, encoder=HashEncoder())
    with TestClient(app) as client:
        assert service_state(app).wait(10)
        assert client.post("/v1/search", json={"query": "ш" * 20, "k": 5}).status_code == 200
        long = assert_problem(client.post("/v1/search", json={"query": "ш" * 21}), 400, "invalid-query")
        assert "20" in long["detail"]
        k = assert_problem(client.get("/v1/search", params={"q": "x", "k": 6}), 400, "invalid-query")
        assert "between 1 and 5" in k["detail"]
        big = client.post("/v1/search", content=b'{"query":"' + b"x" * 1100 + b'"}')
        assert "1024" in assert_problem(big, 413, "body-too-large")["detail"]


def test_unexpected_errors_are_500_without_internals(
    settings: Settings, index_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(settings, index_dir, encoder=ExplodingEncoder())
    with TestClient(app) as client, caplog.at_level(logging.ERROR, logger="poshuk.service"):
        assert service_state(app).wait(10)
        response = client.post("/v1/search", json={"query": "Кірбі"})
    assert_problem(response, 500, "about:blank")
    assert "secret" not in response.text
    assert "RuntimeError" not in response.text
    assert any(r.exc_info and "secret internal failure" in str(r.exc_info[1]) for r in caplog.records)


# --- health and readiness ----------------------------------------------------------------------


def test_healthz_and_readyz_once_loaded(client: TestClient[Litestar]) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    deadline = time.monotonic() + 10
    while not ready.json()["lexical_in_memory"] and time.monotonic() < deadline:  # the upkeep builds them
        time.sleep(0.05)
        ready = client.get("/readyz")
    assert ready.json() == {
        "status": "ready",
        "documents": 3,
        "passages": 4,
        "model": "hash-test-encoder",
        "version": "v000001",
        "read_only": False,
        "lexical_in_memory": True,
    }


def test_readyz_is_503_while_loading_then_200(settings: Settings, index_dir: Path) -> None:
    gate = threading.Event()
    app = create_app(settings, index_dir, encoder=GatedEncoder(gate))
    try:
        with TestClient(app) as client:
            assert client.get("/healthz").status_code == 200
            loading = assert_problem(client.get("/readyz"), 503, "not-ready")
            assert loading["detail"] == "index is loading"
            assert client.get("/readyz").headers["retry-after"]
            assert_problem(client.post("/v1/search", json={"query": "Кірбі"}), 503, "not-ready")
            assert_problem(client.get("/v1/search", params={"q": "Кірбі"}), 503, "not-ready")
            assert_problem(client.get("/v1/documents/uk-001"), 503, "not-ready")
            gate.set()
            assert service_state(app).wait(10)
            assert client.get("/readyz").status_code == 200
            assert client.get("/v1/search", params={"q": "Кірбі"}).status_code == 200
    finally:
        gate.set()


def test_readyz_reports_why_loading_failed(settings: Settings, tmp_path: Path) -> None:
    missing = tmp_path / "no-index-here"
    app = create_app(settings, missing, encoder=HashEncoder())
    with TestClient(app) as client:
        assert service_state(app).wait(10)
        assert client.get("/healthz").status_code == 200
        body = assert_problem(client.get("/readyz"), 503, "not-ready")
        assert body["detail"].startswith("index failed to load: no index at")
        assert str(missing) not in body["detail"] and "<server path>" in body["detail"]  # the log has it
        assert_problem(client.post("/v1/search", json={"query": "x"}), 503, "not-ready")


def test_readyz_reports_a_model_mismatch(settings: Settings, index_dir: Path) -> None:
    app = create_app(settings, index_dir, encoder=HashEncoder(dimension=32, name="other"))
    with TestClient(app) as client:
        assert service_state(app).wait(10)
        body = assert_problem(client.get("/readyz"), 503, "not-ready")
        assert "was built with model 'hash-test-encoder'" in body["detail"]


def test_shutdown_closes_the_searcher(settings: Settings, index_dir: Path) -> None:
    app = create_app(settings, index_dir, encoder=HashEncoder())
    with TestClient(app) as client:
        assert service_state(app).wait(10)
        assert client.get("/readyz").status_code == 200
    with pytest.raises(IndexNotReadyError, match="shutting down"):
        service_state(app).require_searcher()


def test_each_app_has_its_own_state(settings: Settings, index_dir: Path) -> None:
    first = create_app(settings, index_dir, encoder=HashEncoder())
    second = create_app(settings, index_dir, encoder=HashEncoder())
    assert service_state(first) is not service_state(second)


# --- OpenAPI -----------------------------------------------------------------------------------


def test_openapi_schema_documents_every_route(client: TestClient[Litestar]) -> None:
    response = client.get("/schema")
    assert response.status_code == 200
    schema = response.json()
    assert client.get("/schema/openapi.json").json() == schema
    assert schema["info"]["title"] == "Poshuk"
    assert schema["info"]["version"]
    paths = schema["paths"]
    assert {"/v1/search", "/v1/documents/{doc_id}", "/healthz", "/readyz"} <= set(paths)
    for path, item in paths.items():
        for method, operation in item.items():
            assert operation.get("description"), f"{method.upper()} {path} has no description"
    text = response.text
    assert "переговори Росії та Північної Кореї" in text  # the Ukrainian query example
    assert "Russia North Korea arms talks" in text  # the English one
    post_200 = paths["/v1/search"]["post"]["responses"]["200"]["content"]["application/json"]
    assert post_200["examples"]
    [response_example] = post_200["examples"].values()
    hit = response_example["value"]["hits"][0]
    assert [hit["text"][s["start"] : s["end"]] for s in hit["highlights"]] == ["Росією", "Північною Кореєю"]
    request_examples = paths["/v1/search"]["post"]["requestBody"]["content"]["application/json"]["schema"]["examples"]
    with_filters = [e for e in request_examples if "filters" in e]
    assert with_filters and with_filters[0]["collapse"] is True
    get_params = {p["name"] for p in paths["/v1/search"]["get"]["parameters"]}
    assert {"q", "k", "mode", "lang", "source", "section", "tag", "from", "to", "collapse", "offset"} <= get_params
    assert "application/problem+json" in paths["/v1/search"]["post"]["responses"]["400"]["content"]


# --- serve() -----------------------------------------------------------------------------------


@pytest.fixture
def no_server(monkeypatch: pytest.MonkeyPatch) -> None:
    """serve() must fail before uvicorn starts; if it ever got that far, fail instead of listening."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("uvicorn.run was reached")

    monkeypatch.setattr("service.server.uvicorn.run", refuse)


@pytest.mark.usefixtures("no_server")
def test_serve_refuses_a_missing_index_before_listening(settings: Settings, tmp_path: Path) -> None:
    with pytest.raises(IndexNotFoundError, match="no index at"):
        serve(tmp_path / "missing", settings)


@pytest.mark.usefixtures("no_server")
def test_serve_refuses_a_model_that_is_not_provisioned(tmp_path: Path, index_dir: Path) -> None:
    settings = Settings(home=str(tmp_path / "home"), model="no-such-model-for-tests")
    with pytest.raises(ModelError, match="not available offline"):
        serve(index_dir, settings)


# --- README ------------------------------------------------------------------------------------


def _readme_http_examples() -> tuple[list[dict[str, Any]], list[str]]:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    section = readme.split("## HTTP API", 1)[1].split("\n## ", 1)[0]
    bodies = [json.loads(body) for body in re.findall(r"-d '(\{.*?\})'", section, flags=re.DOTALL)]
    links = re.findall(r"curl -s '(localhost:8000/v1/search\?[^']+)'", section)
    return bodies, links


def test_readme_http_examples_are_valid_requests(news: TestClient[Litestar]) -> None:
    bodies, links = _readme_http_examples()
    assert len(bodies) >= 2 and any("filters" in b and b.get("collapse") for b in bodies)
    assert links
    for body in bodies:
        assert news.post("/v1/search", json=body).status_code == 200, body
    for link in links:
        response = news.get(link.removeprefix("localhost:8000"))
        assert response.status_code == 200, (link, response.text)
        assert response.json()["offset"] == 5


def test_dedupe_returns_each_story_once(news: TestClient[Litestar]) -> None:
    query = "дрони атакували порт"
    body = _post(news, query=query, k=20, dedupe=True)
    clusters = _ids(body, "cluster")
    assert clusters and all(clusters) and len(clusters) == len(set(clusters))
    got = news.get("/v1/search", params={"q": query, "k": 20, "dedupe": "true"})
    assert got.json()["hits"] == body["hits"]
