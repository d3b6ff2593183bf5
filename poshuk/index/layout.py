"""The index folder: versions, their manifests, and the atomic switch between them.

Layout::

    DIR/CURRENT                     name of the live version (replaced atomically)
    DIR/versions/vNNNNNN/           manifest.json, meta.sqlite (+ WAL), vectors-SEQ.faiss, LIVE_FROM
    DIR/alerts.sqlite               saved searches, their matches and webhook outbox (``poshuk.alerts``)
    DIR/versions/tmp-*/             a version being built (removed if its builder died)

A rebuild (or a new model) writes a whole new version beside the live one and swaps
``CURRENT``; the previous version is kept for rollback.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import msgspec

from poshuk.analysis import LexicalSettings
from poshuk.atomic import fsync_dir, write_file
from poshuk.encoder import ModelIdentity
from poshuk.errors import IndexCorruptError, IndexNotFoundError, IndexStoreError
from poshuk.index.db import SQLITE_NAME, connect, last_seq
from poshuk.settings import ChunkingSettings
from poshuk.vectors import VectorIndex

FORMAT_VERSION = 3
KEEP_VERSIONS = 2
MANIFEST_NAME = "manifest.json"
LIVE_FROM_NAME = "LIVE_FROM"


class Manifest(msgspec.Struct, frozen=True, kw_only=True):
    """What an index version is: format, model, chunking and analysis. Written once."""

    format_version: int
    version: str
    model: ModelIdentity
    chunking: ChunkingSettings
    lexical: LexicalSettings = LexicalSettings()
    vector_index: str
    created_at: datetime


def read_manifest(folder: Path) -> Manifest:
    try:
        manifest = msgspec.json.decode((folder / MANIFEST_NAME).read_bytes(), type=Manifest)
    except FileNotFoundError:
        raise IndexCorruptError(f"index version {folder} has no manifest") from None
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise IndexCorruptError(f"index manifest {folder / MANIFEST_NAME} is invalid: {exc}") from None
    if manifest.format_version != FORMAT_VERSION:
        raise IndexCorruptError(
            f"index format {manifest.format_version} is not supported (expected {FORMAT_VERSION})",
            hint="rebuild the index with `poshuk index --rebuild`",
        )
    return manifest


SET_NAME = "SET"  # a sharded archive's list of shards (``poshuk.shards``), in place of CURRENT


def refuse_sharded(index_dir: Path) -> None:
    """``IndexStoreError`` for a sharded archive where one index is to be written."""
    if (index_dir / SET_NAME).is_file():
        raise IndexStoreError(
            f"{index_dir} is a sharded archive, not one index: it is written through its shards' one writer",
            hint="index into it without --rebuild, or rebuild it with --rebuild --shards N",
        )


def live_version(index_dir: Path) -> Path:
    """The folder of the live version; ``IndexNotFoundError`` when there is none."""
    current = index_dir / "CURRENT"
    if not current.is_file() and (index_dir / SET_NAME).is_file():
        raise IndexNotFoundError(
            f"{index_dir} is a sharded archive, not one index",
            hint="search it with `poshuk search` or the library, serve it with `poshuk serve` (read-only); writing it "
            "article by article is not built yet (issue 12)",
        )
    if not index_dir.is_dir() or not current.is_file():
        raise IndexNotFoundError(
            f"no index at {index_dir}", hint=f"build one with `poshuk index PATH --index {index_dir}`"
        )
    name = current.read_text(encoding="utf-8").strip()
    folder = index_dir / "versions" / name
    if not (name.startswith("v") and name[1:].isdigit()) or not folder.is_dir():
        raise IndexCorruptError(f"index {index_dir} points at a missing version {name!r}")
    return folder


def index_dir_of(folder: Path) -> Path:
    """The index folder a version folder belongs to."""
    return folder.parent.parent


def create_version(index_dir: Path, model: ModelIdentity, chunking: ChunkingSettings, lexical: LexicalSettings) -> Path:
    """A new, empty version in a ``tmp-*`` folder; ``make_live`` names it and swaps it in."""
    versions = index_dir / "versions"
    try:
        versions.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise IndexStoreError(f"cannot create index folder {index_dir}: {exc.strerror}") from None
    tmp = versions / f"tmp-{uuid.uuid4().hex}"
    tmp.mkdir()
    manifest = Manifest(
        format_version=FORMAT_VERSION,
        version=_next_version_name(index_dir),
        model=model,
        chunking=chunking,
        lexical=lexical,
        vector_index=VectorIndex.KIND,
        created_at=datetime.now(UTC),
    )
    connect(tmp / SQLITE_NAME, create=True).close()
    write_file(tmp / MANIFEST_NAME, msgspec.json.format(msgspec.json.encode(manifest)))
    return tmp


def _next_version_name(index_dir: Path) -> str:
    numbers = [int(p.name[1:]) for p in (index_dir / "versions").glob("v*") if p.name[1:].isdigit()]
    return f"v{max(numbers, default=0) + 1:06d}"


def make_live(index_dir: Path, folder: Path) -> Path:
    """Give a built ``tmp-*`` version its name, point ``CURRENT`` at it atomically, and
    drop versions beyond the kept ones. Returns the version's final folder."""
    if folder.name.startswith("tmp-"):
        final = folder.with_name(read_manifest(folder).version)
        if final.exists():
            raise IndexStoreError(f"index version {final} already exists; another rebuild finished first")
        # The version's last change as it goes live: changes after it are new writes, those up to it
        # the build's own (saved searches, ``poshuk.alerts``, alert on the former only).
        write_file(folder / LIVE_FROM_NAME, f"{version_last_seq(folder)}\n".encode())
        os.rename(folder, final)
        fsync_dir(final.parent)
        folder = final
    write_file(index_dir / "CURRENT", f"{folder.name}\n".encode())
    versions = sorted(p for p in (index_dir / "versions").glob("v*") if p.name[1:].isdigit())
    for old in versions[:-KEEP_VERSIONS]:
        if old != folder:
            shutil.rmtree(old, ignore_errors=True)
    return folder


def version_last_seq(folder: Path, *, read_only: bool = False) -> int:
    """The last change number of one version's database (``read_only``: change no file to read it)."""
    conn = connect(folder / SQLITE_NAME, read_only=read_only)
    try:
        return last_seq(conn)
    finally:
        conn.close()


def live_from(folder: Path) -> int | None:
    """The last change a version held when it went live (None: written before versions recorded it)."""
    try:
        return int((folder / LIVE_FROM_NAME).read_text().strip())
    except (OSError, ValueError):
        return None


def remove_stale_builds(index_dir: Path) -> None:
    for folder in (index_dir / "versions").glob("tmp-*"):
        shutil.rmtree(folder, ignore_errors=True)


def last_change(index_dir: Path) -> int | None:
    """The live version's last change number (None without an index): where a rebuild starting now
    begins carrying over live writes from (``IndexWriter(since=...)``)."""
    try:
        return version_last_seq(live_version(index_dir))
    except IndexStoreError:
        return None


def live_manifest(index_dir: Path, *, read_only: bool = False) -> Manifest:
    """The live version's manifest, after checking its database opens: what a server checks before
    it listens, without loading the vectors (``Index.open`` does that, once, when it loads).
    ``read_only``: open it as ``Index(read_only=True)`` will, changing no file."""
    folder = live_version(index_dir)
    manifest = read_manifest(folder)
    connect(folder / SQLITE_NAME, read_only=read_only).close()
    return manifest


def iter_versions(index_dir: Path) -> Iterator[Manifest]:
    """Manifests of the kept versions, oldest first."""
    for folder in sorted((index_dir / "versions").glob("v*")):
        with contextlib.suppress(IndexCorruptError):
            yield read_manifest(folder)
