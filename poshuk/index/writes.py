"""Changes staged inside an open write transaction: the one place rows are written.

Both writers (``Index.write`` for live writes, ``IndexWriter`` for ``poshuk index``) stage
through ``Stager``: an upsert replaces every row of the article, a delete removes them, and
each appends one entry to the ``changes`` log that FAISS mirrors replay. Upserts arrive
ready (``poshuk.ingest.prepare``: vectors, lexical terms and MinHash computed before any
lock); only the story cluster is decided here, because it must see the committed state.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime

import msgspec
import numpy as np
from numpy.typing import NDArray

from poshuk import dedupe
from poshuk.analysis import Analyzer
from poshuk.documents import Article, Passage
from poshuk.filters import timestamp
from poshuk.index.clusters import Staged, centroid, find_cluster
from poshuk.index.mirror import VectorMirror

_INSERT_PASSAGE = "INSERT INTO passages (row_id, passage_id, doc_id, ordinal, text, vector) VALUES (?, ?, ?, ?, ?, ?)"
_INSERT_PASSAGE_WITH_PAGE = (
    "INSERT INTO passages (row_id, passage_id, doc_id, ordinal, text, vector, page) VALUES (?, ?, ?, ?, ?, ?, ?)"
)


class Upsert(msgspec.Struct, frozen=True):
    """One article with its passages and their vectors, ready to write.

    ``terms`` (one string per passage) are lexical terms already analysed with the
    index's settings, and ``signature`` the article's MinHash; when absent (a caller that
    built the upsert by hand) they are computed while writing.
    """

    article: Article
    passages: Sequence[Passage]
    vectors: NDArray[np.float32]
    terms: Sequence[str] | None = None
    signature: NDArray[np.uint64] | None = None
    # Decided elsewhere, for a shard of a larger index (``poshuk.shards``): the passages' row ids
    # (one node's, so every tie broken by row breaks alike) and the article's story cluster.
    rows: Sequence[int] | None = None
    cluster: str | None = None


class Applied(msgspec.Struct, frozen=True, kw_only=True):
    """What one staged batch did."""

    replaced: tuple[str, ...] = ()  # upserted ids that existed before
    deleted: tuple[str, ...] = ()  # deleted ids that existed


def _now() -> str:
    return datetime.now(UTC).isoformat()


class Stager:
    """Writes rows on the writer's connection; the caller owns the transaction."""

    def __init__(
        self, db: sqlite3.Connection, mirror: VectorMirror, analyzer: Analyzer, *, articles: bool, pages: bool = True
    ) -> None:
        self.db = db
        self.mirror = mirror
        self.analyzer = analyzer
        self.articles = articles  # whether the article-level BM25 table exists
        self.pages = pages  # whether passages have their page column
        self.staged = Staged()  # this transaction's mean vectors, not yet in FAISS

    def stage(self, upserts: Sequence[Upsert] = (), deletes: Sequence[str] = ()) -> Applied:
        deleted = tuple(doc_id for doc_id in deletes if self._delete(doc_id))
        replaced = tuple(item.article.id for item in upserts if self._upsert(item))
        return Applied(replaced=replaced, deleted=deleted)

    def _clear(self, doc_id: str) -> tuple[list[int], bool]:
        """Remove an article's rows; (its passage row ids, whether it existed)."""
        db = self.db
        rows = [r for (r,) in db.execute("SELECT row_id FROM passages WHERE doc_id = ?", (doc_id,))]
        db.executemany("DELETE FROM lexical WHERE rowid = ?", [(r,) for r in rows])
        if self.articles:
            db.executemany("DELETE FROM article_lexical WHERE rowid = ?", [(r,) for r in rows])
        existed = db.execute("DELETE FROM documents WHERE doc_id = ?", (doc_id,)).rowcount > 0
        return rows, existed

    def _log(self, doc_id: str, op: str, removed: Sequence[int], added: Sequence[int]) -> None:
        self.db.execute(
            "INSERT INTO changes (doc_id, op, removed, added, at) VALUES (?, ?, ?, ?, ?)",
            (doc_id, op, json.dumps(list(removed)), json.dumps(list(added)), _now()),
        )

    def _delete(self, doc_id: str) -> bool:
        rows, existed = self._clear(doc_id)
        if existed:
            self._log(doc_id, "delete", rows, ())
        return existed

    def _upsert(self, item: Upsert) -> bool:
        article, passages, vectors = item.article, item.passages, item.vectors
        if len(passages) != len(vectors):
            raise ValueError("one vector per passage is required")
        dim = self.mirror.dimension
        if len(passages) and vectors.shape[1] != dim:
            raise ValueError(f"vectors have dimension {vectors.shape[1]}, the index {dim}")
        if item.terms is not None and len(item.terms) != len(passages):
            raise ValueError("one string of terms per passage is required")
        if item.rows is not None and len(item.rows) != len(passages):
            raise ValueError("one row id per passage is required")
        db = self.db
        old_rows, existed = self._clear(article.id)
        sig = item.signature if item.signature is not None else dedupe.signature(f"{article.title}\n{article.text}")
        bands = dedupe.band_hashes(sig)
        mean = centroid(vectors)
        cluster = item.cluster or find_cluster(db, self.mirror, self.staged, article, sig, bands, mean)
        db.execute(
            "INSERT INTO documents (doc_id, title, text, url, source, published_at, lang, section, tags, "
            "published_ts, indexed_at, cluster, minhash, centroid) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                article.id,
                article.title,
                article.text,
                article.url,
                article.source,
                None if article.published_at is None else article.published_at.isoformat(),
                article.lang,
                article.section,
                json.dumps(list(article.tags), ensure_ascii=False),
                None if article.published_at is None else timestamp(article.published_at),
                _now(),
                cluster,
                sig.tobytes(),
                None if mean is None else mean.tobytes(),
            ),
        )
        db.executemany(
            "INSERT INTO minhash_bands (band, hash, doc_id) VALUES (?, ?, ?)",
            [(band, h, article.id) for band, h in bands],
        )
        if mean is not None:
            self.staged.add(article.id, mean)
        added: list[int] = []
        units: dict[int | None, list[tuple[int, str]]] = {}  # article unit (its page) -> its rows and terms
        for n, (passage, vector) in enumerate(zip(passages, vectors, strict=True)):
            values = (
                None if item.rows is None else int(item.rows[n]),  # None: the next row id
                passage.id,
                article.id,
                passage.ordinal,
                passage.text,
                np.asarray(vector, np.float32).tobytes(),
            )
            if self.pages:
                cursor = db.execute(_INSERT_PASSAGE_WITH_PAGE, (*values, passage.page))
            else:
                cursor = db.execute(_INSERT_PASSAGE, values)
            row = int(cursor.lastrowid or 0)
            added.append(row)
            terms = item.terms[n] if item.terms is not None else " ".join(self.analyzer.terms(passage.embed_text))
            units.setdefault(passage.page if self.pages else None, []).append((row, terms))
            db.execute("INSERT INTO lexical (rowid, terms) VALUES (?, ?)", (row, terms))
        if self.articles:
            db.executemany(
                "INSERT INTO article_lexical (rowid, terms) VALUES (?, ?)",
                [(min(r for r, _ in unit), " ".join(t for _, t in unit)) for unit in units.values()],
            )
        self._log(article.id, "upsert", old_rows, added)
        return existed
