"""``kill -9`` of a server writing a 3-shard archive, mid-stream of PUTs and shard-spanning batches.

The server is a real process on 127.0.0.1 (the hash encoder in place of the model). Every write
it acknowledged must be there, whole, after the restart (which finishes any write the kill cut
between shards); a write never answered is absent or whole; every shard passes the consistency
check; row ids stay unique across shards.
"""

from __future__ import annotations

import random
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from poshuk.encoder import HashEncoder
from poshuk.index import Index, IndexWriter
from poshuk.ingest import prepare
from poshuk.language import LanguageDetector
from poshuk.settings import ChunkingSettings
from poshuk.shards import read_set, split_index
from poshuk.shards.journal import JOURNAL_NAME, Journal
from service.auth import new_key
from tests.support.consistency import check_index
from tests.support.served import Served
from tests.support.write_stream import WriteLog, check_writes, stream_writes
from tests.unit.test_shards import corpus

pytestmark = [pytest.mark.e2e]

KEY, KEY_HASH = new_key()
AUTH = {"Authorization": f"Bearer {KEY}"}
ROOT = Path(__file__).resolve().parents[2]


def _serve(archive: Path, config: Path, log: Path) -> Served:
    command = [sys.executable, "-m", "tests.support.hash_serve", str(archive), "{port}"]
    return Served(command, config, log, cwd=ROOT)


def test_kill_9_mid_stream_loses_no_acknowledged_write_to_a_sharded_archive(tmp_path: Path) -> None:
    encoder = HashEncoder()
    single, archive = tmp_path / "single", tmp_path / "archive"
    with IndexWriter(single, encoder.identity, ChunkingSettings()) as writer:
        writer.upsert_many(prepare(corpus(40), encoder, ChunkingSettings(), LanguageDetector(), writer.index.analyzer))
    split_index(single, archive, 3)
    config = tmp_path / "poshuk.toml"
    config.write_text(
        f'[auth]\nkeys = ["{KEY_HASH}"]\n\n[service]\nrate_limit_per_second = 0\nclient_time_share = 0\n',
        encoding="utf-8",
    )
    kills, articles = random.Random(12), random.Random(13)
    log = WriteLog()
    cut: set[str] = set()
    server_log = tmp_path / "server.log"
    for _round in range(3):
        server = _serve(archive, config, server_log)
        stop = threading.Event()
        writer_thread = threading.Thread(
            target=stream_writes, args=(server.base_url, log, stop, articles, AUTH), daemon=True
        )
        acked_before = len(log.acked)
        writer_thread.start()
        deadline = time.monotonic() + 30
        while len(log.acked) < acked_before + 5:  # the stream flows
            assert time.monotonic() < deadline and writer_thread.is_alive(), log.failures
            time.sleep(0.02)
        time.sleep(kills.uniform(0.0, 1.0))
        server.kill()
        stop.set()
        writer_thread.join(timeout=30)
        journal = Journal(archive / JOURNAL_NAME, encoder.identity.dimension)
        cut.update(u.article.id for entry in journal.unfinished() for u in entry.upserts)  # logged, not all written
        journal.close()
    server = _serve(archive, config, server_log)  # opening finishes a write the kill cut between shards
    try:
        unacked_present = check_writes(server.base_url, log)
        with httpx.Client(base_url=server.base_url, timeout=30.0) as client:  # a logged write is finished whole
            assert all(client.get(f"/v1/documents/{doc_id}").status_code == 200 for doc_id in cut)
    finally:
        server.stop()
    assert not log.failures, log.failures
    assert len(log.acked) >= 15, f"too few writes to mean anything: {len(log.acked)}"
    assert unacked_present <= 3 * 4  # at most the request in flight at each kill
    rows: list[int] = []
    for name in read_set(archive).shards:
        check_index(archive / name)
        shard = Index.open(archive / name, read_only=True)
        try:
            rows += [r for (r,) in shard.read().execute("SELECT row_id FROM passages")]
        finally:
            shard.close()
    assert len(rows) == len(set(rows))  # one counter for all shards
