"""The sharded index folder: ``DIR/SET`` names the shards and which bucket each owns.

An article's bucket is a stable 64-bit hash of its id modulo ``BUCKETS`` (Python's ``hash``
is salted per process, so it cannot be used); ``SET.map`` gives each bucket's shard, so a
later re-sharding moves whole buckets. All passages of an article live on its shard, which
collapse, coverage and the article-level BM25 need. ``DIR/shard-NNN`` is a normal index;
``DIR/staging`` (``poshuk index --shards``) is one index of every article, already encoded,
from which the shards are split again (``split``) -- a new generation of folders, then ``SET``
replaced in one atomic rename: readers see the old shards or the new ones, never a mix.
``SET.journal_seq`` is the last logged write (``journal``) a split included: writes after it
are in the shards only, until the next split carries them into staging (``carry``).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import msgspec

from poshuk.errors import IndexStoreError
from poshuk.index.layout import SET_NAME
from poshuk.shards.journal import last_seq

BUCKETS = 4096
FORMAT = 1


class ShardSet(msgspec.Struct, frozen=True, kw_only=True):
    """The shards of one archive and the bucket -> shard map (replaced atomically as a whole)."""

    format: int = FORMAT
    buckets: int = BUCKETS
    generation: int = 1  # bumped by every split: the shard folders' names carry it
    shards: list[str]
    map: list[int]  # shard number of each bucket
    journal_seq: int = 0  # the last logged write (``journal.last_seq``) the shards were split with

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


def has_writes(index_dir: Path) -> bool:
    """Whether the archive took writes through its shards' writer since it was last split: its
    staging index lacks them until a split carries them over (``poshuk.shards.carry``)."""
    return last_seq(index_dir) > read_set(index_dir).journal_seq


def refuse_written(index_dir: Path, why: str, hint: str) -> None:
    """``IndexStoreError`` if the archive took writes since its last split that ``why`` would lose."""
    if has_writes(index_dir):
        raise IndexStoreError(f"{index_dir} took writes through its shards since it was split: {why}", hint=hint)


MAX_SHARDS = 256


def even_set(shards: int, generation: int = 1, journal_seq: int = 0) -> ShardSet:
    """``shards`` shards, buckets dealt round-robin."""
    if not 1 <= shards <= MAX_SHARDS:
        raise IndexStoreError(f"shards must be between 1 and {MAX_SHARDS}, got {shards}")
    suffix = "" if generation == 1 else f"-g{generation}"
    return ShardSet(
        generation=generation,
        shards=[f"shard-{n:03d}{suffix}" for n in range(shards)],
        map=[b % shards for b in range(BUCKETS)],
        journal_seq=journal_seq,
    )
