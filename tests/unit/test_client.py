"""``poshuk.Client`` / ``poshuk.AsyncClient``: requests they send, structs they return, errors they raise."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import httpx
import msgspec
import pytest

import poshuk
from poshuk.filters import Filters
from tests.support.processes import run_coroutine

HIT = {
    "rank": 1,
    "score": 0.5,
    "passage_id": "uk-001#0",
    "doc_id": "uk-001",
    "title": "Кірбі",
    "text": "Переговори",
    "published_at": "2023-08-31T09:15:00Z",
    "lang": "uk",
    "highlights": [{"start": 0, "end": 4}],
    "highlight_kind": "terms",
    "other_matches": 0,
}
RESULT = {"query": "q", "took_ms": 1.5, "model": "m", "mode": "hybrid", "offset": 0, "hits": [HIT]}
DOCUMENT = {"id": "uk-001", "title": "Кірбі", "text": "Переговори", "tags": ["КНДР"], "passages": []}
WRITTEN = {"ids": ["uk-001"], "passages": 1, "seq": 7}


def _problem(status: int, slug: str, detail: str) -> httpx.Response:
    body = {"type": f"https://poshuk.dev/problems/{slug}", "title": slug, "status": status, "detail": detail}
    return httpx.Response(status, json=body, headers={"content-type": "application/problem+json"})


def _service(request: httpx.Request) -> httpx.Response:
    path, method = request.url.path, request.method
    if path == "/v1/search" and method == "POST":
        body = json.loads(request.content)
        if body["query"] == "bad":
            return _problem(400, "invalid-query", "query is empty")
        if body["query"] == "keyless":
            return _problem(401, "unauthorized", "a key is needed")
        if body["query"] == "busy":
            return httpx.Response(429, json={"detail": "slow down"}, headers={"retry-after": "2"})
        assert body["filters"]["lang"] == ["uk"]
        assert body["filters"]["published_from"].startswith("2023-08-01T00:00:00")
        if body["query"] == "newest":
            assert body["sort"] == "newest" and "recency_half_life_days" not in body
            return httpx.Response(200, json={**RESULT, "query": body["query"], "sort": "newest"})
        if body["query"] == "counted":
            assert body["facets"] == ["source", "month"]
            bucket = {"value": "Укрінформ", "count": 2, "filters": {"source": ["Укрінформ"]}}
            return httpx.Response(200, json={**RESULT, "facets": {"source": [bucket], "month": []}})
        if body["query"] == "fresh":
            assert body["sort"] == "relevance" and body["recency_half_life_days"] == 7.0
        return httpx.Response(200, json={**RESULT, "query": body["query"]})
    if path == "/v1/documents/uk-001" and method == "GET":
        return httpx.Response(200, json=DOCUMENT)
    if path == "/v1/similar/uk-001":
        assert request.url.params["k"] == "3"
        return httpx.Response(200, json={**RESULT, "mode": "dense"})
    if path == "/v1/documents/a%2Fb" or path == "/v1/documents/a/b":
        assert request.url.raw_path == b"/v1/documents/a%2Fb"
        return _problem(404, "not-found", "no document a/b")
    if path == "/v1/documents/uk-001" and method in ("PUT", "DELETE"):
        if request.headers.get("authorization") != "Bearer k1":
            return _problem(403, "forbidden", "wrong key")
        if method == "PUT":
            sent = json.loads(request.content)
            assert sent["id"] == "uk-001" and sent["tags"] == ["КНДР"]
        return httpx.Response(200 if method == "DELETE" else 201, json=WRITTEN)
    if path == "/v1/documents" and method == "POST":
        assert [a["id"] for a in json.loads(request.content)] == ["a", "b"]
        return httpx.Response(200, json={"ids": ["a", "b"], "passages": 2, "seq": 9})
    if path == "/readyz":
        return httpx.Response(503, json={"status": "loading"})
    return httpx.Response(500, text="boom")


ARTICLE = poshuk.Article(id="uk-001", title="Кірбі", text="Переговори", tags=("КНДР",))
FILTERS = Filters(lang=("uk",), published_from=datetime(2023, 8, 1, tzinfo=UTC))


def _client(api_key: str | None = None) -> poshuk.Client:
    return poshuk.Client("http://poshuk.test", api_key=api_key, transport=httpx.MockTransport(_service))


def test_client_decodes_into_the_library_structs() -> None:
    with _client("k1") as client:
        result = client.search("Кірбі", k=3, filters=FILTERS, collapse=True)
        assert isinstance(result, poshuk.SearchResult)
        assert result.query == "Кірбі"
        hit = result.hits[0]
        assert isinstance(hit, poshuk.Hit)
        assert hit.published_at == datetime(2023, 8, 31, 9, 15, tzinfo=UTC)
        assert (hit.highlights[0].start, hit.highlights[0].end) == (0, 4)
        assert result.sort == "relevance"  # an answer without `sort` (an older server) decodes as relevance
        assert client.search("newest", filters=FILTERS, sort="newest").sort == "newest"
        assert client.search("fresh", filters=FILTERS, recency_half_life_days=7.0).query == "fresh"
        counted = client.search("counted", filters=FILTERS, facets=["source", "month"]).facets
        assert counted["source"] == [poshuk.FacetBucket(value="Укрінформ", count=2, filters={"source": ["Укрінформ"]})]
        assert client.document("uk-001") == ARTICLE
        assert client.similar("uk-001", k=3).mode == "dense"
        assert client.upsert(ARTICLE).seq == 7
        assert client.upsert_many(
            [msgspec.structs.replace(ARTICLE, id="a"), msgspec.structs.replace(ARTICLE, id="b")]
        ).ids == ["a", "b"]
        assert client.delete("uk-001").ids == ["uk-001"]
        assert client.ready() is False


@pytest.mark.parametrize(
    ("query", "error", "status"),
    [
        ("bad", poshuk.InvalidQueryError, 400),
        ("keyless", poshuk.AuthError, 401),
        ("busy", poshuk.ServiceUnavailableError, 429),
    ],
)
def test_problems_raise_the_matching_error(query: str, error: type[poshuk.PoshukError], status: int) -> None:
    with _client() as client, pytest.raises(error) as raised:
        client.search(query)
    assert raised.value.status == status
    assert raised.value.detail
    if status == 429:
        assert raised.value.hint == "retry after 2 s"


def test_other_errors() -> None:
    with _client() as client:
        with pytest.raises(poshuk.NotFoundError) as missing:
            client.document("a/b")
        assert missing.value.detail == "no document a/b" and missing.value.status == 404
        with pytest.raises(poshuk.AuthError) as refused:
            client.delete("uk-001")
        assert refused.value.status == 403
        with pytest.raises(poshuk.PoshukError) as broken:
            client.similar("zzz")
        assert broken.value.status == 500 and type(broken.value) is poshuk.PoshukError


@pytest.mark.parametrize(
    ("body", "content_type", "detail"),
    [
        (b'{"detail": "upstream is down"}', "application/problem+json", "upstream is down"),  # a partial problem
        (b'{"title": "Bad Gateway"}', "application/problem+json", "Bad Gateway"),
        (b"upstream is down\n", "text/plain", "upstream is down"),
        (b"", "text/plain", "Bad Gateway"),
    ],
)
def test_answers_that_are_not_poshuks_problems(body: bytes, content_type: str, detail: str) -> None:
    """A proxy's answer: every member of a problem document is optional (RFC 9457), or there is none."""
    transport = httpx.MockTransport(
        lambda request: httpx.Response(502, content=body, headers={"content-type": content_type})
    )
    with poshuk.Client("http://poshuk.test", transport=transport) as client, pytest.raises(poshuk.PoshukError) as err:
        client.search("x")
    assert (err.value.status, err.value.detail) == (502, detail)


def test_async_client_matches_the_sync_one() -> None:
    async def run() -> None:
        transport = httpx.MockTransport(_service)
        async with poshuk.AsyncClient("http://poshuk.test", api_key="k1", transport=transport) as client:
            result = await client.search("Кірбі", k=3, filters=FILTERS)
            assert result.hits[0].doc_id == "uk-001"
            assert await client.document("uk-001") == ARTICLE
            assert (await client.similar("uk-001", k=3)).mode == "dense"
            assert (await client.upsert(ARTICLE)).passages == 1
            assert (await client.delete("uk-001")).seq == 7
            assert await client.ready() is False
            with pytest.raises(poshuk.InvalidQueryError):
                await client.search("bad")

    run_coroutine(run())


ALERT = {
    "id": "a1/b",
    "query": "North Korea",
    "mode": "dense",
    "threshold": 0.8,
    "top_k": 3,
    "webhook": "https://hooks.example/x",
    "created_at": "2026-12-06T10:00:00Z",
    "matches": 1,
}
MATCH = {
    "doc_id": "uk-001",
    "title": "Кірбі",
    "score": 0.86,
    "matched_by": "meaning",
    "matched_at": "2026-12-06T10:01:00Z",
}


def _alerts_service(request: httpx.Request) -> httpx.Response:
    path, method = request.url.raw_path.decode(), request.method
    assert request.headers["authorization"] == "Bearer k1"
    if path == "/v1/alerts" and method == "POST":
        body = json.loads(request.content)
        assert body == {"query": "North Korea", "mode": "dense", "top_k": 3, "filters": body["filters"]}
        assert body["filters"]["lang"] == ["uk"]
        return httpx.Response(201, json=ALERT)
    if path == "/v1/alerts" and method == "GET":
        return httpx.Response(200, json=[ALERT])
    if path == "/v1/alerts/a1%2Fb" and method == "GET":
        return httpx.Response(200, json=ALERT)
    if path == "/v1/alerts/a1%2Fb" and method == "DELETE":
        return httpx.Response(204)
    if path.startswith("/v1/alerts/a1%2Fb/matches?") and method == "GET":
        assert request.url.params["limit"] == "5" and request.url.params["newest"] == "true"
        return httpx.Response(200, json={"alert": ALERT, "matches": [MATCH]})
    return _problem(404, "not-found", f"alert {path} does not exist")


def test_the_alert_methods_send_their_requests_and_decode_the_answers() -> None:
    transport = httpx.MockTransport(_alerts_service)
    with poshuk.Client("http://poshuk.test", api_key="k1", transport=transport) as client:
        made = client.create_alert("North Korea", mode="dense", top_k=3, filters=Filters(lang=("uk",)))
        assert isinstance(made, poshuk.Alert) and made.top_k == 3 and made.webhook == ALERT["webhook"]
        assert [a.id for a in client.alerts()] == ["a1/b"]
        assert client.alert("a1/b").matches == 1
        found = client.alert_matches("a1/b", limit=5, newest=True)
        assert isinstance(found, poshuk.AlertMatches) and found.matches[0].score == 0.86
        client.delete_alert("a1/b")
        with pytest.raises(poshuk.NotFoundError):
            client.alert("other")

    async def run() -> list[str]:
        async with poshuk.AsyncClient("http://poshuk.test", api_key="k1", transport=transport) as client:
            await client.create_alert("North Korea", mode="dense", top_k=3, filters=Filters(lang=("uk",)))
            await client.delete_alert("a1/b")
            found = await client.alert_matches("a1/b", limit=5, newest=True)
            return [m.doc_id for m in found.matches] + [a.id for a in await client.alerts()]

    assert run_coroutine(run()) == ["uk-001", "a1/b"]
