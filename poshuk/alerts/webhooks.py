"""Webhook targets that cannot reach inside, and delivery from the outbox with retries.

A webhook URL is a request the server makes on a user's behalf, so it is the classic SSRF
door: ``http://169.254.169.254/`` (cloud metadata), ``http://localhost:6379/``, a router's
admin page. Unless ``alerts.allow_private_webhooks`` is set, a target must be http(s) with
no credentials in it and every address its host resolves to must be public
(``ipaddress``'s ``is_global``); this is checked when the alert is saved and again right
before every delivery (the name may resolve elsewhere by then), and redirects are not
followed. A name that re-resolves between that check and the connection (DNS rebinding
within milliseconds) is not covered; deployments that need that run deliveries through an
egress proxy.

Delivery is at least once with a stable key: a notification leaves the outbox only when a
2xx answer was received, so a crash mid-request sends it again with the same
``Idempotency-Key``; a receiver that keeps the keys it has processed sees each match once.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import time
import urllib.parse
from collections.abc import Callable

import httpx

from poshuk.alerts.store import AlertStore, Pending
from poshuk.errors import InputError
from poshuk.settings import AlertSettings

logger = logging.getLogger("poshuk.alerts")

MAX_URL_CHARS = 2000
MAX_RETRY_S = 3600.0

Resolver = Callable[[str, int], list[str]]


def resolve(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to (``socket.getaddrinfo``)."""
    return [str(info[4][0]) for info in socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)]


class WebhookTargetError(InputError):
    """A webhook URL that is malformed or points at a non-public address."""


def check_target(url: str, *, allow_private: bool, resolver: Resolver = resolve) -> str:
    """``url`` if a webhook may be sent there; ``WebhookTargetError`` saying why not."""
    if len(url) > MAX_URL_CHARS:
        raise WebhookTargetError(f"the webhook URL is {len(url)} characters long; at most {MAX_URL_CHARS} are allowed")
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise WebhookTargetError(f"the webhook must be an http:// or https:// URL with a host, not {url[:100]!r}")
    if parts.username is not None or parts.password is not None:
        raise WebhookTargetError("the webhook URL must not carry credentials (user:password@)")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise WebhookTargetError(f"the webhook URL's port is not a port: {url[:100]!r}") from None
    if allow_private:
        return url
    try:
        addresses = resolver(parts.hostname, port)
    except OSError as exc:
        raise WebhookTargetError(f"the webhook host {parts.hostname!r} does not resolve: {exc}") from None
    for address in addresses:
        ip = ipaddress.ip_address(address.split("%")[0])
        mapped = getattr(ip, "ipv4_mapped", None)
        if not ip.is_global or (mapped is not None and not mapped.is_global):
            raise WebhookTargetError(
                f"the webhook host {parts.hostname!r} resolves to {ip}, which is not a public address",
                hint="webhooks may reach internal addresses only where alerts.allow_private_webhooks is set",
            )
    return url


class WebhookSender:
    """Sends the outbox's due notifications; one per call of ``send_due`` at most ``batch``."""

    def __init__(
        self,
        store: AlertStore,
        settings: AlertSettings,
        *,
        user_agent: str = "poshuk-alerts",
        resolver: Resolver = resolve,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self.resolver = resolver
        self._client = httpx.Client(
            timeout=settings.webhook_timeout_s,
            follow_redirects=False,
            headers={"user-agent": user_agent, "content-type": "application/json"},
            transport=transport,
        )

    def send_due(self, *, now: float | None = None, batch: int = 20) -> int:
        """Try every due notification (up to ``batch``); returns how many were delivered."""
        delivered = 0
        for pending in self.store.due(time.time() if now is None else now, batch):
            delivered += self._send(pending)
        return delivered

    def _send(self, pending: Pending) -> bool:
        try:
            check_target(pending.target, allow_private=self.settings.allow_private_webhooks, resolver=self.resolver)
            answer = self._client.post(pending.target, content=pending.body, headers={"idempotency-key": pending.key})
        except WebhookTargetError as exc:
            self._failed(pending, exc.one_line())
            return False
        except httpx.HTTPError as exc:
            self._failed(pending, f"{type(exc).__name__}: {exc}")
            return False
        if 200 <= answer.status_code < 300:
            self.store.delivered(pending)
            return True
        self._failed(pending, f"HTTP {answer.status_code}")
        return False

    def _failed(self, pending: Pending, reason: str) -> None:
        attempts = pending.attempts + 1
        if attempts >= self.settings.webhook_attempts:
            logger.warning("webhook %s given up after %d attempts: %s", pending.key, attempts, reason)
            self.store.failed(pending, reason, retry_at=None)
            return
        wait = min(self.settings.webhook_retry_s * 2 ** (attempts - 1), MAX_RETRY_S)
        self.store.failed(pending, reason, retry_at=time.time() + wait)

    def close(self) -> None:
        self._client.close()
