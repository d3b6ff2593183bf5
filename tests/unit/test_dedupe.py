"""Near-duplicate stories: clusters at ingest, ``dedupe`` at search (fake encoder, real FAISS)."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from poshuk import dedupe
from poshuk.documents import Article
from poshuk.encoder import HashEncoder
from poshuk.index import Index, IndexWriter, Upsert
from poshuk.ingest import prepare
from poshuk.language import LanguageDetector
from poshuk.search import Searcher
from poshuk.settings import ChunkingSettings

WORDS = (
    "уряд порт зерно експорт судно місто рада війна фронт ціна банк газ школа лікарня суд вибори "
    "депутат міністр область село річка міст дорога завод енергія світло вода податок бюджет закон"
).split()


def story(seed: int, sentences: int = 12) -> str:
    rng = random.Random(seed)
    body = [" ".join(rng.choices(WORDS, k=10)).capitalize() + "." for _ in range(sentences)]
    return " ".join(body[:6]) + "\n\n" + " ".join(body[6:])


def article(doc_id: str, text: str, lang: str = "uk") -> Article:
    return Article(id=doc_id, title="Новини", text=text, lang=lang, source="test")


def edited(text: str) -> str:
    sentences = text.replace("\n\n", " ").split(". ")
    del sentences[3]
    sentences[5] = "Зовсім інше речення про погоду та футбол"
    return ". ".join(sentences) + "\n\nАвтор: Олена Коваленко."


@pytest.fixture
def detector() -> LanguageDetector:
    return LanguageDetector()


def write(index_dir: Path, encoder: HashEncoder, detector: LanguageDetector, *articles: Article) -> None:
    upserts = prepare(list(articles), encoder, ChunkingSettings(), detector)
    if not (index_dir / "CURRENT").exists():
        with IndexWriter(index_dir, encoder.identity, ChunkingSettings()) as writer:
            writer.upsert_many(upserts)
        return
    index = Index.open(index_dir)
    try:
        index.write(upserts)
    finally:
        index.close()


def clusters(index_dir: Path) -> dict[str, str | None]:
    index = Index.open(index_dir)
    try:
        rows = index.read().execute("SELECT doc_id, cluster FROM documents").fetchall()
    finally:
        index.close()
    return {doc: cluster for doc, cluster in rows}


def test_signature_estimates_jaccard() -> None:
    text = story(1)
    assert dedupe.jaccard(dedupe.signature(text), dedupe.signature(text)) == 1.0
    assert dedupe.jaccard(dedupe.signature(text), dedupe.signature(edited(text))) >= dedupe.COPY_THRESHOLD
    assert dedupe.jaccard(dedupe.signature(text), dedupe.signature(story(2))) < dedupe.COPY_THRESHOLD
    assert len(dedupe.band_hashes(dedupe.signature(text))) == dedupe.BANDS


@pytest.mark.parametrize("one_transaction", [True, False])
def test_copies_share_the_first_articles_cluster(
    tmp_path: Path, hash_encoder: HashEncoder, detector: LanguageDetector, one_transaction: bool
) -> None:
    original, copy, rewrite, other = (
        article("a", story(1)),
        article("b", story(1)),
        article("c", edited(story(1))),
        article("d", story(2)),
    )
    if one_transaction:
        write(tmp_path, hash_encoder, detector, original, copy, rewrite, other)
    else:
        for item in (original, copy, rewrite, other):
            write(tmp_path, hash_encoder, detector, item)
    assert clusters(tmp_path) == {"a": "a", "b": "a", "c": "a", "d": "d"}


@pytest.mark.parametrize("one_transaction", [True, False])
def test_a_translation_joins_by_meaning_only_across_languages(
    tmp_path: Path, hash_encoder: HashEncoder, one_transaction: bool
) -> None:
    from poshuk.chunking import chunk_article

    vector = hash_encoder.encode_passages(["спільний зміст"])

    def upsert(doc: Article) -> Upsert:
        passages = chunk_article(doc, ChunkingSettings(), hash_encoder.count_tokens)
        return Upsert(doc, passages, np.repeat(vector, len(passages), axis=0))

    items = [
        upsert(article("en-1", "Grain ships left the port of Odesa on Monday.", lang="en")),
        upsert(article("en-2", "A different English story with the same fake vector.", lang="en")),
        upsert(article("uk-1", "Судна із зерном вийшли з порту Одеси в понеділок.", lang="uk")),
    ]
    if one_transaction:
        with IndexWriter(tmp_path, hash_encoder.identity, ChunkingSettings()) as writer:
            writer.upsert_many(items)
    else:
        with IndexWriter(tmp_path, hash_encoder.identity, ChunkingSettings()) as writer:
            writer.upsert_many(items[:1])
        index = Index.open(tmp_path)
        try:
            for item in items[1:]:
                index.write([item])
        finally:
            index.close()
    # Same meaning in the same language is not enough (that is a related story, not a copy).
    assert clusters(tmp_path) == {"en-1": "en-1", "en-2": "en-2", "uk-1": "en-1"}


@pytest.fixture
def news(tmp_path: Path, hash_encoder: HashEncoder, detector: LanguageDetector) -> Path:
    first = story(1)
    write(
        tmp_path,
        hash_encoder,
        detector,
        article("a", first),
        article("b", first),
        article("c", edited(first)),
        article("d", story(2)),
        article("e", story(3)),
    )
    return tmp_path


def test_dedupe_returns_one_hit_per_cluster(news: Path, hash_encoder: HashEncoder) -> None:
    searcher = Searcher(Index.open(news), hash_encoder)
    try:
        query = " ".join(story(1).split()[:12])
        plain = searcher.search(query, k=20, collapse=True)
        assert {h.doc_id for h in plain.hits} >= {"a", "b", "c"}
        result = searcher.search(query, k=20, dedupe=True)
        found = [h.cluster for h in result.hits]
        assert len(found) == len(set(found))
        assert set(found) == {"a", "d", "e"} & {h.cluster for h in plain.hits}
        assert [h.rank for h in result.hits] == list(range(1, len(result.hits) + 1))
        assert {h.cluster for h in plain.hits if h.doc_id in "abc"} == {"a"}
    finally:
        searcher.close()


def test_paging_with_dedupe_is_stable(news: Path, hash_encoder: HashEncoder) -> None:
    searcher = Searcher(Index.open(news), hash_encoder)
    try:
        query = " ".join(story(1).split()[:12])
        whole = [(h.passage_id, h.cluster) for h in searcher.search(query, k=20, dedupe=True).hits]
        paged = [
            (h.passage_id, h.cluster)
            for offset in range(len(whole) + 1)
            for h in searcher.search(query, k=1, offset=offset, dedupe=True).hits
        ]
        assert paged == whole
    finally:
        searcher.close()


def test_deleting_the_head_keeps_the_members_cluster(news: Path, hash_encoder: HashEncoder) -> None:
    index = Index.open(news)
    try:
        index.write(deletes=["a", "d"])
        rows = index.read().execute("SELECT count(*) FROM minhash_bands WHERE doc_id IN ('a', 'd')").fetchone()
        assert rows == (0,)
    finally:
        index.close()
    assert clusters(news) == {"b": "a", "c": "a", "e": "e"}
    searcher = Searcher(Index.open(news), hash_encoder)
    try:
        hits = searcher.search(" ".join(story(1).split()[:12]), k=20, dedupe=True).hits
        assert [h.cluster for h in hits].count("a") == 1
        assert {h.doc_id for h in hits}.isdisjoint({"a", "d"})
    finally:
        searcher.close()
