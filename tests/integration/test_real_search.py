"""The real model over the example articles: cross-lingual and inflected-name queries."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from indexer.pipeline import index_paths
from poshuk.encoder import Encoder
from poshuk.search import Searcher
from poshuk.settings import Settings
from tests.support.repo import EXAMPLES

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def searcher(
    tmp_path_factory: pytest.TempPathFactory, real_encoder: Encoder, real_settings: Settings
) -> Iterator[Searcher]:
    index_dir = tmp_path_factory.mktemp("real-index")
    report = index_paths([EXAMPLES], index_dir, encoder=real_encoder, settings=real_settings, progress=False)
    assert report.skipped == []
    assert report.documents == 30
    opened = Searcher.open(index_dir, real_settings, encoder=real_encoder)
    yield opened
    opened.close()


def _top_docs(searcher: Searcher, query: str, k: int = 3) -> list[str]:
    return [hit.doc_id for hit in searcher.search(query, k=k).hits]


def test_english_query_finds_the_ukrainian_article(searcher: Searcher) -> None:
    result = searcher.search("Russia and North Korea are negotiating ammunition deliveries", k=5)
    assert result.hits[0].doc_id == "uk-001"
    assert result.hits[0].lang == "uk"


def test_ukrainian_query_with_inflected_names_finds_its_passage(searcher: Searcher) -> None:
    hit = searcher.search("візит Шойгу до Північної Кореї", k=5).hits[0]
    assert hit.doc_id == "uk-001"
    assert "Шойгу" in hit.text


@pytest.mark.parametrize(
    ("query", "doc_id"),
    [
        ("експорт зерна морським коридором з портів Одеси", "uk-002"),
        ("виставка картин Марії Приймаченко", "uk-006"),
        ("central bank keeps the deposit rate unchanged", "en-001"),
        ("ancient lake rocks found by the rover on Mars", "en-002"),
        ("лісова пожежа та евакуація в Каліфорнії", "en-003"),
    ],
)
def test_queries_find_their_article_in_either_language(searcher: Searcher, query: str, doc_id: str) -> None:
    assert doc_id in _top_docs(searcher, query)


def test_credit_lines_are_not_passages(searcher: Searcher) -> None:
    document = searcher.document("uk-001")
    assert document.passages
    assert not any(p.text.startswith("Фото:") for p in document.passages)


def test_every_passage_fits_the_model(searcher: Searcher, real_encoder: Encoder, real_settings: Settings) -> None:
    for doc_id in ("uk-006", "uk-008", "en-002"):  # the articles with very long paragraphs
        document = searcher.document(doc_id)
        assert len(document.passages) > 1
        for passage in document.passages:
            tokens = real_encoder.count_tokens(f"{document.article.title}\n{passage.text}")
            assert tokens <= real_settings.chunking.max_tokens + 3


def test_opening_with_another_model_is_refused(searcher: Searcher) -> None:
    from poshuk.encoder import HashEncoder
    from poshuk.errors import ModelMismatchError

    index_dir = searcher.index_dir
    with pytest.raises(ModelMismatchError, match="multilingual-e5-small"):
        Searcher.open(index_dir, Settings(), encoder=HashEncoder(dimension=384))
