"""The index folder: atomic versions, upserts, deletes, model checks, corruption."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from poshuk.documents import Article, Passage, passage_id
from poshuk.encoder import HashEncoder
from poshuk.errors import (
    IndexCorruptError,
    IndexNotFoundError,
    IndexStoreError,
    ModelMismatchError,
    NotFoundError,
)
from poshuk.settings import ChunkingSettings
from poshuk.store import IndexReader, IndexWriter, iter_versions, live_version


def _article(doc_id: str, *paragraphs: str, title: str = "Title") -> tuple[Article, list[Passage]]:
    article = Article(id=doc_id, title=title, text="\n\n".join(paragraphs), lang="uk")
    passages = [
        Passage(id=passage_id(doc_id, n), doc_id=doc_id, ordinal=n, text=p, embed_text=f"{title}\n{p}")
        for n, p in enumerate(paragraphs)
    ]
    return article, passages


def _write(index_dir: Path, encoder: HashEncoder, *docs: tuple[Article, list[Passage]]) -> None:
    with IndexWriter(index_dir, encoder.identity, ChunkingSettings()) as writer:
        for article, passages in docs:
            writer.upsert(article, passages, encoder.encode_passages([p.embed_text for p in passages]))


def test_write_then_read_round_trip(tmp_path: Path, hash_encoder: HashEncoder) -> None:
    _write(tmp_path, hash_encoder, _article("a", "перший абзац", "другий абзац"), _article("b", "third"))
    reader = IndexReader.open(tmp_path)
    assert (reader.manifest.documents, reader.manifest.passages) == (2, 3)
    doc = reader.document("a")
    assert [p.passage_id for p in doc.passages] == ["a#0", "a#1"]
    assert doc.article.text == "перший абзац\n\nдругий абзац"
    with pytest.raises(NotFoundError):
        reader.document("missing")
    reader.close()


def test_upsert_replaces_every_passage_of_the_article(tmp_path: Path, hash_encoder: HashEncoder) -> None:
    _write(tmp_path, hash_encoder, _article("a", "one", "two", "three"))
    _write(tmp_path, hash_encoder, _article("a", "only one now"))
    reader = IndexReader.open(tmp_path)
    assert reader.manifest.passages == 1
    assert len(reader.vectors) == 1
    assert [p.text for p in reader.document("a").passages] == ["only one now"]
    reader.close()


def test_delete_removes_article_passages_and_vectors(tmp_path: Path, hash_encoder: HashEncoder) -> None:
    _write(tmp_path, hash_encoder, _article("a", "one", "two"), _article("b", "three"))
    with IndexWriter(tmp_path, hash_encoder.identity, ChunkingSettings()) as writer:
        assert writer.delete("a") is True
        assert writer.delete("never-there") is False
    reader = IndexReader.open(tmp_path)
    assert (reader.manifest.documents, reader.manifest.passages, len(reader.vectors)) == (1, 1, 1)
    reader.close()


def test_failed_write_leaves_previous_version_live(tmp_path: Path, hash_encoder: HashEncoder) -> None:
    _write(tmp_path, hash_encoder, _article("a", "one"))
    before = live_version(tmp_path)
    with pytest.raises(RuntimeError), IndexWriter(tmp_path, hash_encoder.identity, ChunkingSettings()) as w:
        article, passages = _article("b", "two")
        w.upsert(article, passages, hash_encoder.encode_passages(["two"]))
        raise RuntimeError("simulated crash mid-run")
    assert live_version(tmp_path) == before
    assert not list((tmp_path / "versions").glob("tmp-*"))
    reader = IndexReader.open(tmp_path)
    assert reader.manifest.documents == 1
    reader.close()


def test_stale_temp_version_from_a_killed_writer_is_ignored_then_cleaned(
    tmp_path: Path, hash_encoder: HashEncoder
) -> None:
    _write(tmp_path, hash_encoder, _article("a", "one"))
    stale = tmp_path / "versions" / "tmp-deadbeef"
    stale.mkdir()
    (stale / "meta.sqlite").write_bytes(b"half written")
    assert IndexReader.open(tmp_path).manifest.documents == 1
    _write(tmp_path, hash_encoder, _article("b", "two"))
    assert not stale.exists()


def test_previous_version_is_kept_for_rollback(tmp_path: Path, hash_encoder: HashEncoder) -> None:
    for n in range(4):
        _write(tmp_path, hash_encoder, _article(f"d{n}", f"text {n}"))
    assert [m.documents for m in iter_versions(tmp_path)] == [3, 4]


def test_model_mismatch_is_a_clear_error(tmp_path: Path, hash_encoder: HashEncoder) -> None:
    _write(tmp_path, hash_encoder, _article("a", "one"))
    other = HashEncoder(dimension=32, name="other-model")
    reader = IndexReader.open(tmp_path)
    with pytest.raises(ModelMismatchError, match="other-model"):
        reader.check_model(other.identity)
    reader.close()
    with pytest.raises(ModelMismatchError):
        IndexWriter(tmp_path, other.identity, ChunkingSettings()).open()
    assert not list((tmp_path / "versions").glob("tmp-*"))


def test_missing_index_is_index_not_found(tmp_path: Path) -> None:
    with pytest.raises(IndexNotFoundError, match="no index"):
        IndexReader.open(tmp_path / "nowhere")


@pytest.mark.parametrize("damage", ["manifest", "sqlite", "faiss", "current", "counts"])
def test_corrupt_index_is_detected(tmp_path: Path, hash_encoder: HashEncoder, damage: str) -> None:
    _write(tmp_path, hash_encoder, _article("a", "one", "two"))
    folder = live_version(tmp_path)
    if damage == "manifest":
        (folder / "manifest.json").write_text("{not json", encoding="utf-8")
    elif damage == "sqlite":
        (folder / "meta.sqlite").write_bytes(b"garbage" * 100)
    elif damage == "faiss":
        (folder / "vectors.faiss").write_bytes(b"garbage")
    elif damage == "current":
        (tmp_path / "CURRENT").write_text("v999999\n", encoding="utf-8")
    else:
        with sqlite3.connect(folder / "meta.sqlite") as conn:
            conn.execute("DELETE FROM passages WHERE ordinal = 1")
    with pytest.raises(IndexCorruptError):
        IndexReader.open(tmp_path)


def test_second_writer_is_refused_while_one_is_open(tmp_path: Path, hash_encoder: HashEncoder) -> None:
    first = IndexWriter(tmp_path, hash_encoder.identity, ChunkingSettings())
    first.open()
    try:
        with pytest.raises(IndexStoreError, match="another process"):
            IndexWriter(tmp_path, hash_encoder.identity, ChunkingSettings()).open()
    finally:
        first.abort()
