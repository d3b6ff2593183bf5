"""SQLite, the index's truth: schema, connections, and rows mapped to structs.

WAL mode with ``synchronous=FULL``: a committed write survives ``kill -9``. Each thread
that reads gets its own connection (``ReadConnections``), so a reader sees a consistent
snapshot and never waits for a writer, and a writer's ``BEGIN IMMEDIATE`` never waits for
readers. Only writers share a connection, behind the writer's own lock.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
from numpy.typing import NDArray

from poshuk.documents import Article
from poshuk.errors import IndexCorruptError, StorageFullError

BUSY_TIMEOUT_MS = 10_000
SQLITE_NAME = "meta.sqlite"
_IN_CHUNK = 900  # ids per `IN (...)` list: under SQLite's variable limit (999 before 3.32)

# Article-level BM25: one row per article unit -- an article, or one page of a document with
# pages -- holding the terms of all its passages, keyed by the row id of its first passage
# (row ids are never reused, so the key is stable).
ARTICLE_SCHEMA = """
CREATE VIRTUAL TABLE IF NOT EXISTS article_lexical USING fts5(
    terms, tokenize = "unicode61 remove_diacritics 0", prefix = '4'
);
"""

SCHEMA = (
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
    vector BLOB NOT NULL,
    page INTEGER
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
    + ARTICLE_SCHEMA
)


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
    page: int | None = None


class StoredDocument(msgspec.Struct, frozen=True, kw_only=True):
    """An article as stored, with its passages in order."""

    article: Article
    passages: list[StoredPassage]


def connect(
    path: Path, *, create: bool = False, read_only: bool = False, immutable: bool | None = None
) -> sqlite3.Connection:
    """A connection in WAL mode with ``synchronous=FULL``; ``create`` makes the schema.

    ``read_only`` opens it so that nothing in the folder is created or changed (a read-only
    mount, ``poshuk serve --read-only``): see ``read_only_uri`` (``immutable``: None decides
    by whether a ``-wal`` exists now).
    """
    if not create and not path.is_file():
        raise IndexCorruptError(f"index database {path} is missing")
    try:
        if read_only:
            uri = read_only_uri(path, immutable)
            conn = sqlite3.connect(
                uri, uri=True, check_same_thread=False, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000
            )
            conn.execute("PRAGMA query_only = ON")
        else:
            conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000)
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA foreign_keys = ON")
        if create:
            conn.executescript(SCHEMA)
        conn.execute("SELECT count(*) FROM passages").fetchone()
        conn.execute("SELECT count(*) FROM changes").fetchone()
    except sqlite3.DatabaseError as exc:
        raise IndexCorruptError(f"cannot read {path}: {exc}") from None
    return conn


def read_only_uri(path: Path, immutable: bool | None = None) -> str:
    """The SQLite URI that reads ``path`` without creating or changing any file.

    A WAL database read with ``mode=ro`` still needs its ``-shm`` and ``-wal``: when they are
    absent (no writer has the database open) SQLite must create them, which fails on a
    read-only folder ("attempt to write a readonly database"). Then the database is whole in
    its main file, and ``immutable=1`` reads it with no side files and no locks. When a
    ``-wal`` exists a writer is (or was) active and committed pages may live only there:
    ``mode=ro`` reads them (SQLite 3.22+ copes with a ``-shm`` it cannot write), where
    ``immutable=1`` would miss them. Both measured on a ``chmod -R a-w`` copy, as an
    unprivileged user.
    """
    uri = path.resolve().as_uri()
    if immutable is None:
        immutable = not wal_path(path).exists()
    if not immutable:
        return f"{uri}?mode=ro"
    return f"{uri}?mode=ro&immutable=1"


def wal_path(path: Path) -> Path:
    """The database's write-ahead log (present while a writer has it open)."""
    return path.with_name(path.name + "-wal")


def storage_error(exc: sqlite3.Error) -> StorageFullError | None:
    """The ``StorageFullError`` a failed write means, or None when it is another failure."""
    if getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL or "disk is full" in str(exc):
        return StorageFullError(
            "the index's disk is full: the write was rolled back and nothing changed",
            hint="free disk space, then retry",
        )
    return None


def rollback(conn: sqlite3.Connection) -> None:
    """Roll back the open transaction, if SQLite has not already done so (it does on a full disk)."""
    if conn.in_transaction:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")


class ReadConnections:
    """One read connection per thread, opened on first use and closed with the index.

    In WAL mode each connection reads its own snapshot: readers never block writers or
    each other, and take no Python lock.
    """

    def __init__(self, path: Path, *, read_only: bool = False) -> None:
        self.path = path
        self.read_only = read_only
        # Decided once, so every thread reads the same way (see ``read_only_uri``).
        self.immutable = read_only and not wal_path(path).exists()
        self._opened_as = _file_state(path) if self.immutable else None
        self._wal_as = _file_state(wal_path(path), inode=True) if read_only else None
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._all_lock = threading.Lock()
        self._closed = False

    def changed_underneath(self) -> bool:
        """Whether a read-only open no longer sees the database right: its ``-wal`` appeared,
        went or was replaced (a writer came, or the last one left and removed it: a reader that
        cannot write the ``-shm`` does not hold it open), or, when immutable, the main file changed."""
        if not self.read_only:
            return False
        if _file_state(wal_path(self.path), inode=True) != self._wal_as:
            return True
        return self.immutable and _file_state(self.path) != self._opened_as

    def get(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            if self._closed:
                raise IndexCorruptError(f"index database {self.path} is closed")
            conn = connect(self.path, read_only=self.read_only, immutable=self.immutable)
            conn.execute("PRAGMA query_only = ON")
            self._local.conn = conn
            with self._all_lock:
                self._all.append(conn)
        return conn

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[sqlite3.Connection]:
        """This thread's connection inside one read transaction: every query sees the same state."""
        conn = self.get()
        if conn.in_transaction:  # nested: the outer snapshot already holds one
            yield conn
            return
        conn.execute("BEGIN")
        try:
            yield conn
        finally:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("COMMIT")

    def close(self) -> None:
        self._closed = True
        with self._all_lock:
            conns, self._all = self._all, []
        for conn in conns:
            with contextlib.suppress(sqlite3.Error):
                conn.close()


def _file_state(path: Path, *, inode: bool = False) -> tuple[int, ...] | None:
    """(mtime, size) of the file, or its identity (device, inode) with ``inode``; None if absent."""
    try:
        found = path.stat()
    except OSError:
        return None
    return (found.st_dev, found.st_ino) if inode else (found.st_mtime_ns, found.st_size)


def has_articles(conn: sqlite3.Connection) -> bool:
    """Whether the database has the article-level BM25 table (indexes made before it lack it)."""
    found = conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'article_lexical'").fetchone()
    return found is not None


def add_articles(conn: sqlite3.Connection) -> None:
    """Give an index made before article-level BM25 its article table, from the passages' stored terms.

    Best effort and idempotent (``_upgrade``): a read-only or busy database keeps searching without
    article evidence, and the next open tries again. Writers maintain the table whenever it exists.
    """

    def change(conn: sqlite3.Connection) -> None:
        conn.execute(ARTICLE_SCHEMA.strip().rstrip(";"))
        unit = "p.doc_id, p.page" if has_pages(conn) else "p.doc_id"  # an article, or a page of one (ARTICLE_SCHEMA)
        conn.execute(
            "INSERT INTO article_lexical (rowid, terms) SELECT min(p.row_id), group_concat(l.terms, ' ') "
            f"FROM passages p JOIN lexical l ON l.rowid = p.row_id GROUP BY {unit}"
        )

    _upgrade(conn, has_articles, change)


def has_pages(conn: sqlite3.Connection) -> bool:
    """Whether passages record their page (indexes made before documents with pages lack the column)."""
    return any(row[1] == "page" for row in conn.execute("PRAGMA table_info(passages)"))


def add_pages(conn: sqlite3.Connection) -> None:
    """Give an index made before documents with pages its ``passages.page`` column (NULL: not paged).

    Best effort and idempotent (``_upgrade``): a busy database gets it at the next open, and until
    then writers store no pages (``Stager(pages=False)``) and readers read none.
    """
    _upgrade(conn, has_pages, lambda conn: conn.execute("ALTER TABLE passages ADD COLUMN page INTEGER"))


def _upgrade(
    conn: sqlite3.Connection,
    present: Callable[[sqlite3.Connection], bool],
    change: Callable[[sqlite3.Connection], object],
) -> None:
    """Make ``change`` once, under the write lock, unless ``present`` says it is made; a database that
    is busy or read-only is left as it is (no error: the next open tries again)."""
    if present(conn):
        return
    try:
        conn.execute("BEGIN IMMEDIATE")
    except sqlite3.Error:
        return
    try:
        if not present(conn):
            change(conn)
        conn.execute("COMMIT")
    except sqlite3.Error:
        rollback(conn)


def last_seq(conn: sqlite3.Connection) -> int:
    (last,) = conn.execute("SELECT coalesce(max(seq), 0) FROM changes").fetchone()
    return int(last)


def last_row(conn: sqlite3.Connection) -> int:
    """The highest passage row id ever given (``AUTOINCREMENT``'s, deleted rows included)."""
    found = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'passages'").fetchone()
    return 0 if found is None else int(found[0])


def page_column(pages: bool) -> str:
    """What a query over ``passages p`` selects as the page: the column, or NULL where it is absent."""
    return "p.page" if pages else "NULL"


def passage_select(pages: bool) -> str:
    """The SELECT that ``passage_from_row`` maps; ``pages``: whether the database has ``passages.page``."""
    return f"""
SELECT p.row_id, p.passage_id, p.doc_id, p.ordinal, p.text,
       d.title, d.url, d.source, d.published_at, d.lang, d.cluster, {page_column(pages)}
FROM passages p JOIN documents d ON d.doc_id = p.doc_id
"""


FACTS_SELECT = (
    "SELECT d.doc_id, d.source, d.section, d.lang, d.tags, d.published_ts "
    "FROM passages p JOIN documents d ON d.doc_id = p.doc_id"
)
GROUP_SELECT = (
    "SELECT p.row_id, p.doc_id, d.cluster, d.published_ts FROM passages p JOIN documents d ON d.doc_id = p.doc_id"
)


def passage_from_row(row: tuple[object, ...]) -> StoredPassage:
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
        page=None if row[11] is None else int(str(row[11])),
    )


DOCUMENT_SELECT = "SELECT doc_id, title, text, url, source, published_at, lang, section, tags FROM documents"


def article_from_row(row: tuple[Any, ...]) -> Article:
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


def select_in(conn: sqlite3.Connection, sql: str, ids: Sequence[int] | Sequence[str] | NDArray[np.int64]) -> list[Any]:
    """All rows of ``sql`` (whose one ``IN ({})`` takes the ids: row ids, or article ids) for ``ids``,
    in chunks SQLite accepts."""
    found: list[Any] = []
    for start in range(0, len(ids), _IN_CHUNK):
        chunk = [i if isinstance(i, str) else int(i) for i in ids[start : start + _IN_CHUNK]]
        found += conn.execute(sql.format(",".join("?" * len(chunk))), chunk).fetchall()
    return found


def vectors_of(rows: Sequence[tuple[int, bytes]], dim: int) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
    """(row ids, matrix) of ``(row_id, vector blob)`` rows."""
    ids = np.fromiter((r for r, _ in rows), dtype=np.int64, count=len(rows))
    matrix = np.frombuffer(b"".join(v for _, v in rows), dtype=np.float32).reshape(len(rows), dim)
    return ids, matrix
