"""The on-disk index: versions, a manifest, SQLite (the truth) and a FAISS snapshot.

Layout::

    DIR/CURRENT                     name of the live version (replaced atomically)
    DIR/versions/vNNNNNN/           manifest.json, meta.sqlite (+ WAL), vectors-SEQ.faiss
    DIR/versions/tmp-*/             a version being built (removed if its builder died)

SQLite, in WAL mode with ``synchronous=FULL``, holds documents, passages with their
vectors, the FTS5 lexical index and a ``changes`` log. A write is one transaction:
once it commits, it survives ``kill -9``. FAISS lives in memory and is derived: it
loads from the newest snapshot and catches up by replaying ``changes`` after the
snapshot's sequence number, so every process (the service, a CLI run) sees the same
articles. Passage row ids are never reused, which makes replay order-independent.

A rebuild (or a new model) writes a whole new version beside the live one and
swaps ``CURRENT``; the previous version is kept for rollback.

Each write also files the article into a story cluster (``documents.cluster``): the id
of the first indexed article it copies or translates, else its own id (``poshuk.dedupe``;
MinHash LSH bands live in ``minhash_bands``). Deleting a cluster's first article leaves
the other members' cluster id as it was: the id then names no stored article.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sqlite3
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

import msgspec
import numpy as np
from numpy.typing import NDArray

from poshuk import dedupe
from poshuk.analysis import Analyzer, LexicalSettings
from poshuk.documents import Article, Passage
from poshuk.encoder import ModelIdentity, check_backend
from poshuk.errors import (
    IndexBusyError,
    IndexCorruptError,
    IndexNotFoundError,
    IndexRetiredError,
    IndexStoreError,
    ModelMismatchError,
    NotFoundError,
)
from poshuk.filters import Filters, timestamp, where_clause
from poshuk.settings import DEFAULT_APPROXIMATE_ABOVE, ChunkingSettings
from poshuk.vectors import TRAIN_SAMPLE, VectorIndex, nlist_for

ALLOWED_CACHE = 16  # filters whose allowed row ids an open index keeps (see Index.allowed_rows)

FORMAT_VERSION = 3
KEEP_VERSIONS = 2
# An approximate (IVF-SQ8) index is asked for this many times the wanted hits, which are then
# ranked by exact inner product with the float32 vectors SQLite holds: the 8-bit codes blur
# near neighbours, the exact vectors do not (recall in benchmarks/results/scale.md).
RESCORE_FACTOR = 4
BUSY_TIMEOUT_MS = 10_000
SWAP_LOCK_TIMEOUT_S = 600.0  # how long a finished rebuild waits for the live version's writers
_MANIFEST = "manifest.json"
_SQLITE = "meta.sqlite"
_IN_CHUNK = 900  # ids per `IN (...)` list: under SQLite's variable limit (999 before 3.32)

# Article-level BM25: one row per article holding the terms of all its passages, keyed by
# the row id of its first passage (row ids are never reused, so the key is stable).
_ARTICLE_SCHEMA = """
CREATE VIRTUAL TABLE IF NOT EXISTS article_lexical USING fts5(
    terms, tokenize = "unicode61 remove_diacritics 0", prefix = '4'
);
"""

_SCHEMA = (
    """
CREATE TABLE IF NOT EXISTS documents (
    doc_id TEXT PRIMARY KEY,
    title TEXT NOT NULL,
    text TEXT NOT NULL,
    url TEXT,
    source TEXT,
    published_at TEXT,
    lang TEXT,
    section TEXT,
    tags TEXT NOT NULL DEFAULT '[]',
    published_ts REAL,
    indexed_at TEXT NOT NULL,
    cluster TEXT,
    minhash BLOB,
    centroid BLOB
);
CREATE INDEX IF NOT EXISTS documents_published ON documents(published_ts);
CREATE INDEX IF NOT EXISTS documents_cluster ON documents(cluster);
CREATE TABLE IF NOT EXISTS minhash_bands (
    band INTEGER NOT NULL,
    hash INTEGER NOT NULL,
    doc_id TEXT NOT NULL REFERENCES documents(doc_id) ON DELETE CASCADE
);
CREATE INDEX IF NOT EXISTS minhash_bands_hash ON minhash_bands(band, hash);
CREATE INDEX IF NOT EXISTS minhash_bands_doc ON minhash_bands(doc_id);
CREATE TABLE IF NOT EXISTS passages (
    row_id INTEGER PRIMARY KEY AUTOINCREMENT,
    passage_id TEXT NOT NULL UNIQUE,
    doc_id TEXT NOT NULL REFERENCES documents(doc_id) ON DELETE CASCADE,
    ordinal INTEGER NOT NULL,
    text TEXT NOT NULL,
    vector BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS passages_doc ON passages(doc_id, ordinal);
CREATE VIRTUAL TABLE IF NOT EXISTS lexical USING fts5(
    terms, tokenize = "unicode61 remove_diacritics 0", prefix = '4'
);
CREATE TABLE IF NOT EXISTS changes (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    doc_id TEXT NOT NULL,
    op TEXT NOT NULL,
    removed TEXT NOT NULL,
    added TEXT NOT NULL,
    at TEXT NOT NULL
);
"""
    + _ARTICLE_SCHEMA
)


class Manifest(msgspec.Struct, frozen=True, kw_only=True):
    """What an index version is: format, model, chunking and analysis. Written once."""

    format_version: int
    version: str
    model: ModelIdentity
    chunking: ChunkingSettings
    lexical: LexicalSettings = LexicalSettings()
    vector_index: str
    created_at: datetime


class Counts(msgspec.Struct, frozen=True, kw_only=True):
    """How much an index holds, and the last change it has applied."""

    documents: int
    passages: int
    seq: int


class StoredPassage(msgspec.Struct, frozen=True, kw_only=True):
    """A passage with its article's metadata, as search results need it."""

    row_id: int
    passage_id: str
    doc_id: str
    ordinal: int
    text: str
    title: str
    url: str | None
    source: str | None
    published_at: datetime | None
    lang: str | None
    cluster: str | None = None


class StoredDocument(msgspec.Struct, frozen=True, kw_only=True):
    """An article as stored, with its passages in order."""

    article: Article
    passages: list[StoredPassage]


class Upsert(msgspec.Struct, frozen=True):
    """One article with its passages and their vectors, ready to write.

    ``terms`` (one string per passage) are lexical terms already analysed with the
    index's settings; when absent they are analysed from each ``embed_text``.
    """

    article: Article
    passages: Sequence[Passage]
    vectors: NDArray[np.float32]
    terms: Sequence[str] | None = None


def _now() -> datetime:
    return datetime.now(UTC)


def _centroid(vectors: NDArray[np.float32]) -> NDArray[np.float32] | None:
    """The unit-length mean of an article's passage vectors (None without passages)."""
    if not len(vectors):
        return None
    mean = np.asarray(vectors, dtype=np.float32).mean(axis=0)
    norm = float(np.linalg.norm(mean))
    out: NDArray[np.float32] = (mean / max(norm, 1e-12)).astype(np.float32)
    return out


class _Staged:
    """Mean vectors of the articles written in the open transaction (FAISS sees them on commit)."""

    def __init__(self) -> None:
        self.ids: list[str] = []
        self._matrix: NDArray[np.float32] | None = None

    def add(self, doc_id: str, centroid: NDArray[np.float32]) -> None:
        n = len(self.ids)
        if self._matrix is None or n == len(self._matrix):
            grown = np.zeros((max(64, 2 * n), len(centroid)), dtype=np.float32)
            if self._matrix is not None:
                grown[:n] = self._matrix
            self._matrix = grown
        self._matrix[n] = centroid
        self.ids.append(doc_id)

    def nearest(self, centroid: NDArray[np.float32], k: int) -> list[str]:
        if self._matrix is None or not self.ids:
            return []
        scores = self._matrix[: len(self.ids)] @ centroid
        top = np.argsort(-scores)[:k] if len(scores) <= k else np.argpartition(-scores, k)[:k]
        return [self.ids[int(i)] for i in top]


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _read_manifest(folder: Path) -> Manifest:
    try:
        manifest = msgspec.json.decode((folder / _MANIFEST).read_bytes(), type=Manifest)
    except FileNotFoundError:
        raise IndexCorruptError(f"index version {folder} has no manifest") from None
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise IndexCorruptError(f"index manifest {folder / _MANIFEST} is invalid: {exc}") from None
    if manifest.format_version != FORMAT_VERSION:
        raise IndexCorruptError(
            f"index format {manifest.format_version} is not supported (expected {FORMAT_VERSION})",
            hint="rebuild the index with `poshuk index --rebuild`",
        )
    return manifest


def live_version(index_dir: Path) -> Path:
    """The folder of the live version; ``IndexNotFoundError`` when there is none."""
    current = index_dir / "CURRENT"
    if not index_dir.is_dir() or not current.is_file():
        raise IndexNotFoundError(
            f"no index at {index_dir}", hint=f"build one with `poshuk index PATH --index {index_dir}`"
        )
    name = current.read_text(encoding="utf-8").strip()
    folder = index_dir / "versions" / name
    if not (name.startswith("v") and name[1:].isdigit()) or not folder.is_dir():
        raise IndexCorruptError(f"index {index_dir} points at a missing version {name!r}")
    return folder


def _connect(path: Path, *, create: bool = False) -> sqlite3.Connection:
    if not create and not path.is_file():
        raise IndexCorruptError(f"index database {path} is missing")
    try:
        conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000)
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA foreign_keys = ON")
        if create:
            conn.executescript(_SCHEMA)
        conn.execute("SELECT count(*) FROM passages").fetchone()
        conn.execute("SELECT count(*) FROM changes").fetchone()
    except sqlite3.DatabaseError as exc:
        raise IndexCorruptError(f"cannot read {path}: {exc}") from None
    return conn


def _has_articles(conn: sqlite3.Connection) -> bool:
    """Whether the database has the article-level BM25 table (indexes made before it lack it)."""
    found = conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'article_lexical'").fetchone()
    return found is not None


def _add_articles(conn: sqlite3.Connection) -> None:
    """Give an index made before article-level BM25 its article table, from the passages' stored terms.

    Best effort and idempotent: a read-only or busy database keeps searching without article
    evidence, and the next open tries again. Writers maintain the table whenever it exists.
    """
    if _has_articles(conn):
        return
    try:
        conn.execute("BEGIN IMMEDIATE")
    except sqlite3.Error:
        return
    try:
        if not _has_articles(conn):
            conn.execute(_ARTICLE_SCHEMA.strip().rstrip(";"))
            conn.execute(
                "INSERT INTO article_lexical (rowid, terms) SELECT min(p.row_id), group_concat(l.terms, ' ') "
                "FROM passages p JOIN lexical l ON l.rowid = p.row_id GROUP BY p.doc_id"
            )
        conn.execute("COMMIT")
    except sqlite3.Error:
        conn.execute("ROLLBACK")


def create_version(index_dir: Path, model: ModelIdentity, chunking: ChunkingSettings, lexical: LexicalSettings) -> Path:
    """A new, empty version in a ``tmp-*`` folder; ``make_live`` names it and swaps it in."""
    versions = index_dir / "versions"
    try:
        versions.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise IndexStoreError(f"cannot create index folder {index_dir}: {exc.strerror}") from None
    tmp = versions / f"tmp-{uuid.uuid4().hex}"
    tmp.mkdir()
    name = _next_version_name(index_dir)
    manifest = Manifest(
        format_version=FORMAT_VERSION,
        version=name,
        model=model,
        chunking=chunking,
        lexical=lexical,
        vector_index=VectorIndex.KIND,
        created_at=_now(),
    )
    _connect(tmp / _SQLITE, create=True).close()
    _write_atomic(tmp / _MANIFEST, msgspec.json.format(msgspec.json.encode(manifest)))
    return tmp


def _next_version_name(index_dir: Path) -> str:
    numbers = [int(p.name[1:]) for p in (index_dir / "versions").glob("v*") if p.name[1:].isdigit()]
    return f"v{max(numbers, default=0) + 1:06d}"


def make_live(index_dir: Path, folder: Path) -> Path:
    """Give a built ``tmp-*`` version its name, point ``CURRENT`` at it atomically, and
    drop versions beyond the kept ones. Returns the version's final folder."""
    if folder.name.startswith("tmp-"):
        final = folder.with_name(_read_manifest(folder).version)
        if final.exists():
            raise IndexStoreError(f"index version {final} already exists; another rebuild finished first")
        os.rename(folder, final)
        _fsync_dir(final.parent)
        folder = final
    _write_atomic(index_dir / "CURRENT", f"{folder.name}\n".encode())
    versions = sorted(p for p in (index_dir / "versions").glob("v*") if p.name[1:].isdigit())
    for old in versions[:-KEEP_VERSIONS]:
        if old != folder:
            shutil.rmtree(old, ignore_errors=True)
    return folder


def remove_stale_builds(index_dir: Path) -> None:
    for folder in (index_dir / "versions").glob("tmp-*"):
        shutil.rmtree(folder, ignore_errors=True)


_PASSAGE_SELECT = """
SELECT p.row_id, p.passage_id, p.doc_id, p.ordinal, p.text,
       d.title, d.url, d.source, d.published_at, d.lang, d.cluster
FROM passages p JOIN documents d ON d.doc_id = p.doc_id
"""


def _passage_from_row(row: tuple[object, ...]) -> StoredPassage:
    published = row[8]
    return StoredPassage(
        row_id=int(str(row[0])),
        passage_id=str(row[1]),
        doc_id=str(row[2]),
        ordinal=int(str(row[3])),
        text=str(row[4]),
        title=str(row[5]),
        url=None if row[6] is None else str(row[6]),
        source=None if row[7] is None else str(row[7]),
        published_at=None if published is None else datetime.fromisoformat(str(published)),
        lang=None if row[9] is None else str(row[9]),
        cluster=None if row[10] is None else str(row[10]),
    )


_DOCUMENT_SELECT = "SELECT doc_id, title, text, url, source, published_at, lang, section, tags FROM documents"


def _article_from_row(row: tuple[Any, ...]) -> Article:
    return Article(
        id=row[0],
        title=row[1],
        text=row[2],
        url=row[3],
        source=row[4],
        published_at=None if row[5] is None else datetime.fromisoformat(row[5]),
        lang=row[6],
        section=row[7],
        tags=tuple(json.loads(row[8])),
    )


def _select_in(conn: sqlite3.Connection, sql: str, ids: Sequence[int] | NDArray[np.int64]) -> list[Any]:
    """All rows of ``sql`` (whose one ``IN ({})`` takes the ids) for ``ids``, in chunks SQLite accepts."""
    found: list[Any] = []
    for start in range(0, len(ids), _IN_CHUNK):
        chunk = [int(i) for i in ids[start : start + _IN_CHUNK]]
        found += conn.execute(sql.format(",".join("?" * len(chunk))), chunk).fetchall()
    return found


def rescore(
    conn: sqlite3.Connection, query: NDArray[np.float32], candidates: NDArray[np.int64], k: int
) -> list[tuple[int, float]]:
    """The ``k`` best of ``candidates`` (row ids; -1 is skipped) by exact inner product with ``query``.

    One query for the candidates' float32 vectors (``passages.vector``), one matrix product. A
    candidate no longer in SQLite (deleted by another process, not yet applied) drops out.
    """
    rows = [int(r) for r in candidates if r >= 0]
    found = _select_in(conn, "SELECT row_id, vector FROM passages WHERE row_id IN ({})", rows)
    if not found:
        return []
    ids = np.fromiter((r for r, _ in found), dtype=np.int64, count=len(found))
    matrix = np.frombuffer(b"".join(v for _, v in found), dtype=np.float32).reshape(len(found), -1)
    scores = matrix @ np.asarray(query, dtype=np.float32).ravel()
    top = np.argsort(-scores, kind="stable")[:k]
    return [(int(ids[i]), float(scores[i])) for i in top]


class Index:
    """One open index version: reads, writes and the in-memory FAISS, thread-safe.

    Searches and writes hold one lock, so a search never sees half an article.
    """

    def __init__(self, folder: Path, *, approximate_above: int = DEFAULT_APPROXIMATE_ABOVE) -> None:
        self.folder = folder
        self.approximate_above = approximate_above  # passages above which FAISS becomes IVF-SQ8
        self.manifest = _read_manifest(folder)
        self._conn = _connect(folder / _SQLITE)
        _add_articles(self._conn)
        self._lock = threading.RLock()
        # filter -> row ids it allows, valid while no change is logged (see allowed_rows)
        self._allowed: OrderedDict[tuple[bytes, int], NDArray[np.int64]] = OrderedDict()
        self._count: tuple[int, int] | None = None  # (last change, passages)
        self._analyzer = Analyzer(self.manifest.lexical)
        self._was_live = False
        self._staged = _Staged()  # this transaction's mean vectors, not yet in FAISS
        with contextlib.suppress(IndexStoreError):
            self._was_live = live_version(self.index_dir) == folder
        self.vectors, self.applied_seq = self._load_vectors()

    @classmethod
    def open(cls, index_dir: Path, *, approximate_above: int = DEFAULT_APPROXIMATE_ABOVE) -> Index:
        return cls(live_version(index_dir), approximate_above=approximate_above)

    @property
    def index_dir(self) -> Path:
        return self.folder.parent.parent

    # -- vectors: snapshot + replay ------------------------------------------------------

    def _snapshots(self) -> list[tuple[int, Path]]:
        found = []
        for path in self.folder.glob("vectors-*.faiss"):
            seq = path.stem.removeprefix("vectors-")
            if seq.isdigit():
                found.append((int(seq), path))
        return sorted(found, reverse=True)

    def _load_vectors(self) -> tuple[VectorIndex, int]:
        dim = self.manifest.model.dimension
        for seq, path in self._snapshots():
            try:
                vectors = VectorIndex.load(path, dim)
            except IndexCorruptError:
                continue  # a damaged snapshot: fall back to an older one, or to SQLite
            self.vectors, self.applied_seq = vectors, seq
            self.refresh()
            if len(self.vectors) == self.counts().passages:
                return self.vectors, self.applied_seq
        return self._rebuild_vectors()

    def _rebuild_vectors(self) -> tuple[VectorIndex, int]:
        """FAISS from the passages table alone (the truth)."""
        dim = self.manifest.model.dimension
        with self._lock:
            self._conn.execute("BEGIN")
            try:
                (seq,) = self._conn.execute("SELECT coalesce(max(seq), 0) FROM changes").fetchone()
                vectors = self._empty_vectors()
                cursor = self._conn.execute("SELECT row_id, vector FROM passages ORDER BY row_id")
                while batch := cursor.fetchmany(10_000):
                    ids = np.fromiter((r for r, _ in batch), dtype=np.int64, count=len(batch))
                    mat = np.frombuffer(b"".join(v for _, v in batch), dtype=np.float32).reshape(len(batch), dim)
                    vectors.add(ids, mat)
            finally:
                self._conn.execute("COMMIT")
        return vectors, int(seq)

    def _empty_vectors(self) -> VectorIndex:
        """Flat up to ``approximate_above`` passages; above, IVF-SQ8 trained on a sample of them."""
        dim = self.manifest.model.dimension
        rows = np.asarray([r for (r,) in self._conn.execute("SELECT row_id FROM passages")], dtype=np.int64)
        if len(rows) <= self.approximate_above:
            return VectorIndex(dim)
        sample = np.sort(np.random.default_rng(0).choice(rows, size=min(len(rows), TRAIN_SAMPLE), replace=False))
        blobs = [v for (v,) in _select_in(self._conn, "SELECT vector FROM passages WHERE row_id IN ({})", sample)]
        training = np.frombuffer(b"".join(blobs), dtype=np.float32).reshape(len(blobs), dim)
        return VectorIndex.approximate(dim, training, nlist=nlist_for(len(rows)))

    def refresh(self) -> int:
        """Apply changes committed by any process since the last refresh; returns how many."""
        with self._lock:
            changes = self._conn.execute(
                "SELECT seq, removed, added FROM changes WHERE seq > ? ORDER BY seq", (self.applied_seq,)
            ).fetchall()
            if not changes:
                return 0
            removed = [r for _, rem, _ in changes for r in json.loads(rem)]
            added = [r for _, _, add in changes for r in json.loads(add)]
            self.vectors.remove(np.asarray(removed, dtype=np.int64))
            dim = self.manifest.model.dimension
            rows = _select_in(self._conn, "SELECT row_id, vector FROM passages WHERE row_id IN ({})", added)
            if rows:
                ids = np.asarray([r for r, _ in rows], dtype=np.int64)
                self.vectors.remove(ids)  # idempotent replay
                mat = np.frombuffer(b"".join(v for _, v in rows), dtype=np.float32).reshape(len(rows), dim)
                self.vectors.add(ids, mat)
            self.applied_seq = int(changes[-1][0])
            return len(changes)

    def snapshot(self) -> Path:
        """Write the in-memory FAISS index to disk, tagged with its sequence number."""
        with self._lock:
            self.refresh()
            path = self.folder / f"vectors-{self.applied_seq:012d}.faiss"
            fitted = self.vectors.fitted(self.approximate_above)
            if fitted is not self.vectors:  # grown past the threshold: IVF from now on
                self.vectors = fitted
                path.unlink(missing_ok=True)
            if not path.exists():
                tmp = self.folder / f".{path.name}.{uuid.uuid4().hex}.tmp"
                self.vectors.save(tmp)
                with open(tmp, "rb") as fh:
                    os.fsync(fh.fileno())
                os.replace(tmp, path)
                _fsync_dir(self.folder)
            for _, old in self._snapshots():
                if old != path:
                    old.unlink(missing_ok=True)
            return path

    # -- reads ----------------------------------------------------------------------------

    def counts(self) -> Counts:
        with self._lock:
            (docs,) = self._conn.execute("SELECT count(*) FROM documents").fetchone()
            (passages,) = self._conn.execute("SELECT count(*) FROM passages").fetchone()
        return Counts(documents=int(docs), passages=int(passages), seq=self.applied_seq)

    def check_model(self, identity: ModelIdentity, *, allow_backend_mismatch: bool = False) -> None:
        """Raise ``ModelMismatchError`` unless ``identity`` can search this index."""
        built = self.manifest.model
        if not built.compatible_with(identity):
            raise ModelMismatchError(
                f"index {self.index_dir} was built with model {built.name!r} "
                f"(weights {built.weights_sha256[:12]}), not {identity.name!r} "
                f"(weights {identity.weights_sha256[:12]})",
                hint=f"search it with --model {built.name}, or rebuild it with the new model",
            )
        check_backend(built.backend, identity.backend, allow=allow_backend_mismatch)

    def search_vectors(
        self, queries: NDArray[np.float32], k: int, filters: Filters | None = None
    ) -> list[tuple[int, float]]:
        """(row id, cosine) of the ``k`` nearest passages among those passing ``filters``."""
        with self._lock:
            allowed = None if filters is None or filters.is_empty() else self.allowed_rows(filters)
            if allowed is not None and len(allowed) == 0:
                return []
            if allowed is not None and len(allowed) == len(self.vectors) == self._passage_count():
                allowed = None  # the filter excludes nothing: skip the id selector
            if not self.vectors.approximate_kind:
                scores, ids = self.vectors.search(queries, k, allowed=allowed)
                return [(int(i), float(s)) for i, s in zip(ids[0], scores[0], strict=True) if i >= 0]
            _, ids = self.vectors.search(queries, k * RESCORE_FACTOR, allowed=allowed)
            return rescore(self._conn, queries[0], ids[0], k)

    def _last_change(self) -> int:
        (last,) = self._conn.execute("SELECT coalesce(max(seq), 0) FROM changes").fetchone()
        return int(last)

    def _passage_count(self) -> int:
        """Passages in SQLite, counted again only after a logged change."""
        last = self._last_change()
        if self._count is None or self._count[0] != last:
            (passages,) = self._conn.execute("SELECT count(*) FROM passages").fetchone()
            self._count = (last, int(passages))
        return self._count[1]

    def _broad(self, filters: Filters | None) -> tuple[NDArray[np.int64], int] | None:
        """(allowed rows, passages) for a filter that lets at least half of the passages through
        (post-filtering an unfiltered ranking is then cheaper than joining every match); else None."""
        if filters is None or filters.is_empty():
            return None
        allowed = self.allowed_rows(filters)
        total = self._passage_count()
        if not total or len(allowed) * 2 < total:
            return None
        return allowed, total

    def _ranked_among(
        self, sql: str, match: str, limit: int, broad: tuple[NDArray[np.int64], int], row_of: Callable[[Any], int]
    ) -> list[Any] | None:
        """The first ``limit`` rows of an unfiltered ranking whose row is allowed, reading a few
        times ``limit`` rows; None when that many do not suffice (the caller joins instead)."""
        allowed, total = broad
        fetch = int(limit * 1.5 * total / max(len(allowed), 1)) + 10
        rows = self._conn.execute(sql, [match, fetch]).fetchall()
        ids = np.fromiter((row_of(r) for r in rows), dtype=np.int64, count=len(rows))
        position = np.searchsorted(allowed, ids)
        keep = (position < len(allowed)) & (allowed[np.minimum(position, len(allowed) - 1)] == ids)
        kept = [r for r, ok in zip(rows, keep.tolist(), strict=True) if ok]
        if len(kept) >= limit or len(rows) < fetch:
            return kept[:limit]
        return None

    def allowed_rows(self, filters: Filters) -> NDArray[np.int64]:
        """Row ids of every passage whose article passes ``filters`` (sorted, read-only array).

        A broad filter allows most of the archive, and reading its ids is most of a filtered
        search's time, so the answer is kept for the next searches with the same filter until a
        change is logged: every write appends to ``changes``, whose sequence never repeats.
        """
        condition, params = where_clause(filters)
        with self._lock:
            key = (msgspec.json.encode(filters), self._last_change())
            found = self._allowed.get(key)
            if found is not None:
                self._allowed.move_to_end(key)
                return found
            rows = self._conn.execute(
                f"SELECT p.row_id FROM passages p JOIN documents d ON d.doc_id = p.doc_id WHERE {condition} "
                "ORDER BY p.row_id",
                params,
            ).fetchall()
            allowed = np.fromiter((r for (r,) in rows), dtype=np.int64, count=len(rows))
            allowed.setflags(write=False)
            self._allowed[key] = allowed
            while len(self._allowed) > ALLOWED_CACHE:
                self._allowed.popitem(last=False)
            return allowed

    def lexical_search(self, match: str, limit: int, filters: Filters | None = None) -> list[tuple[int, float]]:
        """(row id, BM25 score) of the best ``limit`` passages for an FTS5 ``match`` expression."""
        condition, params = where_clause(filters)
        join = ""
        if condition != "1":
            join = " JOIN passages p ON p.row_id = l.rowid JOIN documents d ON d.doc_id = p.doc_id"
        sql = (
            f"SELECT l.rowid, -bm25(lexical) AS score FROM lexical l{join} "
            f"WHERE lexical MATCH ? AND {condition} ORDER BY bm25(lexical), l.rowid LIMIT ?"
        )
        with self._lock:
            broad = self._broad(filters)
            if broad is not None:
                plain = (
                    "SELECT l.rowid, -bm25(lexical) AS score FROM lexical l "
                    "WHERE lexical MATCH ? ORDER BY bm25(lexical), l.rowid LIMIT ?"
                )
                found = self._ranked_among(plain, match, limit, broad, lambda r: int(r[0]))
                if found is not None:
                    return [(int(r), float(score)) for r, score in found]
            rows = self._conn.execute(sql, [match, *params, limit]).fetchall()
        return [(int(r), float(score)) for r, score in rows]

    def article_search(self, match: str, limit: int, filters: Filters | None = None) -> list[tuple[str, int, float]]:
        """(doc id, row id of its first passage, BM25 score) of the best ``limit`` articles for an
        FTS5 ``match`` expression, scored over all the terms of each article; [] for an index
        without article terms."""
        condition, params = where_clause(filters)
        join = "" if condition == "1" else " JOIN documents d ON d.doc_id = p.doc_id"
        sql = (
            "SELECT p.doc_id, a.rowid, -bm25(article_lexical) AS score FROM article_lexical a "
            f"JOIN passages p ON p.row_id = a.rowid{join} "
            f"WHERE article_lexical MATCH ? AND {condition} ORDER BY bm25(article_lexical), a.rowid LIMIT ?"
        )
        with self._lock:
            try:
                broad = self._broad(filters)
                found = None
                if broad is not None:
                    plain = (
                        "SELECT p.doc_id, a.rowid, -bm25(article_lexical) AS score FROM article_lexical a "
                        "JOIN passages p ON p.row_id = a.rowid "
                        "WHERE article_lexical MATCH ? ORDER BY bm25(article_lexical), a.rowid LIMIT ?"
                    )
                    found = self._ranked_among(plain, match, limit, broad, lambda r: int(r[1]))
                rows = found if found is not None else self._conn.execute(sql, [match, *params, limit]).fetchall()
            except sqlite3.OperationalError:
                if _has_articles(self._conn):
                    raise
                return []
        return [(str(doc), int(r), float(score)) for doc, r, score in rows]

    def article_terms(self, first_rows: Sequence[int]) -> dict[int, str]:
        """The indexed terms of each article (by the row id of its first passage), space-separated."""
        with self._lock:
            rows = _select_in(self._conn, "SELECT rowid, terms FROM article_lexical WHERE rowid IN ({})", first_rows)
        return {int(r): str(terms) for r, terms in rows}

    def doc_ids(self, row_ids: Sequence[int]) -> dict[int, str]:
        """The article of each passage row id."""
        with self._lock:
            found = _select_in(self._conn, "SELECT row_id, doc_id FROM passages WHERE row_id IN ({})", row_ids)
        return {int(r): str(doc) for r, doc in found}

    def lexical_terms(self, row_ids: Sequence[int]) -> dict[int, list[str]]:
        """The indexed terms of each passage."""
        with self._lock:
            rows = _select_in(self._conn, "SELECT rowid, terms FROM lexical WHERE rowid IN ({})", row_ids)
        return {int(r): str(terms).split() for r, terms in rows}

    def passages_by_row(self, row_ids: Sequence[int]) -> dict[int, StoredPassage]:
        if not row_ids:
            return {}
        marks = ",".join("?" * len(row_ids))
        with self._lock:
            rows = self._conn.execute(f"{_PASSAGE_SELECT} WHERE p.row_id IN ({marks})", list(row_ids)).fetchall()
        return {int(r[0]): _passage_from_row(r) for r in rows}

    def document_vectors(self, doc_id: str) -> NDArray[np.float32]:
        """The stored passage vectors of one article (rows in passage order)."""
        dim = self.manifest.model.dimension
        with self._lock:
            rows = self._conn.execute(
                "SELECT vector FROM passages WHERE doc_id = ? ORDER BY ordinal", (doc_id,)
            ).fetchall()
        if not rows:
            raise NotFoundError(f"document {doc_id!r} is not in the index")
        return np.vstack([np.frombuffer(blob, dtype=np.float32, count=dim) for (blob,) in rows])

    def document(self, doc_id: str) -> StoredDocument:
        with self._lock:
            row = self._conn.execute(f"{_DOCUMENT_SELECT} WHERE doc_id = ?", (doc_id,)).fetchone()
            if row is None:
                raise NotFoundError(f"document {doc_id!r} is not in the index")
            passages = self._conn.execute(
                f"{_PASSAGE_SELECT} WHERE p.doc_id = ? ORDER BY p.ordinal", (doc_id,)
            ).fetchall()
        return StoredDocument(article=_article_from_row(row), passages=[_passage_from_row(p) for p in passages])

    # -- writes ---------------------------------------------------------------------------

    def write(self, upserts: Sequence[Upsert] = (), deletes: Sequence[str] = ()) -> Counts:
        """Apply upserts and deletes in ONE durable transaction, then make them searchable.

        When this returns, the change has been committed with ``synchronous=FULL``.
        """
        with self._lock:
            self._begin_immediate()
            try:
                self.stage(upserts, deletes)
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self.refresh()
        return self.counts()

    def _begin_immediate(self) -> None:
        """Take the write lock; fail if it stays busy, or if a rebuild has retired this version.

        A rebuild swaps ``CURRENT`` while it holds this version's write lock (after
        carrying over every change made here since it began), so checking ``CURRENT``
        under the lock tells for certain whether a write here would be lost.
        """
        try:
            self._conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise IndexBusyError(f"index {self.index_dir} is busy: {exc}", hint="retry in a moment") from None
        self._staged = _Staged()
        if self._was_live and not self.is_live():
            self._conn.execute("ROLLBACK")
            raise IndexRetiredError(
                f"index version {self.folder.name} was replaced by a rebuild", hint="open the live version and retry"
            )

    def is_live(self) -> bool:
        """Whether ``CURRENT`` still names this version."""
        try:
            return live_version(self.index_dir) == self.folder
        except IndexStoreError:
            return False

    def stage(self, upserts: Sequence[Upsert] = (), deletes: Sequence[str] = ()) -> list[str]:
        """Write changes inside an open transaction (the caller begins and commits).

        Returns the ids of deleted documents that existed.
        """
        deleted = []
        articles = _has_articles(self._conn)
        for doc_id in deletes:
            if self._stage_delete(doc_id, op="delete", articles=articles):
                deleted.append(doc_id)
        for item in upserts:
            self._stage_upsert(item, articles=articles)
        return deleted

    def _stage_delete(self, doc_id: str, *, op: str, added: Sequence[int] = (), articles: bool = True) -> bool:
        db = self._conn
        rows = [r for (r,) in db.execute("SELECT row_id FROM passages WHERE doc_id = ?", (doc_id,))]
        db.executemany("DELETE FROM lexical WHERE rowid = ?", [(r,) for r in rows])
        if articles:
            db.executemany("DELETE FROM article_lexical WHERE rowid = ?", [(r,) for r in rows])
        existed = db.execute("DELETE FROM documents WHERE doc_id = ?", (doc_id,)).rowcount > 0
        if existed or added:
            db.execute(
                "INSERT INTO changes (doc_id, op, removed, added, at) VALUES (?, ?, ?, ?, ?)",
                (doc_id, op, json.dumps(rows), json.dumps(list(added)), _now().isoformat()),
            )
        return existed

    def _stage_upsert(self, item: Upsert, *, articles: bool = True) -> None:
        article, passages, vectors = item.article, item.passages, item.vectors
        if len(passages) != len(vectors):
            raise ValueError("one vector per passage is required")
        dim = self.manifest.model.dimension
        if len(passages) and vectors.shape[1] != dim:
            raise ValueError(f"vectors have dimension {vectors.shape[1]}, the index {dim}")
        db = self._conn
        old_rows = [r for (r,) in db.execute("SELECT row_id FROM passages WHERE doc_id = ?", (article.id,))]
        db.executemany("DELETE FROM lexical WHERE rowid = ?", [(r,) for r in old_rows])
        if articles:
            db.executemany("DELETE FROM article_lexical WHERE rowid = ?", [(r,) for r in old_rows])
        db.execute("DELETE FROM documents WHERE doc_id = ?", (article.id,))
        sig = dedupe.signature(f"{article.title}\n{article.text}")
        bands = dedupe.band_hashes(sig)
        centroid = _centroid(vectors)
        cluster = self._find_cluster(article, sig, bands, centroid)
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
                _now().isoformat(),
                cluster,
                sig.tobytes(),
                None if centroid is None else centroid.tobytes(),
            ),
        )
        db.executemany(
            "INSERT INTO minhash_bands (band, hash, doc_id) VALUES (?, ?, ?)",
            [(band, h, article.id) for band, h in bands],
        )
        if centroid is not None:
            self._staged.add(article.id, centroid)
        added: list[int] = []
        all_terms: list[str] = []
        for n, (passage, vector) in enumerate(zip(passages, vectors, strict=True)):
            cursor = db.execute(
                "INSERT INTO passages (passage_id, doc_id, ordinal, text, vector) VALUES (?, ?, ?, ?, ?)",
                (passage.id, article.id, passage.ordinal, passage.text, np.asarray(vector, np.float32).tobytes()),
            )
            row = int(cursor.lastrowid or 0)
            added.append(row)
            terms = item.terms[n] if item.terms is not None else " ".join(self._analyzer.terms(passage.embed_text))
            all_terms.append(terms)
            db.execute("INSERT INTO lexical (rowid, terms) VALUES (?, ?)", (row, terms))
        if articles and added:
            db.execute("INSERT INTO article_lexical (rowid, terms) VALUES (?, ?)", (min(added), " ".join(all_terms)))
        db.execute(
            "INSERT INTO changes (doc_id, op, removed, added, at) VALUES (?, 'upsert', ?, ?, ?)",
            (article.id, json.dumps(old_rows), json.dumps(added), _now().isoformat()),
        )

    def _find_cluster(
        self,
        article: Article,
        sig: NDArray[np.uint64],
        bands: Sequence[tuple[int, int]],
        centroid: NDArray[np.float32] | None,
    ) -> str:
        """The cluster of the story ``article`` repeats, or its own id when it is new.

        A copy: an article sharing an LSH band whose MinHash Jaccard reaches
        ``dedupe.COPY_THRESHOLD``. A translation: an article in another language among the
        nearest passages (FAISS, plus this transaction's own upserts) whose mean vector's
        cosine reaches ``dedupe.TRANSLATION_THRESHOLD``. The best match's cluster wins.
        """
        db = self._conn
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
        if best is None and centroid is not None and article.lang:
            best = self._find_translation(article, centroid)
        return article.id if best is None else best[1]

    def _find_translation(self, article: Article, centroid: NDArray[np.float32]) -> tuple[float, str] | None:
        db = self._conn
        candidates = set(self._staged.nearest(centroid, dedupe.CANDIDATE_PASSAGES))
        if len(self.vectors):
            _, ids = self.vectors.search(centroid[None, :], dedupe.CANDIDATE_PASSAGES)
            rows = [int(i) for i in ids[0] if i >= 0]
            if rows:
                marks = ",".join("?" * len(rows))
                for (doc,) in db.execute(f"SELECT DISTINCT doc_id FROM passages WHERE row_id IN ({marks})", rows):
                    candidates.add(str(doc))
        candidates.discard(article.id)
        best: tuple[float, str] | None = None
        dim = self.manifest.model.dimension
        for doc in sorted(candidates):
            row = db.execute("SELECT cluster, centroid, lang FROM documents WHERE doc_id = ?", (doc,)).fetchone()
            if row is None or row[1] is None or row[2] is None or row[2] == article.lang:
                continue
            score = float(np.frombuffer(row[1], dtype=np.float32, count=dim) @ centroid)
            if score >= dedupe.TRANSLATION_THRESHOLD and (best is None or score > best[0]):
                best = (score, str(row[0] or doc))
        return best

    def begin(self) -> None:
        self._lock.acquire()
        try:
            self._begin_immediate()
        except BaseException:
            self._lock.release()
            raise

    def commit(self) -> None:
        try:
            self._conn.execute("COMMIT")
            self.refresh()
        finally:
            self._lock.release()

    def rollback(self) -> None:
        try:
            self._conn.execute("ROLLBACK")
        finally:
            self._lock.release()

    def close(self) -> None:
        with self._lock:
            self._conn.close()


class IndexWriter:
    """A batch of changes applied as one transaction; used by ``poshuk index``.

    As a context manager: leaving the block commits (unless ``commit`` was called),
    an exception rolls everything back, so a failed or interrupted run changes
    nothing. With ``rebuild`` (or when no index exists) it fills a new version and
    makes it live only on commit; the previous version stays for rollback. A rebuild
    holds its sources plus every change made to the live version after change
    ``since`` (by default: after the writer opened); ``prepare`` re-encodes those
    articles when the rebuild uses another model.
    """

    def __init__(
        self,
        index_dir: Path,
        model: ModelIdentity,
        chunking: ChunkingSettings,
        lexical: LexicalSettings | None = None,
        *,
        rebuild: bool = False,
        prepare: Callable[[Sequence[Article]], Sequence[Upsert]] | None = None,
        since: int | None = None,
        allow_backend_mismatch: bool = False,
        approximate_above: int = DEFAULT_APPROXIMATE_ABOVE,
    ) -> None:
        self.allow_backend_mismatch = allow_backend_mismatch
        self.approximate_above = approximate_above
        self.index_dir = index_dir
        self.model = model
        self.chunking = chunking
        self.lexical = lexical or LexicalSettings()
        self.rebuild = rebuild
        self.prepare = prepare
        self.since = since
        self._index: Index | None = None
        self._new_version: Path | None = None
        self._base: tuple[Path, int] | None = None  # the live version a rebuild replaces, and its last change

    def __enter__(self) -> IndexWriter:
        self.open()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is not None:
            self.abort()
        elif self._index is not None:
            self.commit()

    def open(self) -> None:
        for _attempt in range(5):
            try:
                self._open()
                return
            except IndexRetiredError:
                continue  # a rebuild swapped versions between opening and locking: open the new one
        raise IndexBusyError(f"index {self.index_dir} keeps changing versions", hint="retry in a moment")

    def _open(self) -> None:
        live: Path | None = None
        with contextlib.suppress(IndexNotFoundError):
            live = live_version(self.index_dir)
        if live is not None and self.rebuild:
            seq = self.since if self.since is not None else last_change(self.index_dir)
            self._base = (live, seq or 0)
        if live is not None and not self.rebuild:
            manifest = _read_manifest(live)
            if not manifest.model.compatible_with(self.model):
                raise ModelMismatchError(
                    f"index {self.index_dir} was built with model {manifest.model.name!r}, not {self.model.name!r}",
                    hint="use the same --model, or rebuild with --rebuild",
                )
            check_backend(manifest.model.backend, self.model.backend, allow=self.allow_backend_mismatch)
            index = Index(live, approximate_above=self.approximate_above)
        else:
            if (self.index_dir / "versions").is_dir():
                remove_stale_builds(self.index_dir)
            self._new_version = create_version(self.index_dir, self.model, self.chunking, self.lexical)
            index = Index(self._new_version, approximate_above=self.approximate_above)
        try:
            index.begin()
        except BaseException:
            index.close()
            self._discard_new_version()
            raise
        self._index = index

    @property
    def index(self) -> Index:
        if self._index is None:
            raise IndexStoreError("index writer is not open")
        return self._index

    def upsert(self, article: Article, passages: Sequence[Passage], vectors: NDArray[np.float32]) -> None:
        """Add an article, replacing every passage of an earlier one with the same id."""
        self.index.stage(upserts=[Upsert(article, passages, np.asarray(vectors, dtype=np.float32))])

    def delete(self, doc_id: str) -> bool:
        """Remove an article and its passages; False if it was not there."""
        return bool(self.index.stage(deletes=[doc_id]))

    def commit(self) -> Counts:
        """Commit the transaction, snapshot FAISS, and (for a new version) make it live.

        A rebuild first locks the version it replaces and copies into the new one every
        change made there since the rebuild began (HTTP writes, other CLI runs), then
        swaps ``CURRENT`` while still holding that lock: no acknowledged write is lost,
        and writers waiting on the old version find it retired and move to the new one.
        """
        index = self.index
        old = self._lock_base() if self._new_version is not None and self._base is not None else None
        try:
            if old is not None and self._base is not None:
                self._carry_over(old, self._base[1], index)
            index.commit()
            index.snapshot()
            counts = index.counts()
            index.close()
            self._index = None
            if self._new_version is not None:
                make_live(self.index_dir, self._new_version)
                self._new_version = None
        except BaseException:
            self.abort()
            raise
        finally:
            if old is not None:
                with contextlib.suppress(sqlite3.Error):
                    old.execute("ROLLBACK")
                old.close()
        return counts

    def _lock_base(self) -> sqlite3.Connection | None:
        """The replaced version's database with its write lock held; None if it is gone or no longer live."""
        assert self._base is not None
        folder = self._base[0]
        try:
            conn = _connect(folder / _SQLITE)
        except IndexStoreError:
            return None
        deadline = time.monotonic() + SWAP_LOCK_TIMEOUT_S
        while True:
            try:
                conn.execute("BEGIN IMMEDIATE")
                break
            except sqlite3.OperationalError as exc:
                if time.monotonic() > deadline:
                    conn.close()
                    raise IndexBusyError(
                        f"index {self.index_dir} stayed busy: {exc}", hint="retry the rebuild"
                    ) from None
        with contextlib.suppress(IndexStoreError):
            if live_version(self.index_dir) == folder:
                return conn
        conn.execute("ROLLBACK")
        conn.close()
        return None

    def _carry_over(self, old: sqlite3.Connection, since: int, new: Index) -> None:
        """Give ``new`` the final state, in the replaced version, of every article changed there after ``since``."""
        doc_ids = [d for (d,) in old.execute("SELECT DISTINCT doc_id FROM changes WHERE seq > ?", (since,))]
        if not doc_ids:
            return
        old_manifest = _read_manifest(self._base[0]) if self._base is not None else new.manifest
        same_model = old_manifest.model.compatible_with(new.manifest.model)
        same_terms = old_manifest.lexical == new.manifest.lexical
        dim = old_manifest.model.dimension
        gone: list[str] = []
        kept: list[Upsert] = []
        for doc_id in doc_ids:
            row = old.execute(f"{_DOCUMENT_SELECT} WHERE doc_id = ?", (doc_id,)).fetchone()
            if row is None:
                gone.append(doc_id)
                continue
            article = _article_from_row(row)
            rows = old.execute(
                "SELECT p.passage_id, p.ordinal, p.text, p.vector, l.terms FROM passages p "
                "LEFT JOIN lexical l ON l.rowid = p.row_id WHERE p.doc_id = ? ORDER BY p.ordinal",
                (doc_id,),
            ).fetchall()
            context = f"{article.title}\n" if new.manifest.chunking.title_context and article.title else ""
            passages = [
                Passage(id=pid, doc_id=doc_id, ordinal=n, text=text, embed_text=context + text)
                for pid, n, text, _, _ in rows
            ]
            vectors = np.zeros((len(rows), dim), dtype=np.float32)
            for i, (_, _, _, blob, _) in enumerate(rows):
                vectors[i] = np.frombuffer(blob, dtype=np.float32, count=dim)
            terms = [str(t or "") for *_, t in rows] if same_terms else None
            kept.append(Upsert(article, passages, vectors, terms))
        if not same_model:
            if self.prepare is None:
                raise IndexStoreError(
                    f"{len(kept)} article(s) were written to the live index during a rebuild with another model",
                    hint="run the rebuild again; it re-encodes them when given an encoder",
                )
            kept = list(self.prepare([u.article for u in kept]))
        new.stage(upserts=kept, deletes=gone)

    def abort(self) -> None:
        """Drop everything written; the live index stays as it was."""
        if self._index is not None:
            self._index.rollback()
            self._index.close()
            self._index = None
        self._discard_new_version()

    def _discard_new_version(self) -> None:
        if self._new_version is not None:
            shutil.rmtree(self._new_version, ignore_errors=True)
            self._new_version = None


def last_change(index_dir: Path) -> int | None:
    """The live version's last change number (None without an index): where a rebuild starting now
    begins carrying over live writes from (``IndexWriter(since=...)``)."""
    try:
        conn = _connect(live_version(index_dir) / _SQLITE)
    except IndexStoreError:
        return None
    try:
        (seq,) = conn.execute("SELECT coalesce(max(seq), 0) FROM changes").fetchone()
    finally:
        conn.close()
    return int(seq)


def live_manifest(index_dir: Path) -> Manifest:
    """The live version's manifest, after checking its database opens: what a server checks before
    it listens, without loading the vectors (``Index.open`` does that, once, when it loads)."""
    folder = live_version(index_dir)
    manifest = _read_manifest(folder)
    _connect(folder / _SQLITE).close()
    return manifest


def iter_versions(index_dir: Path) -> Iterator[Manifest]:
    """Manifests of the kept versions, oldest first."""
    for folder in sorted((index_dir / "versions").glob("v*")):
        with contextlib.suppress(IndexCorruptError):
            yield _read_manifest(folder)
