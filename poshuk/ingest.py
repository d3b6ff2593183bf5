"""Articles -> ready-to-write upserts: the one path every writer shares.

``poshuk index`` (batch) and the HTTP write API (live) both go normalise -> detect
language -> chunk -> encode -> analyse terms -> MinHash -> ``Upsert`` through these
functions, so an article indexed either way is stored identically, and all of the
work happens before a write lock is taken (the index only files the story cluster).
Each step takes and returns plain values, which is what a distributed engine needs
to run them on many machines later.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import msgspec
import numpy as np
from numpy.typing import NDArray

from poshuk import dedupe
from poshuk.analysis import Analyzer
from poshuk.chunking import chunk_article
from poshuk.documents import Article, Passage, clean_text
from poshuk.encoder import Encoder
from poshuk.errors import InputError
from poshuk.index import Upsert
from poshuk.language import UNDETERMINED, LanguageDetector
from poshuk.settings import ChunkingSettings


def normalise_article(article: Article, detector: LanguageDetector) -> Article:
    """NFC text, stripped id and title, and a detected language when none was given
    (none at all for a text without letters: ``lang`` stays unset, as a reader leaves it)."""
    doc_id = clean_text(article.id).strip()
    text = clean_text(article.text).strip()
    if not doc_id:
        raise InputError("article id is empty")
    if not text:
        raise InputError(f"article {doc_id!r} has no text")
    title = clean_text(article.title).strip()
    detected = article.lang or detector.detect(f"{title}\n{text}")
    lang = None if detected == UNDETERMINED else detected
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


def to_upserts(
    chunked: Sequence[tuple[Article, list[Passage]]], vectors: NDArray[np.float32], analyzer: Analyzer | None = None
) -> list[Upsert]:
    """Pair each article with its slice of ``vectors`` (rows in passage order), its passages'
    lexical terms (with ``analyzer``: the index's settings) and its MinHash signature."""
    out: list[Upsert] = []
    offset = 0
    for article, passages in chunked:
        terms = None if analyzer is None else [" ".join(analyzer.terms(p.embed_text)) for p in passages]
        signature = dedupe.signature(f"{article.title}\n{article.text}")
        out.append(Upsert(article, passages, vectors[offset : offset + len(passages)], terms, signature))
        offset += len(passages)
    return out


def prepare(
    articles: Sequence[Article],
    encoder: Encoder,
    chunking: ChunkingSettings,
    detector: LanguageDetector,
    analyzer: Analyzer | None = None,
) -> list[Upsert]:
    """Normalise, chunk, encode (one encoder call) and analyse ``articles`` into upserts."""
    chunked = chunk_step([normalise_article(a, detector) for a in articles], chunking, encoder.count_tokens)
    vectors = encode_step(encoder, [p for _, passages in chunked for p in passages])
    return to_upserts(chunked, vectors, analyzer)
