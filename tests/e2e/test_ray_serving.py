"""``poshuk serve --ray``: a 3-shard archive on Ray Serve answers over HTTP byte for byte as the
single-node service over the same articles in one index (only ``took_ms`` and the request id
differ), routes article reads to the owner shard, takes writes through its one Writer deployment
with one node's answers after them, and a killed shard or writer replica fails requests fast
(503 ``shard-unavailable``) or not at all -- never a hang, never a partial answer, never a lost
acknowledged write.

Ray runs in a process of its own (``tests.support.ray_serving``), with the HashEncoder; the
single-node service is the same Litestar app in-process (Litestar's TestClient).
"""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar import Litestar
from litestar.testing import TestClient

from poshuk.encoder import HashEncoder
from poshuk.index import IndexWriter
from poshuk.ingest import prepare
from poshuk.language import LanguageDetector
from poshuk.settings import ChunkingSettings, load_settings
from poshuk.shards import read_set, split_index
from poshuk_cli.main import main
from service.app import create_app
from tests.support.app import AUTH, KEY_HASH
from tests.support.processes import cli_env
from tests.support.repo import copy_index
from tests.support.serving import ONE_BUSY_CLIENT, free_port, start_server, stop_server
from tests.support.write_stream import WriteLog, check_writes, stream_writes
from tests.unit.test_shards import corpus, queries

REPO = Path(__file__).resolve().parents[2]
POSHUK = str(Path(sys.executable).with_name("poshuk"))
SHARD_TIMEOUT_S = 3.0
WRITE_TIMEOUT_S = 10.0  # the service's request time limit, so its writer's
READY_S = 180.0
_TOOK = re.compile(rb'"took_ms":[0-9.eE+-]+')

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(400)]  # a hang fails, never blocks CI

_VARIANTS: list[dict[str, Any]] = [
    {"k": 10},
    {"k": 10, "mode": "lexical"},
    {"k": 10, "mode": "dense"},
    {"k": 5, "offset": 5, "collapse": True},
    {"k": 10, "dedupe": True},
    {"k": 10, "filters": {"lang": ["uk"], "section": ["політика", "економіка"]}},
    {"k": 10, "filters": {"tags": ["війна"], "published_from": "2023-01-01", "published_to": "2023-07-20"}},
    {"k": 50, "offset": 150, "mode": "lexical"},
]
_ERRORS: list[tuple[str, str, Any]] = [  # (method, path, JSON body or query parameters)
    ("POST", "/v1/search", {"query": "   "}),
    ("POST", "/v1/search", {"query": "зерно", "k": 0}),
    ("POST", "/v1/search", {"query": "зерно", "mode": "fuzzy"}),
    ("POST", "/v1/search", {"query": "зерно", "offset": 200}),
    ("POST", "/v1/search", {"query": "зерно", "filters": {"colour": ["red"]}}),
    ("POST", "/v1/search", {"query": "зерно", "filters": {"published_from": "yesterday"}}),
    ("GET", "/v1/search", {"k": "3"}),
    ("GET", "/v1/documents/no-such-article", None),
    ("GET", "/v1/similar/no-such-article", None),
    ("DELETE", "/v1/documents/uk/001", None),
    ("PUT", "/v1/documents/new-one", {"title": "t", "text": "x"}),
    ("GET", "/v1/nowhere", None),
]
_ARTICLES = ("uk/001", "en/003", "copy-005", "uk/121")


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The test corpus as one index and as 3 shards split from it (same rows, vectors, clusters)."""
    root = tmp_path_factory.mktemp("archive")
    encoder = HashEncoder()
    with IndexWriter(root / "single", encoder.identity, ChunkingSettings()) as writer:
        writer.upsert_many(prepare(corpus(), encoder, ChunkingSettings(), LanguageDetector(), writer.index.analyzer))
    split_index(root / "single", root / "sharded", 3)
    return root / "single", root / "sharded"


@pytest.fixture(scope="module")
def sharded_url(archive: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    log = tmp_path_factory.mktemp("ray") / "serve.log"
    port = free_port()
    env = {
        **cli_env(),
        "POSHUK_HOME": str(log.parent / "home"),
        "RAY_AUTH_MODE": "disabled",
        "RAY_USAGE_STATS_ENABLED": "0",
        "OMP_NUM_THREADS": "1",
        "POSHUK_AUTH_KEYS": KEY_HASH,
        "POSHUK_SERVICE_REQUEST_TIMEOUT_S": str(WRITE_TIMEOUT_S),
    }
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.support.ray_serving", str(archive[1]), str(port), str(SHARD_TIMEOUT_S)],
            stdin=subprocess.PIPE,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=REPO,
            env=env,
        )
    url = f"http://127.0.0.1:{port}"
    started = time.monotonic()
    try:
        with httpx.Client(base_url=url, timeout=5.0) as client:
            while True:
                if process.poll() is not None:
                    pytest.fail(f"the Ray service exited with {process.returncode}:\n{log.read_text()[-3000:]}")
                if time.monotonic() - started > READY_S:
                    pytest.fail(f"the Ray service was not ready in {READY_S:.0f} s:\n{log.read_text()[-3000:]}")
                try:
                    if client.get("/readyz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.5)
        print(f"Ray Serve ready in {time.monotonic() - started:.1f} s")  # recorded, never asserted
        yield url
    finally:
        assert process.stdin is not None
        process.stdin.close()  # the script stops Serve and Ray, and the processes they left
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGKILL)
            process.wait()


@pytest.fixture(scope="module")
def single(archive: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient[Litestar]]:
    """The single-node service over the one index, writable with the same key as the sharded one."""
    settings = load_settings(
        env={
            "POSHUK_HOME": str(tmp_path_factory.mktemp("home")),
            "POSHUK_AUTH_KEYS": KEY_HASH,
            "POSHUK_SERVICE_RATE_LIMIT_BURST": "100000",
            "POSHUK_SERVICE_CLIENT_TIME_SHARE": "0",
        }
    )
    with TestClient(create_app(settings, archive[0], encoder=HashEncoder()), timeout=30) as client:
        deadline = time.monotonic() + 60
        while client.get("/readyz").status_code != 200:
            assert time.monotonic() < deadline, "the single-node app did not load"
            time.sleep(0.1)
        yield client


def _ask(client: httpx.Client | TestClient[Litestar], method: str, path: str, body: Any) -> httpx.Response:
    if method == "GET":
        return client.get(path, params=body)
    if method == "POST":
        return client.post(path, json=body)
    return client.request(method, path, json=body)


def _same(expected: httpx.Response, got: httpx.Response) -> bool:
    return (
        expected.status_code == got.status_code
        and expected.headers.get("content-type") == got.headers.get("content-type")
        and _TOOK.sub(b'"took_ms":0', expected.content) == _TOOK.sub(b'"took_ms":0', got.content)
    )


def _requests() -> list[tuple[str, str, Any]]:
    out: list[tuple[str, str, Any]] = []
    for text in queries()[:7]:
        out += [("POST", "/v1/search", {"query": text, **variant}) for variant in _VARIANTS]
    out.append(("POST", "/v1/search", {"query": "Kirby talks", "facets": ["source", "lang"], "sort": "newest"}))
    out += [("GET", "/v1/search", {"q": q, "k": "5", "lang": "uk"}) for q in queries()[7:10]]
    out += [("GET", f"/v1/documents/{doc}", None) for doc in _ARTICLES]
    out += [("GET", f"/v1/similar/{doc}", {"k": "5"}) for doc in _ARTICLES]
    return out + _ERRORS


def test_the_sharded_service_answers_byte_for_byte_as_one_node(
    sharded_url: str, single: TestClient[Litestar], archive: tuple[Path, Path]
) -> None:
    asked = _requests()
    assert sum(1 for _, path, _ in asked if path == "/v1/search") >= 50
    differ = []
    found = 0  # searches whose answer has hits: the equality is about real rankings
    started = time.monotonic()
    with httpx.Client(base_url=sharded_url, timeout=30.0) as client:
        for method, path, body in asked:
            expected, got = _ask(single, method, path, body), _ask(client, method, path, body)
            found += path == "/v1/search" and expected.status_code == 200 and bool(expected.json()["hits"])
            if not _same(expected, got):
                differ.append((method, path, body, expected.status_code, got.status_code, got.text[:300]))
            assert len(got.headers.get_list("x-request-id")) == 1  # Serve's, not also the app's
        print(f"{len(asked)} requests in {time.monotonic() - started:.1f} s")
        assert not differ, f"{len(differ)} of {len(asked)} answers differ, e.g. {differ[:3]}"
        assert found >= 45
        statuses = {s for s in (_ask(client, m, p, b).status_code for m, p, b in _ERRORS)}
        assert statuses == {400, 401, 404}  # the errors were errors, not all the same one
        ready = client.get("/readyz").json()
        assert ready["read_only"] is False and ready["passages"] == single.get("/readyz").json()["passages"]
        assert "poshuk_http_requests" in client.get("/metrics").text
        page = client.get("/")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    shard_set = read_set(archive[1])
    assert len({shard_set.shard_of(doc) for doc in _ARTICLES}) > 1  # the reads above reached several owners


_BATCH = [
    {
        "id": f"batch/{n}",
        "title": f"Пакет {n}: зерновий коридор",
        "text": f"Абзац перший статті {n} про зерно й порт Одеса.\n\nАбзац другий: експорт меду {n}.",
        "lang": "uk",
        "source": "Batch News",
    }
    for n in range(1, 5)
]
_WRITES: list[tuple[str, str, Any]] = [  # (method, path, body): in this order on both services
    (
        "PUT",
        "/v1/documents/new/ray-1",
        {"title": "Ракетний удар по енергетиці", "text": "Тролейбуси Одеси стали через знеструмлення.", "lang": "uk"},
    ),
    (
        "PUT",
        "/v1/documents/uk/001",
        {"title": "Заміна статті", "text": "Зерно й мед замість переговорів.", "lang": "uk"},
    ),
    ("POST", "/v1/documents", _BATCH),
    ("DELETE", "/v1/documents/en/003", None),
    ("DELETE", "/v1/documents/no-such-article", None),
]


def _without_seq(response: httpx.Response) -> tuple[int, Any]:
    """A write's status and answer, less its ``seq`` (one index's change number, the archive's journal's)."""
    if not response.content:
        return response.status_code, None
    body = response.json()
    if isinstance(body, dict):
        body.pop("seq", None)
    return response.status_code, body


def test_writes_go_through_the_writer_and_answer_as_one_node_after(
    sharded_url: str, single: TestClient[Litestar], archive: tuple[Path, Path]
) -> None:
    """PUTs (a new article, a replaced one), a batch over several shards and DELETEs through the Writer
    deployment: the same answers as one node's, each searchable when its request returns, and every
    search and read afterwards byte for byte the one node's."""
    shard_set = read_set(archive[1])
    assert len({shard_set.shard_of(str(a["id"])) for a in _BATCH}) > 1  # the batch spans shards
    with httpx.Client(base_url=sharded_url, timeout=30.0, headers=AUTH) as client:
        for method, path, body in _WRITES:
            expected = single.request(method, path, json=body, headers=AUTH)
            got = client.request(method, path, json=body)
            assert _without_seq(expected) == _without_seq(got), (method, path, got.text[:300])
            if method == "PUT":  # searchable on the answer, with no wait
                found = client.post("/v1/search", json={"query": body["text"], "k": 3, "mode": "lexical"})
                assert path.removeprefix("/v1/documents/") in {h["doc_id"] for h in found.json()["hits"]}
        assert [client.get(f"/v1/documents/{d}").status_code for d in ("new/ray-1", "en/003")] == [200, 404]
        asked: list[tuple[str, str, Any]] = [
            ("POST", "/v1/search", {"query": q, **v}) for q in queries()[:4] for v in _VARIANTS
        ]
        asked += [("POST", "/v1/search", {"query": str(a["text"]), "k": 10}) for a in _BATCH[:2]]
        for doc in ("new/ray-1", "uk/001", "en/003", "batch/3"):
            asked += [("GET", f"/v1/documents/{doc}", None), ("GET", f"/v1/similar/{doc}", {"k": "5"})]
        differ = [
            (m, p, b, got.text[:200])
            for m, p, b in asked
            if not _same(_ask(single, m, p, b), got := _ask(client, m, p, b))
        ]
        assert not differ, f"{len(differ)} of {len(asked)} answers differ after the writes, e.g. {differ[:2]}"
        assert client.get("/readyz").json()["passages"] == single.get("/readyz").json()["passages"]


def _replica_pid(deployment: str) -> int | None:
    """The process of a Serve replica (Ray names it ``ray::ServeReplica:APP:DEPLOYMENT``)."""
    wanted = f"ServeReplica:poshuk:{deployment}".encode()
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and wanted in (proc / "cmdline").read_bytes():
                return int(proc.name)
        except OSError:
            continue
    return None


def _running(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie nobody reaped has stopped)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def _replicas_below(root: int) -> list[int]:
    """The Serve replica processes a process started (through its Ray)."""
    from service.ray_serving import descendants

    found = []
    for pid in descendants(root):
        try:
            if b"ServeReplica:poshuk:" in Path(f"/proc/{pid}/cmdline").read_bytes():
                found.append(pid)
        except OSError:
            continue
    return found


def test_a_killed_shard_fails_requests_fast_then_recovers(sharded_url: str, single: TestClient[Litestar]) -> None:
    pid = _replica_pid("Shard-shard-001")
    assert pid is not None, "no replica process for shard-001"
    body = {"query": "зерно Одеса порт", "k": 10}
    expected = single.post("/v1/search", json=body)
    os.kill(pid, signal.SIGKILL)  # a process of the service this module started
    outcomes = []
    recovered_at = None
    killed = time.monotonic()
    with httpx.Client(base_url=sharded_url, timeout=30.0) as client:
        while time.monotonic() - killed < 90 and recovered_at is None:
            sent = time.monotonic()
            got = client.post("/v1/search", json=body)
            took = time.monotonic() - sent
            outcomes.append((got.status_code, round(took, 2)))
            assert took < SHARD_TIMEOUT_S + 5.0, f"a request hung for {took:.1f} s"
            if got.status_code == 503:
                problem = got.json()
                assert problem["type"].endswith("/shard-unavailable") and "shard-001" in problem["detail"]
                assert got.headers["content-type"] == "application/problem+json" and got.headers["retry-after"]
            else:
                assert _same(expected, got), got.text[:300]  # a whole answer, the one node's
                if _replica_pid("Shard-shard-001") not in (None, pid):
                    recovered_at = time.monotonic() - killed
            time.sleep(0.2)
    print(f"after the kill: {outcomes}; recovered after {recovered_at} s")
    assert recovered_at is not None, f"no answer from a new shard-001 replica within 90 s: {outcomes}"


def test_serving_on_ray_without_the_extra_names_the_extra(
    archive: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError, as without the extra
    assert main(["serve", "--index", str(archive[1]), "--ray", "local"]) == 1
    err = capsys.readouterr().err.strip()
    assert "--ray needs Ray, which this install lacks" in err and "pip install 'poshuk[ray]'" in err
    assert err.count("\n") == 0


def test_serving_one_index_on_ray_is_refused_before_ray_starts(
    archive: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["serve", "--index", str(archive[0]), "--ray", "local"]) == 1
    err = capsys.readouterr().err.strip()
    assert "--ray serves a sharded archive" in err and err.count("\n") == 0


def test_an_archive_served_in_process_answers_as_one_node_and_refuses_writes(
    archive: tuple[Path, Path], single: TestClient[Litestar], tmp_path: Path
) -> None:
    settings = load_settings(
        env={
            "POSHUK_HOME": str(tmp_path / "home"),
            "POSHUK_SERVICE_READ_ONLY": "true",
            "POSHUK_SERVICE_RATE_LIMIT_BURST": "100000",
            "POSHUK_SERVICE_CLIENT_TIME_SHARE": "0",
        }
    )
    with TestClient(create_app(settings, archive[1], encoder=HashEncoder()), timeout=30) as sharded:
        deadline = time.monotonic() + 60
        while (ready := sharded.get("/readyz")).status_code != 200:
            assert time.monotonic() < deadline, ready.text
            time.sleep(0.1)
        assert ready.json()["read_only"] is True
        asked = [("POST", "/v1/search", {"query": q, **v}) for q in queries()[:2] for v in _VARIANTS]
        reads = [(m, p, b) for m, p, b in _ERRORS if m in ("GET", "POST")]  # the writable single one refuses writes 401
        for method, path, body in [*asked, *reads]:
            expected, got = _ask(single, method, path, body), _ask(sharded, method, path, body)
            assert _same(expected, got), (path, body, got.text[:300])
        refused = sharded.put("/v1/documents/new-one", json={"title": "t", "text": "x"}, headers=AUTH)
        assert refused.status_code == 405 and "read-only" in refused.json()["detail"]


@pytest.mark.model
def test_poshuk_serve_ray_local_answers_the_example_articles_as_poshuk_serve(
    example_index_source: Path, tmp_path: Path
) -> None:
    """The README's cluster section on one machine: `poshuk serve --ray local` over the example articles
    split into 3 shards, with the real model, answers as `poshuk serve` over the one index; Ctrl-C stops
    it with exit code 0 and leaves no Ray process behind."""
    single_dir = copy_index(example_index_source, tmp_path / "single")
    split_index(single_dir, tmp_path / "archive", 3)
    single = start_server(single_dir, tmp_path / "single.log", ONE_BUSY_CLIENT, args=("--read-only",))
    port = free_port()
    env = {**cli_env(), **ONE_BUSY_CLIENT, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}
    log = tmp_path / "ray.log"
    with log.open("wb") as out:
        ray_served = subprocess.Popen(
            [POSHUK, "serve", "--index", str(tmp_path / "archive"), "--ray", "local", "--port", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    try:
        url = f"http://127.0.0.1:{port}"
        started = time.monotonic()
        with httpx.Client(timeout=30.0) as client:
            while True:
                assert ray_served.poll() is None, log.read_text()[-3000:]
                assert time.monotonic() - started < READY_S, log.read_text()[-3000:]
                try:
                    if client.get(f"{url}/readyz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.5)
            print(f"poshuk serve --ray local ready in {time.monotonic() - started:.1f} s")
            replicas = _replicas_below(ray_served.pid)  # this service's own, not the module's other Ray
            assert len(replicas) == 5, replicas  # 3 shards, the writer and the ingress
            for query in ("grain exports Odesa", "мед експорт", "переговори про зброю", "Kirby", "енергетика"):
                for extra in ({}, {"mode": "lexical", "collapse": True}, {"dedupe": True, "k": 5}):
                    body = {"query": query, **extra}
                    expected = client.post(f"{single.base_url}/v1/search", json=body)
                    got = client.post(f"{url}/v1/search", json=body)
                    assert expected.status_code == 200 and expected.json()["hits"]
                    assert _same(expected, got), (body, got.text[:300])
    finally:
        stop_server(single)
        ray_served.send_signal(signal.SIGINT)
        try:
            code = ray_served.wait(timeout=60)
        except subprocess.TimeoutExpired:
            ray_served.kill()
            ray_served.wait()
            pytest.fail(f"poshuk serve --ray did not stop on SIGINT:\n{log.read_text()[-3000:]}")
    assert code == 0, log.read_text()[-3000:]
    left = [pid for pid in replicas if _running(pid)]
    assert not left, f"replica processes left running: {left}"


def test_a_killed_writer_loses_no_acknowledged_write(sharded_url: str) -> None:
    """kill -9 of the Writer replica mid-stream of PUTs and batches: each request succeeds or fails
    with 503 within the request time limit (``shard-unavailable``, or the service's own time limit),
    Serve starts a new Writer,
    which finishes any write the kill cut between shards, and every acknowledged write is there
    whole and searchable. Last in this module: its writes go to the sharded service only, and the tests
    above compare that service with the single-node one."""
    pid = _replica_pid("Writer")
    assert pid is not None, "no Writer replica process"
    log, stop = WriteLog(), threading.Event()
    stream = threading.Thread(target=stream_writes, args=(sharded_url, log, stop, random.Random(21), AUTH), daemon=True)
    stream.start()
    deadline = time.monotonic() + 60
    while len(log.acked) < 5:
        assert time.monotonic() < deadline and stream.is_alive(), log.failures
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)  # a process of the service this module started
    killed, acked_at_kill = time.monotonic(), len(log.acked)
    while time.monotonic() - killed < 90:  # until a new Writer has acknowledged writes
        new = _replica_pid("Writer")
        if new not in (None, pid) and len(log.acked) >= acked_at_kill + 5:
            break
        assert stream.is_alive(), "a write hung past the client's 30 s"
        time.sleep(0.2)
    stop.set()
    stream.join(timeout=60)
    print(f"writes: {len(log.acked)} acknowledged, {len(log.failures)} refused around the kill")
    assert len(log.acked) >= acked_at_kill + 5, f"no new Writer took writes within 90 s: {log.failures[-3:]}"
    kinds = [re.findall(r"problems/([a-z-]+)", f)[:1] for f in log.failures]
    print(f"refused as: {kinds}")
    assert all(" 503 " in f for f in log.failures), log.failures[:3]  # the writer's or the request's time limit
    check_writes(sharded_url, log)
