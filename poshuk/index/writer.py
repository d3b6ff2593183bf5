"""``IndexWriter``: the batch writer behind ``poshuk index``, committing in bounded transactions.

Each ``flush`` commits what was staged since the last one, so a live service's own writes
wait for at most one batch, never for a whole run, and searches never wait at all.

- Into the live version (an incremental run): every committed batch is durable and
  searchable at once; an interrupted run keeps the batches it committed (each article
  whole: upserts replace), and running it again finishes the job.
- Into a new version (``rebuild``, or the first run): batches fill a private ``tmp-*``
  folder that becomes live only on ``commit``, so an interrupted or failed run leaves the
  live version exactly as it was. A rebuild also carries over every change made to the
  live version after change ``since`` (HTTP writes, other runs); ``prepare`` re-encodes
  those articles when the rebuild uses another model.
"""

from __future__ import annotations

import contextlib
import shutil
import sqlite3
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType

import numpy as np
from numpy.typing import NDArray

from poshuk.analysis import Analyzer, LexicalSettings
from poshuk.documents import Article, Passage
from poshuk.encoder import ModelIdentity, check_backend
from poshuk.errors import IndexBusyError, IndexNotFoundError, IndexRetiredError, IndexStoreError, ModelMismatchError
from poshuk.index.core import Index
from poshuk.index.db import (
    DOCUMENT_SELECT,
    SQLITE_NAME,
    Counts,
    article_from_row,
    connect,
    has_pages,
    rollback,
    storage_error,
)
from poshuk.index.layout import (
    create_version,
    last_change,
    live_version,
    make_live,
    read_manifest,
    refuse_sharded,
    remove_stale_builds,
)
from poshuk.index.writes import Applied, Stager, Upsert
from poshuk.settings import DEFAULT_APPROXIMATE_ABOVE, ChunkingSettings

SWAP_LOCK_TIMEOUT_S = 600.0  # how long a finished rebuild waits for the live version's writers


class IndexWriter:
    """Changes written in batches; as a context manager, leaving the block commits what is
    left (unless ``commit`` was called) and an exception rolls back the open batch (and,
    for a new version, everything)."""

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
        self.committed = 0  # articles upserted or deleted in committed batches
        self._index: Index | None = None
        self._new_version: Path | None = None
        self._base: tuple[Path, int] | None = None  # the live version a rebuild replaces, and its last change
        self._stager: Stager | None = None  # kept across batches: its staged story centroids
        self._in_batch = -1  # articles staged in the open batch; -1: none open

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

    @property
    def new_version(self) -> bool:
        """Whether this writer fills a new version (nothing is live until ``commit``)."""
        return self._new_version is not None

    def open(self) -> None:
        refuse_sharded(self.index_dir)
        live: Path | None = None
        with contextlib.suppress(IndexNotFoundError):
            live = live_version(self.index_dir)
        if live is not None and self.rebuild:
            seq = self.since if self.since is not None else last_change(self.index_dir)
            self._base = (live, seq or 0)
        if live is not None and not self.rebuild:
            manifest = read_manifest(live)
            if not manifest.model.compatible_with(self.model):
                raise ModelMismatchError(
                    f"index {self.index_dir} was built with model {manifest.model.name!r}, not {self.model.name!r}",
                    hint="use the same --model, or rebuild with --rebuild",
                )
            check_backend(manifest.model.backend, self.model.backend, allow=self.allow_backend_mismatch)
            self._index = Index(live, approximate_above=self.approximate_above)
        else:
            if (self.index_dir / "versions").is_dir():
                remove_stale_builds(self.index_dir)
            self._new_version = create_version(self.index_dir, self.model, self.chunking, self.lexical)
            try:
                self._index = Index(self._new_version, approximate_above=self.approximate_above)
            except BaseException:
                self._discard_new_version()
                raise

    @property
    def index(self) -> Index:
        if self._index is None:
            raise IndexStoreError("index writer is not open")
        return self._index

    @property
    def analyzer(self) -> Analyzer:
        """The index's lexical analysis, for the terms of what is written."""
        return self.index.analyzer

    def begin(self) -> Stager:
        """The open batch's stager, opening a batch (taking the write lock) if none is open."""
        if self._in_batch < 0:
            for _attempt in range(5):
                try:
                    self._stager = self.index.begin(self._stager)
                    break
                except IndexRetiredError:
                    if self.new_version:
                        raise
                    self._reopen_live()  # a rebuild swapped versions: write to the new live one
            else:
                raise IndexBusyError("the index keeps changing versions", hint="retry in a moment")
            self._in_batch = 0
        assert self._stager is not None
        return self._stager

    def _reopen_live(self) -> None:
        self.index.close()
        self._index = None
        self._stager = None
        self.open()

    def upsert(
        self,
        article: Article,
        passages: Sequence[Passage],
        vectors: NDArray[np.float32],
        terms: Sequence[str] | None = None,
        signature: NDArray[np.uint64] | None = None,
    ) -> None:
        """Add an article in the open batch, replacing every passage of an earlier one with the same id."""
        self.upsert_many([Upsert(article, passages, np.asarray(vectors, dtype=np.float32), terms, signature)])

    def upsert_many(self, upserts: Sequence[Upsert]) -> None:
        self._stage(lambda stager: stager.stage(upserts=upserts))
        self._in_batch += len(upserts)

    def delete(self, doc_id: str) -> bool:
        """Remove an article and its passages in the open batch; False if it was not there."""
        applied = self._stage(lambda stager: stager.stage(deletes=[doc_id]))
        self._in_batch += 1
        return bool(applied.deleted)

    def _stage(self, work: Callable[[Stager], Applied]) -> Applied:
        stager = self.begin()
        try:
            return work(stager)
        except sqlite3.Error as exc:
            full = storage_error(exc)
            if full is not None:
                raise full from exc
            raise

    def flush(self) -> None:
        """Commit the open batch (durable; searchable at once in the live version)."""
        if self._in_batch >= 0:
            staged = self._in_batch
            self._in_batch = -1
            self.index.commit()
            self.committed += staged

    def commit(self) -> Counts:
        """Commit what is left, snapshot FAISS, and (for a new version) make it live.

        A rebuild first locks the version it replaces and copies into the new one every
        change made there since the rebuild began (HTTP writes, other CLI runs), then
        swaps ``CURRENT`` while still holding that lock: no acknowledged write is lost,
        and writers waiting on the old version find it retired and move to the new one.
        """
        index = self.index
        old = self._lock_base() if self._new_version is not None and self._base is not None else None
        try:
            if old is not None and self._base is not None:
                self._carry_over(old, self._base[1])
            self.begin()  # an empty batch at least: the write lock orders this commit after every other
            self.flush()
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
                rollback(old)
                old.close()
        return counts

    def _lock_base(self) -> sqlite3.Connection | None:
        """The replaced version's database with its write lock held; None if it is gone or no longer live."""
        assert self._base is not None
        folder = self._base[0]
        try:
            conn = connect(folder / SQLITE_NAME)
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
        rollback(conn)
        conn.close()
        return None

    def _carry_over(self, old: sqlite3.Connection, since: int) -> None:
        """Give the new version the final state, in the replaced version, of each article changed after ``since``."""
        new = self.index
        doc_ids = [d for (d,) in old.execute("SELECT DISTINCT doc_id FROM changes WHERE seq > ?", (since,))]
        if not doc_ids:
            return
        old_manifest = read_manifest(self._base[0]) if self._base is not None else new.manifest
        same_model = old_manifest.model.compatible_with(new.manifest.model)
        same_terms = old_manifest.lexical == new.manifest.lexical
        dim = old_manifest.model.dimension
        gone: list[str] = []
        kept: list[Upsert] = []
        page = "p.page" if has_pages(old) else "NULL"
        for doc_id in doc_ids:
            row = old.execute(f"{DOCUMENT_SELECT} WHERE doc_id = ?", (doc_id,)).fetchone()
            if row is None:
                gone.append(doc_id)
                continue
            article = article_from_row(row)
            rows = old.execute(
                f"SELECT p.passage_id, p.ordinal, p.text, p.vector, l.terms, {page} FROM passages p "
                "LEFT JOIN lexical l ON l.rowid = p.row_id WHERE p.doc_id = ? ORDER BY p.ordinal",
                (doc_id,),
            ).fetchall()
            context = f"{article.title}\n" if new.manifest.chunking.title_context and article.title else ""
            passages = [
                Passage(id=pid, doc_id=doc_id, ordinal=n, text=text, embed_text=context + text, page=number)
                for pid, n, text, _, _, number in rows
            ]
            vectors = np.zeros((len(rows), dim), dtype=np.float32)
            for i, (_, _, _, blob, _, _) in enumerate(rows):
                vectors[i] = np.frombuffer(blob, dtype=np.float32, count=dim)
            terms = [str(t or "") for _, _, _, _, t, _ in rows] if same_terms else None
            kept.append(Upsert(article, passages, vectors, terms))
        if not same_model:
            if self.prepare is None:
                raise IndexStoreError(
                    f"{len(kept)} article(s) were written to the live index during a rebuild with another model",
                    hint="run the rebuild again; it re-encodes them when given an encoder",
                )
            kept = list(self.prepare([u.article for u in kept]))
        self.begin().stage(upserts=kept, deletes=gone)

    def abort(self) -> None:
        """Drop the open batch, and a new version whole; committed batches of the live version stay."""
        if self._index is not None:
            if self._in_batch >= 0:
                self._in_batch = -1
                self._index.rollback()
            self._index.close()
            self._index = None
        self._discard_new_version()

    def _discard_new_version(self) -> None:
        if self._new_version is not None:
            shutil.rmtree(self._new_version, ignore_errors=True)
            self._new_version = None
