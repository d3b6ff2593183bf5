"""Live writes to ``poshuk serve`` as real processes: ``kill -9`` mid-stream, and a rebuild under load.

The server runs with a key configured through a settings file (``POSHUK_CONFIG``), the
real model, on 127.0.0.1. Every 2xx write must be there after any crash, whole; a write
never answered is either absent or whole; the index files stay consistent. During a
``poshuk index --rebuild`` the service keeps answering searches with no failure and
keeps every write it acknowledged.
"""

from __future__ import annotations

import json
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from service.auth import new_key
from tests.support.consistency import check_index
from tests.support.served import Served, server_env
from tests.support.serving import READY_TIMEOUT

pytestmark = [pytest.mark.e2e, pytest.mark.model]

POSHUK = str(Path(sys.executable).with_name("poshuk"))
KEY, KEY_HASH = new_key()
AUTH = {"Authorization": f"Bearer {KEY}"}
SEED = 20230831


def _jsonl(path: Path, prefix: str, count: int) -> Path:
    with path.open("w", encoding="utf-8") as fh:
        for n in range(count):
            text = f"Текст {n} про бюджет, дороги і школи.\nДругий абзац статті {prefix}-{n}."
            fh.write(json.dumps({"id": f"{prefix}-{n}", "title": f"Стаття {prefix} {n}", "text": text}) + "\n")
    return path


@pytest.fixture(scope="module")
def base_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small index built by the real CLI with the real model."""
    folder = tmp_path_factory.mktemp("live")
    index_dir = folder / "index"
    config = folder / "empty.toml"
    config.write_text("", encoding="utf-8")
    done = subprocess.run(
        [POSHUK, "index", str(_jsonl(folder / "base.jsonl", "base", 8)), "--index", str(index_dir), "--no-progress"],
        capture_output=True,
        text=True,
        timeout=600,
        env=server_env(config),
    )
    assert done.returncode == 0, done.stderr
    return index_dir


@pytest.fixture
def live_index(base_index: Path, tmp_path: Path) -> tuple[Path, Path]:
    """A private copy of the base index, and a settings file with one key."""
    index_dir = tmp_path / "index"
    shutil.copytree(base_index, index_dir)
    config = tmp_path / "poshuk.toml"
    config.write_text(
        f'[auth]\nkeys = ["{KEY_HASH}"]\n\n'
        "[service]\nrate_limit_per_second = 0\nclient_time_share = 0\nsnapshot_every_writes = 7\n",
        encoding="utf-8",
    )
    return index_dir, config


def _serve(index_dir: Path, config: Path, log: Path) -> Served:
    command = [POSHUK, "serve", "--index", str(index_dir), "--port", "{port}"]
    return Served(command, config, log, ready_s=READY_TIMEOUT)


@dataclass
class WriteLog:
    """What the client sent, and what the server acknowledged."""

    sent: dict[str, dict[str, object]] = field(default_factory=dict)
    acked: dict[str, int] = field(default_factory=dict)  # id -> passages the answer reported
    failures: list[str] = field(default_factory=list)


def _article(rng: random.Random, n: int) -> dict[str, object]:
    paragraphs = [
        f"Абзац {p} новини {n}: міська рада обговорила {rng.choice(['бюджет', 'дороги', 'школи', 'тролейбуси'])} "
        f"і ухвалила рішення номер {rng.randint(1, 10_000)}."
        for p in range(rng.randint(1, 5))
    ]
    return {"title": f"Новина {n}", "text": "\n".join(paragraphs), "lang": "uk"}


def _stream_writes(base_url: str, log: WriteLog, start: int, stop: threading.Event, rng: random.Random) -> None:
    """PUT articles one after another until the server dies or ``stop`` is set."""
    n = start
    with httpx.Client(base_url=base_url, timeout=30.0, headers=AUTH) as client:
        while not stop.is_set():
            doc_id = f"w-{n:05d}"
            body = _article(rng, n)
            log.sent[doc_id] = body
            try:
                response = client.put(f"/v1/documents/{doc_id}", json=body)
            except httpx.TransportError:
                return  # killed: this write was never acknowledged
            if response.status_code in (200, 201):
                log.acked[doc_id] = response.json()["passages"]
            else:
                log.failures.append(f"{doc_id}: {response.status_code} {response.text}")
            n += 1


def _check_writes(base_url: str, log: WriteLog) -> int:
    """Every acknowledged write is whole; every unacknowledged one is absent or whole. Returns unacked present."""
    half = 0
    with httpx.Client(base_url=base_url, timeout=30.0) as client:
        for doc_id, body in log.sent.items():
            response = client.get(f"/v1/documents/{doc_id}")
            if doc_id in log.acked:
                assert response.status_code == 200, f"acknowledged write {doc_id} was lost"
            elif response.status_code == 404:
                continue
            else:
                half += 1
            stored = response.json()
            assert [line for line in stored["text"].splitlines() if line] == str(body["text"]).splitlines()
            assert stored["title"] == body["title"]
            passages = stored["passages"]
            assert [p["ordinal"] for p in passages] == list(range(len(passages)))
            if doc_id in log.acked:
                assert len(passages) == log.acked[doc_id]
            first = str(body["text"]).splitlines()[0]
            found = client.get("/v1/search", params={"q": first, "k": 5, "mode": "lexical"})
            assert doc_id in {h["doc_id"] for h in found.json()["hits"]}, f"{doc_id} is not searchable"
    return half


def test_kill_9_during_a_stream_of_writes_loses_no_acknowledged_write(
    live_index: tuple[Path, Path], tmp_path: Path
) -> None:
    index_dir, config = live_index
    kills, articles = random.Random(SEED), random.Random(SEED + 1)
    log = WriteLog()
    server_log = tmp_path / "server.log"
    for _round in range(2):
        server = _serve(index_dir, config, server_log)
        stop = threading.Event()
        writer = threading.Thread(
            target=_stream_writes, args=(server.base_url, log, len(log.sent), stop, articles), daemon=True
        )
        acked_before = len(log.acked)
        writer.start()
        deadline = time.monotonic() + 60
        while len(log.acked) < acked_before + 2:  # the stream is flowing
            assert time.monotonic() < deadline and writer.is_alive(), log.failures
            time.sleep(0.05)
        time.sleep(kills.uniform(0.0, 2.5))  # then a random moment mid-stream
        server.kill()
        stop.set()
        writer.join(timeout=60)
    check_index(index_dir)  # the files alone, as a fresh process reads them
    server = _serve(index_dir, config, server_log)
    try:
        unacked_present = _check_writes(server.base_url, log)
    finally:
        server.stop()
    assert not log.failures, log.failures
    assert len(log.acked) >= 4, f"too few writes to mean anything: {len(log.acked)}"
    assert unacked_present <= 2  # at most the write in flight at each kill
    assert KEY not in server_log.read_text(errors="replace")


@dataclass
class Load:
    ok: int = 0
    failed: list[str] = field(default_factory=list)


def _search_loop(base_url: str, stop: threading.Event, load: Load) -> None:
    queries = ["Шойгу Північна Корея", "grain exports Odesa", "бюджет міської ради", "ECB interest rates"]
    with httpx.Client(base_url=base_url, timeout=30.0) as client:
        n = 0
        while not stop.is_set():
            try:
                response = client.get("/v1/search", params={"q": queries[n % len(queries)], "k": 5})
            except httpx.TransportError as exc:
                load.failed.append(repr(exc))
            else:
                if response.status_code == 200:
                    load.ok += 1
                else:
                    load.failed.append(f"{response.status_code} {response.text[:200]}")
            n += 1


def test_rebuild_while_serving_fails_no_request_and_keeps_live_writes(
    live_index: tuple[Path, Path], tmp_path: Path
) -> None:
    index_dir, config = live_index
    small_source = _jsonl(tmp_path / "rebuild.jsonl", "r", 6)
    server = _serve(index_dir, config, tmp_path / "server.log")
    old_version = httpx.get(f"{server.base_url}/readyz").json()["version"]
    stop = threading.Event()
    loads = [Load(), Load()]
    log = WriteLog()
    searchers = [threading.Thread(target=_search_loop, args=(server.base_url, stop, load)) for load in loads]
    writer = threading.Thread(
        target=_stream_writes, args=(server.base_url, log, 0, stop, random.Random(SEED)), daemon=True
    )
    try:
        for thread in searchers:
            thread.start()
        rebuild = subprocess.Popen(
            [POSHUK, "index", str(small_source), "--index", str(index_dir), "--rebuild", "--no-progress"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=server_env(config),
        )
        deadline = time.monotonic() + 300
        while not list((index_dir / "versions").glob("tmp-*")):  # the rebuild has begun: writes from now on count
            assert rebuild.poll() is None and time.monotonic() < deadline, rebuild.communicate()
            time.sleep(0.02)
        writer.start()
        _, stderr = rebuild.communicate(timeout=300)
        assert rebuild.returncode == 0, stderr
        deadline = time.monotonic() + 10
        with httpx.Client(base_url=server.base_url) as client:
            while client.get("/readyz").json()["version"] == old_version:
                assert time.monotonic() < deadline, "the service did not switch to the rebuilt version"
                time.sleep(0.1)
        time.sleep(1.5)  # keep the load on after the switch
    finally:
        stop.set()
        for thread in [*searchers, writer]:
            if thread.is_alive():
                thread.join(timeout=60)
    try:
        assert sum(load.ok for load in loads) > 20
        assert [f for load in loads for f in load.failed] == []
        assert not log.failures, log.failures
        assert log.acked, "no write was acknowledged during the rebuild"
        _check_writes(server.base_url, log)  # written during and after the swap: all kept
        with httpx.Client(base_url=server.base_url) as client:
            assert client.get("/v1/documents/r-0").status_code == 200
            assert client.get("/v1/documents/base-0").status_code == 404  # not in the rebuild's sources
    finally:
        server.stop()
    check_index(index_dir)
    assert len(list((index_dir / "versions").glob("v*"))) == 2  # the previous version is kept for rollback


def _timed(client: httpx.Client, method: str, url: str, **kwargs: object) -> tuple[int, float]:
    started = time.perf_counter()
    response = client.request(method, url, **kwargs)  # type: ignore[arg-type]
    return response.status_code, time.perf_counter() - started


def test_writes_searches_and_health_do_not_wait_for_a_long_poshuk_index(
    live_index: tuple[Path, Path], tmp_path: Path
) -> None:
    """While `poshuk index` writes 1,000 articles into the live version, an HTTP write waits for
    at most one of its batches (target: under 2 s) and searches and health checks not at all."""
    index_dir, config = live_index
    server = _serve(index_dir, config, tmp_path / "server.log")
    bulk = tmp_path / "bulk.jsonl"
    with bulk.open("w", encoding="utf-8") as fh:
        for n in range(1000):
            text = f"Абзац про бюджет міста {n} і ремонт доріг.\nДругий абзац новини {n} про школи й лікарні."
            fh.write(json.dumps({"id": f"bulk-{n}", "title": f"Новина {n}", "text": text, "lang": "uk"}) + "\n")
    timings: dict[str, list[float]] = {"put": [], "search": [], "healthz": [], "readyz": []}
    indexer = subprocess.Popen(
        [POSHUK, "index", str(bulk), "--index", str(index_dir), "--no-progress"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=server_env(config),
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        with httpx.Client(base_url=server.base_url, timeout=30.0, headers=AUTH) as client:
            before = client.get("/readyz").json()["documents"]
            deadline = time.monotonic() + 300
            while client.get("/readyz").json()["documents"] <= before:  # a batch committed: the run is writing
                assert indexer.poll() is None and time.monotonic() < deadline, indexer.communicate()
                time.sleep(0.1)
            for n in range(6):
                body = {"title": f"Під час індексації {n}", "text": f"Стаття {n}, записана наживо.", "lang": "uk"}
                status, seconds = _timed(client, "PUT", f"/v1/documents/during-{n}", json=body)
                assert status == 201, status
                timings["put"].append(seconds)
                for name, url in (
                    ("search", "/v1/search?q=бюджет&k=5"),
                    ("healthz", "/healthz"),
                    ("readyz", "/readyz"),
                ):
                    status, seconds = _timed(client, "GET", url)
                    assert status == 200, (name, status)
                    timings[name].append(seconds)
            assert indexer.poll() is None, "the run ended before the measurement did: it proves nothing"
            indexer.send_signal(signal.SIGINT)
            _, stderr = indexer.communicate(timeout=120)
            assert indexer.returncode == 130, stderr
            assert "articles were written before the interrupt" in stderr
            for n in range(6):
                assert client.get(f"/v1/documents/during-{n}").status_code == 200
    finally:
        if indexer.poll() is None:
            indexer.kill()
            indexer.communicate()
        server.stop()
    artifacts = Path(__file__).resolve().parents[1] / "artifacts"
    artifacts.mkdir(exist_ok=True)
    (artifacts / "write-during-index.json").write_text(json.dumps(timings, indent=2), encoding="utf-8")
    assert max(timings["put"]) < 2.0, timings
    assert max(timings["healthz"]) < 0.5 and max(timings["readyz"]) < 0.5, timings
    assert max(timings["search"]) < 2.0, timings
    check_index(index_dir)
