"""``poshuk serve`` as a real process on 127.0.0.1, queried over HTTP with the real model.

The index is built once per session with the real CLI (``poshuk index``) over the example
articles; the model comes from ``POSHUK_HOME`` (CI provisions it before the tests run).
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.api import BAD_REQUESTS, HIT_FIELDS, BadRequest
from tests.support.processes import cli_env
from tests.support.repo import copy_index
from tests.support.serving import ONE_BUSY_CLIENT, Server, free_port, start_server, stop_server

pytestmark = [pytest.mark.e2e, pytest.mark.model]

POSHUK = str(Path(sys.executable).with_name("poshuk"))


@pytest.fixture(scope="session")
def cli_index(example_index_source: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example articles indexed by the real CLI with the real default model (a private copy)."""
    return copy_index(example_index_source, tmp_path_factory.mktemp("serve") / "index")


@pytest.fixture(scope="module")
def server(cli_index: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = start_server(cli_index, tmp_path_factory.mktemp("serve-log") / "server.log", ONE_BUSY_CLIENT)
    yield running
    stop_server(running)
    assert "Application shutdown complete" in running.output()


@pytest.fixture
def http(server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base_url, timeout=60.0) as client:
        yield client


def test_health_and_readiness(http: httpx.Client) -> None:
    assert http.get("/healthz").json() == {"status": "ok"}
    ready = http.get("/readyz")
    assert ready.status_code == 200
    body = ready.json()
    assert body["status"] == "ready"
    assert body["model"] == "multilingual-e5-small"
    assert body["documents"] >= 30
    assert body["passages"] >= body["documents"]
    assert body["version"].startswith("v")


def test_ukrainian_query_over_http(http: httpx.Client) -> None:
    response = http.post("/v1/search", json={"query": "візит Шойгу до Північної Кореї", "k": 5})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"] == "multilingual-e5-small"
    hits = body["hits"]
    assert [h["rank"] for h in hits] == list(range(1, len(hits) + 1))
    assert all(set(h) == HIT_FIELDS for h in hits)
    assert hits[0]["doc_id"] == "uk-001"
    assert hits[0]["lang"] == "uk"


def test_english_query_finds_the_ukrainian_article_over_http(http: httpx.Client) -> None:
    response = http.get(
        "/v1/search", params={"q": "Russia and North Korea are negotiating ammunition deliveries", "k": 5}
    )
    assert response.status_code == 200, response.text
    hits = response.json()["hits"]
    assert len(hits) == 5
    assert hits[0]["doc_id"] == "uk-001"


def test_filters_collapse_and_highlights_over_http(http: httpx.Client) -> None:
    query = "Russia and North Korea are negotiating ammunition deliveries"
    body = {
        "query": query,
        "k": 5,
        "collapse": True,
        "filters": {"lang": ["uk"], "published_from": "2023-08-01", "published_to": "2023-08-31"},
    }
    response = http.post("/v1/search", json=body)
    assert response.status_code == 200, response.text
    result = response.json()
    assert (result["mode"], result["offset"]) == ("hybrid", 0)
    [hit] = result["hits"]  # one article in the example set matches the filters
    assert hit["doc_id"] == "uk-001"
    assert hit["lang"] == "uk" and hit["published_at"].startswith("2023-08-31")
    assert hit["other_matches"] >= 1
    assert hit["highlight_kind"] in {"terms", None}  # an English query: sentence marks are opt-in
    assert all(0 <= s["start"] < s["end"] <= len(hit["text"]) for s in hit["highlights"])
    params: dict[str, str | int] = {
        "q": query,
        "k": 5,
        "collapse": "true",
        "lang": "uk",
        "from": "2023-08-01",
        "to": "2023-08-31",
    }
    assert http.get("/v1/search", params=params).json()["hits"] == result["hits"]


@pytest.mark.parametrize("mode", ["dense", "lexical", "hybrid"])
def test_modes_and_paging_over_http(http: httpx.Client, mode: str) -> None:
    query = "Шойгу Північна Корея боєприпаси"
    whole = http.post("/v1/search", json={"query": query, "k": 4, "mode": mode}).json()
    second = http.post("/v1/search", json={"query": query, "k": 2, "offset": 2, "mode": mode}).json()
    assert whole["mode"] == second["mode"] == mode
    assert whole["hits"][0]["doc_id"] == "uk-001"
    assert [h["passage_id"] for h in second["hits"]] == [h["passage_id"] for h in whole["hits"][2:]]


def test_document_over_http(http: httpx.Client) -> None:
    response = http.get("/v1/documents/uk-001")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["id"] == "uk-001"
    assert "Кірбі" in body["title"]
    assert [p["ordinal"] for p in body["passages"]] == list(range(len(body["passages"])))
    assert all(p["passage_id"] == f"uk-001#{p['ordinal']}" for p in body["passages"])


@pytest.mark.parametrize("bad", BAD_REQUESTS, ids=[b.name for b in BAD_REQUESTS])
def test_bad_requests_over_http(http: httpx.Client, bad: BadRequest) -> None:
    bad.check(bad.send(http))


def test_openapi_over_http(http: httpx.Client) -> None:
    schema = http.get("/schema").json()
    assert schema["info"]["title"] == "Poshuk"
    assert "/v1/search" in schema["paths"]


def test_serve_without_an_index_fails_fast_with_one_line(tmp_path: Path) -> None:
    missing = tmp_path / "nonexistent"
    started = time.monotonic()
    done = subprocess.run(
        [POSHUK, "serve", "--index", str(missing), "--port", str(free_port())],
        capture_output=True,
        text=True,
        timeout=60,
        env=cli_env(),
    )
    elapsed = time.monotonic() - started
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "no index at" in lines[0]
    assert str(missing) in lines[0]
    assert elapsed < 30, f"took {elapsed:.1f} s to fail"
    assert "Uvicorn running" not in done.stdout + done.stderr


def test_source_section_tag_filters_dedupe_and_sentence_marks_over_http(http: httpx.Client) -> None:
    query = "Russia North Korea ammunition talks"
    filters = {"source": ["Київський вісник"], "section": ["world"], "tags": ["КНДР", "озброєння"]}
    body = {"query": query, "k": 10, "filters": filters}
    hits = http.post("/v1/search", json=body).json()["hits"]
    assert hits and {h["doc_id"] for h in hits} == {"uk-001"}  # the only article with all of these
    assert all(h["source"] == "Київський вісник" for h in hits)
    deduped = http.post("/v1/search", json={"query": query, "k": 10, "dedupe": True}).json()["hits"]
    stories = [h["cluster"] or h["doc_id"] for h in deduped]
    assert deduped[0]["doc_id"] == "uk-001" and len(stories) == len(set(stories))
    # an English query has no word in the Ukrainian article: its closest sentence is marked instead
    asked = {"query": query, "k": 3, "mode": "dense", "semantic_highlights": True}
    top = http.post("/v1/search", json=asked).json()["hits"][0]
    assert top["doc_id"] == "uk-001" and top["highlight_kind"] == "sentence"
    [span] = top["highlights"]
    assert top["text"][span["start"] : span["end"]].strip()
    quick = http.post("/v1/search", json={"query": query, "k": 3, "mode": "dense"})  # the default: no sentences
    assert quick.json()["hits"][0]["highlight_kind"] is None
