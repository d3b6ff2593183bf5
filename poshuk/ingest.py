"""Articles -> ready-to-write upserts: the core path every writer shares.

``poshuk index`` (batch) and the HTTP write API (live) both go article -> language
-> passages -> vectors -> ``Upsert`` through these functions, so an article indexed
either way is stored identically. Each step takes and returns plain values, which
is what a distributed engine needs to run them on many machines later.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import msgspec
import numpy as np
from numpy.typing import NDArray

from poshuk.chunking import chunk_article
from poshuk.documents import Article, Passage, clean_text
from poshuk.encoder import Encoder
from poshuk.errors import InputError
from poshuk.language import LanguageDetector
from poshuk.settings import ChunkingSettings
from poshuk.store import Upsert


def normalise_article(article: Article, detector: LanguageDetector) -> Article:
    """NFC text, stripped id and title, and a detected language when none was given."""
    doc_id = clean_text(article.id).strip()
    text = clean_text(article.text).strip()
    if not doc_id:
        raise InputError("article id is empty")
    if not text:
        raise InputError(f"article {doc_id!r} has no text")
    title = clean_text(article.title).strip()
    lang = article.lang or detector.detect(f"{title}\n{text}")
    return msgspec.structs.replace(article, id=doc_id, title=title, text=text, lang=lang)


def chunk_step(
    articles: Iterable[Article], settings: ChunkingSettings, count_tokens: Callable[[str], int]
) -> list[tuple[Article, list[Passage]]]:
    """Each article with its passages."""
    return [(article, chunk_article(article, settings, count_tokens)) for article in articles]


def encode_step(encoder: Encoder, passages: Sequence[Passage]) -> NDArray[np.float32]:
    """Passage vectors, one row per passage, in order.

    Passages are encoded longest-first so each batch pads to similar lengths.
    """
    if not passages:
        return np.zeros((0, encoder.identity.dimension), dtype=np.float32)
    order = sorted(range(len(passages)), key=lambda i: len(passages[i].embed_text), reverse=True)
    vectors = encoder.encode_passages([passages[i].embed_text for i in order])
    out = np.empty_like(vectors)
    out[np.asarray(order)] = vectors
    return out


def to_upserts(chunked: Sequence[tuple[Article, list[Passage]]], vectors: NDArray[np.float32]) -> list[Upsert]:
    """Pair each article with its slice of ``vectors`` (rows in passage order)."""
    out: list[Upsert] = []
    offset = 0
    for article, passages in chunked:
        out.append(Upsert(article, passages, vectors[offset : offset + len(passages)]))
        offset += len(passages)
    return out


def prepare(
    articles: Sequence[Article],
    encoder: Encoder,
    chunking: ChunkingSettings,
    detector: LanguageDetector,
) -> list[Upsert]:
    """Normalise, chunk and encode ``articles`` into upserts (one encoder call)."""
    chunked = chunk_step([normalise_article(a, detector) for a in articles], chunking, encoder.count_tokens)
    vectors = encode_step(encoder, [p for _, passages in chunked for p in passages])
    return to_upserts(chunked, vectors)
