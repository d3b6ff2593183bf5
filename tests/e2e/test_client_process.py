"""``poshuk.Client`` and ``poshuk.AsyncClient`` against a real ``poshuk serve``, plus its ``/metrics``
and its JSON log lines. Server start-up from ``tests.support.serving``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import poshuk
from tests.support.processes import run_coroutine
from tests.support.repo import copy_index
from tests.support.serving import ONE_BUSY_CLIENT, Server, start_server, stop_server

pytestmark = [pytest.mark.e2e, pytest.mark.model]


@pytest.fixture(scope="module")
def client_server(example_index_source: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    index_dir = copy_index(example_index_source, tmp_path_factory.mktemp("client") / "index")
    running = start_server(index_dir, tmp_path_factory.mktemp("client-log") / "server.log", ONE_BUSY_CLIENT)
    yield running
    stop_server(running)


def test_clients_search_read_and_scrape(client_server: Server) -> None:
    with poshuk.Client(client_server.base_url, timeout=60.0) as client:
        assert client.ready()
        result = client.search("візит Шойгу до Північної Кореї", k=5, collapse=True)
        assert isinstance(result, poshuk.SearchResult) and result.hits
        top = result.hits[0].doc_id
        article = client.document(top)
        assert isinstance(article, poshuk.Article) and article.id == top
        similar = client.similar(top, k=3)
        assert similar.hits and top not in {hit.doc_id for hit in similar.hits}
        with pytest.raises(poshuk.NotFoundError):
            client.document("no-such-article")
        with pytest.raises(poshuk.InvalidQueryError):
            client.search("   ")

    async def run() -> list[str]:
        async with poshuk.AsyncClient(client_server.base_url, timeout=60.0) as client:
            found = await client.search("North Korea ammunition", k=3)
            await client.document(found.hits[0].doc_id)
            return [hit.doc_id for hit in (await client.similar(found.hits[0].doc_id, k=2)).hits]

    assert run_coroutine(run())

    metrics = httpx.get(client_server.base_url + "/metrics", timeout=10).text
    assert 'poshuk_http_requests_total{method="POST",route="/v1/search",status="200"}' in metrics
    assert "poshuk_search_seconds_bucket" in metrics
    assert "poshuk_index_documents 30.0" in metrics

    access = []
    for line in client_server.output().splitlines():
        if line.startswith("{"):
            entry = json.loads(line)
            if entry.get("logger") == "poshuk.access":
                access.append(entry)
    assert any(e["route"].startswith("/v1/documents/{doc_id") and e["status"] == 404 for e in access), access
    assert "Шойгу" not in client_server.output()
