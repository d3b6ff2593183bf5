"""The fair gate: slots, least-recently-served first, cancellation without leaked slots (a fake clock)."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import pytest

from service.fair_gate import FairGate

T = TypeVar("T")


def run(scenario: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run`` in a thread of its own: the browser tests' Playwright keeps a loop running in this one."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, scenario).result()


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def _use(gate: FairGate, clock: Clock, client: str, seconds: float) -> None:
    async with gate.slot(client):
        clock.now += seconds


def test_free_slots_are_taken_at_once_and_given_back() -> None:
    async def scenario() -> None:
        gate = FairGate(2, clock=Clock())
        async with gate.slot("a"), gate.slot("b"):
            assert (gate.busy, gate.waiting) == (2, 0)
        assert gate.busy == 0

    run(scenario())


async def _served_order(gate: FairGate, holder: str, askers: list[str]) -> list[int]:
    """Which of ``askers`` (clients, queued in this order behind ``holder``'s busy slot) got in, in turn."""
    order: list[int] = []
    release = asyncio.Event()

    async def hold() -> None:
        async with gate.slot(holder):
            await release.wait()

    async def ask(n: int) -> None:
        async with gate.slot(askers[n]):
            order.append(n)

    held = asyncio.create_task(hold())
    await asyncio.sleep(0)
    waiters = [asyncio.create_task(ask(n)) for n in range(len(askers))]
    await asyncio.sleep(0)
    assert gate.waiting == len(askers)
    release.set()
    await asyncio.gather(held, *waiters)
    return order


def test_a_light_client_goes_before_a_heavy_one_that_queued_first() -> None:
    async def scenario() -> list[str]:
        clock = Clock()
        gate = FairGate(1, clock=clock)
        await _use(gate, clock, "key:heavy", 3.0)  # the heavy key has used 3 s lately
        askers = ["key:heavy", "ip:127.0.0.2"]
        return [askers[n] for n in await _served_order(gate, "key:heavy", askers)]

    assert run(scenario()) == ["ip:127.0.0.2", "key:heavy"]


def test_equal_clients_are_served_in_arrival_order() -> None:
    async def scenario() -> list[int]:
        return await _served_order(FairGate(1, clock=Clock()), "x", [f"c{n}" for n in range(5)])

    assert run(scenario()) == [0, 1, 2, 3, 4]


class TickingClock(Clock):
    """A clock that moves on a microsecond at every reading, as ``time.monotonic`` does."""

    def __call__(self) -> float:
        self.now += 1e-6
        return self.now


def test_one_clients_requests_are_served_in_arrival_order_while_the_clock_moves() -> None:
    async def scenario() -> list[int]:
        clock = TickingClock()
        gate = FairGate(1, clock=clock)
        await _use(gate, clock, "ip:127.0.0.1", 0.5)  # the client has used the server lately
        return await _served_order(gate, "ip:127.0.0.1", ["ip:127.0.0.1"] * 6)

    # Usage read per waiter decays between readings: the newest request went first, the oldest starved.
    assert run(scenario()) == [0, 1, 2, 3, 4, 5]


def test_a_waiter_that_goes_away_leaves_no_slot_behind() -> None:
    async def scenario() -> tuple[int, int]:
        gate = FairGate(1, clock=Clock())
        release = asyncio.Event()

        async def hold() -> None:
            async with gate.slot("a"):
                await release.wait()

        async def wait_in_line() -> None:
            async with gate.slot("b"):
                raise AssertionError("a cancelled waiter must not run")

        holder = asyncio.create_task(hold())
        await asyncio.sleep(0)
        waiter = asyncio.create_task(wait_in_line())
        await asyncio.sleep(0)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        release.set()
        await holder
        async with gate.slot("c"):  # the only slot is free again
            busy = gate.busy
        return busy, gate.waiting

    assert run(scenario()) == (1, 0)


def test_time_used_decays_with_the_half_life() -> None:
    async def scenario() -> tuple[float, float]:
        clock = Clock()
        gate = FairGate(1, half_life_s=10.0, clock=clock)
        await _use(gate, clock, "a", 4.0)
        now = gate.usage("a")
        clock.now += 10.0
        return now, gate.usage("a")

    assert run(scenario()) == (4.0, 2.0)


def test_a_gate_needs_a_slot() -> None:
    with pytest.raises(ValueError, match="at least one slot"):
        FairGate(0)


def test_a_client_past_its_share_waits_until_its_use_decays_back() -> None:
    async def scenario() -> tuple[float, float, float, float]:
        clock = Clock()
        gate = FairGate(1, share=0.5, half_life_s=10.0, clock=clock)  # steady use settles at 0.5 * 10 / ln 2 s
        budget = 0.5 * 10.0 / math.log(2)
        await _use(gate, clock, "key:steady", budget * 0.99)
        await _use(gate, clock, "key:heavy", budget * 2)  # twice the budget: one half-life away from it
        over = gate.over_share("key:heavy")
        clock.now += over
        return gate.over_share("key:steady"), over, gate.over_share("key:heavy"), gate.over_share("key:light")

    steady, over, later, light = run(scenario())
    assert steady == 0.0 and light == 0.0
    assert over == pytest.approx(10.0) and later == pytest.approx(0.0, abs=1e-9)


def test_without_a_share_no_client_is_ever_refused() -> None:
    async def scenario() -> float:
        clock = Clock()
        gate = FairGate(1, clock=clock)
        await _use(gate, clock, "key:heavy", 1000.0)
        return gate.over_share("key:heavy")

    assert run(scenario()) == 0.0
    with pytest.raises(ValueError, match="negative"):
        FairGate(1, share=-0.1)
