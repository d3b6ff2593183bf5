"""The shared write path: normalise, chunk, encode, write — live, through Index.write."""

from __future__ import annotations

from pathlib import Path

import pytest

from poshuk.documents import Article
from poshuk.encoder import HashEncoder
from poshuk.errors import InputError
from poshuk.index import Index, IndexWriter
from poshuk.ingest import normalise_article, prepare
from poshuk.language import LanguageDetector
from poshuk.settings import ChunkingSettings


@pytest.fixture(scope="module")
def detector() -> LanguageDetector:
    return LanguageDetector()


def test_normalise_detects_language_and_cleans(detector: LanguageDetector) -> None:
    article = normalise_article(
        Article(id=" a1 ", title=" Заголовок ", text="Це новина про Київ і його мешканців."), detector
    )
    assert (article.id, article.title, article.lang) == ("a1", "Заголовок", "uk")


@pytest.mark.parametrize("article", [Article(id=" ", title="t", text="x"), Article(id="a", title="t", text=" \n ")])
def test_unusable_articles_are_input_errors(article: Article, detector: LanguageDetector) -> None:
    with pytest.raises(InputError):
        normalise_article(article, detector)


def test_prepare_then_live_write(tmp_path: Path, hash_encoder: HashEncoder, detector: LanguageDetector) -> None:
    with IndexWriter(tmp_path, hash_encoder.identity, ChunkingSettings()):
        pass  # an empty index
    index = Index.open(tmp_path)
    articles = [
        Article(id="n1", title="Перша", text="Перший абзац новини про їхнє місто.\n\nДругий абзац новини про Одесу."),
        Article(id="n2", title="Second", text="An English story about the port of Odesa."),
    ]
    upserts = prepare(articles, hash_encoder, ChunkingSettings(min_chars=0), detector)
    assert [len(u.passages) for u in upserts] == [2, 1]
    written = index.write(upserts=upserts)
    assert written.replaced == ()  # both were new
    counts = index.counts()
    assert (counts.documents, counts.passages) == (2, 3)
    assert [lang for lang in (index.document("n1").article.lang, index.document("n2").article.lang)] == ["uk", "en"]
    index.close()


def test_a_letterless_article_gets_no_language_on_either_write_path(detector: LanguageDetector) -> None:
    """`poshuk index` (the reader) and HTTP writes (the same reader, then prepare) agree: no letters, no lang."""
    from poshuk.readers import article_from_record

    record = {"id": "nums", "title": "2023", "text": "1 000 000 — 42 %"}
    read = article_from_record(record, detector)
    assert read.lang is None
    assert normalise_article(read, detector).lang is None
    assert normalise_article(Article(id="nums", title="2023", text="1 000 000"), detector).lang is None
