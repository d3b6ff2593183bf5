"""Shards reached through ``poshuk.shards.wire`` (bytes there and back, as a Ray Serve shard is)
answer exactly as the same shards opened in-process, and a shard's errors arrive as they were."""

from __future__ import annotations

from pathlib import Path

import msgspec
import numpy as np
import pytest

from poshuk.encoder import HashEncoder
from poshuk.errors import NotFoundError
from poshuk.index import Index
from poshuk.search import Searcher
from poshuk.shards import ShardedIndex, read_set, split_index
from poshuk.shards.shard import LocalShard
from poshuk.shards.wire import RemoteShard, answer
from tests.unit.test_shards import VARIANTS, queries
from tests.unit.test_shards import single as single  # the module's one index, shared fixture

CALLS: list[int] = []


def _remote(folder: Path) -> RemoteShard:
    shard = LocalShard(Index.open(folder, read_only=True))

    def call(payload: bytes) -> bytes:
        CALLS.append(len(payload))
        return answer(shard, bytes(payload))

    return RemoteShard(call)


def test_remote_shards_answer_as_local_ones(single: Path, tmp_path: Path) -> None:
    split_index(single, tmp_path / "sharded", 3)
    shard_set = read_set(tmp_path / "sharded")
    local = Searcher(ShardedIndex.open(tmp_path / "sharded"), HashEncoder())
    remote_reader = ShardedIndex(
        tmp_path / "sharded",
        shard_set,
        [_remote(tmp_path / "sharded" / name) for name in shard_set.shards],
        first_fetch=5,  # second rounds travel too
        parallel=True,
    )
    remote = Searcher(remote_reader, HashEncoder())
    try:
        for text in queries()[:25]:
            for options in VARIANTS.values():
                a = msgspec.to_builtins(local.search(text, **options))  # type: ignore[arg-type]
                b = msgspec.to_builtins(remote.search(text, **options))  # type: ignore[arg-type]
                a.pop("took_ms"), b.pop("took_ms")
                assert a == b, (text, options)
        assert remote_reader.second_rounds > 0 and CALLS
        for doc_id in ("uk/001", "en/003", "copy-005"):
            assert local.document(doc_id) == remote.document(doc_id)
            assert local.similar(doc_id, k=5).hits == remote.similar(doc_id, k=5).hits
        assert local.stats() == remote.stats()
        with pytest.raises(NotFoundError) as missing:
            remote.document("no/such")
        with pytest.raises(NotFoundError) as expected:
            local.document("no/such")
        assert missing.value.one_line() == expected.value.one_line()
        owner = remote_reader.shards[shard_set.shard_of("uk/001")]
        assert np.array_equal(owner.document_vectors("uk/001"), local._reader.document_vectors("uk/001"))
    finally:
        local.close()
        remote.close()


def test_remote_shards_carry_pages_as_one_index(tmp_path: Path) -> None:
    """Documents with pages (issue 15): every candidate's page, and a collapsed hit's other pages,
    come through the wire as one index gives them."""
    from poshuk.documents import Article, Page
    from tests.unit.test_pages import _index

    pages = tuple(Page(n, f"Drone production page {n} at the plant in Kharkiv, war report {n}.") for n in range(1, 9))
    docs = [Article(id="report", title="Annual report", text="", pages=pages)]
    docs += [Article(id=f"news-{n}", title=f"News {n}", text=f"Drones attacked the port {n} times.") for n in range(9)]
    single = _index(tmp_path / "single", *docs)
    split_index(single, tmp_path / "sharded", 3)
    shard_set = read_set(tmp_path / "sharded")
    whole = Searcher(Index.open(single, read_only=True), HashEncoder())
    remote = Searcher(
        ShardedIndex(
            tmp_path / "sharded",
            shard_set,
            [_remote(tmp_path / "sharded" / name) for name in shard_set.shards],
            parallel=True,
        ),
        HashEncoder(),
    )
    try:
        for options in ({}, {"collapse": True}, {"mode": "lexical"}, {"dedupe": True}):
            a = msgspec.to_builtins(whole.search("drone production plant", **options))
            b = msgspec.to_builtins(remote.search("drone production plant", **options))
            a.pop("took_ms"), b.pop("took_ms")
            assert a == b, options
        collapsed = remote.search("drone production plant", collapse=True).hits
        report = next(h for h in collapsed if h.doc_id == "report")
        assert report.page is not None and report.other_pages
    finally:
        whole.close()
        remote.close()


def test_a_search_asks_each_remote_shard_twice(single: Path, tmp_path: Path) -> None:
    """Round trips are what a remote shard costs (issue 12's served benchmark: ~20 ms of CPU each
    through Ray Serve): a search in any mode asks each shard once for every retriever's first answers
    and once for the page's passages, unless a BM25 merge needs a second round."""
    split_index(single, tmp_path / "sharded", 3)
    shard_set = read_set(tmp_path / "sharded")
    reader = ShardedIndex(
        tmp_path / "sharded", shard_set, [_remote(tmp_path / "sharded" / n) for n in shard_set.shards], parallel=True
    )
    searcher = Searcher(reader, HashEncoder())
    try:
        for mode in ("hybrid", "dense", "lexical"):
            for text in queries()[:10]:
                CALLS.clear()
                before = reader.second_rounds
                found = searcher.search(text, k=10, mode=mode)
                extra = reader.second_rounds - before
                assert found.hits and len(CALLS) <= 2 * len(shard_set.shards) + 2 * extra, (mode, text, len(CALLS))
    finally:
        searcher.close()
