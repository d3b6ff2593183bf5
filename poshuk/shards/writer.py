"""``ShardedWriter``: writes to a sharded archive, with one node's rows, clusters and durability.

Each request (a PUT, a DELETE, a batch, a group of ``poshuk index``), under the archive's write
lock (a ``flock`` on ``DIR/SET``: one writer at a time across processes):

1. finish any write a crash left half done (``journal``);
2. decide each upsert's story cluster as one index would (``clusters.ClusterView``) and give
   its passages the next row ids of one global counter (the highest id any shard or the journal
   has seen, then +1: the order ``AUTOINCREMENT`` gives on one node);
3. log the request in ``DIR/writes.sqlite`` (``synchronous=FULL``);
4. have each owner shard write its part (``Index.write``: one durable transaction each), in shard order;
5. mark the entry done, and answer: durable on the answer, never lost.

Unlike one index, a request that spans shards is not atomic for readers: a search in
between step 4's transactions sees some shards written and not others, for that moment.
A write that fails after step 3 (a full disk) is applied again by the next write or open.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import msgspec

from poshuk import dedupe
from poshuk.analysis import Analyzer
from poshuk.encoder import ModelIdentity, check_backend
from poshuk.errors import IndexBusyError, IndexRetiredError, ModelMismatchError
from poshuk.index import Counts, Index, Manifest, Upsert, WriteOutcome
from poshuk.index.clusters import Staged, centroid
from poshuk.settings import DEFAULT_APPROXIMATE_ABOVE
from poshuk.shards.clusters import ClusterView
from poshuk.shards.journal import JOURNAL_NAME, Entry, Journal, archive_lock
from poshuk.shards.layout import ShardSet, read_set
from poshuk.shards.shard import LocalShard, WritableShard


class ShardedWriter:
    """The one write path of a sharded archive, over its shards: opened writable in this process
    (``LocalShard``s over the ``Index`` objects its searches read: a write is searchable when it
    returns), or answering from their own processes (``wire.RemoteShard``: each writes its own files)."""

    def __init__(self, index_dir: Path, shard_set: ShardSet, shards: Sequence[WritableShard]) -> None:
        self.index_dir = index_dir
        self.shard_set = shard_set
        self.shards = list(shards)
        self.manifest: Manifest = shards[0].manifest
        self.analyzer = Analyzer(self.manifest.lexical)
        self.journal = Journal(index_dir / JOURNAL_NAME, self.manifest.model.dimension)
        self._lock = threading.Lock()
        with self._locked():
            self._recover()

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """This process's lock, then the archive's."""
        with self._lock, archive_lock(self.index_dir):
            yield

    def _recover(self) -> None:
        finish_logged(self.journal, self.shard_set, self.shards)

    def _next_row(self) -> int:
        return max([self.journal.last_row(), *(shard.last_row() for shard in self.shards)]) + 1

    def write(
        self, upserts: Sequence[Upsert] = (), deletes: Sequence[str] = (), *, staged: Staged | None = None
    ) -> WriteOutcome:
        """Apply upserts and deletes durably, as ``Index.write`` does on one index (deletes first,
        then upserts in order). ``staged``: mean vectors a batch run keeps across its writes, as
        ``IndexWriter`` does. The outcome's ``seq`` is the journal's."""
        with self._locked():
            if read_set(self.index_dir) != self.shard_set:  # re-sharded: these shards are retired
                raise IndexRetiredError(
                    f"the sharded archive {self.index_dir} was split again", hint="restart the service"
                )
            self._recover()
            for shard in self.shards:
                shard.refresh()  # another process's writes: the cluster search must see them
            view = ClusterView(self.shards, self.shard_set, staged if staged is not None else Staged())
            for doc_id in deletes:
                view.remove(doc_id)
            row = self._next_row()
            planned: list[Upsert] = []
            for item in upserts:
                article = item.article
                view.remove(article.id)
                sig = item.signature
                if sig is None:
                    sig = dedupe.signature(f"{article.title}\n{article.text}")
                bands = dedupe.band_hashes(sig)
                mean = centroid(item.vectors)
                cluster = item.cluster or view.find_cluster(article, sig, bands, mean)
                view.add(article, cluster, sig, bands, mean)
                terms = (
                    list(item.terms)
                    if item.terms is not None
                    else [" ".join(self.analyzer.terms(p.embed_text)) for p in item.passages]
                )
                rows = list(range(row, row + len(item.passages)))
                row += len(rows)
                planned.append(msgspec.structs.replace(item, terms=terms, signature=sig, rows=rows, cluster=cluster))
            seq = self.journal.append(planned, deletes, row - 1)
            replaced, deleted = _apply(
                self.shard_set, self.shards, Entry(seq=seq, upserts=planned, deletes=list(deletes))
            )
            self.journal.finish(seq)
        return WriteOutcome(
            seq=seq,
            replaced=tuple(u.article.id for u in planned if u.article.id in replaced),
            deleted=tuple(d for d in deletes if d in deleted),
        )

    def counts(self) -> Counts:
        each = [shard.counts() for shard in self.shards]
        documents, passages = sum(c.documents for c in each), sum(c.passages for c in each)
        return Counts(documents=documents, passages=passages, seq=sum(c.seq for c in each))

    def refresh(self) -> int:
        """Apply to each shard's vectors the changes another process committed; how many."""
        return sum(shard.refresh() for shard in self.shards)

    def snapshot(self) -> None:
        """Each shard's FAISS snapshot (a fast next open)."""
        for shard in self.shards:
            shard.snapshot()

    def close(self) -> None:
        self.journal.close()


def finish_logged(journal: Journal, shard_set: ShardSet, shards: Sequence[WritableShard]) -> None:
    """Apply again every logged write not marked done (a crash between its shards' transactions);
    the caller holds the archive's lock."""
    for entry in journal.unfinished():
        _apply(shard_set, shards, entry)
        journal.finish(entry.seq)


def _apply(shard_set: ShardSet, shards: Sequence[WritableShard], entry: Entry) -> tuple[set[str], set[str]]:
    """Write an entry to its owner shards, in shard order; (replaced ids, deleted ids)."""
    replaced: set[str] = set()
    deleted: set[str] = set()
    for number, shard in enumerate(shards):
        upserts = [u for u in entry.upserts if shard_set.shard_of(u.article.id) == number]
        deletes = [d for d in entry.deletes if shard_set.shard_of(d) == number]
        if upserts or deletes:
            outcome = shard.write(upserts, deletes)
            replaced.update(outcome.replaced)
            deleted.update(outcome.deleted)
    return replaced, deleted


def open_shards(
    index_dir: Path, *, approximate_above: int = DEFAULT_APPROXIMATE_ABOVE, lexical_in_memory: bool = True
) -> tuple[ShardSet, list[Index]]:
    """Every shard of the archive opened writable."""
    shard_set = read_set(index_dir)
    shards: list[Index] = []
    try:
        for name in shard_set.shards:
            shards.append(
                Index.open(index_dir / name, approximate_above=approximate_above, lexical_in_memory=lexical_in_memory)
            )
    except BaseException:
        for shard in shards:
            shard.close()
        raise
    return shard_set, shards


class ShardedBatchWriter:
    """``IndexWriter``'s part in ``poshuk index`` (an incremental run), for a sharded archive: each
    ``flush`` is one ``ShardedWriter`` write, and the staged story centroids carry across them as
    ``IndexWriter``'s do, so a run files stories as it would into one index."""

    new_version = False  # a sharded archive is rebuilt with --shards, never through this writer

    def __init__(
        self,
        index_dir: Path,
        model: ModelIdentity,
        *,
        allow_backend_mismatch: bool = False,
        approximate_above: int = DEFAULT_APPROXIMATE_ABOVE,
    ) -> None:
        self.index_dir = index_dir
        self.model = model
        self.allow_backend_mismatch = allow_backend_mismatch
        self.approximate_above = approximate_above
        self.committed = 0
        self._writer: ShardedWriter | None = None
        self._pending: list[Upsert] = []
        self._staged = Staged()

    def open(self) -> None:
        shard_set, shards = open_shards(self.index_dir, approximate_above=self.approximate_above)
        try:
            built = shards[0].manifest.model
            if not built.compatible_with(self.model):
                raise ModelMismatchError(
                    f"index {self.index_dir} was built with model {built.name!r}, not {self.model.name!r}",
                    hint="use the same --model, or rebuild it with --rebuild --shards N",
                )
            check_backend(built.backend, self.model.backend, allow=self.allow_backend_mismatch)
            self._writer = ShardedWriter(self.index_dir, shard_set, [LocalShard(shard) for shard in shards])
        except BaseException:
            for shard in shards:
                shard.close()
            raise

    @property
    def writer(self) -> ShardedWriter:
        if self._writer is None:
            raise IndexBusyError("the sharded writer is not open")
        return self._writer

    @property
    def analyzer(self) -> Analyzer:
        return self.writer.analyzer

    def upsert_many(self, upserts: Sequence[Upsert]) -> None:
        self._pending.extend(upserts)

    def flush(self) -> None:
        if self._pending:
            pending, self._pending = self._pending, []
            self.writer.write(pending, staged=self._staged)
            self.committed += len(pending)

    def commit(self) -> Counts:
        self.flush()
        writer = self.writer
        try:
            writer.snapshot()
            return writer.counts()
        finally:
            self._close()

    def abort(self) -> None:
        self._pending = []
        self._close()

    def _close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            for shard in self._writer.shards:
                shard.close()
            self._writer = None
