"""The service's saved-search work, off the request path: matching new writes, sending webhooks.

Two daemon threads, so a slow webhook target never delays matching: one runs a matching pass
(``poshuk.alerts.match_new_writes``) every ``TICK_S``, catching every write path (this
service's HTTP writes, ``poshuk index`` and ``poshuk delete`` runs); the other sends the
outbox's due notifications. Both start doing anything only once an alert was saved on the
index (the alerts database exists), and neither runs in a read-only service, which creates
no file. A crash or ``kill -9`` loses nothing: the alerts database is the state, and both
resume from it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version

from poshuk.alerts import WebhookSender
from service.state import ServiceState

logger = logging.getLogger("poshuk.alerts")

TICK_S = 0.5


def _user_agent() -> str:
    try:
        return f"poshuk-alerts/{version('poshuk')}"
    except PackageNotFoundError:
        return "poshuk-alerts"


class AlertWorker:
    """Owns the matching and delivery threads."""

    def __init__(self, state: ServiceState) -> None:
        self.state = state
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._sender: WebhookSender | None = None

    def start(self) -> None:
        if self.state.settings.service.read_only or self._threads:
            return
        for name, work in (("poshuk-alert-matcher", self.match_once), ("poshuk-webhooks", self.send_once)):
            thread = threading.Thread(target=self._loop, args=(work,), name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=10)
        if self._sender is not None:
            self._sender.close()

    def _loop(self, work: Callable[[], int]) -> None:
        while not self._stop.wait(TICK_S):
            try:
                while work() and not self._stop.is_set():  # more may be waiting: go on without a pause
                    pass
            except Exception:
                logger.exception("saved-search work failed; retrying")

    def match_once(self) -> int:
        """One matching pass; returns the new matches (tests call it too)."""
        alerts = self.state.saved_alerts()
        return 0 if alerts is None else alerts.match_new_writes()

    def send_once(self) -> int:
        """Send the due notifications; returns how many were delivered."""
        alerts = self.state.saved_alerts()
        if alerts is None:
            return 0
        if self._sender is None:
            self._sender = WebhookSender(alerts.store, self.state.settings.alerts, user_agent=_user_agent())
        return self._sender.send_due()
