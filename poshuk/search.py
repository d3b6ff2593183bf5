"""``Searcher``: the API other newsroom tools use to query an index in-process.

It validates the query, encodes it with the index's own model, asks FAISS for the
nearest passages and joins their article metadata from SQLite.
"""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path
from typing import Literal, get_args

import msgspec

from poshuk.documents import clean_text
from poshuk.encoder import Encoder
from poshuk.errors import InvalidQueryError
from poshuk.settings import Settings
from poshuk.store import IndexReader, Manifest, StoredDocument

Mode = Literal["dense"]
MODES: tuple[str, ...] = get_args(Mode)


class Hit(msgspec.Struct, frozen=True, kw_only=True):
    """One ranked passage with its article's metadata."""

    rank: int
    score: float
    passage_id: str
    doc_id: str
    title: str
    text: str
    url: str | None = None
    source: str | None = None
    published_at: datetime | None = None
    lang: str | None = None


class SearchResult(msgspec.Struct, frozen=True, kw_only=True):
    """The answer to one query."""

    query: str
    took_ms: float
    model: str
    hits: list[Hit]


class IndexStats(msgspec.Struct, frozen=True, kw_only=True):
    """Counts and identity of the open index."""

    documents: int
    passages: int
    model: str
    version: str


class Searcher:
    """Ranked passage search over one index version with a compatible encoder."""

    def __init__(self, reader: IndexReader, encoder: Encoder, *, max_k: int = 100) -> None:
        reader.check_model(encoder.identity)
        self._reader = reader
        self._encoder = encoder
        self.max_k = max_k

    @classmethod
    def open(cls, index_dir: Path, settings: Settings, *, encoder: Encoder | None = None) -> Searcher:
        """Open the live version of ``index_dir``; loads the model named in settings if no encoder is given."""
        reader = IndexReader.open(index_dir)
        try:
            if encoder is None:
                from poshuk.models import load_encoder

                encoder = load_encoder(settings)
            return cls(reader, encoder, max_k=settings.service.max_k)
        except BaseException:
            reader.close()
            raise

    @property
    def index_dir(self) -> Path:
        """The index folder this searcher reads (the parent of its version folder)."""
        return self._reader.folder.parent.parent

    @property
    def manifest(self) -> Manifest:
        return self._reader.manifest

    def stats(self) -> IndexStats:
        m = self._reader.manifest
        return IndexStats(documents=m.documents, passages=m.passages, model=m.model.name, version=m.version)

    def search(self, query: str, *, k: int = 10, mode: Mode = "dense") -> SearchResult:
        """The ``k`` passages best matching ``query``, best first."""
        started = time.perf_counter()
        text = clean_text(query).strip()
        if not text:
            raise InvalidQueryError("query is empty")
        if not 1 <= k <= self.max_k:
            raise InvalidQueryError(f"k must be between 1 and {self.max_k}, got {k}")
        if mode not in MODES:
            raise InvalidQueryError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        vector = self._encoder.encode_queries([text])
        scores, ids = self._reader.vectors.search(vector, k)
        found = [(int(i), float(s)) for i, s in zip(ids[0], scores[0], strict=True) if i >= 0]
        stored = self._reader.passages_by_row([i for i, _ in found])
        hits: list[Hit] = []
        for row_id, score in found:
            p = stored.get(row_id)
            if p is None:  # a vector without metadata cannot happen in a consistent index
                continue
            hits.append(
                Hit(
                    rank=len(hits) + 1,
                    score=round(score, 6),
                    passage_id=p.passage_id,
                    doc_id=p.doc_id,
                    title=p.title,
                    text=p.text,
                    url=p.url,
                    source=p.source,
                    published_at=p.published_at,
                    lang=p.lang,
                )
            )
        took_ms = (time.perf_counter() - started) * 1000
        return SearchResult(query=text, took_ms=round(took_ms, 3), model=self._encoder.identity.name, hits=hits)

    def document(self, doc_id: str) -> StoredDocument:
        """The stored article and its passages; ``NotFoundError`` if absent."""
        return self._reader.document(doc_id)

    def close(self) -> None:
        self._reader.close()
