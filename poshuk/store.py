"""The on-disk index folder: versions, a manifest, SQLite metadata and FAISS vectors.

Layout::

    DIR/CURRENT                 name of the live version (replaced atomically)
    DIR/versions/vNNNNNN/       manifest.json, meta.sqlite, vectors.faiss
    DIR/versions/tmp-*/         a version being written (removed if a writer died)
    DIR/.lock                   held by the one writer at a time

A writer copies the live version into a temporary folder, applies its changes,
writes the manifest last, renames the folder to its final name and swaps CURRENT.
A crash or Ctrl-C at any moment leaves the previous version live and intact; the
previous version is kept for rollback. Readers never see a half-written version.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import sqlite3
import threading
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType

import msgspec
import numpy as np
from numpy.typing import NDArray

from poshuk.analysis import Analyzer, LexicalSettings
from poshuk.documents import Article, Passage
from poshuk.encoder import ModelIdentity
from poshuk.errors import (
    IndexCorruptError,
    IndexNotFoundError,
    IndexStoreError,
    ModelMismatchError,
    NotFoundError,
)
from poshuk.filters import Filters, timestamp, where_clause
from poshuk.settings import ChunkingSettings
from poshuk.vectors import VectorIndex

FORMAT_VERSION = 1
KEEP_VERSIONS = 2
_MANIFEST = "manifest.json"
_SQLITE = "meta.sqlite"
_VECTORS = "vectors.faiss"

_SCHEMA = """
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
    indexed_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS documents_published ON documents(published_ts);
CREATE TABLE IF NOT EXISTS passages (
    row_id INTEGER PRIMARY KEY,
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
"""


class Manifest(msgspec.Struct, frozen=True, kw_only=True):
    """What an index version is: format, model, chunking and counts."""

    format_version: int
    version: str
    model: ModelIdentity
    chunking: ChunkingSettings
    vector_index: str
    lexical: LexicalSettings = LexicalSettings()
    documents: int
    passages: int
    created_at: datetime
    updated_at: datetime


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


class StoredDocument(msgspec.Struct, frozen=True, kw_only=True):
    """An article as stored, with its passages in order."""

    article: Article
    passages: list[StoredPassage]


def _now() -> datetime:
    return datetime.now(UTC)


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
        return msgspec.json.decode((folder / _MANIFEST).read_bytes(), type=Manifest)
    except FileNotFoundError:
        raise IndexCorruptError(f"index version {folder} has no manifest") from None
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise IndexCorruptError(f"index manifest {folder / _MANIFEST} is invalid: {exc}") from None


def live_version(index_dir: Path) -> Path:
    """The folder of the live version; ``IndexNotFoundError`` when there is none."""
    current = index_dir / "CURRENT"
    if not index_dir.is_dir() or not current.is_file():
        raise IndexNotFoundError(
            f"no index at {index_dir}", hint=f"build one with `poshuk index PATH --index {index_dir}`"
        )
    name = current.read_text(encoding="utf-8").strip()
    folder = index_dir / "versions" / name
    if not name or "/" in name or not folder.is_dir():
        raise IndexCorruptError(f"index {index_dir} points at a missing version {name!r}")
    return folder


def _connect(path: Path, *, readonly: bool) -> sqlite3.Connection:
    uri = f"file:{path}?mode={'ro' if readonly else 'rw'}"
    try:
        conn = sqlite3.connect(uri, uri=True, check_same_thread=False)
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("SELECT count(*) FROM passages").fetchone()
    except sqlite3.DatabaseError as exc:
        raise IndexCorruptError(f"cannot read {path}: {exc}") from None
    return conn


_PASSAGE_SELECT = """
SELECT p.row_id, p.passage_id, p.doc_id, p.ordinal, p.text,
       d.title, d.url, d.source, d.published_at, d.lang
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
    )


class IndexReader:
    """A read-only, thread-safe view of one index version."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.manifest = _read_manifest(folder)
        if self.manifest.format_version != FORMAT_VERSION:
            raise IndexCorruptError(
                f"index format {self.manifest.format_version} is not supported (expected {FORMAT_VERSION})"
            )
        self.vectors = VectorIndex.load(folder / _VECTORS, self.manifest.model.dimension)
        self._conn = _connect(folder / _SQLITE, readonly=True)
        self._lock = threading.Lock()
        (count,) = self._conn.execute("SELECT count(*) FROM passages").fetchone()
        if count != self.manifest.passages or len(self.vectors) != self.manifest.passages:
            raise IndexCorruptError(
                f"index {folder} is inconsistent: manifest {self.manifest.passages} passages, "
                f"SQLite {count}, FAISS {len(self.vectors)}"
            )

    @classmethod
    def open(cls, index_dir: Path) -> IndexReader:
        return cls(live_version(index_dir))

    def check_model(self, identity: ModelIdentity) -> None:
        """Raise ``ModelMismatchError`` unless ``identity`` can search this index."""
        built = self.manifest.model
        if not built.compatible_with(identity):
            raise ModelMismatchError(
                f"index {self.folder.parent.parent} was built with model {built.name!r} "
                f"(weights {built.weights_sha256[:12]}), not {identity.name!r} "
                f"(weights {identity.weights_sha256[:12]})",
                hint=f"search it with --model {built.name}, or rebuild it with the new model",
            )

    def passages_by_row(self, row_ids: Sequence[int]) -> dict[int, StoredPassage]:
        if not row_ids:
            return {}
        marks = ",".join("?" * len(row_ids))
        with self._lock:
            rows = self._conn.execute(f"{_PASSAGE_SELECT} WHERE p.row_id IN ({marks})", list(row_ids)).fetchall()
        return {int(r[0]): _passage_from_row(r) for r in rows}

    def allowed_rows(self, filters: Filters) -> NDArray[np.int64]:
        """Row ids of every passage whose article passes ``filters``."""
        condition, params = where_clause(filters)
        with self._lock:
            rows = self._conn.execute(
                f"SELECT p.row_id FROM passages p JOIN documents d ON d.doc_id = p.doc_id WHERE {condition}",
                params,
            ).fetchall()
        return np.asarray([r for (r,) in rows], dtype=np.int64)

    def lexical_search(self, match: str, limit: int, filters: Filters | None = None) -> list[tuple[int, float]]:
        """(row id, BM25 score) of the best ``limit`` passages for an FTS5 ``match`` expression."""
        condition, params = where_clause(filters)
        join = (
            "" if condition == "1" else " JOIN passages p ON p.row_id = l.rowid JOIN documents d ON d.doc_id = p.doc_id"
        )
        sql = (
            f"SELECT l.rowid, -bm25(lexical) AS score FROM lexical l{join} "
            f"WHERE lexical MATCH ? AND {condition} ORDER BY bm25(lexical), l.rowid LIMIT ?"
        )
        with self._lock:
            rows = self._conn.execute(sql, [match, *params, limit]).fetchall()
        return [(int(r), float(score)) for r, score in rows]

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

    def lexical_terms(self, row_ids: Sequence[int]) -> dict[int, list[str]]:
        """The indexed terms of each passage."""
        if not row_ids:
            return {}
        marks = ",".join("?" * len(row_ids))
        with self._lock:
            rows = self._conn.execute(
                f"SELECT rowid, terms FROM lexical WHERE rowid IN ({marks})", list(row_ids)
            ).fetchall()
        return {int(r): str(terms).split() for r, terms in rows}

    def document(self, doc_id: str) -> StoredDocument:
        with self._lock:
            row = self._conn.execute(
                "SELECT doc_id, title, text, url, source, published_at, lang, section, tags "
                "FROM documents WHERE doc_id = ?",
                (doc_id,),
            ).fetchone()
            if row is None:
                raise NotFoundError(f"document {doc_id!r} is not in the index")
            passages = self._conn.execute(
                f"{_PASSAGE_SELECT} WHERE p.doc_id = ? ORDER BY p.ordinal", (doc_id,)
            ).fetchall()
        article = Article(
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
        return StoredDocument(article=article, passages=[_passage_from_row(p) for p in passages])

    def close(self) -> None:
        with self._lock:
            self._conn.close()


class IndexWriter:
    """Applies upserts and deletes to a private copy, then swaps it in on ``commit``.

    Use as a context manager: leaving the block normally commits (unless ``commit``
    was already called), an exception aborts and the live version is untouched.
    """

    def __init__(
        self,
        index_dir: Path,
        model: ModelIdentity,
        chunking: ChunkingSettings,
        lexical: LexicalSettings | None = None,
    ) -> None:
        self.index_dir = index_dir
        self.model = model
        self.chunking = chunking
        self.lexical = lexical or LexicalSettings()
        self._analyzer: Analyzer | None = None
        self._lock_fh: int | None = None
        self._tmp: Path | None = None
        self._conn: sqlite3.Connection | None = None
        self._vectors: VectorIndex | None = None
        self._created_at = _now()

    def __enter__(self) -> IndexWriter:
        self.open()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is not None:
            self.abort()
        elif self._tmp is not None:  # not committed explicitly inside the block
            self.commit()

    def open(self) -> None:
        try:
            (self.index_dir / "versions").mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise IndexStoreError(f"cannot create index folder {self.index_dir}: {exc.strerror}") from None
        self._lock_fh = os.open(self.index_dir / ".lock", os.O_CREAT | os.O_RDWR, 0o644)
        try:
            fcntl.flock(self._lock_fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock_fh)
            self._lock_fh = None
            raise IndexStoreError(f"index {self.index_dir} is being written by another process") from None
        self._remove_stale_temp()
        self._tmp = self.index_dir / "versions" / f"tmp-{uuid.uuid4().hex}"
        self._tmp.mkdir()
        previous = self._previous_version()
        if previous is None:
            self._conn = sqlite3.connect(self._tmp / _SQLITE)
            self._conn.executescript(_SCHEMA)
            self._vectors = VectorIndex(self.model.dimension)
            return
        manifest = _read_manifest(previous)
        if not manifest.model.compatible_with(self.model):
            self.abort()
            raise ModelMismatchError(
                f"index {self.index_dir} was built with model {manifest.model.name!r}, not {self.model.name!r}",
                hint="use the same --model, or build a new index in another folder",
            )
        self._created_at = manifest.created_at
        self.lexical = manifest.lexical  # terms must stay comparable with what is indexed
        source = _connect(previous / _SQLITE, readonly=True)
        self._conn = sqlite3.connect(self._tmp / _SQLITE)
        with contextlib.closing(source):
            source.backup(self._conn)
        self._conn.execute("PRAGMA foreign_keys = ON")
        self._vectors = VectorIndex.load(previous / _VECTORS, self.model.dimension)

    def _previous_version(self) -> Path | None:
        try:
            return live_version(self.index_dir)
        except IndexNotFoundError:
            return None

    def _remove_stale_temp(self) -> None:
        for folder in (self.index_dir / "versions").glob("tmp-*"):
            shutil.rmtree(folder, ignore_errors=True)

    @property
    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise IndexStoreError("index writer is not open")
        return self._conn

    @property
    def _index(self) -> VectorIndex:
        if self._vectors is None:
            raise IndexStoreError("index writer is not open")
        return self._vectors

    def delete(self, doc_id: str) -> bool:
        """Remove an article and its passages; False if it was not there."""
        rows = [r for (r,) in self._db.execute("SELECT row_id FROM passages WHERE doc_id = ?", (doc_id,))]
        self._index.remove(np.asarray(rows, dtype=np.int64))
        self._db.executemany("DELETE FROM lexical WHERE rowid = ?", [(r,) for r in rows])
        cur = self._db.execute("DELETE FROM documents WHERE doc_id = ?", (doc_id,))
        return cur.rowcount > 0

    def upsert(self, article: Article, passages: Sequence[Passage], vectors: NDArray[np.float32]) -> None:
        """Add an article, replacing every passage of an earlier one with the same id."""
        if len(passages) != len(vectors):
            raise ValueError("one vector per passage is required")
        self.delete(article.id)
        self._db.execute(
            "INSERT INTO documents (doc_id, title, text, url, source, published_at, lang, section, tags, "
            "published_ts, indexed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
            ),
        )
        (start,) = self._db.execute("SELECT coalesce(max(row_id), 0) + 1 FROM passages").fetchone()
        row_ids = np.arange(start, start + len(passages), dtype=np.int64)
        self._db.executemany(
            "INSERT INTO passages (row_id, passage_id, doc_id, ordinal, text, vector) VALUES (?, ?, ?, ?, ?, ?)",
            [
                (int(row), p.id, article.id, p.ordinal, p.text, np.asarray(v, dtype=np.float32).tobytes())
                for row, p, v in zip(row_ids, passages, vectors, strict=True)
            ],
        )
        if self._analyzer is None:
            self._analyzer = Analyzer(self.lexical)
        analyzer = self._analyzer
        self._db.executemany(
            "INSERT INTO lexical (rowid, terms) VALUES (?, ?)",
            [(int(row), " ".join(analyzer.terms(p.embed_text))) for row, p in zip(row_ids, passages, strict=True)],
        )
        self._index.add(row_ids, np.asarray(vectors, dtype=np.float32))

    def counts(self) -> tuple[int, int]:
        (docs,) = self._db.execute("SELECT count(*) FROM documents").fetchone()
        (passages,) = self._db.execute("SELECT count(*) FROM passages").fetchone()
        return int(docs), int(passages)

    def commit(self) -> Manifest:
        """Make the written version live, atomically; returns its manifest."""
        if self._tmp is None:
            raise IndexStoreError("index writer is not open")
        docs, passages = self.counts()
        if passages != len(self._index):
            raise IndexCorruptError(f"internal inconsistency: {passages} passages vs {len(self._index)} vectors")
        self._db.commit()
        self._db.close()
        self._conn = None
        self._index.save(self._tmp / _VECTORS)
        name = self._next_version_name()
        manifest = Manifest(
            format_version=FORMAT_VERSION,
            version=name,
            model=self.model,
            chunking=self.chunking,
            vector_index=self._index.kind,
            lexical=self.lexical,
            documents=docs,
            passages=passages,
            created_at=self._created_at,
            updated_at=_now(),
        )
        _write_atomic(self._tmp / _MANIFEST, msgspec.json.format(msgspec.json.encode(manifest)))
        for child in self._tmp.iterdir():
            with open(child, "rb") as fh:
                os.fsync(fh.fileno())
        final = self._tmp.parent / name
        os.rename(self._tmp, final)
        self._tmp = None
        _fsync_dir(final.parent)
        _write_atomic(self.index_dir / "CURRENT", f"{name}\n".encode())
        self._prune()
        self._release()
        return manifest

    def _next_version_name(self) -> str:
        numbers = [int(p.name[1:]) for p in (self.index_dir / "versions").glob("v*") if p.name[1:].isdigit()]
        return f"v{max(numbers, default=0) + 1:06d}"

    def _prune(self) -> None:
        versions = sorted(p for p in (self.index_dir / "versions").glob("v*") if p.name[1:].isdigit())
        for old in versions[:-KEEP_VERSIONS]:
            shutil.rmtree(old, ignore_errors=True)

    def abort(self) -> None:
        """Drop everything written; the live version stays as it was."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None
        self._release()

    def _release(self) -> None:
        if self._lock_fh is not None:
            fcntl.flock(self._lock_fh, fcntl.LOCK_UN)
            os.close(self._lock_fh)
            self._lock_fh = None


def iter_versions(index_dir: Path) -> Iterator[Manifest]:
    """Manifests of the kept versions, oldest first."""
    for folder in sorted((index_dir / "versions").glob("v*")):
        with contextlib.suppress(IndexCorruptError):
            yield _read_manifest(folder)
