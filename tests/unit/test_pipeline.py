"""The indexing pipeline end to end with the fake encoder (real readers, chunker, FAISS, SQLite)."""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from indexer import pipeline
from indexer.pipeline import encode_step, index_paths, read_step
from poshuk.documents import Article, Passage
from poshuk.encoder import HashEncoder, ModelIdentity, Vectors
from poshuk.errors import BadRecordError
from poshuk.index import Index, IndexWriter, Upsert
from poshuk.ingest import chunk_step
from poshuk.language import LanguageDetector
from poshuk.settings import Settings, load_settings
from tests.conftest import EXAMPLES
from tests.consistency import check_index


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


GROUP = 4  # articles per encoder call with batch_size 1 (the pipeline encodes batch_size * 4 articles at a time)
WAIT_S = 5.0  # how long a check waits for the other thread before it calls the code sequential


class _CountingEncoder:
    """The hash encoder, telling the test when its n-th call (the n-th group) starts; optionally fails."""

    def __init__(self, groups: int, fail_on: int | None = None, error: BaseException | None = None) -> None:
        self._inner = HashEncoder(dimension=64)
        self.started = [threading.Event() for _ in range(groups)]
        self.calls = 0
        self.threads: set[int] = set()
        self._fail_on, self._error = fail_on, error

    @property
    def identity(self) -> ModelIdentity:
        return self._inner.identity

    def encode_queries(self, texts: Sequence[str]) -> Vectors:
        return self._inner.encode_queries(texts)

    def encode_passages(self, texts: Sequence[str]) -> Vectors:
        call, self.calls = self.calls, self.calls + 1
        self.threads.add(threading.get_ident())
        self.started[call].set()
        if call == self._fail_on and self._error is not None:
            raise self._error
        return self._inner.encode_passages(texts)

    def count_tokens(self, text: str) -> int:
        return self._inner.count_tokens(text)


def _news(path: Path, groups: int) -> Path:
    """``groups * GROUP`` one-passage articles, ``n00``, ``n01``, ..."""
    lines = [
        json.dumps({"id": f"n{n:02}", "title": f"Новина {n}", "text": f"Міська рада, засідання {n}.", "lang": "uk"})
        for n in range(groups * GROUP)
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _small_batches(tmp_path: Path) -> Settings:
    return load_settings(env={"POSHUK_HOME": str(tmp_path / "home"), "POSHUK_BATCH_SIZE": "1"})


def _writer_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("poshuk-write")]


def test_writing_a_group_overlaps_encoding_the_next(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    groups = 3
    encoder = _CountingEncoder(groups)
    overlapped: list[bool] = []
    writer_threads: set[int] = set()
    real_write, real_open = pipeline.write_step, IndexWriter.open

    def write_step(writer: IndexWriter, item: Upsert) -> None:
        writer_threads.add(threading.get_ident())
        group = int(item.article.id[1:]) // GROUP
        if group + 1 < groups:  # a sequential pipeline encodes the next group only after this write: it waits in vain
            overlapped.append(encoder.started[group + 1].wait(WAIT_S))
        real_write(writer, item)

    def open_writer(writer: IndexWriter) -> None:
        writer_threads.add(threading.get_ident())
        real_open(writer)

    monkeypatch.setattr(pipeline, "write_step", write_step)
    monkeypatch.setattr(IndexWriter, "open", open_writer)
    source = _news(tmp_path / "news.jsonl", groups)
    settings = _small_batches(tmp_path)
    report = index_paths([source], tmp_path / "idx", encoder=encoder, settings=settings, progress=False)
    assert encoder.calls == groups
    assert overlapped == [True] * (groups - 1) * GROUP, "no group was written while the next one was encoded"
    assert len(writer_threads) == 1 and writer_threads.isdisjoint(encoder.threads)  # SQLite: one thread, not this one
    assert (report.documents, report.passages) == (groups * GROUP, groups * GROUP)
    reader = Index.open(tmp_path / "idx")
    assert reader.counts().documents == groups * GROUP
    fake = HashEncoder(dimension=64)
    articles = [a for a in read_step([(source, None)], LanguageDetector()) if isinstance(a, Article)]
    for article, passages in chunk_step(articles, settings.chunking, fake.count_tokens):
        expected = fake.encode_passages([p.embed_text for p in passages])
        assert np.array_equal(reader.document_vectors(article.id), expected)  # each article got its own vectors
    reader.close()


@pytest.mark.parametrize("error", [RuntimeError("encoder broke"), KeyboardInterrupt()])
def test_an_encoder_error_mid_run_keeps_the_committed_groups_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, settings: Settings, error: BaseException
) -> None:
    """An incremental run commits group by group (so live writers wait for one group at most):
    a failure keeps the groups already written, each article whole, and nothing of the rest."""
    index_dir = tmp_path / "idx"
    index_paths([EXAMPLES], index_dir, encoder=HashEncoder(dimension=64), settings=settings, progress=False)
    live_before = (index_dir / "CURRENT").read_text(encoding="utf-8")
    written: list[str] = []
    real_write = pipeline.write_step

    def write_step(writer: IndexWriter, item: Upsert) -> None:
        real_write(writer, item)
        written.append(item.article.id)

    monkeypatch.setattr(pipeline, "write_step", write_step)
    encoder = _CountingEncoder(groups=4, fail_on=2, error=error)
    source = _news(tmp_path / "news.jsonl", groups=4)
    expected: type[BaseException] = (
        pipeline.IndexingInterrupted if isinstance(error, KeyboardInterrupt) else type(error)
    )
    with pytest.raises(expected) as raised:
        index_paths([source], index_dir, encoder=encoder, settings=_small_batches(tmp_path), progress=False)
    if isinstance(error, KeyboardInterrupt):
        assert f"{2 * GROUP} of {4 * GROUP} articles were written" in str(raised.value)
    else:
        assert raised.value is error  # the encoder's own exception, not a wrapper
    assert written == [f"n{n:02}" for n in range(2 * GROUP)]  # two groups were written and committed
    assert not _writer_threads()
    assert (index_dir / "CURRENT").read_text(encoding="utf-8") == live_before  # the same version, grown
    reader = Index.open(index_dir)
    assert reader.counts().documents == 30 + 2 * GROUP
    assert len(reader.vectors) == reader.counts().passages
    reader.close()
    check_index(index_dir)  # every committed article whole: passages, terms and vectors agree
    report = index_paths([source], index_dir, encoder=HashEncoder(dimension=64), settings=settings, progress=False)
    assert report.counts is not None and report.counts.documents == 30 + 4 * GROUP  # the rerun finishes the job


def test_an_error_during_a_rebuild_leaves_the_live_version_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, settings: Settings
) -> None:
    index_dir = tmp_path / "idx"
    index_paths([EXAMPLES], index_dir, encoder=HashEncoder(dimension=64), settings=settings, progress=False)
    live_before = (index_dir / "CURRENT").read_text(encoding="utf-8")
    encoder = _CountingEncoder(groups=4, fail_on=2, error=KeyboardInterrupt())
    source = _news(tmp_path / "news.jsonl", groups=4)
    with pytest.raises(KeyboardInterrupt) as raised:
        index_paths(
            [source], index_dir, encoder=encoder, settings=_small_batches(tmp_path), rebuild=True, progress=False
        )
    assert not isinstance(raised.value, pipeline.IndexingInterrupted)  # nothing to report: nothing changed
    assert (index_dir / "CURRENT").read_text(encoding="utf-8") == live_before
    assert not list((index_dir / "versions").glob("tmp-*"))
    reader = Index.open(index_dir)
    assert reader.counts().documents == 30
    reader.close()


def test_a_writer_error_stops_encoding_and_leaves_no_index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_write = pipeline.write_step

    def write_step(writer: IndexWriter, item: Upsert) -> None:
        if item.article.id == f"n{GROUP + 1:02}":
            raise OSError("disk full")
        real_write(writer, item)

    monkeypatch.setattr(pipeline, "write_step", write_step)
    encoder = _CountingEncoder(groups=6)
    source = _news(tmp_path / "news.jsonl", groups=6)
    with pytest.raises(OSError, match="disk full"):
        index_paths([source], tmp_path / "idx", encoder=encoder, settings=_small_batches(tmp_path), progress=False)
    assert encoder.calls <= 3  # group 1's write failed; at most group 2 was encoded meanwhile
    assert not _writer_threads()
    assert not (tmp_path / "idx" / "CURRENT").exists()
    assert not any((tmp_path / "idx" / "versions").iterdir())
