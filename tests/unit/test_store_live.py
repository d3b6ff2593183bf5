"""Live writes against rebuilds: a retired version refuses writes; a rebuild keeps what was written meanwhile."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from poshuk.analysis import Analyzer
from poshuk.documents import Article
from poshuk.encoder import HashEncoder
from poshuk.errors import IndexCorruptError, IndexRetiredError, IndexStoreError
from poshuk.index import Index, IndexWriter, Upsert, live_version
from poshuk.ingest import chunk_step, encode_step, to_upserts
from poshuk.settings import ChunkingSettings
from tests.support import index_queries as q
from tests.support.consistency import check_index
from tests.support.store import make_article as _article
from tests.support.store import make_upsert as _upsert
from tests.support.store import write_articles as _write


def test_a_write_to_a_retired_version_is_refused_and_changes_nothing(tmp_path: Path, hash_encoder: HashEncoder) -> None:
    _write(tmp_path, hash_encoder, _article("a", "перший"))
    old = Index.open(tmp_path)
    _write(tmp_path, hash_encoder, _article("b", "другий"), rebuild=True)
    with pytest.raises(IndexRetiredError):
        old.write([_upsert(hash_encoder, _article("c", "третій"))])
    assert old.counts().documents == 1
    old.close()
    live = Index.open(tmp_path)
    assert live.counts().documents == 1 and live.document("b")
    live.close()


def test_rebuild_keeps_upserts_and_deletes_made_on_the_live_version_meanwhile(
    tmp_path: Path, hash_encoder: HashEncoder
) -> None:
    _write(tmp_path, hash_encoder, _article("keep", "живе"), _article("gone", "буде видалено"))
    live = Index.open(tmp_path)
    with IndexWriter(tmp_path, hash_encoder.identity, ChunkingSettings(), rebuild=True) as rebuild:
        rebuild.upsert(*_article("src", "з джерел"), hash_encoder.encode_passages(["Title\nз джерел"]))
        rebuild.upsert(*_article("gone", "і в джерелах"), hash_encoder.encode_passages(["Title\nі в джерелах"]))
        live.write([_upsert(hash_encoder, _article("http", "записано наживо", "два абзаци"))], deletes=["gone"])
        live.write([_upsert(hash_encoder, _article("src", "наживо новіше"))])
    with pytest.raises(IndexRetiredError):
        live.write(deletes=["keep"])
    live.close()
    index = Index.open(tmp_path)
    try:
        assert index.document("http").article.text == "записано наживо\n\nдва абзаци"
        assert [p.text for p in index.document("src").passages] == ["наживо новіше"]
        assert index.counts().documents == 2  # "keep" was not in the sources; "gone" was deleted live
        # the lexical postings came along, as the analyser makes them
        passages = index.document("http").passages
        terms = q.passage_terms(index, [p.row_id for p in passages])
        analyzer = Analyzer(index.manifest.lexical)
        assert [terms[p.row_id] for p in passages] == [analyzer.terms(f"Title\n{p.text}") for p in passages]
    finally:
        index.close()
    check_index(tmp_path)


def test_rebuild_with_another_model_reencodes_what_was_written_meanwhile(tmp_path: Path) -> None:
    old_encoder, new_encoder = HashEncoder(dimension=64), HashEncoder(dimension=32)
    _write(tmp_path, old_encoder, _article("a", "старе"))
    live = Index.open(tmp_path)
    seen: list[str] = []

    def prepare(articles: Sequence[Article]) -> list[Upsert]:
        seen.extend(a.id for a in articles)
        chunked = chunk_step(articles, ChunkingSettings(), new_encoder.count_tokens)
        return to_upserts(chunked, encode_step(new_encoder, [p for _, ps in chunked for p in ps]))

    with IndexWriter(tmp_path, new_encoder.identity, ChunkingSettings(), rebuild=True, prepare=prepare) as rebuild:
        rebuild.upsert(*_article("b", "нове"), new_encoder.encode_passages(["Title\nнове"]))
        live.write([_upsert(old_encoder, _article("c", "наживо"))])
    live.close()
    assert seen == ["c"]
    index = Index.open(tmp_path)
    assert index.manifest.model.dimension == 32 and index.counts().documents == 2
    index.close()
    check_index(tmp_path)


def test_rebuild_with_another_model_and_no_encoder_fails_and_leaves_the_live_index(
    tmp_path: Path,
) -> None:
    old_encoder, new_encoder = HashEncoder(dimension=64), HashEncoder(dimension=32)
    _write(tmp_path, old_encoder, _article("a", "старе"))
    before = live_version(tmp_path)
    live = Index.open(tmp_path)
    with (
        pytest.raises(IndexStoreError, match="during a rebuild"),
        IndexWriter(tmp_path, new_encoder.identity, ChunkingSettings(), rebuild=True) as rebuild,
    ):
        rebuild.upsert(*_article("b", "нове"), new_encoder.encode_passages(["Title\nнове"]))
        live.write([_upsert(old_encoder, _article("c", "наживо"))])
    live.close()
    assert live_version(tmp_path) == before
    assert not list((tmp_path / "versions").glob("tmp-*"))
    check_index(tmp_path)


@pytest.mark.parametrize("name", ["..", "../..", "v1/../..", "", "tmp-abc"])
def test_current_cannot_point_outside_the_versions(tmp_path: Path, hash_encoder: HashEncoder, name: str) -> None:
    _write(tmp_path, hash_encoder, _article("a", "x"))
    (tmp_path / "CURRENT").write_text(name + "\n", encoding="utf-8")
    with pytest.raises(IndexCorruptError):
        live_version(tmp_path)
