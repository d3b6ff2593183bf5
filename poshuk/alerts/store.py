"""``AlertStore``: saved searches, their matches, the webhook outbox and the matcher's cursor.

One SQLite file beside the versions (``DIR/alerts.sqlite``), so alerts outlive rebuilds and
writing one never touches the index's write lock. WAL with ``synchronous=FULL``, like the
index: a match, its outbox row and the cursor past the change that caused them commit in
one transaction, so a ``kill -9`` at any point neither loses nor repeats a match.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
from numpy.typing import NDArray

from poshuk.errors import IndexStoreError, InputError, NotFoundError
from poshuk.filters import Filters
from poshuk.query import QueryTerms, UnitFinder
from poshuk.wire import Alert, AlertMatch, Mode, WebhookNotification

ALERTS_NAME = "alerts.sqlite"
BUSY_TIMEOUT_MS = 10_000

SCHEMA = """
CREATE TABLE IF NOT EXISTS alerts (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    query TEXT NOT NULL,
    mode TEXT NOT NULL,
    filters TEXT,
    threshold REAL NOT NULL,
    top_k INTEGER,
    webhook TEXT,
    created_at TEXT NOT NULL,
    created_version TEXT NOT NULL,
    created_seq INTEGER NOT NULL,
    vector BLOB,
    terms BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS alerts_owner ON alerts(owner);
CREATE TABLE IF NOT EXISTS matches (
    alert_id TEXT NOT NULL REFERENCES alerts(id) ON DELETE CASCADE,
    doc_id TEXT NOT NULL,
    score REAL NOT NULL,
    body BLOB NOT NULL,
    matched_ts REAL NOT NULL,
    PRIMARY KEY (alert_id, doc_id)
);
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL UNIQUE,
    alert_id TEXT NOT NULL REFERENCES alerts(id) ON DELETE CASCADE,
    target TEXT NOT NULL,
    body BLOB NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_ts REAL NOT NULL,
    delivered_ts REAL,
    failure TEXT,
    gave_up INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox(next_ts) WHERE delivered_ts IS NULL AND gave_up = 0;
CREATE TABLE IF NOT EXISTS cursor (
    one INTEGER PRIMARY KEY CHECK (one = 1),
    version TEXT NOT NULL,
    seq INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS generation (
    one INTEGER PRIMARY KEY CHECK (one = 1),
    value INTEGER NOT NULL
);
"""


@dataclass(frozen=True)
class SavedQuery:
    """What the matcher needs of one alert."""

    id: str
    query: str
    mode: Mode
    filters: Filters | None
    threshold: float
    webhook: str | None
    created_version: str
    created_seq: int
    terms: QueryTerms  # analysed once, when saved


@dataclass(frozen=True)
class SavedQueries:
    """Every alert, with what matching reads of them laid out once per change of the alerts: the
    query vectors as one matrix and the thresholds as one array (row ``n`` is ``alerts[n]``'s), and
    the alerts that match by words indexed by their first word, so an article is checked only
    against those whose first word it holds (10,000 alerts cost ~1 ms per article, not ~10)."""

    generation: int
    alerts: tuple[SavedQuery, ...]
    vectors: NDArray[np.float32]  # (len(alerts), dim); zero rows for lexical alerts
    thresholds: NDArray[np.float32]  # a lexical alert's is above any cosine
    by_first_word: dict[str, tuple[int, ...]]
    always_check: tuple[int, ...]  # word alerts whose first word is a name found by prefix too
    finders: tuple[UnitFinder, ...]  # each alert's words, built once (row ``n`` is ``alerts[n]``'s)

    @classmethod
    def of(cls, generation: int, alerts: list[SavedQuery], vectors: NDArray[np.float32]) -> SavedQueries:
        thresholds = np.array([2.0 if a.mode == "lexical" else a.threshold for a in alerts], dtype=np.float32)
        first: dict[str, list[int]] = {}
        always: list[int] = []
        for n, alert in enumerate(alerts):
            if alert.mode == "dense" or alert.terms.empty:
                continue
            unit = alert.terms.units[0]
            if unit.prefixes:
                always.append(n)
            else:
                first.setdefault(unit.term, []).append(n)
        return cls(
            generation,
            tuple(alerts),
            vectors,
            thresholds,
            {term: tuple(ns) for term, ns in first.items()},
            tuple(always),
            tuple(a.terms.finder() for a in alerts),
        )

    def word_candidates(self, indexed_terms: str) -> set[int]:
        """Alerts whose words an article with these indexed terms may hold (the finder decides)."""
        found = set(self.always_check)
        for term in set(indexed_terms.split()):
            found.update(self.by_first_word.get(term, ()))
        return found


@dataclass(frozen=True)
class Pending:
    """One undelivered webhook notification."""

    id: int
    key: str
    target: str
    body: bytes
    attempts: int


class AlertStore:
    """The alerts database of one index folder. Thread-safe: one connection per thread."""

    def __init__(self, index_dir: Path) -> None:
        self.path = index_dir / ALERTS_NAME
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._saved: SavedQueries | None = None
        try:
            self._conn().executescript(SCHEMA)
        except sqlite3.Error as exc:
            raise IndexStoreError(f"cannot use alerts database {self.path}: {exc}") from None

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            try:
                conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
            except sqlite3.Error as exc:
                raise IndexStoreError(f"cannot open alerts database {self.path}: {exc}") from None
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA foreign_keys=ON")
            self._local.conn = conn
            with self._lock:
                self._connections.append(conn)
        return conn

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT`` (rolled back on an exception): one writer at a time,
        across threads and processes (a server and a ``poshuk index`` run both match)."""
        db = self._conn()
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            connections, self._connections = self._connections, []
        for conn in connections:
            with contextlib.suppress(sqlite3.Error):
                conn.close()

    # -- alerts ------------------------------------------------------------------------

    def add(
        self,
        alert: Alert,
        *,
        owner: str,
        vector: NDArray[np.float32] | None,
        terms: QueryTerms,
        version: str,
        seq: int,
        max_alerts: int,
    ) -> None:
        """Save ``alert``, created when the index's live ``version`` was at change ``seq``; the
        matcher's cursor starts there if this is the first alert."""
        with self.transaction() as db:
            (count,) = db.execute("SELECT count(*) FROM alerts").fetchone()
            if count >= max_alerts:
                raise InputError(
                    f"this index already holds {count} saved searches, the most it may (alerts.max_alerts)",
                    hint="delete alerts that are no longer needed",
                )
            db.execute(
                "INSERT INTO alerts (id, owner, query, mode, filters, threshold, top_k, webhook, created_at, "
                "created_version, created_seq, vector, terms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    alert.id,
                    owner,
                    alert.query,
                    alert.mode,
                    None if alert.filters is None else msgspec.json.encode(alert.filters),
                    alert.threshold,
                    alert.top_k,
                    alert.webhook,
                    alert.created_at.isoformat(),
                    version,
                    seq,
                    None if vector is None else np.asarray(vector, np.float32).tobytes(),
                    msgspec.json.encode(terms),
                ),
            )
            db.execute("INSERT OR IGNORE INTO cursor (one, version, seq) VALUES (1, ?, ?)", (version, seq))
            self._bump(db)

    def _bump(self, db: sqlite3.Connection) -> None:
        db.execute("INSERT INTO generation (one, value) VALUES (1, 1) ON CONFLICT(one) DO UPDATE SET value = value + 1")

    def get(self, alert_id: str, *, owner: str | None = None) -> Alert:
        """The alert (owned by ``owner``, unless None); ``NotFoundError`` otherwise."""
        row = self._conn().execute(_ALERT_SELECT + " WHERE a.id = ?", (alert_id,)).fetchone()
        if row is None or (owner is not None and row[-1] != owner):
            raise NotFoundError(f"alert {alert_id!r} does not exist")
        return _alert_from_row(row)

    def alerts(self, *, owner: str | None = None) -> list[Alert]:
        """Alerts (of ``owner``, unless None), newest first."""
        where, params = ("", ()) if owner is None else (" WHERE a.owner = ?", (owner,))
        rows = self._conn().execute(_ALERT_SELECT + where + " ORDER BY a.created_at DESC", params).fetchall()
        return [_alert_from_row(r) for r in rows]

    def delete(self, alert_id: str, *, owner: str | None = None) -> None:
        """Delete the alert, its matches and its undelivered notifications."""
        with self.transaction() as db:
            row = db.execute("SELECT owner FROM alerts WHERE id = ?", (alert_id,)).fetchone()
            if row is None or (owner is not None and row[0] != owner):
                raise NotFoundError(f"alert {alert_id!r} does not exist")
            db.execute("DELETE FROM alerts WHERE id = ?", (alert_id,))
            self._bump(db)

    def matches(self, alert_id: str, *, limit: int, newest: bool = False) -> list[AlertMatch]:
        """An alert's matches, best first (or newest first)."""
        order = "matched_ts DESC" if newest else "score DESC, matched_ts"
        rows = self._conn().execute(
            f"SELECT body FROM matches WHERE alert_id = ? ORDER BY {order} LIMIT ?", (alert_id, limit)
        )
        return [msgspec.json.decode(body, type=AlertMatch) for (body,) in rows]

    def saved(self, db: sqlite3.Connection, dimension: int) -> SavedQueries:
        """Every alert and its vector, reloaded only when an alert was added or deleted."""
        row = db.execute("SELECT value FROM generation").fetchone()
        generation = 0 if row is None else int(row[0])
        cached = self._saved
        if cached is not None and cached.generation == generation and cached.vectors.shape[1] == dimension:
            return cached
        alerts: list[SavedQuery] = []
        vectors = []
        for r in db.execute(
            "SELECT id, query, mode, filters, threshold, webhook, created_version, created_seq, vector, terms "
            "FROM alerts ORDER BY rowid"
        ):
            alert_id, query, mode, filters, threshold, webhook, version, seq, blob, terms = r
            alerts.append(
                SavedQuery(
                    id=alert_id,
                    query=query,
                    mode=mode,
                    filters=None if filters is None else msgspec.json.decode(filters, type=Filters),
                    threshold=float(threshold),
                    webhook=webhook,
                    created_version=version,
                    created_seq=int(seq),
                    terms=msgspec.json.decode(terms, type=QueryTerms),
                )
            )
            vector = np.zeros(dimension, np.float32)
            if blob is not None and len(blob) == dimension * 4:
                vector = np.frombuffer(blob, dtype=np.float32)
            vectors.append(vector)
        matrix = np.vstack(vectors) if vectors else np.zeros((0, dimension), np.float32)
        self._saved = SavedQueries.of(generation, alerts, matrix)
        return self._saved

    # -- the matcher's cursor ------------------------------------------------------------

    def cursor(self, db: sqlite3.Connection) -> tuple[str, int] | None:
        row = db.execute("SELECT version, seq FROM cursor").fetchone()
        return None if row is None else (str(row[0]), int(row[1]))

    def move_cursor(self, db: sqlite3.Connection, version: str, seq: int) -> None:
        db.execute("UPDATE cursor SET version = ?, seq = ? WHERE one = 1", (version, seq))

    def record(self, db: sqlite3.Connection, alert: SavedQuery, match: AlertMatch, key: str) -> bool:
        """Store a match (and its notification, if the alert has a webhook); False if the article
        had already matched this alert (an update of it does not notify again)."""
        body = msgspec.json.encode(match)
        added = db.execute(
            "INSERT OR IGNORE INTO matches (alert_id, doc_id, score, body, matched_ts) VALUES (?, ?, ?, ?, ?)",
            (alert.id, match.doc_id, match.score, body, time.time()),
        ).rowcount
        if added and alert.webhook is not None:
            note = WebhookNotification(key=key, alert_id=alert.id, query=alert.query, match=match)
            db.execute(
                "INSERT OR IGNORE INTO outbox (key, alert_id, target, body, next_ts) VALUES (?, ?, ?, ?, ?)",
                (key, alert.id, alert.webhook, msgspec.json.encode(note), time.time()),
            )
        return bool(added)

    # -- the outbox ----------------------------------------------------------------------

    def due(self, now: float, limit: int = 20) -> list[Pending]:
        rows = self._conn().execute(
            "SELECT id, key, target, body, attempts FROM outbox "
            "WHERE delivered_ts IS NULL AND gave_up = 0 AND next_ts <= ? ORDER BY next_ts, id LIMIT ?",
            (now, limit),
        )
        return [Pending(int(i), str(k), str(t), bytes(b), int(a)) for i, k, t, b, a in rows]

    def delivered(self, pending: Pending) -> None:
        with self.transaction() as db:
            db.execute(
                "UPDATE outbox SET delivered_ts = ?, attempts = attempts + 1, failure = NULL WHERE id = ?",
                (time.time(), pending.id),
            )

    def failed(self, pending: Pending, reason: str, *, retry_at: float | None) -> None:
        """Record a failed delivery: retried at ``retry_at``, or given up when None."""
        with self.transaction() as db:
            db.execute(
                "UPDATE outbox SET attempts = attempts + 1, failure = ?, next_ts = coalesce(?, next_ts), "
                "gave_up = ? WHERE id = ?",
                (reason[:500], retry_at, int(retry_at is None), pending.id),
            )

    def outbox_counts(self) -> dict[str, int]:
        """Notifications delivered, waiting and given up (for metrics and tests)."""
        (delivered, waiting, gave_up) = (
            self._conn()
            .execute("SELECT count(delivered_ts), sum(delivered_ts IS NULL AND gave_up = 0), sum(gave_up) FROM outbox")
            .fetchone()
        )
        return {"delivered": int(delivered or 0), "waiting": int(waiting or 0), "gave_up": int(gave_up or 0)}


_ALERT_SELECT = (
    "SELECT a.id, a.query, a.mode, a.filters, a.threshold, a.top_k, a.webhook, a.created_at, "
    "(SELECT count(*) FROM matches m WHERE m.alert_id = a.id), a.owner FROM alerts a"
)


def _alert_from_row(row: Any) -> Alert:
    alert_id, query, mode, filters, threshold, top_k, webhook, created_at, matched, _owner = row
    return Alert(
        id=str(alert_id),
        query=str(query),
        mode=mode,
        filters=None if filters is None else msgspec.json.decode(filters, type=Filters),
        threshold=float(threshold),
        webhook=None if webhook is None else str(webhook),
        top_k=None if top_k is None else int(top_k),
        created_at=datetime.fromisoformat(str(created_at)),
        matches=int(matched),
    )
