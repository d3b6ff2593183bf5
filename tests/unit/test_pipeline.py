"""The indexing pipeline end to end with the fake encoder (real readers, chunker, FAISS, SQLite)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from indexer.pipeline import encode_step, index_paths
from poshuk.documents import Passage
from poshuk.encoder import HashEncoder
from poshuk.errors import BadRecordError
from poshuk.settings import Settings
from poshuk.store import Index
from tests.conftest import EXAMPLES


def test_examples_index_completely(tmp_path: Path, hash_encoder: HashEncoder, settings: Settings) -> None:
    report = index_paths([EXAMPLES], tmp_path, encoder=hash_encoder, settings=settings, progress=False)
    assert (report.documents, report.skipped) == (30, [])
    reader = Index.open(tmp_path)
    assert reader.counts().documents == 30
    assert reader.counts().passages == report.passages == len(reader.vectors)
    assert {reader.document(i).article.lang for i in ("uk-009", "uk-014")} == {"uk"}
    assert {reader.document(i).article.lang for i in ("en-004", "en-007")} == {"en"}
    assert reader.document("uk-020").article.title  # the HTML page's title was extracted
    reader.close()


def test_reindexing_the_same_sources_replaces_instead_of_duplicating(
    tmp_path: Path, hash_encoder: HashEncoder, settings: Settings
) -> None:
    first = index_paths([EXAMPLES], tmp_path, encoder=hash_encoder, settings=settings, progress=False)
    second = index_paths([EXAMPLES], tmp_path, encoder=hash_encoder, settings=settings, progress=False)
    assert second.counts is not None and first.counts is not None
    assert (second.counts.documents, second.counts.passages) == (30, first.counts.passages)


def test_bad_records_are_skipped_or_stop_the_run_when_strict(
    tmp_path: Path, hash_encoder: HashEncoder, settings: Settings
) -> None:
    source = tmp_path / "in.jsonl"
    lines = [
        json.dumps({"id": "a", "title": "A", "text": "Перший текст новини."}),
        "{broken",
        json.dumps({"id": "a", "title": "A2", "text": "Оновлений текст новини."}),
    ]
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    seen: list[BadRecordError] = []
    report = index_paths(
        [source],
        tmp_path / "idx",
        encoder=hash_encoder,
        settings=settings,
        progress=False,
        on_bad_record=seen.append,
    )
    assert [e.line for e in report.skipped] == [2] and seen == report.skipped
    reader = Index.open(tmp_path / "idx")
    assert reader.counts().documents == 1
    assert reader.document("a").article.title == "A2"  # the later record with the same id wins
    reader.close()
    with pytest.raises(BadRecordError, match=r"in\.jsonl:2"):
        index_paths(
            [source],
            tmp_path / "strict",
            encoder=hash_encoder,
            settings=settings,
            strict=True,
            progress=False,
        )
    assert not (tmp_path / "strict" / "CURRENT").exists()


def test_encode_step_keeps_input_order_while_batching_by_length(hash_encoder: HashEncoder) -> None:
    texts = ["короткий", "значно довший текст абзацу про бюджет міста", "середній текст"]
    passages = [Passage(id=f"d#{n}", doc_id="d", ordinal=n, text=t, embed_text=t) for n, t in enumerate(texts)]
    vectors = encode_step(hash_encoder, passages)
    assert (vectors == hash_encoder.encode_passages(texts)).all()
