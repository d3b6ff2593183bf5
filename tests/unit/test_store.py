"""The index folder: durable writes, FAISS snapshots and replay, versions, model checks, corruption."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest

from poshuk.encoder import HashEncoder
from poshuk.errors import (
    IndexCorruptError,
    IndexNotFoundError,
    IndexStoreError,
    ModelMismatchError,
    NotFoundError,
)
from poshuk.filters import Filters
from poshuk.index import Index, IndexWriter, Upsert, iter_versions, live_version
from poshuk.settings import ChunkingSettings
from tests.support import index_queries as q
from tests.support.consistency import check_index
from tests.support.store import make_article as _article
from tests.support.store import make_upsert as _upsert
from tests.support.store import write_articles as _write


def test_write_then_read_round_trip(tmp_path: Path, hash_encoder: HashEncoder) -> None:
    _write(tmp_path, hash_encoder, _article("a", "перший абзац", "другий абзац"), _article("b", "third"))
    index = Index.open(tmp_path)
    counts = index.counts()
    assert (counts.documents, counts.passages, len(index.vectors)) == (2, 3, 3)
    doc = index.document("a")
    assert [p.passage_id for p in doc.passages] == ["a#0", "a#1"]
    assert doc.article.text == "перший абзац\n\nдругий абзац"
    with pytest.raises(NotFoundError):
        index.document("missing")
    index.close()


def test_article_search_scores_whole_articles_and_follows_writes(tmp_path: Path, hash_encoder: HashEncoder) -> None:
    spread = _article("spread", "порт одеса", "зерно експорт", title="")
    single = _article("single", "порт", "інше", title="")
    _write(tmp_path, hash_encoder, spread, single, _article("other", "футбол", title=""))
    index = Index.open(tmp_path)
    found = q.articles(index, q.terms("порт", "зерно"), 10)
    assert [doc for doc, _, _ in found] == ["spread", "single"]
    first = {doc: row for doc, row, _ in found}
    assert first["spread"] == min(p.row_id for p in index.document("spread").passages)
    assert sorted(q.article_terms(index, first["spread"]).split()) == [
        "експорт",
        "зерно",
        "одеса",
        "порт",
    ]
    assert q.articles(index, q.terms("порт"), 10, Filters(lang=("en",))) == []
    index.close()
    _write(tmp_path, hash_encoder, _article("spread", "нічого спільного", title=""))
    with IndexWriter(tmp_path, hash_encoder.identity, ChunkingSettings()) as writer:
        writer.delete("single")
    index = Index.open(tmp_path)
    assert q.articles(index, q.terms("порт", "зерно"), 10) == []
    assert [doc for doc, _, _ in q.articles(index, q.terms("спільний"), 10)] == ["spread"]
    index.close()
    check_index(tmp_path)


def test_an_index_made_before_article_terms_gets_them_on_open(tmp_path: Path, hash_encoder: HashEncoder) -> None:
    _write(tmp_path, hash_encoder, _article("a", "порт одеса", "зерно"), _article("b", "футбол"))
    conn = sqlite3.connect(live_version(tmp_path) / "meta.sqlite")
    conn.execute("DROP TABLE article_lexical")
    conn.commit()
    conn.close()
    index = Index.open(tmp_path)  # adds the table from the passages' stored terms
    assert [doc for doc, _, _ in q.articles(index, q.terms("зерно"), 10)] == ["a"]
    index.close()
    check_index(tmp_path)


def test_without_article_terms_article_search_is_empty_and_writes_still_work(
    tmp_path: Path, hash_encoder: HashEncoder
) -> None:
    _write(tmp_path, hash_encoder, _article("a", "порт одеса"))
    index = Index.open(tmp_path)
    conn = sqlite3.connect(live_version(tmp_path) / "meta.sqlite")
    conn.execute("DROP TABLE article_lexical")  # as if the open could not add it (a read-only copy, say)
    conn.commit()
    conn.close()
    assert q.articles(index, q.terms("порт"), 10) == []
    index.write(upserts=[_upsert(hash_encoder, _article("b", "порт"))])
    assert {p.doc_id for p in index.passages([r for r, _ in q.lexical(index, q.terms("порт"), 10)]).values()} == {
        "a",
        "b",
    }
    index.close()


def test_upsert_replaces_every_passage_of_the_article(tmp_path: Path, hash_encoder: HashEncoder) -> None:
    _write(tmp_path, hash_encoder, _article("a", "one", "two", "three"))
    _write(tmp_path, hash_encoder, _article("a", "only one now"))
    index = Index.open(tmp_path)
    assert index.counts().passages == len(index.vectors) == 1
    assert [p.text for p in index.document("a").passages] == ["only one now"]
    index.close()


def test_delete_removes_article_passages_vectors_and_terms(tmp_path: Path, hash_encoder: HashEncoder) -> None:
    _write(tmp_path, hash_encoder, _article("a", "одеса порт", "two"), _article("b", "three"))
    with IndexWriter(tmp_path, hash_encoder.identity, ChunkingSettings()) as writer:
        assert writer.delete("a") is True
        assert writer.delete("never-there") is False
    index = Index.open(tmp_path)
    assert (index.counts().documents, index.counts().passages, len(index.vectors)) == (1, 1, 1)
    assert q.lexical(index, q.terms("одеса"), 10) == []
    index.close()


def test_failed_write_changes_nothing(tmp_path: Path, hash_encoder: HashEncoder) -> None:
    _write(tmp_path, hash_encoder, _article("a", "one"))
    before = live_version(tmp_path)
    with pytest.raises(RuntimeError), IndexWriter(tmp_path, hash_encoder.identity, ChunkingSettings()) as w:
        article, passages = _article("b", "two")
        w.upsert(article, passages, hash_encoder.encode_passages(["two"]))
        raise RuntimeError("simulated crash mid-run")
    assert live_version(tmp_path) == before
    index = Index.open(tmp_path)
    assert index.counts().documents == 1
    index.close()


def test_live_writes_are_visible_at_once_and_to_other_processes_after_refresh(
    tmp_path: Path, hash_encoder: HashEncoder
) -> None:
    _write(tmp_path, hash_encoder, _article("a", "one"))
    serving, other = Index.open(tmp_path), Index.open(tmp_path)
    vector = hash_encoder.encode_queries(["нова стаття про бюджет"])
    serving.write(upserts=[_upsert(hash_encoder, _article("b", "нова стаття про бюджет"))])
    assert q.dense(serving, vector, 1)[0][0] in serving.passages([r for r, _ in q.dense(serving, vector, 1)])
    assert len(serving.vectors) == 2
    assert len(other.vectors) == 1
    assert other.refresh() == 1
    assert len(other.vectors) == 2
    other.write(deletes=["a"])
    serving.refresh()
    assert serving.counts().documents == 1 and len(serving.vectors) == 1
    serving.close()
    other.close()


def test_replay_after_snapshot_gives_the_same_vectors(tmp_path: Path, hash_encoder: HashEncoder) -> None:
    _write(tmp_path, hash_encoder, _article("a", "one", "two"))
    index = Index.open(tmp_path)
    for n in range(5):  # live writes after the snapshot the writer left
        index.write(upserts=[_upsert(hash_encoder, _article(f"d{n}", f"text {n}"))], deletes=["a"] if n == 2 else [])
    index.close()
    reopened = Index.open(tmp_path)
    assert len(reopened.vectors) == reopened.counts().passages == 5
    query = hash_encoder.encode_queries(["text 3"])
    best = q.dense(reopened, query, 1)[0][0]
    assert reopened.passages([best])[best].doc_id == "d3"
    reopened.close()


def test_damaged_snapshot_is_rebuilt_from_sqlite(tmp_path: Path, hash_encoder: HashEncoder) -> None:
    _write(tmp_path, hash_encoder, _article("a", "one", "two"))
    for snapshot in live_version(tmp_path).glob("vectors-*.faiss"):
        snapshot.write_bytes(b"garbage")
    index = Index.open(tmp_path)
    assert len(index.vectors) == 2
    index.close()


def test_rebuild_makes_a_new_version_and_keeps_the_previous(tmp_path: Path, hash_encoder: HashEncoder) -> None:
    _write(tmp_path, hash_encoder, _article("a", "one"))
    first = live_version(tmp_path)
    _write(tmp_path, hash_encoder, _article("b", "two"), rebuild=True)
    assert live_version(tmp_path) != first and first.is_dir()
    index = Index.open(tmp_path)
    assert [index.counts().documents] == [1]
    with pytest.raises(NotFoundError):
        index.document("a")
    index.close()
    for _ in range(3):
        _write(tmp_path, hash_encoder, _article("c", "three"), rebuild=True)
    assert len(list(iter_versions(tmp_path))) == 2


def test_interrupted_rebuild_leaves_the_live_version(tmp_path: Path, hash_encoder: HashEncoder) -> None:
    _write(tmp_path, hash_encoder, _article("a", "one"))
    before = live_version(tmp_path)
    with (
        pytest.raises(KeyboardInterrupt),
        IndexWriter(tmp_path, hash_encoder.identity, ChunkingSettings(), rebuild=True),
    ):
        raise KeyboardInterrupt
    assert live_version(tmp_path) == before
    assert not list((tmp_path / "versions").glob("tmp-*"))


def test_stale_build_from_a_killed_rebuild_is_ignored_then_cleaned(tmp_path: Path, hash_encoder: HashEncoder) -> None:
    _write(tmp_path, hash_encoder, _article("a", "one"))
    stale = tmp_path / "versions" / "tmp-deadbeef"
    stale.mkdir()
    (stale / "meta.sqlite").write_bytes(b"half written")
    assert Index.open(tmp_path).counts().documents == 1
    _write(tmp_path, hash_encoder, _article("b", "two"), rebuild=True)
    assert not stale.exists()


def test_model_mismatch_is_a_clear_error(tmp_path: Path, hash_encoder: HashEncoder) -> None:
    _write(tmp_path, hash_encoder, _article("a", "one"))
    other = HashEncoder(dimension=32, name="other-model")
    index = Index.open(tmp_path)
    with pytest.raises(ModelMismatchError, match="other-model"):
        index.check_model(other.identity)
    index.close()
    with pytest.raises(ModelMismatchError):
        IndexWriter(tmp_path, other.identity, ChunkingSettings()).open()


def test_missing_index_is_index_not_found(tmp_path: Path) -> None:
    with pytest.raises(IndexNotFoundError, match="no index"):
        Index.open(tmp_path / "nowhere")


@pytest.mark.parametrize("damage", ["manifest", "sqlite", "current", "format"])
def test_corrupt_index_is_detected(tmp_path: Path, hash_encoder: HashEncoder, damage: str) -> None:
    _write(tmp_path, hash_encoder, _article("a", "one", "two"))
    folder = live_version(tmp_path)
    if damage == "manifest":
        (folder / "manifest.json").write_text("{not json", encoding="utf-8")
    elif damage == "sqlite":
        for path in folder.glob("meta.sqlite*"):
            path.write_bytes(b"garbage" * 100)
    elif damage == "current":
        (tmp_path / "CURRENT").write_text("v999999\n", encoding="utf-8")
    else:
        text = (folder / "manifest.json").read_text(encoding="utf-8")
        (folder / "manifest.json").write_text(text.replace('"format_version": 3', '"format_version": 99'), "utf-8")
    with pytest.raises(IndexCorruptError):
        Index.open(tmp_path)


def test_vectors_follow_sqlite_when_rows_were_removed_behind_faiss(tmp_path: Path, hash_encoder: HashEncoder) -> None:
    _write(tmp_path, hash_encoder, _article("a", "one", "two"))
    with sqlite3.connect(live_version(tmp_path) / "meta.sqlite") as conn:
        conn.execute("DELETE FROM passages WHERE ordinal = 1")
    index = Index.open(tmp_path)
    assert len(index.vectors) == index.counts().passages == 1
    index.close()


def test_a_second_writer_waits_for_the_open_batch_and_then_fails_clearly(
    tmp_path: Path, hash_encoder: HashEncoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    import poshuk.index.db as db

    _write(tmp_path, hash_encoder, _article("a", "one"))
    monkeypatch.setattr(db, "BUSY_TIMEOUT_MS", 200)
    first = IndexWriter(tmp_path, hash_encoder.identity, ChunkingSettings())
    first.open()
    second = IndexWriter(tmp_path, hash_encoder.identity, ChunkingSettings())
    second.open()  # opening takes no lock: only a batch does
    try:
        first.begin()
        with pytest.raises(IndexStoreError, match="busy"):
            second.begin()
        reader = Index.open(tmp_path)  # readers never wait for a writer
        assert reader.counts().documents == 1 and reader.document("a").article.id == "a"
        reader.close()
        first.flush()
        second.begin()  # the batch ended: the lock is free
    finally:
        first.abort()
        second.abort()


def test_vectors_of_the_wrong_dimension_are_refused(tmp_path: Path, hash_encoder: HashEncoder) -> None:
    _write(tmp_path, hash_encoder, _article("a", "one"))
    index = Index.open(tmp_path)
    article, passages = _article("b", "two")
    with pytest.raises(ValueError, match="dimension"):
        index.write(upserts=[Upsert(article, passages, np.zeros((1, 8), dtype=np.float32))])
    assert index.counts().documents == 1
    index.close()


def test_a_full_disk_is_a_clear_error_and_changes_nothing(tmp_path: Path, hash_encoder: HashEncoder) -> None:
    from poshuk.errors import StorageFullError

    _write(tmp_path, hash_encoder, _article("a", "one"))
    index = Index.open(tmp_path)
    db = index._db  # the writers' connection (None only when opened read-only)
    assert db is not None
    (pages,) = db.execute("PRAGMA page_count").fetchone()
    db.execute(f"PRAGMA max_page_count = {pages}")  # SQLite's own way to run out of room
    big = _article("big", *[f"абзац {n} " + "слово " * 200 for n in range(40)])
    with pytest.raises(StorageFullError, match="disk is full"):
        index.write(upserts=[_upsert(hash_encoder, big)])
    assert not db.in_transaction  # rolled back, not left open (nor masked by a failed ROLLBACK)
    assert index.counts().documents == 1
    db.execute("PRAGMA max_page_count = 1073741823")
    index.write(upserts=[_upsert(hash_encoder, big)])  # room again: the same write succeeds
    assert index.counts().documents == 2
    index.close()
    check_index(tmp_path)
