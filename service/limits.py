"""Per-client rate limiting and a per-request time limit, as one ASGI middleware.

Rate limiting is a token bucket per principal: a valid API key (by its hash's prefix)
or, without one, the client's address. Each bucket holds ``rate_limit_burst`` tokens and
refills at ``rate_limit_per_second``; a request with no token left gets 429 with
``Retry-After``. ``/healthz`` and ``/readyz`` are never limited (probes must not flap).

The time limit answers 503 (with ``Retry-After``) when a request has not started its
response within ``request_timeout_s``. The handler's thread cannot be stopped, so it
runs to the end and its answer is dropped; a write that was cut off this way may still
be applied, which is why a 503 means "unknown outcome" and writes are idempotent
(``PUT`` again with the same body).

Both raise ``ServiceProblem``, so the answers are problem+json like every other.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from poshuk.settings import ServiceSettings
from service.auth import PRINCIPAL_SCOPE_KEY, KeyRing, Principal
from service.errors import ServiceProblem, too_many_requests

logger = logging.getLogger("poshuk.service")

UNLIMITED_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
MAX_BUCKETS = 100_000
CLIENT_SCOPE_KEY = "poshuk.client"  # who is asking: the rate limit's and the fair gate's unit


def client_of(scope: Scope) -> str:
    """The client ``LimitsMiddleware`` recorded for this request ("unknown" outside it)."""
    mutable: Any = scope
    found = mutable.get(CLIENT_SCOPE_KEY)
    return found if isinstance(found, str) else "unknown"


class TokenBuckets:
    """Token buckets by principal; the event loop is the only caller, so no lock is needed."""

    def __init__(self, rate: float, burst: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}

    def take(self, who: str) -> float:
        """0 if ``who`` may go ahead now (a token is taken), else the seconds until it may."""
        now = self._clock()
        tokens, last = self._buckets.get(who, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - last) * self.rate)
        if tokens >= 1.0:
            self._buckets[who] = (tokens - 1.0, now)
            self._trim(now)
            return 0.0
        self._buckets[who] = (tokens, now)
        return (1.0 - tokens) / self.rate

    def _trim(self, now: float) -> None:
        if len(self._buckets) <= MAX_BUCKETS:
            return
        full = [who for who, (tokens, last) in self._buckets.items() if tokens + (now - last) * self.rate >= self.burst]
        for who in full:  # a full bucket is the same as no bucket
            del self._buckets[who]


class Limits:
    """The limits' shared state: Litestar builds one middleware per route, and they all use this."""

    def __init__(self, limits: ServiceSettings, ring: KeyRing) -> None:
        self.timeout = limits.request_timeout_s
        self.ring = ring
        self.buckets = (
            TokenBuckets(limits.rate_limit_per_second, limits.rate_limit_burst)
            if limits.rate_limit_per_second > 0
            else None
        )


class LimitsMiddleware:
    """Rate limit, then time limit, around the rest of the app."""

    def __init__(self, app: ASGIApp, shared: Limits) -> None:
        self.app = app
        self.timeout = shared.timeout
        self.ring = shared.ring
        self.buckets = shared.buckets

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self.app(scope, receive, send)
            return
        who, keyed = self.identify(scope)
        if self.buckets is not None and scope["path"] not in UNLIMITED_PATHS:
            self._check_rate(who, keyed)
        if self.timeout <= 0:
            await self.app(scope, receive, send)
            return
        await self._with_deadline(scope, receive, send)

    def identify(self, scope: Scope) -> tuple[str, bool]:
        """(the client, whether by a valid key): recorded in the scope for the fair gate."""
        principal = self._principal(scope)
        if principal.valid:
            who = f"key:{principal.key_id}"
        else:
            client = scope.get("client")
            who = f"ip:{client[0] if client else 'unknown'}"
        mutable: Any = scope
        mutable[CLIENT_SCOPE_KEY] = who
        return who, principal.valid

    def _check_rate(self, who: str, keyed: bool) -> None:
        assert self.buckets is not None
        wait = self.buckets.take(who)
        if wait > 0:
            raise too_many_requests(
                f"more than {self.buckets.rate:g} requests per second (burst {self.buckets.burst}) from this "
                f"{'key' if keyed else 'client'}",
                wait,
            )

    def _principal(self, scope: Scope) -> Principal:
        mutable: Any = scope
        found = mutable.get(PRINCIPAL_SCOPE_KEY)
        if isinstance(found, Principal):
            return found
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        principal = self.ring.identify(headers)
        mutable[PRINCIPAL_SCOPE_KEY] = principal
        return principal

    async def _with_deadline(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = False
        abandoned = False

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if abandoned:
                return
            started = True
            await send(message)

        task = asyncio.ensure_future(self.app(scope, receive, guarded_send))
        try:
            done, _ = await asyncio.wait({task}, timeout=self.timeout)
        except asyncio.CancelledError:  # the client went away: let the handler finish, unheard
            abandoned = True
            task.add_done_callback(_log_late_failure)
            raise
        if task in done or started:
            await task
            return
        abandoned = True
        task.add_done_callback(_log_late_failure)
        raise ServiceProblem(
            503,
            "timeout",
            "Request timed out",
            f"the request was not answered within {self.timeout:g} s; retry later (a write may still be applied: "
            "repeating a PUT is safe)",
            headers={"Retry-After": "1"},
        )


def _log_late_failure(task: asyncio.Future[None]) -> None:
    with contextlib.suppress(asyncio.CancelledError):
        exc = task.exception()
        if exc is not None:
            logger.warning("a timed-out request failed afterwards: %s", type(exc).__name__)
