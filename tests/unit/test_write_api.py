"""The write API, keys, limits and live upkeep, through Litestar's TestClient with the HashEncoder."""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from litestar import Litestar
from litestar.testing import TestClient

from poshuk.documents import Article, Passage
from poshuk.encoder import HashEncoder, Vectors
from poshuk.index import Index, IndexWriter, live_version
from poshuk.settings import ChunkingSettings, load_settings
from poshuk_cli.main import main
from service.app import create_app
from tests.support.api import assert_problem
from tests.support.app import (
    ARTICLE,
    AUTH,
    KEY,
    KEY_HASH,
    app_lifecycle,
    build_service_index,
    make_settings,
    service_state,
)
from tests.support.consistency import check_index


@pytest.fixture
def index_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "index"
    build_service_index(folder, HashEncoder())
    return folder


ClientFactory = Callable[..., TestClient[Litestar]]


@pytest.fixture
def make_client(tmp_path: Path, index_dir: Path) -> Iterator[ClientFactory]:
    """Start an app over ``index_dir`` with extra ``POSHUK_*`` settings (``service_rate_limit_burst="2"``)."""
    clients: list[TestClient[Litestar]] = []

    def start(encoder: Any = None, **env: str) -> TestClient[Litestar]:
        app = create_app(make_settings(tmp_path, **env), index_dir, encoder=encoder or HashEncoder())
        client = TestClient(app)
        client.__enter__()
        clients.append(client)
        assert service_state(app).wait(10)
        return client

    yield start
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client: ClientFactory) -> TestClient[Litestar]:
    return make_client()


def _search_ids(client: TestClient[Litestar], query: str) -> list[str]:
    response = client.get("/v1/search", params={"q": query, "k": 10})
    assert response.status_code == 200, response.text
    return [hit["doc_id"] for hit in response.json()["hits"]]


# --- keys -------------------------------------------------------------------------------------


def test_without_configured_keys_writes_are_refused_and_say_how_to_configure(tmp_path: Path, index_dir: Path) -> None:
    settings = load_settings(env={"POSHUK_HOME": str(tmp_path / "home")})
    with TestClient(create_app(settings, index_dir, encoder=HashEncoder())) as client:
        assert service_state(client.app).wait(10)
        for response in (
            client.put("/v1/documents/x", json=ARTICLE, headers=AUTH),
            client.delete("/v1/documents/uk-001"),
            client.post("/v1/admin/reload", headers=AUTH),
        ):
            body = assert_problem(response, 403, "keys-not-configured")
            assert "poshuk key new" in body["detail"] and "[auth]" in body["detail"]
        assert client.get("/v1/documents/uk-001").status_code == 200  # reads stay open


def test_missing_key_is_401_and_wrong_key_is_403(client: TestClient[Litestar]) -> None:
    missing = client.put("/v1/documents/x", json=ARTICLE)
    assert_problem(missing, 401, "unauthorized")
    assert missing.headers["www-authenticate"].startswith("Bearer")
    assert_problem(client.put("/v1/documents/x", json=ARTICLE, headers={"Authorization": "Basic Zm9vOmJhcg=="}), 401)
    wrong = client.put("/v1/documents/x", json=ARTICLE, headers={"X-API-Key": KEY + "x"})
    body = assert_problem(wrong, 403, "forbidden")
    assert KEY not in wrong.text and KEY not in body["detail"]
    assert_problem(client.put("/v1/documents/x", json=ARTICLE, params={"api_key": KEY}), 401)  # never in URLs
    assert client.put("/v1/documents/x", json=ARTICLE, headers={"X-API-Key": KEY}).status_code == 201
    assert client.put("/v1/documents/y", json=ARTICLE, headers={"authorization": f"bearer {KEY}"}).status_code == 201


def test_read_requires_key_when_configured(make_client: ClientFactory) -> None:
    client = make_client(auth_read_requires_key="true")
    assert_problem(client.get("/v1/search", params={"q": "бюджет"}), 401, "unauthorized")
    assert_problem(client.get("/v1/documents/uk-001", headers={"X-API-Key": "nope"}), 403, "forbidden")
    assert client.get("/v1/search", params={"q": "бюджет"}, headers=AUTH).status_code == 200
    for open_path in ("/healthz", "/readyz", "/schema/openapi.json"):
        assert client.get(open_path).status_code == 200, open_path


def test_keys_never_reach_the_logs(make_client: ClientFactory, caplog: pytest.LogCaptureFixture) -> None:
    class Exploding(HashEncoder):
        def encode_passages(self, texts: Sequence[str]) -> Vectors:
            raise RuntimeError("backend failure")

    caplog.set_level(logging.DEBUG)
    client = make_client(encoder=Exploding())
    assert client.put("/v1/documents/x", json=ARTICLE, headers=AUTH).status_code == 500
    client.put("/v1/documents/x", json=ARTICLE, headers={"X-API-Key": KEY + "wrong"})
    client.get("/v1/search", params={"q": "x"}, headers=AUTH)
    assert caplog.records, "expected the failure to be logged"
    assert KEY not in caplog.text
    assert KEY_HASH.removeprefix("sha256:") not in caplog.text


def test_key_new_prints_a_key_and_its_settings_line(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["key", "new"]) == 0
    key, *rest = capsys.readouterr().out.splitlines()
    digest = "sha256:" + hashlib.sha256(key.encode()).hexdigest()
    assert f'keys = ["{digest}"]' in rest
    config = tmp_path / "poshuk.toml"
    config.write_text(f"[auth]\n{rest[-1]}\n", encoding="utf-8")
    assert load_settings(config, env={}).auth.keys == (digest,)


# --- writes -----------------------------------------------------------------------------------


def test_put_is_durable_searchable_and_replaces_every_passage(client: TestClient[Litestar], index_dir: Path) -> None:
    created = client.put("/v1/documents/budget-1", json=ARTICLE, headers=AUTH)
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["ids"] == ["budget-1"] and body["passages"] >= 1 and body["seq"] > 0
    assert "budget-1" in _search_ids(client, "бюджет міської ради")
    stored = client.get("/v1/documents/budget-1").json()
    assert stored["title"] == ARTICLE["title"] and stored["lang"] == "uk" and stored["tags"] == ["бюджет"]
    assert stored["published_at"].startswith("2023-09-01T07:00:00")  # normalised to UTC, as the CLI does

    revised = {**ARTICLE, "id": "budget-1", "text": "Виправлення: бюджет ухвалили з поправками."}
    replaced = client.put("/v1/documents/budget-1", json=revised, headers=AUTH)
    assert replaced.status_code == 200 and replaced.json()["seq"] > body["seq"]
    passages = client.get("/v1/documents/budget-1").json()["passages"]
    assert [p["text"] for p in passages] == ["Виправлення: бюджет ухвалили з поправками."]
    on_disk = Index.open(index_dir)  # what a restart sees: the committed SQLite state
    try:
        assert [p.text for p in on_disk.document("budget-1").passages] == [passages[0]["text"]]
    finally:
        on_disk.close()
    check_index(index_dir)


def test_batch_as_json_array_and_as_ndjson(client: TestClient[Litestar], index_dir: Path) -> None:
    batch = [{**ARTICLE, "id": f"b-{n}", "text": f"Новина номер {n} про бюджет."} for n in range(3)]
    batch.append({**ARTICLE, "id": "b-0", "text": "Пізніший запис з тим самим id перемагає."})
    response = client.post("/v1/documents", json=batch, headers=AUTH)
    assert response.status_code == 200, response.text
    assert response.json()["ids"] == ["b-0", "b-1", "b-2"]
    assert client.get("/v1/documents/b-0").json()["text"].startswith("Пізніший")
    ndjson = b'{"id": "n-1", "text": "Perwszy"}\n\n{"id": "n-2", "title": "Second", "text": "Second story."}\n'
    response = client.post("/v1/documents", content=ndjson, headers={**AUTH, "content-type": "application/x-ndjson"})
    assert response.status_code == 200, response.text
    assert response.json()["ids"] == ["n-1", "n-2"]
    assert client.get("/v1/documents/n-2").json()["lang"] == "en"  # detected, as for a file
    check_index(index_dir)


def test_delete_removes_article_passages_vectors_and_postings(client: TestClient[Litestar], index_dir: Path) -> None:
    assert "uk-002" in _search_ids(client, "зерно порти Одеси")
    response = client.delete("/v1/documents/uk-002", headers=AUTH)
    assert response.status_code == 200, response.text
    assert response.json()["ids"] == ["uk-002"]
    assert_problem(client.get("/v1/documents/uk-002"), 404, "not-found")
    assert "uk-002" not in _search_ids(client, "зерно порти Одеси")
    lexical = client.get("/v1/search", params={"q": "Одеси зерна", "mode": "lexical"}).json()["hits"]
    assert all(hit["doc_id"] != "uk-002" for hit in lexical)
    assert_problem(client.delete("/v1/documents/uk-002", headers=AUTH), 404, "not-found")
    check_index(index_dir)


@pytest.mark.parametrize(
    ("method", "path", "payload", "status", "problem", "fragment"),
    [
        ("PUT", "/v1/documents/a", {**ARTICLE, "id": "b"}, 409, "id-mismatch", "differs"),
        ("PUT", "/v1/documents/a", {**ARTICLE, "bogus": 1}, 400, "invalid-request", "bogus"),
        ("PUT", "/v1/documents/a", {**ARTICLE, "text": 5}, 400, "invalid-request", "text"),
        ("PUT", "/v1/documents/a", {"title": "no text"}, 400, "invalid-input", "missing text (or pages)"),
        (
            "PUT",
            "/v1/documents/a",
            {**ARTICLE, "pages": [{"number": 1, "text": "x"}]},
            400,
            "invalid-input",
            "not both",
        ),
        (
            "PUT",
            "/v1/documents/a",
            {"title": "t", "pages": [{"number": 0, "text": "x"}]},
            400,
            "invalid-request",
            ">= 1",
        ),
        (  # one past SQLite's integers was a 500 once (the OpenAPI fuzz found it)
            "PUT",
            "/v1/documents/a",
            {"title": "t", "pages": [{"number": 2**63, "text": "x"}]},
            400,
            "invalid-request",
            "<= 1000000",
        ),
        (
            "POST",
            "/v1/documents",
            [{"id": "p", "title": "t", "pages": [{"number": 1_000_001, "text": "x"}]}],
            400,
            "invalid-input",
            "<= 1000000",
        ),
        ("PUT", "/v1/documents/a", {"title": "t", "pages": [{"number": 1}]}, 400, "invalid-request", "text"),
        ("PUT", "/v1/documents/a", {**ARTICLE, "text": " \n "}, 400, "invalid-input", "empty text"),
        ("PUT", "/v1/documents/a", {**ARTICLE, "lang": "ukrainian!"}, 400, "invalid-input", "lang"),
        ("PUT", "/v1/documents/a", {**ARTICLE, "published_at": "31.08.2023"}, 400, "invalid-input", "date"),
        ("PUT", "/v1/documents/a", {**ARTICLE, "tags": "один"}, 400, "invalid-request", "tags"),
        ("POST", "/v1/documents", [], 400, "invalid-input", "no articles"),
        ("POST", "/v1/documents", {"id": "x", "text": "y"}, 400, "invalid-input", "JSON array"),
        ("POST", "/v1/documents", [{"text": "no id"}], 400, "invalid-input", "missing id"),
        ("POST", "/v1/documents", [{"id": "x", "text": 1}], 400, "invalid-input", "article 0"),
        ("POST", "/v1/documents", [{"id": f"d{n}", "text": "t"} for n in range(4)], 413, "batch-too-large", "3"),
    ],
)
def test_bad_writes_are_problems_and_change_nothing(
    make_client: ClientFactory,
    index_dir: Path,
    method: str,
    path: str,
    payload: Any,
    status: int,
    problem: str,
    fragment: str,
) -> None:
    client = make_client(service_max_batch_documents="3")
    before = check_index(index_dir)
    response = client.request(method, path, json=payload, headers=AUTH)
    body = assert_problem(response, status, problem)
    assert fragment.casefold() in body["detail"].casefold(), body
    assert check_index(index_dir) == before


def test_bad_ndjson_line_is_named(client: TestClient[Litestar]) -> None:
    content = b'{"id": "ok", "text": "fine"}\n{"id": "bad", "text": }\n'
    response = client.post("/v1/documents", content=content, headers={**AUTH, "content-type": "application/x-ndjson"})
    assert "line 2" in assert_problem(response, 400, "invalid-input")["detail"]


def test_write_body_limit_is_its_own_setting(make_client: ClientFactory) -> None:
    client = make_client(service_max_write_body_bytes="2048")
    big = {**ARTICLE, "text": "слово " * 1000}
    body = assert_problem(client.put("/v1/documents/big", json=big, headers=AUTH), 413, "body-too-large")
    assert "2048" in body["detail"]
    search = client.post("/v1/search", json={"query": "x" * 900})  # reads keep service.max_body_bytes
    assert search.status_code == 200


# --- limits -----------------------------------------------------------------------------------


def test_rate_limit_answers_429_with_retry_after_per_key_or_client(make_client: ClientFactory) -> None:
    client = make_client(service_rate_limit_per_second="0.5", service_rate_limit_burst="2")
    for _ in range(2):
        assert client.get("/v1/documents/uk-001").status_code == 200
    limited = client.get("/v1/documents/uk-001")
    body = assert_problem(limited, 429, "rate-limited")
    assert int(limited.headers["retry-after"]) >= 1 and "burst 2" in body["detail"]
    assert client.get("/healthz").status_code == 200  # probes are never limited
    assert client.get("/v1/documents/uk-001", headers=AUTH).status_code == 200  # a key has its own bucket
    assert client.get("/v1/documents/uk-001", headers={"X-API-Key": "wrong"}).status_code == 429  # not a way out


def test_writes_count_against_the_share_of_server_time_as_searches_do(make_client: ClientFactory) -> None:
    class SlowPassages(HashEncoder):
        def encode_passages(self, texts: Sequence[str]) -> Vectors:
            time.sleep(0.05)  # 50 ms of encoding: past a share whose steady use settles at 14 ms
            return super().encode_passages(texts)

    client = make_client(encoder=SlowPassages(), service_client_time_share="0.001")
    assert client.put("/v1/documents/share-1", json=ARTICLE, headers=AUTH).status_code == 201
    refused = client.put("/v1/documents/share-2", json=ARTICLE, headers=AUTH)
    body = assert_problem(refused, 429, "rate-limited")
    assert "key used more than its share of server time" in body["detail"] and int(refused.headers["retry-after"]) >= 1
    assert_problem(client.post("/v1/documents", json=[ARTICLE | {"id": "share-3"}], headers=AUTH), 429)
    assert_problem(client.get("/v1/search", params={"q": "бюджет"}, headers=AUTH), 429)  # one share for both
    assert client.get("/v1/search", params={"q": "бюджет"}).status_code == 200  # another client: its own share
    assert client.get("/v1/documents/share-2").status_code == 404  # a refused write wrote nothing


def test_slow_request_gets_503_within_the_time_limit(make_client: ClientFactory) -> None:
    class Slow(HashEncoder):
        def encode_queries(self, texts: Sequence[str]) -> Vectors:
            time.sleep(1.0)
            return super().encode_queries(texts)

    client = make_client(encoder=Slow(), service_request_timeout_s="0.2")
    started = time.monotonic()
    response = client.get("/v1/search", params={"q": "бюджет"})
    assert time.monotonic() - started < 0.9
    assert_problem(response, 503, "timeout")
    assert response.headers["retry-after"] == "1"
    time.sleep(1.0)  # let the abandoned handler finish before the app stops


# --- live upkeep: other writers, rebuilds, snapshots ------------------------------------------


def _article(doc_id: str, text: str) -> tuple[Article, list[Passage], np.ndarray]:
    article = Article(id=doc_id, title="Заголовок", text=text, lang="uk")
    passage = Passage(id=f"{doc_id}#0", doc_id=doc_id, ordinal=0, text=text, embed_text=f"Заголовок\n{text}")
    return article, [passage], HashEncoder().encode_passages([passage.embed_text])


def _wait_for(condition: Callable[[], bool], timeout: float = 3.0) -> float:
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < timeout, "condition not met in time"
        time.sleep(0.05)
    return time.monotonic() - started


def test_writes_by_another_writer_are_searchable_within_a_second(client: TestClient[Litestar], index_dir: Path) -> None:
    with IndexWriter(index_dir, HashEncoder().identity, ChunkingSettings()) as writer:
        writer.upsert(*_article("cli-1", "Окремий процес записав цю новину про трамваї."))
    waited = _wait_for(lambda: client.get("/v1/documents/cli-1").status_code == 200)
    assert waited < 1.5
    assert "cli-1" in _search_ids(client, "новина про трамваї")


def test_rebuild_is_swapped_in_and_writes_made_during_it_are_kept(
    client: TestClient[Litestar], index_dir: Path
) -> None:
    old = live_version(index_dir).name
    rebuild = IndexWriter(index_dir, HashEncoder().identity, ChunkingSettings(), rebuild=True)
    rebuild.open()
    rebuild.upsert(*_article("fresh-1", "Перебудований індекс містить лише цю статтю."))
    during = client.put("/v1/documents/live-1", json=ARTICLE, headers=AUTH)  # lands in the old version
    assert during.status_code == 201
    assert client.delete("/v1/documents/uk-001", headers=AUTH).status_code == 200
    rebuild.commit()
    new = live_version(index_dir).name
    assert new != old
    _wait_for(lambda: client.get("/readyz").json()["version"] == new)
    for doc_id in ("fresh-1", "live-1"):
        assert client.get(f"/v1/documents/{doc_id}").status_code == 200, doc_id
    assert client.get("/v1/documents/uk-001").status_code == 404  # the delete made during the rebuild holds
    assert client.put("/v1/documents/live-2", json=ARTICLE, headers=AUTH).status_code == 201
    assert client.post("/v1/admin/reload", headers=AUTH).json() == {"version": new, "previous": new, "changed": False}
    assert (index_dir / "versions" / old).is_dir()  # kept for rollback
    # The rebuild holds its sources (fresh-1) plus what was written live meanwhile (live-1; live-2 after);
    # articles not in its sources and untouched meanwhile (uk-002, en-001) are gone, as a rebuild means.
    assert check_index(index_dir)["documents"] == 3


def test_admin_reload_switches_at_once(client: TestClient[Litestar], index_dir: Path) -> None:
    lifecycle = app_lifecycle(client.app)
    lifecycle.stop()  # no background thread: the reload below is the only switch
    old = live_version(index_dir).name
    with IndexWriter(index_dir, HashEncoder().identity, ChunkingSettings(), rebuild=True) as writer:
        writer.upsert(*_article("only-1", "Єдина стаття."))
    response = client.post("/v1/admin/reload", headers=AUTH)
    assert response.status_code == 200, response.text
    new = live_version(index_dir).name
    assert response.json() == {"version": new, "previous": old, "changed": True}
    assert client.get("/v1/documents/only-1").status_code == 200


def test_shutdown_writes_a_snapshot_at_the_last_change(make_client: ClientFactory, index_dir: Path) -> None:
    client = make_client()
    seq = client.put("/v1/documents/snap-1", json=ARTICLE, headers=AUTH).json()["seq"]
    client.__exit__(None, None, None)
    assert (live_version(index_dir) / f"vectors-{seq:012d}.faiss").is_file()


def test_snapshot_every_n_writes(make_client: ClientFactory, index_dir: Path) -> None:
    client = make_client(service_snapshot_every_writes="2")
    seqs = [client.put(f"/v1/documents/s-{n}", json=ARTICLE, headers=AUTH).json()["seq"] for n in range(3)]
    folder = live_version(index_dir)
    _wait_for(lambda: any(int(p.stem.split("-")[1]) >= seqs[1] for p in folder.glob("vectors-*.faiss")))


def test_cli_delete_uses_the_same_path(index_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["delete", "uk-001", "nope", "--index", str(index_dir)]) == 1
    out = capsys.readouterr()
    assert "deleted 1 documents" in out.out and "not in the index: nope" in out.err
    assert check_index(index_dir)["documents"] == 2
    assert main(["delete", "en-001", "--index", str(index_dir)]) == 0


def test_openapi_declares_the_write_routes_and_keys(client: TestClient[Litestar]) -> None:
    schema = client.get("/schema/openapi.json").json()
    assert {"put", "delete", "get"} <= set(schema["paths"]["/v1/documents/{doc_id}"])
    assert "post" in schema["paths"]["/v1/documents"] and "post" in schema["paths"]["/v1/admin/reload"]
    assert set(schema["components"]["securitySchemes"]) == {"bearer", "apiKey"}
    put = schema["paths"]["/v1/documents/{doc_id}"]["put"]
    assert put["security"] == [{"bearer": []}, {"apiKey": []}]
    assert {"201", "401", "403", "429"} <= set(put["responses"])


def test_a_rebuild_with_another_model_keeps_serving_the_old_version_and_refuses_writes(
    client: TestClient[Litestar], index_dir: Path
) -> None:
    other = HashEncoder(dimension=32)
    with IndexWriter(index_dir, other.identity, ChunkingSettings(), rebuild=True) as writer:
        article, passages, _ = _article("other-1", "Інша модель.")
        writer.upsert(article, passages, other.encode_passages([p.embed_text for p in passages]))
    time.sleep(1.2)  # the upkeep thread tried (and failed) to switch
    assert client.get("/v1/search", params={"q": "бюджет"}).status_code == 200  # still the old version
    body = assert_problem(client.put("/v1/documents/x", json=ARTICLE, headers=AUTH), 503, "index-busy")
    assert "cannot switch" in body["detail"] and "restart the service" in body["detail"]
    reload = assert_problem(client.post("/v1/admin/reload", headers=AUTH), 503, "reload-failed")
    assert "still serving the previous version" in reload["detail"] and "model" in reload["detail"]
