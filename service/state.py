"""The running service's one piece of state: the searcher once loaded, or why it failed.

``service.app`` creates one per app and hands it to ``service.lifecycle`` (upkeep, reloads) and
``service.metrics`` (index size at scrape time); routes get its searcher injected. It lives in a
module of its own so that none of them imports ``service.app``, which imports them all. The app
also keeps it on its ``state`` under ``STATE_KEY``, where tests find it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

from poshuk.alerts import ALERTS_NAME, Alerts
from poshuk.encoder import Encoder
from poshuk.errors import PoshukError
from poshuk.index import live_version
from poshuk.integrity import check_integrity
from poshuk.models import load_encoder
from poshuk.query_encoding import for_serving
from poshuk.search import IndexReader, Searcher
from poshuk.settings import Settings
from poshuk.shards import is_sharded, read_set
from service.errors import IndexNotReadyError

logger = logging.getLogger("poshuk.service")

STATE_KEY = "poshuk"


class ServiceState:
    """The running service's one piece of state: the searcher once loaded, or why it failed.

    Thread-safe: the loader thread writes it, request threads read it.
    """

    def __init__(
        self,
        index_dir: Path,
        settings: Settings,
        encoder: Encoder | None = None,
        reader: Callable[[], IndexReader] | None = None,
    ) -> None:
        """``reader`` opens what the searcher reads in place of ``index_dir`` itself: a sharded
        archive whose shards answer from elsewhere (``service.ray_serving``); they check their own files."""
        self.index_dir = index_dir
        self.settings = settings
        self._encoder = encoder
        self._reader = reader
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._searcher: Searcher | None = None
        self._error: str | None = None
        self._closed = False
        self._thread: threading.Thread | None = None
        self._alerts: Alerts | None = None

    def start_loading(self) -> None:
        """Open the index and load the model in a background thread."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._load, name="poshuk-index-loader", daemon=True)
        self._thread.start()

    def _load(self) -> None:
        searcher: Searcher | None = None
        error: str | None = None
        try:
            encoder = self._encoder if self._encoder is not None else load_encoder(self.settings, serving=True)
            encoder = for_serving(
                encoder,
                cache_size=self.settings.query_cache_size,
                batching=self.settings.service.batch_queries,
            )
            searcher = self._open(encoder)
            # One search before /readyz says yes: the model's first run allocates its buffers, so
            # the first real query would otherwise pay for it.
            searcher.search("warm-up", k=1, semantic_highlights=False)
        except PoshukError as exc:
            error = exc.one_line()
            logger.error("cannot load index %s: %s", self.index_dir, error)
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            logger.exception("cannot load index %s", self.index_dir)
        with self._lock:
            closed = self._closed
            if not closed:
                self._searcher, self._error = searcher, error
        if closed and searcher is not None:
            searcher.close()
        elif searcher is not None:
            stats = searcher.stats()
            logger.info(
                "index %s %s ready: %d documents, %d passages, model %s",
                self.index_dir,
                stats.version,
                stats.documents,
                stats.passages,
                stats.model,
            )
        self._done.set()

    def _open(self, encoder: Encoder) -> Searcher:
        if self._reader is not None:
            reader = self._reader()
            try:
                return Searcher(
                    reader,
                    encoder,
                    max_k=self.settings.service.max_k,
                    allow_backend_mismatch=self.settings.allow_backend_mismatch,
                )
            except BaseException:
                reader.close()
                raise
        # A damaged page lets SQLite open the file and fails only the queries that reach it:
        # check every page first (of every shard), so /readyz says what is wrong instead of "ready".
        if is_sharded(self.index_dir):
            for name in read_set(self.index_dir).shards:
                check_integrity(live_version(self.index_dir / name))
        else:
            check_integrity(live_version(self.index_dir))
        return Searcher.open(self.index_dir, self.settings, encoder=encoder)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until loading finished (well or not); False on timeout."""
        return self._done.wait(timeout)

    def require_searcher(self) -> Searcher:
        """The loaded searcher; ``IndexNotReadyError`` while loading or after a failure."""
        with self._lock:
            if self._searcher is not None:
                return self._searcher
            if self._error is not None:
                raise IndexNotReadyError(f"index failed to load: {self._error}")
            if self._closed:
                raise IndexNotReadyError("service is shutting down")
        raise IndexNotReadyError("index is loading")

    def current(self) -> Searcher | None:
        """The searcher in service now, or None while loading (or after a failure)."""
        with self._lock:
            return self._searcher

    def swap(self, searcher: Searcher) -> Searcher | None:
        """Serve ``searcher`` from now on; returns the one it replaces (the caller closes it later)."""
        with self._lock:
            old, self._searcher = self._searcher, searcher
            self._error = None
        return old

    def alerts(self) -> Alerts:
        """The index's saved searches (made on first use, with the loaded searcher's encoder)."""
        searcher = self.require_searcher()
        with self._lock:
            if self._alerts is None:
                self._alerts = Alerts(
                    self.index_dir,
                    searcher.encoder,
                    self.settings.alerts,
                    max_query_chars=self.settings.service.max_query_chars,
                    searcher=self.require_searcher,
                )
            return self._alerts

    def saved_alerts(self) -> Alerts | None:
        """The saved searches if any were ever saved here (a server without alerts creates no file)."""
        if self.current() is None or not (self.index_dir / ALERTS_NAME).is_file():
            return None
        return self.alerts()

    def close(self) -> None:
        """Close the searcher; a load still running closes its own result when it ends."""
        with self._lock:
            self._closed = True
            searcher, self._searcher = self._searcher, None
            alerts, self._alerts = self._alerts, None
        if searcher is not None:
            searcher.close()
        if alerts is not None:
            alerts.close()
