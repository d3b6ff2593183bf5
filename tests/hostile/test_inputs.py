"""Hostile bodies, ids, dates and characters against a real ``poshuk serve``: 4xx, never 5xx or a traceback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import poshuk
from poshuk.documents import normalise_id
from service.auth import new_key
from tests.support.api import assert_problem
from tests.support.hostile import serving
from tests.support.serving import Server

pytestmark = [pytest.mark.e2e, pytest.mark.model]

KEY, KEY_HASH = new_key()
AUTH = {"Authorization": f"Bearer {KEY}"}
DEEP = b"[" * 1000 + b"]" * 1000
ARTICLE = {"title": "Бюджет міста", "text": "Депутати ухвалили бюджет на наступний рік.", "lang": "uk"}


@pytest.fixture(scope="module")
def server(example_index_source: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with serving(example_index_source, tmp_path_factory, {"auth.keys": KEY_HASH}) as running:
        yield running
    output = running.output()
    assert "Traceback" not in output and '"status": 500' not in output


@pytest.fixture
def http(server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base_url, timeout=60) as client:
        yield client


def test_deep_json_is_400_everywhere(http: httpx.Client) -> None:
    json_type = {"content-type": "application/json"}
    for response in (
        http.post("/v1/search", content=b'{"query": "x", "filters": ' + DEEP + b"}", headers=json_type),
        http.put("/v1/documents/deep", content=b'{"text": "x", "tags": ' + DEEP + b"}", headers={**AUTH, **json_type}),
        http.post("/v1/documents", content=b"[" + DEEP + b"]", headers={**AUTH, **json_type}),
    ):
        assert "levels deep" in assert_problem(response, 400, "invalid-request")["detail"]


@pytest.mark.parametrize("field", [{"k": "5"}, {"dedupe": "true"}, {"collapse": "false"}, {"offset": "1"}])
def test_strings_for_numbers_or_booleans_are_400(http: httpx.Client, field: dict[str, str]) -> None:
    [name] = field
    body = assert_problem(http.post("/v1/search", json={"query": "Київ", **field}), 400, "invalid-request")
    assert name in body["detail"]


@pytest.mark.parametrize("value", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"])
def test_dates_at_the_ends_of_the_calendar(http: httpx.Client, value: str) -> None:
    put = http.put("/v1/documents/dated", json={**ARTICLE, "published_at": value}, headers=AUTH)
    assert "out of range" in assert_problem(put, 400, "invalid-input")["detail"]
    for name in ("published_from", "published_to"):
        search = http.post("/v1/search", json={"query": "Київ", "filters": {name: value}})
        assert search.status_code == 200, search.text


def test_ids_round_trip_through_the_client(server: Server) -> None:
    with poshuk.Client(server.base_url, api_key=KEY) as client:
        for doc_id in ("world/2023/kirby", "e\u0301", "uk-001/similar"):
            client.upsert(poshuk.Article(id=doc_id, title="Кірбі", text="Переговори про зброю тривають."))
            stored = client.document(doc_id)
            assert stored.id == normalise_id(doc_id)
            assert client.document(stored.id).title == "Кірбі"
            assert client.similar(doc_id, k=3).hits
        similar = client.similar("uk-001", k=3)  # uk-001/similar, now an article, does not shadow this
        assert similar.query == "similar:uk-001"
        assert client.document("uk-001/similar").id == "uk-001/similar"
        for doc_id in ("world/2023/kirby", "é", "uk-001/similar"):
            client.delete(doc_id)
            with pytest.raises(poshuk.NotFoundError):
                client.document(doc_id)


def test_control_and_bidi_characters_do_not_reach_stored_metadata(http: httpx.Client) -> None:
    nasty = "Заголовок\r\x9b31m\u202eгол\u2066"
    put = http.put(
        "/v1/documents/ctl", json={**ARTICLE, "title": nasty, "source": nasty, "tags": [nasty]}, headers=AUTH
    )
    assert put.status_code in (200, 201), put.text
    stored = http.get("/v1/documents/ctl").json()
    for value in (stored["title"], stored["source"], *stored["tags"]):
        assert value == "Заголовок 31mгол", repr(value)
