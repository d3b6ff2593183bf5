"""The sharded index folder: ``DIR/SET`` names the shards and which bucket each owns.

An article's bucket is a stable 64-bit hash of its id modulo ``BUCKETS`` (Python's ``hash``
is salted per process, so it cannot be used); ``SET.map`` gives each bucket's shard, so a
later re-sharding moves whole buckets. All passages of an article live on its shard, which
collapse, coverage and the article-level BM25 need. ``DIR/shard-NNN`` is a normal index;
``DIR/staging`` (``poshuk index --shards``) is one index of every article, already encoded,
from which the shards are split again -- a new generation of folders, then ``SET`` replaced
in one atomic rename: readers see the old shards or the new ones, never a mix.
"""

from __future__ import annotations

import hashlib
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import msgspec
import numpy as np

from poshuk.atomic import write_file
from poshuk.documents import Passage
from poshuk.errors import IndexStoreError
from poshuk.index import Index, IndexWriter, Upsert, live_version
from poshuk.index.db import DOCUMENT_SELECT, SQLITE_NAME, article_from_row, connect, has_pages
from poshuk.index.layout import SET_NAME, Manifest
from poshuk.shards.journal import archive_lock, has_writes

BUCKETS = 4096
FORMAT = 1
_BATCH = 256  # articles per write transaction while splitting


class ShardSet(msgspec.Struct, frozen=True, kw_only=True):
    """The shards of one archive and the bucket -> shard map (replaced atomically as a whole)."""

    format: int = FORMAT
    buckets: int = BUCKETS
    generation: int = 1  # bumped by every split: the shard folders' names carry it
    shards: list[str]
    map: list[int]  # shard number of each bucket

    def shard_of(self, doc_id: str) -> int:
        return self.map[bucket_of(doc_id, self.buckets)]


def bucket_of(doc_id: str, buckets: int = BUCKETS) -> int:
    """The article's bucket: blake2b-64 of its id, the same in every process and on every machine."""
    digest = hashlib.blake2b(doc_id.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % buckets


def is_sharded(index_dir: Path) -> bool:
    return (index_dir / SET_NAME).is_file()


def read_set(index_dir: Path) -> ShardSet:
    try:
        found = msgspec.json.decode((index_dir / SET_NAME).read_bytes(), type=ShardSet)
    except (OSError, msgspec.DecodeError) as exc:
        raise IndexStoreError(f"cannot read the shard set of {index_dir}: {exc}") from None
    if found.format != FORMAT or len(found.map) != found.buckets or not found.shards:
        raise IndexStoreError(f"{index_dir / SET_NAME} is not a shard set this version understands")
    if any(not 0 <= shard < len(found.shards) for shard in found.map):
        raise IndexStoreError(f"{index_dir / SET_NAME} maps a bucket to a shard it does not list")
    return found


STAGING = "staging"


def refuse_written(index_dir: Path) -> None:
    """``IndexStoreError`` if the archive took writes through its shards' writer: they are not in its
    staging index, so splitting that again would lose them (carrying them over is not built yet)."""
    if has_writes(index_dir):
        raise IndexStoreError(
            f"{index_dir} took writes through its shards since it was split: splitting its staging index "
            "again would lose them",
            hint="keep the shard count (index without --shards), or rebuild from the sources into a new folder",
        )


MAX_SHARDS = 256


def even_set(shards: int, generation: int = 1) -> ShardSet:
    """``shards`` shards, buckets dealt round-robin."""
    if not 1 <= shards <= MAX_SHARDS:
        raise IndexStoreError(f"shards must be between 1 and {MAX_SHARDS}, got {shards}")
    suffix = "" if generation == 1 else f"-g{generation}"
    return ShardSet(
        generation=generation,
        shards=[f"shard-{n:03d}{suffix}" for n in range(shards)],
        map=[b % shards for b in range(BUCKETS)],
    )


def _upserts(source: Index) -> Iterator[Upsert]:
    """Every article of ``source`` as it is stored (rows, vectors, terms, MinHash, cluster), in row order."""
    conn = source.read()
    order = conn.execute(
        "SELECT d.doc_id, d.cluster, d.minhash, min(p.row_id) AS first FROM documents d "
        "LEFT JOIN passages p ON p.doc_id = d.doc_id GROUP BY d.doc_id ORDER BY first IS NULL, first, d.doc_id"
    ).fetchall()
    dim = source.manifest.model.dimension
    page = "p.page" if has_pages(conn) else "NULL"
    for doc_id, cluster, minhash, _ in order:
        article = article_from_row(conn.execute(f"{DOCUMENT_SELECT} WHERE doc_id = ?", (doc_id,)).fetchone())
        rows = conn.execute(
            f"SELECT p.row_id, p.passage_id, p.ordinal, p.text, p.vector, l.terms, {page} FROM passages p "
            "LEFT JOIN lexical l ON l.rowid = p.row_id WHERE p.doc_id = ? ORDER BY p.ordinal",
            (doc_id,),
        ).fetchall()
        passages = [
            Passage(id=pid, doc_id=doc_id, ordinal=o, text=t, embed_text=t, page=number)
            for _, pid, o, t, _, _, number in rows
        ]
        vectors = np.zeros((len(rows), dim), dtype=np.float32)
        for n, (_, _, _, _, blob, _, _) in enumerate(rows):
            vectors[n] = np.frombuffer(blob, dtype=np.float32, count=dim)
        yield Upsert(
            article,
            passages,
            vectors,
            terms=[terms or "" for _, _, _, _, _, terms, _ in rows],
            signature=None if minhash is None else np.frombuffer(minhash, dtype=np.uint64).copy(),
            rows=[int(r) for r, *_ in rows],
            cluster=cluster,
        )


def _last_row(conn: sqlite3.Connection) -> int:
    """The highest passage row id ever given (``AUTOINCREMENT``'s, deleted rows included)."""
    found = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'passages'").fetchone()
    return 0 if found is None else int(found[0])


def _raise_last_row(shard_dir: Path, last_row: int) -> None:
    conn = connect(live_version(shard_dir) / SQLITE_NAME)
    try:
        if conn.execute("UPDATE sqlite_sequence SET seq = max(seq, ?) WHERE name = 'passages'", (last_row,)).rowcount:
            return
        conn.execute("INSERT INTO sqlite_sequence (name, seq) VALUES ('passages', ?)", (last_row,))
    finally:
        conn.close()


def split_index(source_dir: Path, dest: Path, shards: int) -> ShardSet:
    """Split the live version of ``source_dir`` into ``shards`` shards under ``dest`` without
    encoding anything again: row ids, vectors, terms and story clusters are carried as they are,
    so the shards answer as the source does. Over an existing split, the new shards replace the
    old ones at once (a new generation, then ``SET``); a folder holding one index is refused."""
    if (dest / "CURRENT").exists():
        raise IndexStoreError(f"{dest} holds one index: split it into a new folder")
    previous = read_set(dest) if is_sharded(dest) else None
    if previous is None:
        return _split(source_dir, dest, shards, None)
    with archive_lock(dest):  # no write to the old shards from here to the new SET
        refuse_written(dest)
        return _split(source_dir, dest, shards, read_set(dest))


def _split(source_dir: Path, dest: Path, shards: int, previous: ShardSet | None) -> ShardSet:
    shard_set = even_set(shards, 1 if previous is None else previous.generation + 1)
    for name in shard_set.shards:
        shutil.rmtree(dest / name, ignore_errors=True)  # a split that died before its SET: never live
    source = Index.open(source_dir, read_only=True)
    writers: list[IndexWriter] = []
    try:
        manifest: Manifest = source.manifest
        last_row = _last_row(source.read())
        for name in shard_set.shards:
            writers.append(IndexWriter(dest / name, manifest.model, manifest.chunking, manifest.lexical))
            writers[-1].open()
        pending: list[list[Upsert]] = [[] for _ in writers]
        for item in _upserts(source):
            owner = shard_set.shard_of(item.article.id)
            pending[owner].append(item)
            if len(pending[owner]) >= _BATCH:
                writers[owner].upsert_many(pending[owner])
                writers[owner].flush()
                pending[owner] = []
        for writer, left in zip(writers, pending, strict=True):
            writer.upsert_many(left)
            writer.commit()
    except BaseException:
        for writer in writers:
            writer.abort()
        raise
    finally:
        source.close()
    for name in shard_set.shards:  # the next row a write gets is one node's next, deleted rows counted
        _raise_last_row(dest / name, last_row)
    write_file(dest / SET_NAME, msgspec.json.encode(shard_set))
    for name in [] if previous is None else previous.shards:
        shutil.rmtree(dest / name, ignore_errors=True)
    return shard_set
