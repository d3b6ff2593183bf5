"""The live index's upkeep while the service runs: catch-up, version swaps, snapshots.

A background thread, every ``TICK_S``:

- ``index.refresh()``: changes committed by other processes (a ``poshuk index`` run, a
  ``poshuk delete``) become searchable here within a second; on the first round after a
  version opens, ``searcher.load_lexical()`` builds its BM25 postings in memory (of each shard
  of an archive served in one process, too);
- when ``CURRENT`` names another version (``poshuk index --rebuild`` finished), it checks
  the new version's database (``check_integrity``: a damaged one is refused and the old one
  keeps serving), opens a ``Searcher`` on it with the same encoder and swaps it in. A
  read-only service (``service.read_only``) does the same, and also reopens its version when
  a writer starts changing it in place (``Index.changed_underneath``). Requests that already hold
  the old searcher finish on it: it is closed only ``reload_grace_s`` later (at least the
  request time limit). ``POST /v1/admin/reload`` does the same on demand;
- after ``snapshot_every_writes`` applied changes it writes the FAISS snapshot, so a
  restart replays a short log; it also writes one on shutdown (neither when read-only).

Nothing here is needed for durability (SQLite is the truth); it keeps restarts fast and
the view fresh.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

import msgspec

from poshuk.errors import PoshukError
from poshuk.index import live_version
from poshuk.integrity import check_integrity
from poshuk.language import LanguageDetector
from poshuk.search import Searcher
from service.state import ServiceState

logger = logging.getLogger("poshuk.service")

TICK_S = 0.5


class Reloaded(msgspec.Struct, frozen=True, kw_only=True):
    """What a reload did."""

    version: str
    previous: str
    changed: bool


class Lifecycle:
    """Owns the upkeep thread, the retired searchers and the writers' shared helpers."""

    def __init__(self, state: ServiceState) -> None:
        self.state = state
        limits = state.settings.service
        self.grace_s = max(limits.reload_grace_s, limits.request_timeout_s)
        self.snapshot_every = limits.snapshot_every_writes
        self.detector = LanguageDetector()
        self._reload_lock = threading.Lock()
        self._retired: list[tuple[float, Searcher]] = []
        self._retired_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._snapshot_seq: int | None = None
        self._unusable: Path | None = None  # a version that failed to open: not retried until CURRENT moves
        self.write_listeners: list[Callable[[int, int], None]] = []  # (upserts, deletes) after each durable write

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="poshuk-index-upkeep", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop the thread, snapshot the live index (fast next start), close retired searchers."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        searcher = self.state.current()
        if searcher is not None and (not searcher.is_sharded or not searcher.read_only):
            try:
                searcher.writer.snapshot()  # one index, or each shard of a writable archive
            except Exception:
                logger.exception("cannot write the FAISS snapshot on shutdown")
        with self._retired_lock:
            retired, self._retired = self._retired, []
        for _, old in retired:
            old.close()

    def _run(self) -> None:
        while not self._stop.wait(TICK_S):
            try:
                self.tick()
            except Exception:
                logger.exception("index upkeep failed; retrying")

    def tick(self) -> None:
        """One round of upkeep (the thread calls it; tests may too)."""
        searcher = self.state.current()
        if searcher is not None and searcher.is_sharded:
            if not searcher.read_only:
                searcher.writer.refresh()  # another process's writes to the shards (`poshuk index`)
            searcher.load_lexical()  # once per shard in this process: their BM25 postings in memory
        if searcher is not None and not searcher.is_sharded:
            index = searcher.index
            index.refresh()
            searcher.load_lexical()  # once per opened version: the BM25 postings in memory
            if not index.is_live() or index.changed_underneath():
                with contextlib.suppress(PoshukError):  # logged by reload; the old version keeps serving
                    if not self._known_unusable():
                        self.reload()
            else:
                self._maybe_snapshot(searcher)
        self._close_expired()

    def _known_unusable(self) -> bool:
        """Whether ``CURRENT`` still names the version that already failed (checking it again each
        tick would rerun the integrity check, about a second per GB; ``POST /v1/admin/reload`` retries)."""
        return self._unusable is not None and live_version(self.state.index_dir) == self._unusable

    def _maybe_snapshot(self, searcher: Searcher) -> None:
        index = searcher.index
        if self._snapshot_seq is None:  # the newest snapshot on disk: where a restart would replay from
            seqs = [p.stem.removeprefix("vectors-") for p in index.folder.glob("vectors-*.faiss")]
            self._snapshot_seq = max((int(s) for s in seqs if s.isdigit()), default=0)
        if self.snapshot_every and index.applied_seq - self._snapshot_seq >= self.snapshot_every:
            index.snapshot()
            self._snapshot_seq = index.applied_seq

    def reload(self) -> Reloaded:
        """Switch to the version ``CURRENT`` names, if it is not the open one."""
        with self._reload_lock:
            current = self.state.require_searcher()
            previous = current.index.folder.name
            live = live_version(self.state.index_dir)
            if live == current.index.folder and not current.index.changed_underneath():
                return Reloaded(version=previous, previous=previous, changed=False)
            try:
                check_integrity(live)  # a damaged page would otherwise surface as 500s on some searches
                fresh = Searcher.open(self.state.index_dir, self.state.settings, encoder=current.encoder)
            except PoshukError as exc:
                if live != self._unusable:
                    logger.error("cannot switch to index version %s: %s", live.name, exc.one_line())
                self._unusable = live
                raise
            self._unusable = None
            self.state.swap(fresh)
            self._snapshot_seq = None
            with self._retired_lock:
                self._retired.append((time.monotonic() + self.grace_s, current))
            stats = fresh.stats()
            logger.info(
                "switched index %s from %s to %s: %d documents, %d passages",
                self.state.index_dir,
                previous,
                stats.version,
                stats.documents,
                stats.passages,
            )
            return Reloaded(version=fresh.index.folder.name, previous=previous, changed=True)

    def written(self, upserts: int, deletes: int) -> None:
        """Tell the write listeners (metrics) about one durable write."""
        for listener in self.write_listeners:
            listener(upserts, deletes)

    def _close_expired(self) -> None:
        now = time.monotonic()
        with self._retired_lock:
            expired = [s for deadline, s in self._retired if deadline <= now]
            self._retired = [(d, s) for d, s in self._retired if d > now]
        for searcher in expired:
            searcher.close()
