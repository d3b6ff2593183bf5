"""The FAISS mirror of SQLite's vectors: loaded from a snapshot, kept current by replaying changes.

FAISS lives in memory and is derived: it loads from the newest ``vectors-SEQ.faiss``
snapshot and catches up by replaying the ``changes`` log after ``SEQ``, so every process
(the service, a CLI run) sees the same articles. Passage row ids are never reused, which
makes replay order-independent and idempotent.

Concurrency: searches share a readers-writer lock; only applying a replayed change (an
in-memory add/remove, microseconds to milliseconds) takes it exclusively. Reading the
change log and its vectors from SQLite happens before that, on the refresher's own
connection, so no search ever waits for SQLite or for another process's write.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from readerwriterlock.rwlock import RWLockWrite

from poshuk.atomic import publish_file
from poshuk.errors import IndexCorruptError
from poshuk.index.db import last_seq, select_in, vectors_of
from poshuk.settings import DEFAULT_APPROXIMATE_ABOVE
from poshuk.vectors import TRAIN_SAMPLE, VectorIndex, nlist_for

# An approximate (IVF-SQ8) index is asked for this many times the wanted hits, which are then
# ranked by exact inner product with the float32 vectors SQLite holds: the 8-bit codes blur
# near neighbours, the exact vectors do not (recall in benchmarks/results/scale.md).
RESCORE_FACTOR = 4


def rescore(
    conn: sqlite3.Connection, query: NDArray[np.float32], candidates: NDArray[np.int64], k: int
) -> list[tuple[int, float]]:
    """The ``k`` best of ``candidates`` (row ids; -1 is skipped) by exact inner product with ``query``.

    One query for the candidates' float32 vectors (``passages.vector``), one matrix product. A
    candidate no longer in SQLite (deleted by another process, not yet applied) drops out.
    """
    rows = [int(r) for r in candidates if r >= 0]
    found = select_in(conn, "SELECT row_id, vector FROM passages WHERE row_id IN ({})", rows)
    if not found:
        return []
    ids, matrix = vectors_of(found, len(query))
    scores = matrix @ np.asarray(query, dtype=np.float32).ravel()
    top = np.lexsort((ids, -scores))[:k]  # best first, equal scores by row id: the canonical order
    return [(int(ids[i]), float(scores[i])) for i in top]


class VectorMirror:
    """One version's FAISS index, its applied change number, and the lock discipline around them."""

    def __init__(self, folder: Path, dimension: int, *, approximate_above: int = DEFAULT_APPROXIMATE_ABOVE) -> None:
        self.folder = folder
        self.dimension = dimension
        self.approximate_above = approximate_above
        self._rw = RWLockWrite()
        self._refresh_lock = threading.Lock()  # one refresher at a time; searches never take it
        self._vectors = VectorIndex(dimension)
        self.applied_seq = 0
        self.on_change: Callable[[], None] | None = None  # told after each applied replay

    # -- loading -----------------------------------------------------------------------

    def snapshots(self) -> list[tuple[int, Path]]:
        found = []
        for path in self.folder.glob("vectors-*.faiss"):
            seq = path.stem.removeprefix("vectors-")
            if seq.isdigit():
                found.append((int(seq), path))
        return sorted(found, reverse=True)

    def load(self, conn: sqlite3.Connection, passages: Callable[[], int]) -> None:
        """The newest snapshot that, replayed, holds as many vectors as SQLite has passages;
        else a rebuild from SQLite alone (the truth)."""
        for seq, path in self.snapshots():
            try:
                vectors = VectorIndex.load(path, self.dimension)
            except IndexCorruptError:
                continue  # a damaged snapshot: fall back to an older one, or to SQLite
            self._vectors, self.applied_seq = vectors, seq
            self.refresh(conn)
            if len(self) == passages():
                return
        self._vectors, self.applied_seq = self._rebuild(conn)

    def _rebuild(self, conn: sqlite3.Connection) -> tuple[VectorIndex, int]:
        conn.execute("BEGIN")
        try:
            seq = last_seq(conn)
            vectors = self._empty(conn)
            cursor = conn.execute("SELECT row_id, vector FROM passages ORDER BY row_id")
            while batch := cursor.fetchmany(10_000):
                vectors.add(*vectors_of(batch, self.dimension))
        finally:
            conn.execute("COMMIT")
        return vectors, seq

    def _empty(self, conn: sqlite3.Connection) -> VectorIndex:
        """Flat up to ``approximate_above`` passages; above, IVF-SQ8 trained on a sample of them."""
        rows = np.asarray([r for (r,) in conn.execute("SELECT row_id FROM passages")], dtype=np.int64)
        if len(rows) <= self.approximate_above:
            return VectorIndex(self.dimension)
        sample = np.sort(np.random.default_rng(0).choice(rows, size=min(len(rows), TRAIN_SAMPLE), replace=False))
        blobs = [v for (v,) in select_in(conn, "SELECT vector FROM passages WHERE row_id IN ({})", sample)]
        training = np.frombuffer(b"".join(blobs), dtype=np.float32).reshape(len(blobs), self.dimension)
        return VectorIndex.approximate(self.dimension, training, nlist=nlist_for(len(rows)))

    # -- reads ---------------------------------------------------------------------------

    def __len__(self) -> int:
        with self._rw.gen_rlock():
            return len(self._vectors)

    def flat_ids(self) -> NDArray[np.int64]:
        """Every id an exact (flat) index holds, for consistency checks; [] for IVF-SQ8."""
        with self._rw.gen_rlock():
            if self._vectors.approximate_kind:
                return np.zeros(0, dtype=np.int64)
            return self._vectors.ids()

    @property
    def approximate_kind(self) -> bool:
        return self._vectors.approximate_kind

    def search(
        self, queries: NDArray[np.float32], k: int, *, allowed: NDArray[np.int64] | None = None
    ) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
        """FAISS's answer, taken under the shared lock (concurrent searches run side by side)."""
        with self._rw.gen_rlock():
            return self._vectors.search(queries, k, allowed=allowed)

    def nearest(
        self, conn: sqlite3.Connection, query: NDArray[np.float32], k: int, allowed: NDArray[np.int64] | None
    ) -> list[tuple[int, float]]:
        """(row id, cosine) of the ``k`` nearest passages among ``allowed`` (None: all); exact
        inner products re-rank an approximate index's candidates."""
        if not self.approximate_kind:
            return self._canonical(query, k, allowed)
        _, ids = self.search(query, k * RESCORE_FACTOR, allowed=allowed)
        return rescore(conn, query[0], ids[0], k)

    def _canonical(
        self, query: NDArray[np.float32], k: int, allowed: NDArray[np.int64] | None
    ) -> list[tuple[int, float]]:
        """The exact top ``k`` in the canonical order ``(-score, row)``. FAISS keeps an arbitrary
        member of a group of equal scores at the k-th place, so it is asked for a few more and
        again for more while the last one it gave still ties the k-th: then shards of an index,
        merged by the same key, answer as the whole index does (issue 12)."""
        total = len(self._vectors) if allowed is None else min(len(self._vectors), len(allowed))
        want = k + max(8, k // 4)
        while True:
            scores, ids = self.search(query, want, allowed=allowed)
            found = sorted(
                ((int(i), float(s)) for i, s in zip(ids[0], scores[0], strict=True) if i >= 0),
                key=lambda pair: (-pair[1], pair[0]),
            )
            if len(found) < want or want >= total or found[-1][1] < found[k - 1][1]:
                return found[:k]
            want *= 2

    # -- catching up ---------------------------------------------------------------------

    def refresh(self, conn: sqlite3.Connection) -> int:
        """Apply changes committed by any process since the last refresh; returns how many."""
        with self._refresh_lock:
            changes = conn.execute(
                "SELECT seq, removed, added FROM changes WHERE seq > ? ORDER BY seq", (self.applied_seq,)
            ).fetchall()
            if not changes:
                return 0
            removed = np.asarray([r for _, rem, _ in changes for r in json.loads(rem)], dtype=np.int64)
            added = [r for _, _, add in changes for r in json.loads(add)]
            rows = select_in(conn, "SELECT row_id, vector FROM passages WHERE row_id IN ({})", added)
            ids, matrix = vectors_of(rows, self.dimension) if rows else (None, None)
            with self._rw.gen_rlock():  # a float16 screen these vectors make due is built beside searches
                self._vectors.prepare_for(0 if ids is None else len(ids))
            with self._rw.gen_wlock():
                self._vectors.remove(removed)
                if ids is not None and matrix is not None:
                    self._vectors.remove(ids)  # idempotent replay
                    self._vectors.add(ids, matrix)
                self.applied_seq = int(changes[-1][0])
        if self.on_change is not None:
            self.on_change()
        return len(changes)

    def snapshot(self, conn: sqlite3.Connection) -> Path:
        """Write the in-memory FAISS index to disk, tagged with its sequence number."""
        self.refresh(conn)
        with self._refresh_lock:  # no replay between choosing the name and writing the file
            path = self.folder / f"vectors-{self.applied_seq:012d}.faiss"
            fitted = self._vectors.fitted(self.approximate_above)
            if fitted is not self._vectors:  # grown past the threshold: IVF from now on
                with self._rw.gen_wlock():
                    self._vectors = fitted
                path.unlink(missing_ok=True)
            if not path.exists():
                tmp = self.folder / f".{path.name}.{uuid.uuid4().hex}.tmp"
                with self._rw.gen_rlock():
                    self._vectors.save(tmp)
                try:
                    publish_file(tmp, path)
                except BaseException:
                    tmp.unlink(missing_ok=True)
                    raise
            for _, old in self.snapshots():
                if old != path:
                    old.unlink(missing_ok=True)
            return path
