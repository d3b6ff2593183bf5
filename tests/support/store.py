"""Articles with their passages, and writing them to an index folder with the HashEncoder."""

from __future__ import annotations

from pathlib import Path

from poshuk.documents import Article, Passage, passage_id
from poshuk.encoder import HashEncoder
from poshuk.index import IndexWriter, Upsert
from poshuk.settings import ChunkingSettings


def make_article(doc_id: str, *paragraphs: str, title: str = "Title") -> tuple[Article, list[Passage]]:
    article = Article(id=doc_id, title=title, text="\n\n".join(paragraphs), lang="uk")
    passages = [
        Passage(id=passage_id(doc_id, n), doc_id=doc_id, ordinal=n, text=p, embed_text=f"{title}\n{p}")
        for n, p in enumerate(paragraphs)
    ]
    return article, passages


def make_upsert(encoder: HashEncoder, doc: tuple[Article, list[Passage]]) -> Upsert:
    article, passages = doc
    return Upsert(article, passages, encoder.encode_passages([p.embed_text for p in passages]))


def write_articles(
    index_dir: Path, encoder: HashEncoder, *docs: tuple[Article, list[Passage]], rebuild: bool = False
) -> None:
    with IndexWriter(index_dir, encoder.identity, ChunkingSettings(), rebuild=rebuild) as writer:
        for article, passages in docs:
            writer.upsert(article, passages, encoder.encode_passages([p.embed_text for p in passages]))
