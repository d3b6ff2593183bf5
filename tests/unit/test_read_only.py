"""A read-only deployment: ``Index(read_only=True)`` on a ``chmod -R a-w`` folder, and the service's 405s.

"Nothing in the folder changes" is checked by listing every file with its size and mtime
before and after. Root ignores file modes, so where the tests run as root the same open is
also tried as an unprivileged user (``setpriv``), for whom the folder really is read-only.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from poshuk.documents import Article, Passage
from poshuk.encoder import HashEncoder, Vectors
from poshuk.errors import IndexReadOnlyError
from poshuk.index import Index, IndexWriter, live_version
from poshuk.search import Searcher
from poshuk.settings import ChunkingSettings
from service.app import create_app
from tests.support.api import assert_problem
from tests.support.app import ARTICLE, AUTH, app_lifecycle, build_service_index, make_settings, service_state
from tests.support.folders import listing, make_read_only, make_writable
from tests.support.repo import REPO


@pytest.fixture
def read_only_index(tmp_path: Path) -> Iterator[Path]:
    folder = tmp_path / "index"
    build_service_index(folder, HashEncoder())
    make_read_only(folder)
    yield folder
    make_writable(folder)  # so that pytest can remove it


def _article(doc_id: str, text: str) -> tuple[Article, list[Passage], Vectors]:
    article = Article(id=doc_id, title=doc_id, text=text, lang="uk")
    passages = [Passage(id=f"{doc_id}#0", doc_id=doc_id, ordinal=0, text=text, embed_text=text)]
    return article, passages, HashEncoder().encode_passages([text])


# --- the index ------------------------------------------------------------------------------


def test_a_read_only_index_reads_refuses_writes_and_changes_no_file(read_only_index: Path) -> None:
    before = listing(read_only_index)
    settings = make_settings(read_only_index.parent, service_read_only="true")
    searcher = Searcher.open(read_only_index, settings, encoder=HashEncoder())
    index = searcher.index
    try:
        assert index.read_only
        assert index.counts().documents == 3
        assert index.document("uk-001").article.title.startswith("Кірбі")
        assert searcher.search("зерно Одеса", k=3).hits[0].doc_id == "uk-002"
        with pytest.raises(IndexReadOnlyError, match="read-only"):
            index.write(deletes=["uk-001"])
        with pytest.raises(IndexReadOnlyError):
            index.begin()
        assert index.snapshot() is None
        assert index.refresh() == 0
        assert not index.changed_underneath()
    finally:
        searcher.close()
    assert listing(read_only_index) == before


def test_a_writer_in_place_is_noticed(tmp_path: Path) -> None:
    folder = tmp_path / "index"
    build_service_index(folder, HashEncoder())
    index = Index.open(folder, read_only=True)
    writer = IndexWriter(folder, HashEncoder().identity, ChunkingSettings())
    try:
        assert not index.changed_underneath()
        writer.open()
        writer.upsert(*_article("in-place-1", "Запис в ту саму версію."))
        writer.flush()
        assert index.changed_underneath()
        assert index.counts().documents == 3  # the immutable reader cannot see the -wal: it must reopen
        fresh = Index.open(folder, read_only=True)
        assert fresh.counts().documents == 4 and not fresh.changed_underneath()
        fresh.close()
    finally:
        writer.commit()
        index.close()


def test_the_writable_open_of_the_same_folder_would_change_it(tmp_path: Path) -> None:
    # The control for the test above: an ordinary open creates SQLite's -wal and -shm.
    folder = tmp_path / "index"
    build_service_index(folder, HashEncoder())
    before = listing(folder)
    index = Index.open(folder)
    try:
        assert listing(folder) != before
    finally:
        index.close()


_OPEN_AS_NOBODY = """
import sys
from pathlib import Path
from poshuk.index import Index
from poshuk.errors import PoshukError
folder = Path(sys.argv[1])
try:
    Index.open(folder).close()
    print("writable open: ok")
except PoshukError as exc:
    print("writable open:", exc.one_line())
index = Index.open(folder, read_only=True)
print("read-only open:", index.counts().documents)
index.close()
"""


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None, reason="needs root to drop privileges")
def test_an_unprivileged_user_opens_a_read_only_copy() -> None:
    top = Path(tempfile.mkdtemp(prefix="poshuk-ro-"))  # outside pytest's private (0700) tmp folders
    try:
        top.chmod(0o755)
        folder = top / "index"
        build_service_index(folder, HashEncoder())
        make_read_only(folder)
        before = listing(folder)
        as_nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
        env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(REPO), "HOME": str(top)}
        probe = [*as_nobody, sys.executable, "-c", "import poshuk.index"]
        if subprocess.run(probe, capture_output=True, timeout=60, env=env, cwd=top).returncode != 0:
            # e.g. a checkout under a 0700 folder (mktemp -d): that user cannot import the code at all
            pytest.skip("uid 65534 cannot read this checkout or its virtual environment")
        done = subprocess.run(
            [*as_nobody, sys.executable, "-c", _OPEN_AS_NOBODY, str(folder)],
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
            cwd=top,
        )
        assert done.returncode == 0, done.stderr
        assert "writable open: ok" not in done.stdout  # the folder really is read-only for this user
        assert "read-only open: 3" in done.stdout, done.stdout
        assert listing(folder) == before
    finally:
        make_writable(top)
        shutil.rmtree(top)


# --- the service ----------------------------------------------------------------------------

ClientFactory = Callable[[Path], TestClient[Litestar]]


@pytest.fixture
def read_only_client(tmp_path: Path) -> Iterator[ClientFactory]:
    clients: list[TestClient[Litestar]] = []

    def start(index_dir: Path) -> TestClient[Litestar]:
        app = create_app(make_settings(tmp_path, service_read_only="true"), index_dir, encoder=HashEncoder())
        client = TestClient(app)
        client.__enter__()
        clients.append(client)
        assert service_state(app).wait(10)
        return client

    yield start
    for client in clients:
        client.__exit__(None, None, None)


WRITES = [
    ("PUT", "/v1/documents/uk-001", "GET, OPTIONS"),
    ("DELETE", "/v1/documents/uk-001", "GET, OPTIONS"),
    ("POST", "/v1/documents", "OPTIONS"),
]


@pytest.mark.parametrize("keyed", [True, False], ids=["with-key", "without-key"])
def test_writes_get_405_read_only_with_an_honest_allow(
    read_only_index: Path, read_only_client: ClientFactory, keyed: bool
) -> None:
    client = read_only_client(read_only_index)
    headers = AUTH if keyed else {}
    for method, path, allow in WRITES:
        body = [{**ARTICLE, "id": "x-1"}] if method == "POST" else ARTICLE if method == "PUT" else None
        response = client.request(method, path, json=body, headers=headers)
        problem = assert_problem(response, 405, "read-only")
        assert "read-only" in problem["detail"] and method in problem["detail"]
        assert response.headers["allow"] == allow, (method, path)
        for allowed in allow.split(", "):  # every method Allow names does answer there
            assert client.request(allowed, path).status_code not in (404, 405), (allowed, path)
    assert client.get("/v1/documents/uk-001").status_code == 200  # nothing was deleted


def test_reads_readiness_metrics_and_reload_work_and_no_file_changes(
    read_only_index: Path, read_only_client: ClientFactory
) -> None:
    before = listing(read_only_index)
    client = read_only_client(read_only_index)
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["read_only"] is True
    assert client.get("/v1/search", params={"q": "бюджет", "k": 3}).status_code == 200
    assert client.post("/v1/search", json={"query": "зерно", "mode": "dense"}).json()["hits"]
    assert client.get("/v1/documents/en-001").json()["id"] == "en-001"
    assert client.get("/v1/similar/uk-001").status_code == 200
    assert client.get("/metrics").status_code == 200
    reload = client.post("/v1/admin/reload", headers=AUTH)
    assert reload.status_code == 200 and reload.json()["changed"] is False
    client.__exit__(None, None, None)  # shutdown: no snapshot is written
    assert listing(read_only_index) == before


def test_a_writable_service_says_read_only_false(tmp_path: Path) -> None:
    folder = tmp_path / "index"
    build_service_index(folder, HashEncoder())
    with TestClient(create_app(make_settings(tmp_path), folder, encoder=HashEncoder())) as client:
        assert service_state(client.app).wait(10)
        assert client.get("/readyz").json()["read_only"] is False


def _wait_for(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_the_upkeep_follows_an_external_writer(tmp_path: Path, read_only_client: ClientFactory) -> None:
    # The folder is writable for the other process (the host's `poshuk index`), read-only for the service.
    folder = tmp_path / "index"
    build_service_index(folder, HashEncoder())
    client = read_only_client(folder)
    old = client.get("/readyz").json()["version"]
    writer = IndexWriter(folder, HashEncoder().identity, ChunkingSettings())  # into the live version
    writer.open()
    try:
        writer.upsert(*_article("in-place-1", "Запис в ту саму версію."))
        writer.flush()  # committed, still only in the -wal: an immutable reader would never see it
        _wait_for(lambda: client.get("/v1/documents/in-place-1").status_code == 200)
    finally:
        writer.commit()
    assert client.get("/readyz").json()["version"] == old
    with IndexWriter(folder, HashEncoder().identity, ChunkingSettings(), rebuild=True) as writer:
        writer.upsert(*_article("rebuilt-1", "Перебудована версія."))
    new = live_version(folder).name
    assert new != old
    _wait_for(lambda: client.get("/readyz").json()["version"] == new)
    assert client.get("/v1/documents/rebuilt-1").status_code == 200
    assert client.get("/readyz").json()["read_only"] is True


def test_a_damaged_new_version_is_refused_and_the_old_one_keeps_serving(
    tmp_path: Path, read_only_client: ClientFactory
) -> None:
    from tests.support.hostile import damage

    folder = tmp_path / "index"
    build_service_index(folder, HashEncoder())
    app = create_app(make_settings(tmp_path), folder, encoder=HashEncoder())
    with TestClient(app) as client:
        assert service_state(app).wait(10)
        app_lifecycle(app).stop()  # no background thread: the reload below is the only switch
        old = client.get("/readyz").json()["version"]
        with IndexWriter(folder, HashEncoder().identity, ChunkingSettings(), rebuild=True) as writer:
            writer.upsert(*_article("new-1", "Нова версія, яку пошкоджено."))
        damage(live_version(folder) / "meta.sqlite", "passages_doc")
        problem = assert_problem(client.post("/v1/admin/reload", headers=AUTH), 503, "reload-failed")
        assert "damaged" in problem["detail"] and "still serving the previous version" in problem["detail"]
        assert client.get("/readyz").json()["version"] == old
        assert client.post("/v1/search", json={"query": "бюджет", "mode": "dense"}).status_code == 200
        app_lifecycle(app).tick()  # the upkeep does not switch to it either
        assert client.get("/readyz").json()["version"] == old


def test_the_compose_file_serves_read_only_and_writes_only_from_the_indexer() -> None:
    compose = (REPO / "docker" / "compose.yaml").read_text(encoding="utf-8")
    serving, _, indexing = compose.partition("\n  indexer:\n")
    assert '"serve", "--index", "/data/index", "--read-only"' in serving
    assert ":/data/index:ro\n" in serving
    assert '"index", "/data/articles", "--index", "/data/index"' in indexing
    assert ":/data/index\n" in indexing  # the one writable mount


@pytest.mark.parametrize(("argv", "expected"), [(["--read-only"], True), ([], False)])
def test_the_read_only_flag_sets_the_setting(argv: list[str], expected: bool, tmp_path: Path) -> None:
    from poshuk.commands import settings_from
    from poshuk_cli.main import build_parser

    (tmp_path / "poshuk.toml").write_text("", encoding="utf-8")
    args = build_parser().parse_args(["--config", str(tmp_path / "poshuk.toml"), "serve", "--index", "x", *argv])
    assert settings_from(args).service.read_only is expected
