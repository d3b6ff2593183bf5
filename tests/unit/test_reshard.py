"""Re-sharding an archive that took writes (issue 12): the writes are carried into its staging
index, nothing is encoded again, and nothing is lost.

One index and a 3-shard archive (split from its own ``staging``) take the same writes (PUT-like
upserts, an article replaced, deletes); the archive is then split into 2 shards, written again and
split into 5. After each split it answers every query in every mode as one index that took the
same writes does, holds the same rows and story clusters, counts as not written, and its next
write gets one node's next row. Real SQLite, FAISS and FTS5; the encoder is the hash one.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from collections.abc import Iterable, Iterator
from pathlib import Path

import msgspec
import pytest

from poshuk.documents import Article
from poshuk.errors import IndexStoreError
from poshuk.index import Index, IndexWriter, Upsert
from poshuk.ingest import prepare
from poshuk.language import LanguageDetector
from poshuk.search import Searcher
from poshuk.settings import ChunkingSettings, Settings
from poshuk.shards import read_set, split_index
from poshuk.shards.journal import JOURNAL_NAME
from poshuk.shards.layout import STAGING, has_writes
from tests.support.consistency import check_index
from tests.unit.test_shard_writes import ENCODER, _answers, _prepare, _shards, _steps, _tables
from tests.unit.test_shards import corpus

QUERIES = 16


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Article]]:
    folder = tmp_path_factory.mktemp("base") / "index"
    articles = corpus(120)
    with IndexWriter(folder, ENCODER.identity, ChunkingSettings()) as writer:
        writer.upsert_many(prepare(articles, ENCODER, ChunkingSettings(), LanguageDetector(), writer.index.analyzer))
    return folder, articles


def _archive(base: Path, tmp_path: Path, shards: int) -> tuple[Path, Path]:
    """(one index, an archive of ``shards`` shards split from its own staging), both copies of ``base``."""
    one, archive = tmp_path / "one", tmp_path / "archive"
    shutil.copytree(base, one)
    shutil.copytree(base, archive / STAGING)
    split_index(archive / STAGING, archive, shards)
    return one, archive


def _write(one_dir: Path, archive: Path, settings: Settings, steps: list[tuple[list[Article], list[str]]]) -> None:
    """The same writes to both, as the API makes them (each step one request)."""
    one = Searcher.open(one_dir, settings, encoder=ENCODER)
    parts = Searcher.open(archive, settings, encoder=ENCODER)
    try:
        for upserts, deletes in steps:
            prepared = _prepare(upserts, one)
            expected = one.writer.write(prepared, deletes)
            got = parts.writer.write(prepared, deletes)
            assert (got.replaced, got.deleted) == (expected.replaced, expected.deleted)
    finally:
        one.close()
        parts.close()


def _same_as_one(one_dir: Path, archive: Path, settings: Settings) -> None:
    """The archive answers, and stores, what one index does; so does its staging index."""
    one = Searcher.open(one_dir, settings, encoder=ENCODER)
    parts = Searcher.open(archive, settings, encoder=ENCODER)
    staging = Index.open(archive / STAGING, read_only=True)
    try:
        tables = _tables([one.index])
        assert _tables(_shards(parts)) == tables  # rows, clusters, vectors and terms alike
        assert _tables([staging]) == tables
        assert _answers(parts, QUERIES) == _answers(one, QUERIES)
    finally:
        staging.close()
        one.close()
        parts.close()
    for name in read_set(archive).shards:
        check_index(archive / name)
    check_index(archive / STAGING)


def _next_row(folder: Path) -> int:
    index = Index.open(folder, read_only=True)
    try:
        (seq,) = index.read().execute("SELECT seq FROM sqlite_sequence WHERE name = 'passages'").fetchone()
        return int(seq) + 1
    finally:
        index.close()


def test_resharding_a_written_archive_carries_every_write_over(
    base: tuple[Path, list[Article]], tmp_path: Path, settings: Settings
) -> None:
    one_dir, archive = _archive(base[0], tmp_path, 3)
    steps = _steps(base[1])  # new articles, copies, an article replaced, deletes, a deleted story head
    _write(one_dir, archive, settings, steps[:-3])
    parts = Searcher.open(archive, settings, encoder=ENCODER)
    try:
        before = _answers(parts, QUERIES)  # the written 3-shard archive's answers
    finally:
        parts.close()
    assert has_writes(archive)
    shard_set = split_index(archive / STAGING, archive, 2)
    assert not has_writes(archive) and shard_set.generation == 2
    assert shard_set.journal_seq == read_set(archive).journal_seq > 0
    assert sorted(p.name for p in archive.iterdir()) == sorted(["SET", JOURNAL_NAME, STAGING, *shard_set.shards])
    _same_as_one(one_dir, archive, settings)
    parts = Searcher.open(archive, settings, encoder=ENCODER)
    try:
        assert _answers(parts, QUERIES) == before
    finally:
        parts.close()
    assert _next_row(archive / shard_set.shards[0]) == _next_row(one_dir)  # deleted rows counted

    _write(one_dir, archive, settings, steps[-3:])  # written again (a delete, a replacement), then 5 shards
    assert has_writes(archive)
    shard_set = split_index(archive / STAGING, archive, 5)
    assert not has_writes(archive) and len(shard_set.shards) == 5
    _same_as_one(one_dir, archive, settings)

    later = [msgspec.structs.replace(corpus(3, seed=1)[0], id="after/one")]
    _write(one_dir, archive, settings, [(later, [])])  # the counter goes on as one node's
    _same_as_one_tables(one_dir, archive, settings)
    assert has_writes(archive)


def _same_as_one_tables(one_dir: Path, archive: Path, settings: Settings) -> None:
    one = Searcher.open(one_dir, settings, encoder=ENCODER)
    parts = Searcher.open(archive, settings, encoder=ENCODER)
    try:
        assert _tables(_shards(parts)) == _tables([one.index])
    finally:
        one.close()
        parts.close()


def test_an_unwritten_archive_is_split_again_without_copying(
    base: tuple[Path, list[Article]], tmp_path: Path, settings: Settings
) -> None:
    """No write since the split: staging is used as it is (its version untouched), as before."""
    one_dir, archive = _archive(base[0], tmp_path, 3)
    staged = sorted(p.name for p in (archive / STAGING / "versions").iterdir())
    mtime = (archive / STAGING / "CURRENT").stat().st_mtime_ns
    assert not has_writes(archive)
    split_index(archive / STAGING, archive, 2)
    assert sorted(p.name for p in (archive / STAGING / "versions").iterdir()) == staged
    assert (archive / STAGING / "CURRENT").stat().st_mtime_ns == mtime
    _same_as_one(one_dir, archive, settings)


def test_an_archive_without_staging_gets_one_from_its_shards(
    base: tuple[Path, list[Article]], tmp_path: Path, settings: Settings
) -> None:
    """Split from another index (no ``staging``), then written: splitting it again builds staging from
    the shards; splitting it from that other index would lose the writes, and is refused."""
    one_dir, archive = tmp_path / "one", tmp_path / "archive"
    shutil.copytree(base[0], one_dir)
    split_index(base[0], archive, 3)
    _write(one_dir, archive, settings, _steps(base[1])[17:21])
    with pytest.raises(IndexStoreError, match="took writes"):
        split_index(base[0], archive, 2)
    assert not (archive / STAGING).exists()
    split_index(archive / STAGING, archive, 2)
    _same_as_one(one_dir, archive, settings)


def test_a_split_that_dies_before_its_set_loses_nothing(
    base: tuple[Path, list[Article]], tmp_path: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Dying part way through carrying, then after carrying but before the new ``SET``: the old shards
    stay live, still counted as written, and take every write; the next run carries again and splits."""
    import poshuk.shards.carry
    import poshuk.shards.split

    one_dir, archive = _archive(base[0], tmp_path, 3)
    steps = _steps(base[1])
    _write(one_dir, archive, settings, steps[:4] + steps[-6:])
    old_set = read_set(archive)
    copy = poshuk.shards.carry.stored_upserts

    def dies_while_copying(
        conn: sqlite3.Connection, dimension: int, doc_ids: Iterable[str] | None = None
    ) -> Iterator[Upsert]:
        for n, item in enumerate(copy(conn, dimension, doc_ids)):
            if n == 3:
                raise OSError("the process died here")
            yield item

    monkeypatch.setattr(poshuk.shards.carry, "stored_upserts", dies_while_copying)
    with pytest.raises(OSError):
        split_index(archive / STAGING, archive, 2)
    monkeypatch.undo()
    staging = Index.open(archive / STAGING, read_only=True)
    try:  # carried part way: the articles deleted through the shards are gone from staging
        assert staging.read().execute("SELECT count(*) FROM documents WHERE doc_id = 'uk/001'").fetchone()[0] == 0
    finally:
        staging.close()

    def dies(*_args: object) -> None:
        raise OSError("the process died here")

    monkeypatch.setattr(poshuk.shards.split, "write_file", dies)
    with pytest.raises(OSError):
        split_index(archive / STAGING, archive, 2)
    monkeypatch.undo()
    assert read_set(archive) == old_set and has_writes(archive)

    more = [msgspec.structs.replace(a, id=f"meanwhile/{a.id}") for a in corpus(6, seed=31)]
    _write(one_dir, archive, settings, [(more, ["en/003"])])  # the old archive still takes writes
    _same_as_one_tables(one_dir, archive, settings)

    shard_set = split_index(archive / STAGING, archive, 2)
    assert not has_writes(archive)
    assert sorted(p.name for p in archive.iterdir()) == sorted(["SET", JOURNAL_NAME, STAGING, *shard_set.shards])
    _same_as_one(one_dir, archive, settings)


def test_a_write_cut_between_shards_is_finished_before_it_is_carried(
    base: tuple[Path, list[Article]], tmp_path: Path, settings: Settings
) -> None:
    """A logged write that died after one shard's transaction: re-sharding applies it whole first."""
    from poshuk.index import WriteOutcome

    one_dir, archive = _archive(base[0], tmp_path, 3)
    batch = [msgspec.structs.replace(a, id=f"cut/{a.id}") for a in corpus(30, seed=8)]
    assert len({read_set(archive).shard_of(a.id) for a in batch}) == 3
    one = Searcher.open(one_dir, settings, encoder=ENCODER)
    parts = Searcher.open(archive, settings, encoder=ENCODER)
    try:
        prepared = _prepare(batch, one)

        def dies(*_args: object, **_kwargs: object) -> WriteOutcome:
            raise OSError("the process died here")

        _shards(parts)[1].write = dies  # type: ignore[method-assign]  # shard 0 commits, shard 1 never does
        with pytest.raises(OSError):
            parts.writer.write(prepared, ["uk/002"])
        one.writer.write(prepared, ["uk/002"])
    finally:
        one.close()
        parts.close()
    split_index(archive / STAGING, archive, 2)
    assert not has_writes(archive)
    _same_as_one(one_dir, archive, settings)


def test_an_old_set_without_journal_seq_counts_its_writes(
    base: tuple[Path, list[Article]], tmp_path: Path, settings: Settings
) -> None:
    """A ``SET`` written before ``journal_seq`` existed still decodes; its archive's writes count."""
    one_dir, archive = _archive(base[0], tmp_path, 2)
    legacy = msgspec.to_builtins(read_set(archive))
    del legacy["journal_seq"]
    (archive / "SET").write_bytes(msgspec.json.encode(legacy))
    assert not has_writes(archive)
    _write(one_dir, archive, settings, _steps(base[1])[1:3])
    assert has_writes(archive)
    with pytest.raises(IndexStoreError, match="took writes"):  # staging just written from sources: refused
        split_index(archive / STAGING, archive, 3, carry_writes=False)
    split_index(archive / STAGING, archive, 3)
    assert not has_writes(archive)
    _same_as_one(one_dir, archive, settings)


@pytest.mark.usefixtures("hash_model")
def test_the_index_command_reshards_a_written_archive(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``poshuk index --index ARCHIVE --shards M`` with no PATH re-shards; with PATH it writes them through
    the shards first; ``--rebuild --shards`` with PATH on a written archive is refused in one line (without
    PATH it re-shards)."""
    from poshuk_cli.main import main

    articles = Path(__file__).resolve().parents[2] / "examples" / "articles"
    first = [str(articles / "news.jsonl")]
    then, last = str(articles / "en-009.txt"), str(articles / "uk-019.txt")
    one, arc = str(tmp_path / "one"), str(tmp_path / "arc")
    assert main(["index", *first, "--index", one, "--no-progress"]) == 0
    assert main(["index", *first, "--index", arc, "--shards", "3", "--no-progress"]) == 0
    assert main(["index", then, "--index", one, "--no-progress"]) == 0
    assert main(["index", then, "--index", arc, "--no-progress"]) == 0  # through the shards
    capsys.readouterr()

    assert main(["index", "--index", arc, "--rebuild", "--shards", "2", *first, "--no-progress"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("poshuk: error: ") and err.count("\n") == 0
    assert "took writes" in err and "without --rebuild" in err
    assert sorted(p.name for p in (tmp_path / "arc").iterdir()) == [
        "SET",
        "shard-000",
        "shard-001",
        "shard-002",
        "staging",
        JOURNAL_NAME,
    ]

    assert main(["index", "--index", arc, "--shards", "2"]) == 0
    assert "re-sharded" in capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "arc").iterdir()) == [
        "SET",
        "shard-000-g2",
        "shard-001-g2",
        "staging",
        JOURNAL_NAME,
    ]
    assert not has_writes(tmp_path / "arc")
    _same_answers(capsys, one, arc)

    for paths in ([then], [last]):
        assert main(["index", *paths, "--index", one, "--no-progress"]) == 0
    assert main(["index", then, "--index", arc, "--no-progress"]) == 0  # written again (the same article)
    assert main(["index", last, "--index", arc, "--shards", "3", "--no-progress"]) == 0  # PATH, then re-shard
    assert "in 3 shard(s)" in capsys.readouterr().out
    assert not has_writes(tmp_path / "arc")
    _same_answers(capsys, one, arc)

    for argv in (["index", "--index", one], ["index", "--index", arc], ["index", "--index", arc, "--rebuild"]):
        with pytest.raises(SystemExit) as exited:  # PATH stays required but to re-shard an archive
            main(argv)
        assert exited.value.code == 2
        assert "PATH" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["index", "--index", arc, "--shards", "2", "--ray", "local"])
    assert "re-sharding without PATH encodes nothing" in capsys.readouterr().err
    assert main(["index", "--index", arc, "--shards", "2", "--rebuild"]) == 0  # no PATH: re-shards, as without
    assert "re-sharded" in capsys.readouterr().out and len(read_set(tmp_path / "arc").shards) == 2
    _same_answers(capsys, one, arc)


def _same_answers(capsys: pytest.CaptureFixture[str], one: str, arc: str) -> None:
    from poshuk_cli.main import main as run

    for query in ("мед експорт", "grain exports Odesa", "Kirby"):
        answers = []
        for folder in (one, arc):
            assert run(["search", query, "--index", folder, "--json", "--collapse"]) == 0
            answer = json.loads(capsys.readouterr().out)
            answer.pop("took_ms")
            answers.append(answer)
        assert answers[0] == answers[1] and answers[0]["hits"]
