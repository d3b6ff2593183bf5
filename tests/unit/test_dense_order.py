"""Dense candidates come in the canonical order ``(-score, row)``, whatever FAISS does with ties.

Issue 12: shards merged by that key answer as one index only if one index uses it too; FAISS
alone keeps an arbitrary member of a group of equal scores at the k-th place.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from poshuk.documents import Article, Passage
from poshuk.encoder import HashEncoder
from poshuk.index import IndexWriter
from poshuk.search import Searcher
from poshuk.settings import ChunkingSettings, Settings

SAME = "Порт відновив роботу вранці, судна вийшли в море."


@pytest.fixture(scope="module")
def ties(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """30 articles with the same text (equal vectors: one group of exact ties) among 20 others."""
    folder = tmp_path_factory.mktemp("ties") / "index"
    encoder = HashEncoder()
    with IndexWriter(folder, encoder.identity, ChunkingSettings()) as writer:
        for n in range(50):
            text = SAME if n % 5 < 3 else f"Інша новина номер {n} про погоду в Карпатах."
            article = Article(id=f"a{n:02d}", title="", text=text, lang="uk")
            passage = Passage(id=f"a{n:02d}#0", doc_id=article.id, ordinal=0, text=text, embed_text=text)
            writer.upsert(article, [passage], encoder.encode_passages([passage.embed_text]))
    return folder


def test_equal_scores_come_in_row_order_and_every_k_is_a_prefix_of_a_larger_one(ties: Path, settings: Settings) -> None:
    searcher = Searcher.open(ties, settings, encoder=HashEncoder())
    try:
        tied = [f"a{n:02d}" for n in range(50) if n % 5 < 3]  # inserted in this order: ascending rows
        pages = {k: searcher.search(SAME, k=k, mode="dense", highlight=False).hits for k in (1, 7, 10, 29, 30, 40)}
        for k, hits in pages.items():
            assert [h.doc_id for h in hits[: min(k, 30)]] == tied[: min(k, 30)], k
            assert len({h.score for h in hits[: min(k, 30)]}) == 1  # really one group of ties
        longest = [h.doc_id for h in pages[40]]
        for hits in pages.values():
            assert [h.doc_id for h in hits] == longest[: len(hits)]
    finally:
        searcher.close()
