"""Matching saved searches against new writes, after they commit, from the index's change log.

Every write path (HTTP writes, ``poshuk index``, ``poshuk delete``) already appends each
upsert to the version's ``changes`` table in its own durable transaction: that log is the
outbox of writes. A pass reads the changes after the alerts' cursor, scores the new
articles' passage vectors against every alert's query vector in one matrix product, and
records the matches, their webhook notifications and the moved cursor in one transaction
of the alerts database. So writes never wait for alerts (no lock is shared, nothing is
added to a write), and a ``kill -9`` anywhere repeats no match and loses none: the next
pass starts from the cursor that committed with the last matches.

Rebuilds: a version going live records its last change (``LIVE_FROM``); changes up to it are
the build's own copies of articles, not new writes, and never match. The previous version's
tail (written before the swap) is read from its folder, which the swap keeps.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from poshuk.alerts.store import AlertStore, SavedQueries
from poshuk.errors import IndexStoreError
from poshuk.filters import admits
from poshuk.index import live_from, live_version
from poshuk.index.db import SQLITE_NAME, connect, select_in
from poshuk.index.layout import read_manifest, version_last_seq
from poshuk.wire import AlertMatch, MatchedBy

CHANGES_PER_PASS = 500  # changes read per transaction: bounds a pass's memory and lock time


@dataclass(frozen=True)
class MatchPass:
    """What one pass did."""

    changes: int  # changes read
    matched: int  # new matches recorded
    behind: bool  # more changes wait (call again)


@dataclass(frozen=True)
class _Article:
    doc_id: str
    title: str
    url: str | None
    source: str | None
    published_at: str | None
    lang: str | None
    section: str | None
    tags: tuple[str, ...]
    published_ts: float | None
    passage_ids: tuple[str, ...]
    texts: tuple[str, ...]
    terms: str  # every passage's indexed terms, space-separated


def notification_key(alert_id: str, doc_id: str) -> str:
    """The idempotency key of an alert's notification about an article: the same on every retry
    and after any restart (an article notifies an alert at most once)."""
    return hashlib.sha256(f"{alert_id}\0{doc_id}".encode()).hexdigest()[:32]


def match_new_writes(store: AlertStore, index_dir: Path, *, limit: int = CHANGES_PER_PASS) -> MatchPass:
    """One pass over at most ``limit`` changes after the cursor; call again while ``behind``."""
    try:
        live = live_version(index_dir)
    except IndexStoreError:
        return MatchPass(0, 0, False)
    with store.transaction() as db:
        cursor = store.cursor(db)
        if cursor is None:  # no alert was ever saved here
            return MatchPass(0, 0, False)
        version, seq = cursor
        tail = MatchPass(0, 0, False)
        if version != live.name:  # a rebuild went live: finish the old version's tail, then move over
            old = index_dir / "versions" / version
            if old.is_dir():
                tail = _pass(store, db, old, seq, limit)
                if tail.behind:
                    return tail
            seq = _start_of(live)
            store.move_cursor(db, live.name, seq)
        done = _pass(store, db, live, seq, limit)
        return MatchPass(tail.changes + done.changes, tail.matched + done.matched, done.behind)


def match_all_new_writes(store: AlertStore, index_dir: Path) -> int:
    """Passes until every change written so far is matched; returns the new matches."""
    matched = 0
    while True:
        done = match_new_writes(store, index_dir)
        matched += done.matched
        if not done.behind:
            return matched


def _start_of(folder: Path) -> int:
    """Where new writes begin in a version that went live (its build's changes come before)."""
    start = live_from(folder)
    return start if start is not None else version_last_seq(folder, read_only=True)


def _pass(store: AlertStore, db: sqlite3.Connection, folder: Path, after: int, limit: int) -> MatchPass:
    """Match the changes of version ``folder`` after ``after``; moves the cursor past them."""
    index = connect(folder / SQLITE_NAME, read_only=True)
    try:
        changes = index.execute(
            "SELECT seq, doc_id, op FROM changes WHERE seq > ? ORDER BY seq LIMIT ?", (after, limit + 1)
        ).fetchall()
        behind = len(changes) > limit
        changes = changes[:limit]
        if not changes:
            return MatchPass(0, 0, False)
        dimension = read_manifest(folder).model.dimension
        saved = store.saved(db, dimension)
        version = folder.name
        latest: dict[str, int] = {}  # each upserted article once, at its last change of this pass
        for change_seq, doc_id, op in changes:
            if op == "upsert":
                latest[str(doc_id)] = int(change_seq)
        matched = 0
        if saved.alerts and latest:
            articles = _articles(index, list(latest), dimension)
            matched = _match(store, db, saved, articles, latest, version)
        store.move_cursor(db, version, int(changes[-1][0]))
        return MatchPass(len(changes), matched, behind)
    finally:
        index.close()


def _articles(index: sqlite3.Connection, doc_ids: list[str], dimension: int) -> list[tuple[_Article, np.ndarray]]:
    """The articles as they are now, with their passage vectors (articles deleted since are absent)."""
    docs = select_in(
        index,
        "SELECT doc_id, title, url, source, published_at, lang, section, tags, published_ts "
        "FROM documents WHERE doc_id IN ({})",
        doc_ids,
    )
    passages: dict[str, list[tuple[str, str, bytes, str]]] = {}
    for doc_id, passage_id, text, blob, terms in select_in(
        index,
        "SELECT p.doc_id, p.passage_id, p.text, p.vector, coalesce(l.terms, '') FROM passages p "
        "LEFT JOIN lexical l ON l.rowid = p.row_id WHERE p.doc_id IN ({}) ORDER BY p.doc_id, p.ordinal",
        doc_ids,
    ):
        passages.setdefault(str(doc_id), []).append((str(passage_id), str(text), bytes(blob), str(terms)))
    out: list[tuple[_Article, np.ndarray]] = []
    for doc_id, title, url, source, published_at, lang, section, tags, ts in docs:
        own = passages.get(str(doc_id), [])
        if not own:
            continue
        vectors = np.vstack([np.frombuffer(blob, dtype=np.float32, count=dimension) for _, _, blob, _ in own])
        article = _Article(
            doc_id=str(doc_id),
            title=str(title),
            url=url,
            source=source,
            published_at=published_at,
            lang=lang,
            section=section,
            tags=tuple(json.loads(tags or "[]")),
            published_ts=None if ts is None else float(ts),
            passage_ids=tuple(p for p, _, _, _ in own),
            texts=tuple(t for _, t, _, _ in own),
            terms=" ".join(t for *_, t in own),
        )
        out.append((article, vectors))
    return out


ARTICLES_PER_PRODUCT = 32  # articles scored in one matrix product: the alerts' matrix is read once for them


def _best_passages(
    saved: SavedQueries, articles: list[tuple[_Article, np.ndarray]]
) -> Iterator[tuple[_Article, np.ndarray, np.ndarray]]:
    """For each article, its best passage per alert and that passage's cosine (all vectors are unit
    length). Articles go in groups through one product each: with 10,000 alerts the alerts' matrix
    (15 MB) is what costs, so it is read once per group rather than once per article."""
    columns = np.arange(len(saved.alerts))
    for start in range(0, len(articles), ARTICLES_PER_PRODUCT):
        group = articles[start : start + ARTICLES_PER_PRODUCT]
        scores = np.vstack([vectors for _, vectors in group]) @ saved.vectors.T  # (passages, alerts)
        first = 0
        for article, vectors in group:
            own = scores[first : first + len(vectors)]
            first += len(vectors)
            best_rows = own.argmax(axis=0)
            yield article, best_rows, own[best_rows, columns]


def _match(
    store: AlertStore,
    db: sqlite3.Connection,
    saved: SavedQueries,
    articles: list[tuple[_Article, np.ndarray]],
    change_of: dict[str, int],
    version: str,
) -> int:
    """Score every article against every alert and record the matches."""
    now = datetime.now(UTC)
    matched = 0
    for article, best_rows, best in _best_passages(saved, articles):
        seq = change_of[article.doc_id]
        by_meaning = set(np.flatnonzero(best >= saved.thresholds).tolist())
        for n in sorted(by_meaning | saved.word_candidates(article.terms)):
            alert = saved.alerts[n]
            if (version, seq) <= (alert.created_version, alert.created_seq):
                continue  # written before the alert was saved
            meaning = n in by_meaning
            words = (
                alert.mode != "dense"
                and not alert.terms.empty
                and len(saved.finders[n](article.terms)) == len(alert.terms.units)
            )
            if not (meaning or words) or not admits(
                alert.filters,
                lang=article.lang,
                source=article.source,
                section=article.section,
                tags=article.tags,
                published_ts=article.published_ts,
            ):
                continue
            how: MatchedBy = "both" if meaning and words else "meaning" if meaning else "words"
            row = int(best_rows[n])
            match = AlertMatch(
                doc_id=article.doc_id,
                title=article.title,
                url=article.url,
                source=article.source,
                published_at=None if article.published_at is None else datetime.fromisoformat(article.published_at),
                lang=article.lang,
                passage_id=article.passage_ids[row],
                text=article.texts[row],
                score=round(float(best[n]), 6),
                matched_by=how,
                matched_at=now,
            )
            matched += store.record(db, alert, match, notification_key(alert.id, article.doc_id))
    return matched
