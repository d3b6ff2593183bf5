"""A fair gate for search work: at most ``slots`` searches run at once, and when every slot
is busy the next one goes to the waiting client that has used the least server time lately.

Why: a rate limit bounds how often a key may ask, not what its requests cost. Four keys
sending new (never cached) queries back to back kept a two-core server busy, and every
other user's search queued behind theirs (issue 13: normal users' p50 4x the quiet p50).
Behind this gate a light user waits for at most one running search, while the heavy keys
queue behind each other. The gate is taken after the body is read (a slow body holds no
slot) and waiting costs a coroutine, not a worker thread.

Time used decays with a half-life, so a client that was busy a minute ago is not punished
now; the clients remembered are bounded like the rate limiter's buckets.

Ordering alone was not enough: four keys each sending searches at the rate limit still kept
both cores busy, and a light user's search, once admitted, shared the CPU with theirs
(issue 13: p50 3.2x the quiet one). So each client also has a *share*: server seconds of
search per second, on average over the half-life. A client past it gets 429 until its use
decays back, whatever the server's load: an attacker with many keys gets ``keys x share``
of the machine, not all of it. Writes are charged too (their encoding is most of their cost),
but take no slot.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TypeVar

import anyio.to_thread

from service.errors import too_many_requests

MAX_CLIENTS = 100_000
T = TypeVar("T")
GATE_KEY = "poshuk.fair_gate"  # the app's gate in its state (tests read it there)


@dataclass(frozen=True)
class _Waiter:
    client: str
    ticket: int  # arrival order: breaks ties between clients with equal time used
    granted: asyncio.Future[None]


class FairGate:
    """Slots for search work, handed out least-recently-served first. One event loop uses it."""

    def __init__(
        self,
        slots: int,
        *,
        share: float = 0.0,
        half_life_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if slots < 1:
            raise ValueError("a gate needs at least one slot")
        if share < 0:
            raise ValueError("a client's share cannot be negative")
        self.slots = slots
        self.share = share
        # A client using ``share`` seconds per second without pause settles at this decayed usage.
        self._budget = share * half_life_s / math.log(2)
        self._half_life = half_life_s
        self._clock = clock
        self._busy = 0
        self._waiting: list[_Waiter] = []
        self._used: dict[str, tuple[float, float]] = {}  # client -> (seconds used, when last charged)
        self._tickets = itertools.count()

    @property
    def busy(self) -> int:
        return self._busy

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    def usage(self, client: str, now: float | None = None) -> float:
        """Seconds of work ``client`` had lately, decayed by the half-life (to ``now``, default: the clock's now)."""
        used, at = self._used.get(client, (0.0, 0.0))
        if used == 0.0:
            return 0.0
        return float(used * 0.5 ** (((self._clock() if now is None else now) - at) / self._half_life))

    def over_share(self, client: str) -> float:
        """Seconds until ``client`` is back within its share (0.0: it is; always 0.0 without a share)."""
        if self.share <= 0:
            return 0.0
        used = self.usage(client)
        if used <= self._budget:
            return 0.0
        return self._half_life * math.log2(used / self._budget)

    @asynccontextmanager
    async def slot(self, client: str) -> AsyncIterator[None]:
        """Hold one slot for ``client`` while the block runs; its duration is charged to the client."""
        if self._busy < self.slots and not self._waiting:
            self._busy += 1
        else:
            granted: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            waiter = _Waiter(client, next(self._tickets), granted)
            self._waiting.append(waiter)
            try:
                await waiter.granted
            except BaseException:
                if waiter.granted.done() and not waiter.granted.cancelled():
                    self._release()  # granted just as it was cancelled: pass the slot on
                elif waiter in self._waiting:
                    self._waiting.remove(waiter)
                raise
        started = self._clock()
        try:
            yield
        finally:
            self.charge(client, self._clock() - started)
            self._release()

    def refuse_over_share(self, client: str) -> None:
        """429 problem+json (with ``Retry-After``) when ``client`` is past its share of server time."""
        wait = self.over_share(client)
        if wait > 0:
            who = "key" if client.startswith("key:") else "client"
            raise too_many_requests(
                f"this {who} used more than its share of server time ({self.share:g} s per second on average)", wait
            )

    async def run(self, client: str, work: Callable[[], T]) -> T:
        """``work`` in a worker thread once ``client`` is within its share and has a slot; the slot
        is held until the thread ends, even if the request is abandoned meanwhile."""
        self.refuse_over_share(client)
        async with self.slot(client):
            return await anyio.to_thread.run_sync(work)

    @asynccontextmanager
    async def charged(self, client: str) -> AsyncIterator[None]:
        """Charge the block's duration to ``client`` without a slot: writes, whose encoding is server
        time too, but which must not wait behind searches (they hold no lock while encoding)."""
        started = self._clock()
        try:
            yield
        finally:
            self.charge(client, self._clock() - started)

    def charge(self, client: str, seconds: float) -> None:
        """Count ``seconds`` of server work against ``client``."""
        self._used[client] = (self.usage(client) + seconds, self._clock())
        if len(self._used) > MAX_CLIENTS:
            for name in sorted(self._used, key=self.usage)[: len(self._used) // 2]:
                del self._used[name]

    def _release(self) -> None:
        self._busy -= 1
        # One instant for every waiter: read per waiter, a later read of the same client's usage is
        # decayed a little more, so the newest of one client's waiters won and the oldest starved
        # (requests of one client under steady load waited until the load stopped, 15 s and more).
        now = self._clock()
        while self._busy < self.slots and self._waiting:
            chosen = min(self._waiting, key=lambda w: (self.usage(w.client, now), w.ticket))
            self._waiting.remove(chosen)
            if chosen.granted.done():  # its request went away meanwhile
                continue
            self._busy += 1
            chosen.granted.set_result(None)
