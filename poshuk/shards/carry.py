"""Carrying an archive's writes into its staging index, so that splitting it again loses nothing.

Writes to an archive go to its shards (``writer``), not to ``DIR/staging``, the one index the
shards are split from. Before a split, ``carry_over`` makes staging the union of the shards
again without encoding anything: every article whose stored version differs from staging's is
copied as it is stored (rows, vectors, terms, MinHash, story cluster), every article no shard
has is deleted, and staging's row counter is raised to the highest row ever handed out, so the
next split and the writes after it go on with one node's row ids.

An article is compared by its story cluster and its rows (how many, the first and the last):
every write hands out fresh rows above every row before it, so an article written since the
split differs in its first row, and one that was not has the same rows in both. Only articles
with no passages (no rows to tell by) are copied every time. An archive that took few writes
is compared by one indexed pass over ``documents`` per index and copies only those few.
"""

from __future__ import annotations

import contextlib
import heapq
import sqlite3
from collections.abc import Iterable, Iterator
from pathlib import Path

import msgspec
import numpy as np

from poshuk.documents import Passage
from poshuk.errors import IndexStoreError
from poshuk.index import IndexWriter, Upsert, live_version
from poshuk.index.db import DOCUMENT_SELECT, SQLITE_NAME, article_from_row, connect, has_pages, last_row
from poshuk.index.layout import read_manifest
from poshuk.shards.journal import JOURNAL_NAME, Journal
from poshuk.shards.layout import STAGING, read_set
from poshuk.shards.shard import LocalShard
from poshuk.shards.writer import finish_logged, open_shards

_BATCH = 256  # articles per write transaction

_FINGERPRINTS = (
    "SELECT d.doc_id, d.cluster, count(p.row_id), min(p.row_id), max(p.row_id) FROM documents d "
    "LEFT JOIN passages p ON p.doc_id = d.doc_id GROUP BY d.doc_id ORDER BY d.doc_id"
)

Fingerprint = tuple[str | None, int, int | None, int | None]  # (cluster, passages, first row, last row)


class Carried(msgspec.Struct, frozen=True, kw_only=True):
    """What a carry-over changed in staging."""

    written: int  # articles copied from the shards (new or rewritten since the split)
    deleted: int  # articles deleted from staging (deleted through the shards, or never in them)
    last_row: int  # the highest row id ever handed out, staging's counter now


def stored_upserts(conn: sqlite3.Connection, dimension: int, doc_ids: Iterable[str] | None = None) -> Iterator[Upsert]:
    """Articles as they are stored (rows, vectors, terms, MinHash, cluster): ``doc_ids`` in that order,
    or every article in row order."""
    if doc_ids is None:
        order = conn.execute(
            "SELECT d.doc_id, min(p.row_id) AS first FROM documents d LEFT JOIN passages p ON p.doc_id = d.doc_id "
            "GROUP BY d.doc_id ORDER BY first IS NULL, first, d.doc_id"
        )
        doc_ids = (str(doc_id) for doc_id, _ in order.fetchall())
    page = "p.page" if has_pages(conn) else "NULL"
    for doc_id in doc_ids:
        found = conn.execute(f"{DOCUMENT_SELECT} WHERE doc_id = ?", (doc_id,)).fetchone()
        if found is None:
            raise IndexStoreError(f"article {doc_id!r} vanished while it was read")
        cluster, minhash = conn.execute("SELECT cluster, minhash FROM documents WHERE doc_id = ?", (doc_id,)).fetchone()
        rows = conn.execute(
            f"SELECT p.row_id, p.passage_id, p.ordinal, p.text, p.vector, l.terms, {page} FROM passages p "
            "LEFT JOIN lexical l ON l.rowid = p.row_id WHERE p.doc_id = ? ORDER BY p.ordinal",
            (doc_id,),
        ).fetchall()
        passages = [
            Passage(id=pid, doc_id=doc_id, ordinal=o, text=t, embed_text=t, page=number)
            for _, pid, o, t, _, _, number in rows
        ]
        vectors = np.zeros((len(rows), dimension), dtype=np.float32)
        for n, (_, _, _, _, blob, _, _) in enumerate(rows):
            vectors[n] = np.frombuffer(blob, dtype=np.float32, count=dimension)
        yield Upsert(
            article_from_row(found),
            passages,
            vectors,
            terms=[terms or "" for _, _, _, _, _, terms, _ in rows],
            signature=None if minhash is None else np.frombuffer(minhash, dtype=np.uint64).copy(),
            rows=[int(r) for r, *_ in rows],
            cluster=cluster,
        )


def raise_last_row(index_dir: Path, row: int) -> None:
    """Make the live version's next passage row ``row + 1`` at least."""
    conn = connect(live_version(index_dir) / SQLITE_NAME)
    try:
        if conn.execute("UPDATE sqlite_sequence SET seq = max(seq, ?) WHERE name = 'passages'", (row,)).rowcount:
            return
        conn.execute("INSERT INTO sqlite_sequence (name, seq) VALUES ('passages', ?)", (row,))
    finally:
        conn.close()


def _fingerprints(conn: sqlite3.Connection) -> Iterator[tuple[str, Fingerprint]]:
    for doc_id, cluster, count, first, last in conn.execute(_FINGERPRINTS):
        yield str(doc_id), (cluster, int(count), first, last)


def _tag(found: Iterator[tuple[str, Fingerprint]], shard: int) -> Iterator[tuple[str, int, Fingerprint]]:
    for doc_id, print_ in found:
        yield doc_id, shard, print_


def _differences(
    staged: Iterator[tuple[str, Fingerprint]], shards: list[Iterator[tuple[str, Fingerprint]]]
) -> tuple[list[str], list[list[str]]]:
    """(staging's articles to delete, each shard's articles to copy), in one merge of the lists
    ordered by id (SQLite's ``BINARY`` order of UTF-8 is Python's order of ``str``)."""
    stale: list[str] = []
    copy: list[list[str]] = [[] for _ in shards]
    tagged = [_tag(found, n) for n, found in enumerate(shards)]
    here = next(staged, None)
    for doc_id, owner, print_ in heapq.merge(*tagged):
        while here is not None and here[0] < doc_id:
            stale.append(here[0])  # deleted through the shards (or never in them)
            here = next(staged, None)
        if here is not None and here[0] == doc_id:
            same = here[1] == print_ and print_[1] > 0
            here = next(staged, None)
            if same:
                continue
            stale.append(doc_id)  # written since the split: its old rows go before any copied row lands
        copy[owner].append(doc_id)
    while here is not None:
        stale.append(here[0])
        here = next(staged, None)
    return stale, copy


def carry_over(index_dir: Path) -> Carried:
    """Bring the archive's staging index up to the union of its shards (created from them when
    missing). The caller holds the archive's lock (``journal.archive_lock``): no write lands in
    the shards meanwhile. Idempotent: after a crash part way, running it again finishes the job."""
    shard_set = read_set(index_dir)
    manifest = read_manifest(live_version(index_dir / shard_set.shards[0]))
    dimension = manifest.model.dimension
    journal = Journal(index_dir / JOURNAL_NAME, dimension)
    try:
        if journal.unfinished():  # a write a crash cut between shards: finish it first
            _, shards = open_shards(index_dir)
            try:
                finish_logged(journal, shard_set, [LocalShard(shard) for shard in shards])
            finally:
                for shard in shards:
                    shard.close()
        highest = journal.last_row()
    finally:
        journal.close()
    staging = index_dir / STAGING
    with contextlib.ExitStack() as stack:
        parts = [connect(live_version(index_dir / name) / SQLITE_NAME, read_only=True) for name in shard_set.shards]
        for conn in parts:
            stack.callback(conn.close)
        highest = max([highest, *(last_row(conn) for conn in parts)])
        staged: Iterator[tuple[str, Fingerprint]] = iter(())
        if (staging / "CURRENT").is_file():
            conn = connect(live_version(staging) / SQLITE_NAME, read_only=True)
            stack.callback(conn.close)
            staged = _fingerprints(conn)
            highest = max(highest, last_row(conn))
        stale, copy = _differences(staged, [_fingerprints(conn) for conn in parts])
        if stale or any(copy) or not (staging / "CURRENT").is_file():
            with IndexWriter(staging, manifest.model, manifest.chunking, manifest.lexical) as writer:
                for n, doc_id in enumerate(stale, 1):
                    writer.delete(doc_id)
                    if n % _BATCH == 0:
                        writer.flush()
                writer.flush()  # every old row gone before a copied one can take its id
                for conn, doc_ids in zip(parts, copy, strict=True):
                    for n, item in enumerate(stored_upserts(conn, dimension, doc_ids), 1):
                        writer.upsert_many([item])
                        if n % _BATCH == 0:
                            writer.flush()
    raise_last_row(staging, highest)
    copied = {doc_id for doc_ids in copy for doc_id in doc_ids}
    return Carried(written=len(copied), deleted=len(set(stale) - copied), last_row=highest)
