"""``split_index``: one index split into the shards of an archive, nothing encoded again.

Over an existing archive the new shards are a new generation of folders, and ``SET`` is replaced
in one atomic rename, under the archive's lock: no write lands in the old shards from the
carry-over (``carry``) to the new ``SET``. A crash before the rename leaves the old shards live
and their writes still counted as not split (``SET.journal_seq``); running it again redoes both.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import msgspec

from poshuk.atomic import write_file
from poshuk.errors import IndexStoreError
from poshuk.index import Index, IndexWriter, Upsert
from poshuk.index.db import last_row
from poshuk.index.layout import SET_NAME, Manifest
from poshuk.shards.carry import carry_over, raise_last_row, stored_upserts
from poshuk.shards.journal import archive_lock, last_seq
from poshuk.shards.layout import STAGING, ShardSet, even_set, has_writes, is_sharded, read_set, refuse_written

_BATCH = 256  # articles per write transaction while splitting


def split_index(source_dir: Path, dest: Path, shards: int, *, carry_writes: bool = True) -> ShardSet:
    """Split the live version of ``source_dir`` into ``shards`` shards under ``dest`` without
    encoding anything again: row ids, vectors, terms and story clusters are carried as they are,
    so the shards answer as the source does. A folder holding one index is refused.

    Over an existing archive, the new shards replace the old ones at once. When the archive took
    writes since its last split and ``source_dir`` is its staging index, those writes are carried
    into staging first (``carry_over``; so is all of it when staging is missing); ``carry_writes=False``
    (staging was just written from sources) or another source refuses them instead: they would be lost."""
    if (dest / "CURRENT").exists():
        raise IndexStoreError(f"{dest} holds one index: split it into a new folder")
    if not is_sharded(dest):
        return _split(source_dir, dest, shards, None, 0)
    with archive_lock(dest):  # no write to the old shards from here to the new SET
        staging = dest / STAGING
        own = source_dir.resolve() == staging.resolve()
        if carry_writes and own and (has_writes(dest) or not (staging / "CURRENT").is_file()):
            carry_over(dest)
        elif not own:
            refuse_written(
                dest,
                f"splitting {source_dir} would lose them",
                f"split it again from its own staging index: `poshuk index --index {dest} --shards N`",
            )
        elif not carry_writes:
            refuse_written(
                dest,
                "its staging index, just written from sources, lacks them",
                f"index without --rebuild: `poshuk index PATH... --index {dest} --shards N` writes through the "
                "shards and carries every write over; or rebuild into a new folder",
            )
        return _split(source_dir, dest, shards, read_set(dest), last_seq(dest))


def _split(source_dir: Path, dest: Path, shards: int, previous: ShardSet | None, journal_seq: int) -> ShardSet:
    generation = 1 if previous is None else previous.generation + 1
    shard_set = even_set(shards, generation, journal_seq)
    for name in shard_set.shards:
        shutil.rmtree(dest / name, ignore_errors=True)  # a split that died before its SET: never live
    source = Index.open(source_dir, read_only=True)
    writers: list[IndexWriter] = []
    try:
        manifest: Manifest = source.manifest
        highest = last_row(source.read())
        for name in shard_set.shards:
            writers.append(IndexWriter(dest / name, manifest.model, manifest.chunking, manifest.lexical))
            writers[-1].open()
        pending: list[list[Upsert]] = [[] for _ in writers]
        for item in stored_upserts(source.read(), manifest.model.dimension):
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
        raise_last_row(dest / name, highest)
    write_file(dest / SET_NAME, msgspec.json.encode(shard_set))
    for name in [] if previous is None else previous.shards:
        shutil.rmtree(dest / name, ignore_errors=True)
    return shard_set
