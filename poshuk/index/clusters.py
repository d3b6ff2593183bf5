"""Story clusters: which earlier article a new one copies or translates.

Each write files the article into a cluster (``documents.cluster``): the id of the first
indexed article it copies or translates, else its own id (``poshuk.dedupe``; MinHash LSH
bands live in ``minhash_bands``). Deleting a cluster's first article leaves the other
members' cluster id as it was: the id then names no stored article.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from poshuk import dedupe
from poshuk.documents import Article
from poshuk.index.mirror import VectorMirror


def centroid(vectors: NDArray[np.float32]) -> NDArray[np.float32] | None:
    """The unit-length mean of an article's passage vectors (None without passages)."""
    if not len(vectors):
        return None
    mean = np.asarray(vectors, dtype=np.float32).mean(axis=0)
    norm = float(np.linalg.norm(mean))
    out: NDArray[np.float32] = (mean / max(norm, 1e-12)).astype(np.float32)
    return out


class Staged:
    """Mean vectors of the articles written in the open transaction (FAISS sees them on commit)."""

    def __init__(self) -> None:
        self.ids: list[str] = []
        self._matrix: NDArray[np.float32] | None = None

    def add(self, doc_id: str, mean: NDArray[np.float32]) -> None:
        n = len(self.ids)
        if self._matrix is None or n == len(self._matrix):
            grown = np.zeros((max(64, 2 * n), len(mean)), dtype=np.float32)
            if self._matrix is not None:
                grown[:n] = self._matrix
            self._matrix = grown
        self._matrix[n] = mean
        self.ids.append(doc_id)

    def nearest(self, mean: NDArray[np.float32], k: int) -> list[str]:
        if self._matrix is None or not self.ids:
            return []
        scores = self._matrix[: len(self.ids)] @ mean
        top = np.argsort(-scores)[:k] if len(scores) <= k else np.argpartition(-scores, k)[:k]
        return [self.ids[int(i)] for i in top]


def find_cluster(
    db: sqlite3.Connection,
    mirror: VectorMirror,
    staged: Staged,
    article: Article,
    sig: NDArray[np.uint64],
    bands: Sequence[tuple[int, int]],
    mean: NDArray[np.float32] | None,
) -> str:
    """The cluster of the story ``article`` repeats, or its own id when it is new.

    A copy: an article sharing an LSH band whose MinHash Jaccard reaches
    ``dedupe.COPY_THRESHOLD``. A translation: an article in another language among the
    nearest passages (FAISS, plus this transaction's own upserts) whose mean vector's
    cosine reaches ``dedupe.TRANSLATION_THRESHOLD``. The best match's cluster wins.
    """
    best: tuple[float, str] | None = None
    seen: set[str] = set()
    for band, h in bands:
        for (doc,) in db.execute("SELECT doc_id FROM minhash_bands WHERE band = ? AND hash = ?", (band, h)):
            seen.add(str(doc))
    seen.discard(article.id)
    for doc in sorted(seen):
        row = db.execute("SELECT cluster, minhash FROM documents WHERE doc_id = ?", (doc,)).fetchone()
        if row is None or row[1] is None:
            continue
        score = dedupe.jaccard(sig, np.frombuffer(row[1], dtype=np.uint64))
        if score >= dedupe.COPY_THRESHOLD and (best is None or score > best[0]):
            best = (score, str(row[0] or doc))
    if best is None and mean is not None and article.lang:
        best = _find_translation(db, mirror, staged, article, mean)
    return article.id if best is None else best[1]


def _find_translation(
    db: sqlite3.Connection, mirror: VectorMirror, staged: Staged, article: Article, mean: NDArray[np.float32]
) -> tuple[float, str] | None:
    candidates = set(staged.nearest(mean, dedupe.CANDIDATE_PASSAGES))
    if len(mirror):
        # the canonical top (ties by row id), so that a sharded archive's writer finds the same (poshuk.shards)
        rows = [row for row, _ in mirror.nearest(db, mean[None, :], dedupe.CANDIDATE_PASSAGES, None)]
        if rows:
            marks = ",".join("?" * len(rows))
            for (doc,) in db.execute(f"SELECT DISTINCT doc_id FROM passages WHERE row_id IN ({marks})", rows):
                candidates.add(str(doc))
    candidates.discard(article.id)
    best: tuple[float, str] | None = None
    for doc in sorted(candidates):
        row = db.execute("SELECT cluster, centroid, lang FROM documents WHERE doc_id = ?", (doc,)).fetchone()
        if row is None or row[1] is None or row[2] is None or row[2] == article.lang:
            continue
        score = float(np.frombuffer(row[1], dtype=np.float32, count=mirror.dimension) @ mean)
        if score >= dedupe.TRANSLATION_THRESHOLD and (best is None or score > best[0]):
            best = (score, str(row[0] or doc))
    return best
