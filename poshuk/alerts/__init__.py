"""Saved searches that alert on new articles, in any language the model reads.

An alert is a query with a mode, filters and a threshold. When an article is written after
it (through any write path), the article matches if one of its passages is at least
``threshold`` close in meaning to the query (``dense``), if it holds every query word
(``lexical``, a percolator's rule), or either (``hybrid``, the default), and it passes the
filters. Because meaning is compared in the multilingual model's space, an English alert
fires for a Ukrainian article on the same event (``python -m benchmarks alerts`` measures
precision and recall on NTREX's English/Ukrainian document pairs).

- ``store``     the alerts database beside the index (alerts, matches, outbox, cursor)
- ``matching``  a pass over the change log after the cursor: one matrix product per 32 articles
- ``webhooks``  SSRF-safe targets and at-least-once delivery with stable idempotency keys
- ``Alerts``    (here) what the library, CLI and service call
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from poshuk.alerts.matching import MatchPass, match_all_new_writes, match_new_writes, notification_key
from poshuk.alerts.store import ALERTS_NAME, AlertStore
from poshuk.alerts.webhooks import Resolver, WebhookSender, WebhookTargetError, check_target, resolve
from poshuk.analysis import Analyzer
from poshuk.documents import clean_text
from poshuk.encoder import Encoder
from poshuk.errors import InputError, InvalidQueryError
from poshuk.filters import Filters
from poshuk.index import live_version
from poshuk.index.layout import read_manifest, version_last_seq
from poshuk.query import analyse_query
from poshuk.search import Searcher
from poshuk.settings import AlertSettings
from poshuk.shards.layout import is_sharded
from poshuk.wire import MODES, Alert, AlertMatches, Mode

MAX_MATCHES = 100  # matches one read returns
MAX_TOP_K = 100  # the deepest rank an alert may ask for

__all__ = [
    "ALERTS_NAME",
    "MAX_MATCHES",
    "MAX_TOP_K",
    "AlertStore",
    "Alerts",
    "MatchPass",
    "WebhookSender",
    "WebhookTargetError",
    "check_target",
    "match_all_new_writes",
    "match_new_writes",
    "notification_key",
]


class Alerts:
    """The saved searches of one (unsharded) index folder. ``encoder`` (the index's model) encodes the
    queries of new alerts; reading, deleting and matching need none."""

    def __init__(
        self,
        index_dir: Path,
        encoder: Encoder | None,
        settings: AlertSettings | None = None,
        *,
        max_query_chars: int = 1000,
        resolver: Resolver = resolve,
        searcher: Callable[[], Searcher] | None = None,
    ) -> None:
        if is_sharded(index_dir):
            raise InputError(
                f"{index_dir} is sharded: alerts need an unsharded index",
                hint="save alerts on the index the writes go to",
            )
        self.index_dir = index_dir
        self.encoder = encoder
        self.settings = settings or AlertSettings()
        self.max_query_chars = max_query_chars
        self._resolver = resolver
        self._searcher = searcher  # the index's searcher now (a service swaps it on reload), for `top_k`
        self.store = AlertStore(index_dir)

    def create(
        self,
        query: str,
        *,
        mode: Mode = "hybrid",
        filters: Filters | None = None,
        threshold: float | None = None,
        webhook: str | None = None,
        owner: str = "local",
        top_k: int | None = None,
    ) -> Alert:
        """Save an alert; only articles written from now on can match it.

        ``top_k`` instead of a ``threshold``: an article matches by meaning when it would have ranked
        among the ``top_k`` best articles of the alert's own search (dense, with its filters) over the
        archive as it is now; the threshold becomes the ``top_k``-th article's cosine (the default
        threshold when fewer articles pass the filters). Needs the index's ``searcher``."""
        text = clean_text(query).strip()
        if not text:
            raise InvalidQueryError("the alert's query is empty")
        if len(text) > self.max_query_chars:
            raise InvalidQueryError(
                f"the alert's query is {len(text)} characters long; at most {self.max_query_chars} are allowed"
            )
        if mode not in MODES:
            raise InvalidQueryError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        chosen = self.settings.threshold if threshold is None else threshold
        if not 0.0 <= chosen <= 1.0:
            raise InvalidQueryError(f"threshold must be between 0 and 1, got {chosen}")
        filters = None if filters is None or filters.is_empty() else filters.checked()
        if top_k is not None:
            chosen = self._rank_threshold(text, mode, top_k, filters, given=threshold)
        if webhook is not None:
            check_target(webhook, allow_private=self.settings.allow_private_webhooks, resolver=self._resolver)
        live = live_version(self.index_dir)
        manifest = read_manifest(live)
        terms = analyse_query(text, Analyzer(manifest.lexical))
        if mode == "lexical" and terms.empty:
            raise InvalidQueryError("the alert's query has no words to look for (mode lexical)")
        vector = None
        if mode != "lexical":
            if self.encoder is None:
                raise InputError("saving an alert that matches by meaning needs the model (an encoder)")
            vector = self.encoder.encode_queries([text])[0]
        seq = version_last_seq(live, read_only=True)
        alert = Alert(
            # Hex, not url-safe base64: an id that starts with '-' reads as an option on the command line.
            id=secrets.token_hex(16),
            query=text,
            mode=mode,
            filters=filters,
            threshold=round(chosen, 6),
            webhook=webhook,
            created_at=datetime.now(UTC),
            top_k=top_k,
        )
        self.store.add(
            alert,
            owner=owner,
            vector=vector,
            terms=terms,
            version=live.name,
            seq=seq,
            max_alerts=self.settings.max_alerts,
        )
        return alert

    def _rank_threshold(
        self, text: str, mode: Mode, top_k: int, filters: Filters | None, *, given: float | None
    ) -> float:
        """The cosine of the ``top_k``-th best article of the alert's own dense search now."""
        if given is not None:
            raise InvalidQueryError("give a threshold or top_k, not both")
        if not 1 <= top_k <= MAX_TOP_K:
            raise InvalidQueryError(f"top_k must be between 1 and {MAX_TOP_K}, got {top_k}")
        if mode == "lexical":
            raise InvalidQueryError("top_k ranks by meaning: it needs mode dense or hybrid")
        if self._searcher is None:
            raise InputError("top_k needs the index's searcher (to rank the archive)")
        hits = (
            self._searcher().search(text, k=top_k, mode="dense", filters=filters, collapse=True, highlight=False).hits
        )
        if len(hits) < top_k:
            return self.settings.threshold
        return round(min(max(hits[-1].score, 0.0), 1.0), 6)

    def get(self, alert_id: str, *, owner: str | None = None) -> Alert:
        return self.store.get(alert_id, owner=owner)

    def alerts(self, *, owner: str | None = None) -> list[Alert]:
        """Saved alerts (of ``owner``, unless None), newest first."""
        return self.store.alerts(owner=owner)

    def delete(self, alert_id: str, *, owner: str | None = None) -> None:
        self.store.delete(alert_id, owner=owner)

    def matches(self, alert_id: str, *, limit: int = 20, newest: bool = False) -> AlertMatches:
        """The alert's matches, best first (``newest``: latest first), at most ``limit`` (≤ 100)."""
        if not 1 <= limit <= MAX_MATCHES:
            raise InvalidQueryError(f"limit must be between 1 and {MAX_MATCHES}, got {limit}")
        alert = self.store.get(alert_id)
        return AlertMatches(alert=alert, matches=self.store.matches(alert_id, limit=limit, newest=newest))

    def match_new_writes(self) -> int:
        """Match every change written since the last pass; returns the new matches."""
        return match_all_new_writes(self.store, self.index_dir)

    def close(self) -> None:
        self.store.close()
