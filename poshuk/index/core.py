"""``Index``: one open index version — retrieval, reads and durable writes — safe across threads.

Readers never wait on writers: each reading thread has its own SQLite connection in WAL
mode (a consistent snapshot per call) and FAISS sits behind a readers-writer lock that
only the brief in-memory replay of a committed change takes exclusively. Writers share
one connection behind ``_write_lock`` and SQLite's ``BEGIN IMMEDIATE`` (which also orders
them against other processes); a write's vectors and terms are computed before either.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import msgspec
import numpy as np
from numpy.typing import NDArray

from poshuk.analysis import Analyzer
from poshuk.candidates import ArticleFacts, Candidate, Candidates, RowGroup
from poshuk.encoder import ModelIdentity, check_backend
from poshuk.errors import (
    IndexBusyError,
    IndexReadOnlyError,
    IndexRetiredError,
    IndexStoreError,
    ModelMismatchError,
    NotFoundError,
)
from poshuk.filters import Filters
from poshuk.index.db import (
    DOCUMENT_SELECT,
    FACTS_SELECT,
    GROUP_SELECT,
    SQLITE_NAME,
    Counts,
    ReadConnections,
    StoredDocument,
    StoredPassage,
    add_articles,
    add_pages,
    article_from_row,
    connect,
    has_articles,
    has_pages,
    last_seq,
    passage_from_row,
    passage_select,
    rollback,
    select_in,
    storage_error,
)
from poshuk.index.layout import Manifest, index_dir_of, live_version, read_manifest
from poshuk.index.lexical import article_bm25, passage_bm25, weighted_bm25
from poshuk.index.lexical_mirror import WRITE_MERGE_POSTINGS, LexicalMirror
from poshuk.index.mirror import VectorMirror
from poshuk.index.plan import AllowedCache, FilterPlan
from poshuk.index.postings import TablePostings, Weights
from poshuk.index.row_units import RowUnits, units_of
from poshuk.index.writes import Stager, Upsert
from poshuk.query import QueryTerms
from poshuk.settings import DEFAULT_APPROXIMATE_ABOVE


@dataclass(frozen=True)
class RetrievalQuery:
    """A query compiled once for every retriever of one index (or one shard)."""

    terms: QueryTerms
    vector: NDArray[np.float32] | None = None  # (1, dim); None: no dense retrieval
    filters: Filters | None = None
    limit: int = 200
    lexical: bool = False  # passage BM25
    articles: bool = False  # article BM25
    # Fill each candidate's doc_id and matched terms (what fusion reads). A single retriever's
    # ranking needs neither: without them a dense or lexical search skips those reads.
    evidence: bool = True


class WriteOutcome(msgspec.Struct, frozen=True, kw_only=True):
    """A committed write: the index's last change after it, and which ids already existed."""

    seq: int
    replaced: tuple[str, ...] = ()  # upserted ids that replaced an article (HTTP 200, not 201)
    deleted: tuple[str, ...] = ()  # deleted ids that were there (the others: 404)


class IndexWrites(Protocol):
    """What a write needs: the index's chunking and lexical settings (``poshuk.ingest.prepare``), and
    one durable write (``Index.write``, a sharded archive's ``ShardedWriter.write``, or its writer in
    another process: ``poshuk.shards.writer_wire.RemoteWriter``)."""

    @property
    def manifest(self) -> Manifest: ...

    @property
    def analyzer(self) -> Analyzer: ...

    def write(self, upserts: list[Upsert], deletes: list[str]) -> WriteOutcome: ...

    def refresh(self) -> int: ...

    def snapshot(self) -> object: ...

    def close(self) -> None: ...


class Index:
    """One open index version."""

    def __init__(
        self,
        folder: Path,
        *,
        approximate_above: int = DEFAULT_APPROXIMATE_ABOVE,
        read_only: bool = False,
        lexical_in_memory: bool = True,
    ) -> None:
        """``read_only``: create and change no file in ``folder`` (a read-only mount): no writer
        connection, no schema upgrade, no snapshot; ``write`` and ``begin`` raise ``IndexReadOnlyError``.
        ``lexical_in_memory``: whether ``load_lexical`` builds the BM25 postings in memory."""
        self.folder = folder
        self.read_only = read_only
        self.manifest = read_manifest(folder)
        self._db: sqlite3.Connection | None = None  # the writers' connection
        if not read_only:
            self._db = connect(folder / SQLITE_NAME)
            add_articles(self._db)
            add_pages(self._db)
        self._write_lock = threading.RLock()
        self._readers = ReadConnections(folder / SQLITE_NAME, read_only=read_only)
        self.allowed_cache = AllowedCache()  # filters' allowed rows, shared by this version's searches
        self._counts: Counts | None = None
        self.analyzer = Analyzer(self.manifest.lexical)  # the index's lexical settings, for writers' terms
        self._was_live = False
        with contextlib.suppress(IndexStoreError):
            self._was_live = live_version(self.index_dir) == folder
        self.pages = has_pages(self._readers.get())  # whether passages record their page (read as NULL if not)
        self._passage_select = passage_select(self.pages)
        self.vectors = VectorMirror(folder, self.manifest.model.dimension, approximate_above=approximate_above)
        self.lexical_in_memory = lexical_in_memory
        self.lexical = LexicalMirror(pages=self.pages)
        try:
            self.vectors.load(self._readers.get(), passages=lambda: self.counts().passages)
        except BaseException:
            self.close()
            raise

    @classmethod
    def open(
        cls,
        index_dir: Path,
        *,
        approximate_above: int = DEFAULT_APPROXIMATE_ABOVE,
        read_only: bool = False,
        lexical_in_memory: bool = True,
    ) -> Index:
        return cls(
            live_version(index_dir),
            approximate_above=approximate_above,
            read_only=read_only,
            lexical_in_memory=lexical_in_memory,
        )

    @property
    def index_dir(self) -> Path:
        return index_dir_of(self.folder)

    @property
    def approximate_above(self) -> int:
        """Passages above which the vectors become IVF-SQ8 (at the next snapshot or rebuild)."""
        return self.vectors.approximate_above

    @property
    def applied_seq(self) -> int:
        """The last change the in-memory vectors reflect."""
        return self.vectors.applied_seq

    def is_live(self) -> bool:
        """Whether ``CURRENT`` still names this version."""
        try:
            return live_version(self.index_dir) == self.folder
        except IndexStoreError:
            return False

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

    # -- keeping the vectors current ---------------------------------------------------

    def refresh(self) -> int:
        """Apply changes committed by any process since the last refresh; returns how many."""
        return self._catch_up()

    def _catch_up(self, *, merge_up_to: int | None = None, wait: bool = True) -> int:
        """Replay committed changes into the vectors and the postings (``LexicalMirror.refresh`` says
        what ``merge_up_to`` and ``wait`` spare a writer's thread); returns how many."""
        with self._readers.snapshot() as conn:
            applied = self.vectors.refresh(conn)
            self.lexical.refresh(conn, merge_up_to=merge_up_to, wait=wait)
        return applied

    def load_lexical(self) -> bool:
        """Build the BM25 postings in memory (``lexical_in_memory``), then bring them up to date;
        False when off, already built or being built. Searches meanwhile use FTS5 (the same
        answers); the service's upkeep thread calls this, so no request waits for it."""
        if not self.lexical_in_memory or not self.lexical.load(self._readers.get()):
            return False
        self.refresh()
        return True

    def postings(self, *, articles: bool = False) -> TablePostings | None:
        """The passage (or article) BM25 table's postings in memory, if they stand at the change the
        database stands at now; None while FTS5 must answer (not built, or a change not replayed)."""
        with self._readers.snapshot() as conn:
            state = self.lexical.at(last_seq(conn))
        if state is None:
            return None
        return state.articles if articles else state.passages

    def snapshot(self) -> Path | None:
        """Write the in-memory FAISS index to disk, tagged with its sequence number; None (nothing
        written) when the index is read-only."""
        if self.read_only:
            return None
        return self.vectors.snapshot(self._readers.get())

    def changed_underneath(self) -> bool:
        """Whether a writer has changed this version's database since it was opened read-only as
        immutable (no ``-wal`` then): this process no longer sees it right and should open the
        version again (the service's upkeep does)."""
        return self._readers.changed_underneath()

    # -- reads: no lock is shared with writers ----------------------------------------------

    def counts(self) -> Counts:
        """Documents and passages committed now (recounted only after a change), and the
        change the vectors reflect. Cheap enough for a health check: one indexed lookup."""
        with self._readers.snapshot() as conn:
            seq = last_seq(conn)
            cached = self._counts
            if cached is None or cached.seq != seq:
                (docs,) = conn.execute("SELECT count(*) FROM documents").fetchone()
                (passages,) = conn.execute("SELECT count(*) FROM passages").fetchone()
                cached = self._counts = Counts(documents=int(docs), passages=int(passages), seq=seq)
        return Counts(documents=cached.documents, passages=cached.passages, seq=self.applied_seq)

    def retrieve(self, query: RetrievalQuery) -> Candidates:
        """Every retriever's candidates for ``query``, from one read snapshot, in one call."""
        with self._readers.snapshot() as conn:
            plan = FilterPlan(conn, query.filters, self.allowed_cache)
            memory = self.lexical.at(plan.seq()) if query.evidence or query.lexical or query.articles else None
            units = None if memory is None else memory.units
            dense = [] if query.vector is None else self._dense(plan, query.vector, query.limit, query.evidence, units)

            def bm25(retriever: Callable[..., list[Candidate]]) -> list[Candidate]:
                return retriever(
                    plan, query.terms, query.limit, evidence=query.evidence, pages=self.pages, memory=memory
                )

            passages = bm25(passage_bm25) if query.lexical else []
            articles = bm25(article_bm25) if query.articles else []
        return Candidates(dense=dense, passages=passages, articles=articles)

    def weighted_bm25(self, query: RetrievalQuery, *, articles: bool, stats: Weights) -> list[Candidate] | None:
        """The best ``query.limit`` rows of one BM25 table scored with ``stats`` (a sharded archive's),
        from the postings in memory at one snapshot; None when they cannot answer (not built, not at
        the snapshot's change, or terms FTS5 would split)."""
        with self._readers.snapshot() as conn:
            plan = FilterPlan(conn, query.filters, self.allowed_cache)
            memory = self.lexical.at(plan.seq())
            if memory is None:
                return None
            return weighted_bm25(plan, query.terms, query.limit, memory, articles=articles, stats=stats)

    def _dense(
        self, plan: FilterPlan, vector: NDArray[np.float32], limit: int, evidence: bool, units: RowUnits | None
    ) -> list[Candidate]:
        allowed = plan.allowed()
        if allowed is not None and len(allowed) == 0:
            return []
        hits = self.vectors.nearest(plan.conn, vector, limit, plan.dense_selector(len(self.vectors)))
        if not evidence:
            return [Candidate(row, "", score) for row, score in hits]
        unit_of = units_of(plan.conn, [r for r, _ in hits], units, pages=self.pages)
        out = []
        for row, score in hits:
            if row in unit_of:
                doc_id, page = unit_of[row]
                out.append(Candidate(row, doc_id, score, page=page))
        return out

    def groups(self, rows: list[int]) -> dict[int, RowGroup]:
        """Article, story cluster and date of these rows: all a ranking needs to collapse by article
        or story and order by date without reading the passages' text (rows deleted meanwhile are absent)."""
        if not rows:
            return {}
        with self._readers.snapshot() as conn:
            found = select_in(conn, GROUP_SELECT + " WHERE p.row_id IN ({})", rows)
        return {
            int(r): RowGroup(str(doc), None if cluster is None else str(cluster), None if ts is None else float(ts))
            for r, doc, cluster, ts in found
        }

    def facts(self, rows: list[int]) -> dict[str, ArticleFacts]:
        """Source, section, language, tags and date of these rows' articles, by article id, for
        facets (rows deleted meanwhile are absent)."""
        if not rows:
            return {}
        with self._readers.snapshot() as conn:
            found = select_in(conn, FACTS_SELECT + " WHERE p.row_id IN ({})", rows)
        return {
            str(doc): ArticleFacts(source, section, lang, tuple(json.loads(tags)), None if ts is None else float(ts))
            for doc, source, section, lang, tags, ts in found
        }

    def passages(self, rows: list[int]) -> dict[int, StoredPassage]:
        """The stored passages with these row ids (rows deleted meanwhile are absent)."""
        if not rows:
            return {}
        with self._readers.snapshot() as conn:
            found = select_in(conn, self._passage_select + " WHERE p.row_id IN ({})", rows)
        return {int(r[0]): passage_from_row(r) for r in found}

    def document_vectors(self, doc_id: str) -> NDArray[np.float32]:
        """The stored passage vectors of one article (rows in passage order)."""
        dim = self.manifest.model.dimension
        rows = (
            self._readers.get()
            .execute("SELECT vector FROM passages WHERE doc_id = ? ORDER BY ordinal", (doc_id,))
            .fetchall()
        )
        if not rows:
            raise NotFoundError(f"document {doc_id!r} is not in the index")
        return np.vstack([np.frombuffer(blob, dtype=np.float32, count=dim) for (blob,) in rows])

    def document(self, doc_id: str) -> StoredDocument:
        with self._readers.snapshot() as conn:
            row = conn.execute(f"{DOCUMENT_SELECT} WHERE doc_id = ?", (doc_id,)).fetchone()
            if row is None:
                raise NotFoundError(f"document {doc_id!r} is not in the index")
            passages = conn.execute(
                f"{self._passage_select} WHERE p.doc_id = ? ORDER BY p.ordinal", (doc_id,)
            ).fetchall()
        return StoredDocument(article=article_from_row(row), passages=[passage_from_row(p) for p in passages])

    def read(self) -> sqlite3.Connection:
        """This thread's read connection, for inspection (tests, tools); never for writes."""
        return self._readers.get()

    # -- writes ------------------------------------------------------------------------

    def write(
        self, upserts: list[Upsert] | tuple[Upsert, ...] = (), deletes: list[str] | tuple[str, ...] = ()
    ) -> WriteOutcome:
        """Apply upserts and deletes in ONE durable transaction, then make them searchable.

        When this returns, the change has been committed with ``synchronous=FULL``. Readers
        never wait for it; only other writers do.
        """
        stager = self.begin()
        try:
            applied = stager.stage(upserts, deletes)
        except sqlite3.Error as exc:
            self.rollback()
            full = storage_error(exc)
            if full is not None:
                raise full from exc
            raise
        except BaseException:
            self.rollback()
            raise
        seq = self.commit()
        return WriteOutcome(seq=seq, replaced=applied.replaced, deleted=applied.deleted)

    def begin(self, stager: Stager | None = None) -> Stager:
        """Take the write lock (this process's, then SQLite's); fail if it stays busy, or if a
        rebuild has retired this version. The returned ``Stager`` writes inside the
        transaction; pass it again to keep its staged clusters across transactions.

        A rebuild swaps ``CURRENT`` while it holds this version's write lock (after carrying
        over every change made here since it began), so checking ``CURRENT`` under the lock
        tells for certain whether a write here would be lost.
        """
        db = self._writer()
        self._write_lock.acquire()
        try:
            try:
                db.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                raise IndexBusyError("the index is busy: another writer holds it", hint="retry in a moment") from exc
            if self._was_live and not self.is_live():
                rollback(db)
                raise IndexRetiredError(
                    f"index version {self.folder.name} was replaced by a rebuild",
                    hint="open the live version and retry",
                )
        except BaseException:
            self._write_lock.release()
            raise
        if stager is None:
            stager = Stager(db, self.vectors, self.analyzer, articles=has_articles(db), pages=has_pages(db))
        return stager

    def _writer(self) -> sqlite3.Connection:
        """The writers' connection; ``IndexReadOnlyError`` when the index was opened read-only."""
        if self._db is None:
            raise IndexReadOnlyError(
                f"index version {self.folder.name} is open read-only: it cannot be written",
                hint="write with a process that opens the index writable (not `poshuk serve --read-only`)",
            )
        return self._db

    def commit(self) -> int:
        """Commit the open transaction durably, apply it to the vectors; returns the last change."""
        db = self._writer()
        try:
            try:
                db.execute("COMMIT")
            except sqlite3.Error as exc:
                rollback(db)
                full = storage_error(exc)
                if full is not None:
                    raise full from exc
                raise
        finally:
            self._write_lock.release()
        self._catch_up(merge_up_to=WRITE_MERGE_POSTINGS, wait=False)  # large postings merges: the upkeep's
        return self.applied_seq

    def rollback(self) -> None:
        db = self._writer()
        try:
            rollback(db)
        finally:
            self._write_lock.release()

    def close(self) -> None:
        self._readers.close()
        with self._write_lock:
            if self._db is not None:
                self._db.close()
