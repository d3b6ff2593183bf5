"""``DIR/writes.sqlite``: each write to a sharded archive, logged durably before any shard is written.

A write to several shards is several SQLite transactions, so a crash can fall between them.
The writer therefore logs the whole request first -- its upserts with the row ids and story
clusters already decided, and its deletes -- with ``synchronous=FULL``, writes the shards, and
only then marks the entry done. At the next write or open, an entry not marked done is
applied again: upserts replace by id with the same rows and clusters, deletes remove what is
there, so applying an entry twice leaves what applying it once does. Done entries are
dropped but the last, which keeps the sequence number and the highest row id handed out.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import msgspec
import numpy as np

from poshuk.documents import Article, Passage
from poshuk.errors import IndexBusyError, IndexCorruptError
from poshuk.index import Upsert
from poshuk.index.db import BUSY_TIMEOUT_MS
from poshuk.index.layout import SET_NAME

JOURNAL_NAME = "writes.sqlite"
LOCK_TIMEOUT_S = 30.0  # how long a write waits for another process's write (a `poshuk index` group)


@contextlib.contextmanager
def archive_lock(index_dir: Path, timeout_s: float = LOCK_TIMEOUT_S) -> Iterator[None]:
    """The archive's write lock across processes: ``flock`` on its ``SET`` (the kernel releases it if
    we die). A split replaces ``SET`` while holding it; writers then find ``SET`` changed."""
    fd = os.open(index_dir / SET_NAME, os.O_RDONLY)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise IndexBusyError(
                        f"the sharded archive {index_dir} is being written by another process",
                        hint="retry in a moment",
                    ) from None
                time.sleep(0.02)
        yield
    finally:
        os.close(fd)  # releases the flock


_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    last_row INTEGER NOT NULL,
    body BLOB NOT NULL,
    done INTEGER NOT NULL DEFAULT 0
);
"""


def last_seq(index_dir: Path) -> int:
    """The sequence number of the archive's last logged write (0 before the first): ``SET`` records
    the one its split included, so a higher one means writes its staging index lacks."""
    path = index_dir / JOURNAL_NAME
    if not path.is_file():
        return 0
    db = sqlite3.connect(path)  # not mode=ro: closing it, as the last connection, tidies the -wal away
    try:
        if db.execute("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_sequence'").fetchone() is None:
            return 0  # created, nothing logged yet
        found = db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'entries'").fetchone()
    except sqlite3.DatabaseError as exc:
        raise IndexCorruptError(f"cannot read the write journal {path}: {exc}") from None
    finally:
        db.close()
    return 0 if found is None else int(found[0])


class _Logged(msgspec.Struct, frozen=True, kw_only=True):
    """One upsert as it will be written: nothing left to decide when it is applied again."""

    article: Article
    passages: list[Passage]
    vectors: bytes  # float32, one row per passage
    terms: list[str]
    signature: bytes  # uint64 MinHash
    rows: list[int]
    cluster: str


class _Body(msgspec.Struct, frozen=True, kw_only=True):
    upserts: list[_Logged] = []
    deletes: list[str] = []


class Entry(msgspec.Struct, frozen=True, kw_only=True):
    """A logged write, ready to apply."""

    seq: int
    upserts: list[Upsert]
    deletes: list[str]


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(_Body)


class Journal:
    """The archive's write log (created on the first write)."""

    def __init__(self, path: Path, dimension: int) -> None:
        self.path = path
        self.dimension = dimension
        self._db: sqlite3.Connection | None = None

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            try:
                db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
                db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
                db.execute("PRAGMA journal_mode = WAL")
                db.execute("PRAGMA synchronous = FULL")
                db.executescript(_SCHEMA)
            except sqlite3.DatabaseError as exc:
                raise IndexCorruptError(f"cannot read the write journal {self.path}: {exc}") from None
            self._db = db
        return self._db

    def exists(self) -> bool:
        return self._db is not None or self.path.is_file()

    def last_row(self) -> int:
        """The highest row id any logged write was given (0 before the first)."""
        if not self.exists():
            return 0
        (found,) = self._conn().execute("SELECT max(last_row) FROM entries").fetchone()
        return int(found or 0)

    def append(self, upserts: Sequence[Upsert], deletes: Sequence[str], last_row: int) -> int:
        """Log a write durably (committed with ``synchronous=FULL`` when this returns); its sequence number."""
        body = _Body(upserts=[_logged(item) for item in upserts], deletes=list(deletes))
        cursor = self._conn().execute(
            "INSERT INTO entries (last_row, body) VALUES (?, ?)", (last_row, _encoder.encode(body))
        )
        return int(cursor.lastrowid or 0)

    def finish(self, seq: int) -> None:
        """Mark a write applied to every shard; drop the done entries before it."""
        db = self._conn()
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute("UPDATE entries SET done = 1 WHERE seq = ?", (seq,))
            db.execute("DELETE FROM entries WHERE done = 1 AND seq < ?", (seq,))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def unfinished(self) -> list[Entry]:
        """Logged writes not known to be applied to every shard, oldest first."""
        if not self.exists():
            return []
        found = self._conn().execute("SELECT seq, body FROM entries WHERE done = 0 ORDER BY seq").fetchall()
        out = []
        for seq, blob in found:
            try:
                body = _decoder.decode(blob)
            except msgspec.DecodeError as exc:
                raise IndexCorruptError(f"write {seq} in {self.path} cannot be read: {exc}") from None
            out.append(Entry(seq=int(seq), upserts=[self._upsert(u) for u in body.upserts], deletes=body.deletes))
        return out

    def _upsert(self, item: _Logged) -> Upsert:
        vectors = np.frombuffer(item.vectors, dtype=np.float32).reshape(len(item.passages), self.dimension)
        return Upsert(
            item.article,
            item.passages,
            vectors.copy(),
            terms=item.terms,
            signature=np.frombuffer(item.signature, dtype=np.uint64).copy(),
            rows=item.rows,
            cluster=item.cluster,
        )

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None


def _logged(item: Upsert) -> _Logged:
    if item.terms is None or item.signature is None or item.rows is None or item.cluster is None:
        raise ValueError("a logged upsert has its terms, MinHash, rows and cluster decided")
    return _Logged(
        article=item.article,
        passages=list(item.passages),
        vectors=np.ascontiguousarray(item.vectors, dtype=np.float32).tobytes(),
        terms=list(item.terms),
        signature=np.asarray(item.signature, dtype=np.uint64).tobytes(),
        rows=[int(r) for r in item.rows],
        cluster=item.cluster,
    )
