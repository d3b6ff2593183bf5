"""The hostile reliability benchmark's pure parts: the attackers' requests sit at (or just past) the
service's bounds, and the per-phase figures and the report say what was measured."""

from __future__ import annotations

import json
import random
from typing import Any

import h11
import msgspec
import pytest

from benchmarks.attackers import (
    FILTER_FIELDS,
    _status_of,
    over_limit_body,
    partial_head,
    slow_body_head,
    worst_filter_body,
)
from benchmarks.hostile import (
    ATTACKERS,
    FilterBombs,
    HostileResult,
    merge_filter_bombs,
    p50_ratio,
    phase_figures,
    render,
    user_request,
)
from benchmarks.machine import machine
from poshuk.errors import InvalidQueryError
from poshuk.filters import MAX_FILTER_VALUE_CHARS, MAX_FILTER_VALUES
from poshuk.settings import ServiceSettings
from service.schemas import SearchRequest


def test_worst_filter_body_is_accepted_at_every_bound() -> None:
    body = worst_filter_body(random.Random(1), "query")
    for name in FILTER_FIELDS:
        values = body["filters"][name]
        assert len(values) == len(set(values)) == MAX_FILTER_VALUES
        assert {len(v) for v in values} == {MAX_FILTER_VALUE_CHARS}
    raw = json.dumps(body).encode()
    assert len(raw) <= ServiceSettings().max_body_bytes  # not a 413: the filters are what it tests
    request = msgspec.json.decode(raw, type=SearchRequest)
    assert request.filters is not None
    filters = request.filters.to_filters()
    assert filters is not None and len(filters.tags) == MAX_FILTER_VALUES


@pytest.mark.parametrize("seed", range(6))
def test_over_limit_bodies_are_refused_by_the_wire_contract(seed: int) -> None:
    raw = json.dumps(over_limit_body(random.Random(seed), "query")).encode()
    request = msgspec.json.decode(raw, type=SearchRequest)
    assert request.filters is not None
    with pytest.raises(InvalidQueryError):  # the service's 400 invalid-query
        filters = request.filters.to_filters()
        assert filters is not None
        filters.checked()  # what every search runs first


def _events(data: bytes) -> list[Any]:
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(data)
    events = []
    while (event := conn.next_event()) is not h11.NEED_DATA:
        events.append(event)
    return events


def test_half_open_head_never_completes_and_slow_head_does() -> None:
    assert _events(partial_head(8000, 3)) == []  # h11 still waits for the end of the head
    (request,) = _events(slow_body_head(8000, "k", "slow-1", 500))
    assert isinstance(request, h11.Request)
    assert (request.method, request.target) == (b"PUT", b"/v1/documents/slow-1")
    assert dict(request.headers)[b"content-length"] == b"500"


def test_status_of_a_reply() -> None:
    assert _status_of(b"HTTP/1.1 503 Service Unavailable\r\n") == "503"
    assert _status_of(b"") == "closed"


def test_users_mostly_search_with_new_query_texts() -> None:
    rng = random.Random(3)
    requests = [user_request(rng, who, n, 0.1) for who in ("q0", "a0") for n in range(100)]
    searches = [payload["q"] for method, _, payload in requests if method == "GET"]
    assert 150 < len(searches) < 200
    assert len(set(searches)) == len(searches)
    puts = [path for method, path, _ in requests if method == "PUT"]
    assert len(set(puts)) == len(puts)  # the attacked phase writes articles of its own
    assert all(path.startswith(("/v1/documents/uq0-", "/v1/documents/ua0-")) for path in puts)


def _records(ms: list[float], failures: int) -> list[dict[str, Any]]:
    ok = [{"op": "search", "status": 200, "ms": m} for m in ms]
    return ok + [{"op": "search", "status": 429, "ms": 1.0}] * (failures - 1) + [{"op": "upsert", "error": "x"}]


def test_phase_figures_percentiles_and_error_rate() -> None:
    phase = phase_figures("quiet", 30.0, _records([float(n) for n in range(1, 101)], failures=2))
    assert (phase.search.count, phase.search.p50_ms, phase.search.p99_ms) == (100, 51.0, 100.0)
    assert phase.requests == 102
    assert phase.error_rate == round(2 / 102, 4)
    assert phase.search_error_rate == round(1 / 101, 4)
    assert phase.outcomes == {"put x": 1, "search 200": 100, "search 429": 1}


def test_report_says_whether_the_target_holds() -> None:
    quiet = phase_figures("quiet", 30.0, _records([10.0] * 50, failures=1))
    attacked = phase_figures("attacked", 30.0, _records([25.0] * 50, failures=1))
    assert p50_ratio(quiet, attacked) == 2.5
    bombs = merge_filter_bombs(
        [
            {"statuses": {"worst 200": 3, "over-limit 400": 1}, "worst_ms": [5.0, 6.0, 7.0], "over_ms": [1.0]},
            {"statuses": {"worst 200": 1}, "worst_ms": [8.0], "over_ms": []},
        ]
    )
    assert bombs.statuses == {"over-limit 400": 1, "worst 200": 4}
    assert (bombs.worst.count, bombs.over_limit.count) == (4, 1)
    result = _result([quiet, attacked], bombs)
    text = render(result)
    assert "2.5x" in text and "does NOT hold" in text
    assert "| quiet | 30.0 | 51 | 10.0 |" in text
    assert "**lost writes** | **0**" in text
    encoded = msgspec.json.encode(result)
    assert msgspec.json.decode(encoded, type=HostileResult).p50_ratio == 2.5
    assert "| half-open connections" in text and "| write storm" in text
    fewer = render(msgspec.structs.replace(result, attackers=["filter-bombs", "half-open"]))
    assert "| half-open connections" in fewer and "| write storm" not in fewer and "| slow bodies" not in fewer


def _result(phases: list[Any], bombs: FilterBombs) -> HostileResult:
    return HostileResult(
        command=["python", "-m", "benchmarks", "reliability", "--hostile"],
        machine=machine(),
        versions={"poshuk": "0"},
        uptime_before="load average: 1.00",
        uptime_after="load average: 2.00",
        settings={"auth.keys": "9 keys"},
        users=3,
        attackers=list(ATTACKERS),
        phases=phases,
        p50_ratio=p50_ratio(*phases),
        target_holds=p50_ratio(*phases) <= 2.0,
        filter_bombs=bombs,
        half_open={"target": 400, "opened": 400},
        slow_bodies={"connections": 20},
        write_storm={"puts": 3, "statuses": {"201": 3}, "put": {"p50_ms": 4.0}, "index_run": {"articles": 300}},
        acknowledged_upserts=3,
        articles_checked=3,
        writes_found=3,
        lost_writes=0,
        index_consistent=True,
        final_counts={"documents": 3},
    )


class _Stop(Exception):
    """Raised by the stand-in ``run`` once it has the options: nothing is started."""


def _options(monkeypatch: pytest.MonkeyPatch, module: str, argv: list[str]) -> Any:
    import benchmarks.__main__ as cli

    seen: list[Any] = []

    def fake_run(opts: Any) -> None:
        seen.append(opts)
        raise _Stop

    monkeypatch.setattr(f"benchmarks.{module}.run", fake_run)
    with pytest.raises(_Stop):
        cli.main(argv)
    return seen[0]


def test_command_line_options(monkeypatch: pytest.MonkeyPatch) -> None:
    plain = _options(monkeypatch, "reliability", ["reliability"])
    assert (plain.minutes, plain.clients) == (5.0, 4)  # the kill -9 benchmark as before
    hostile = _options(monkeypatch, "hostile", ["reliability", "--hostile"])
    assert (hostile.phase_seconds, hostile.users, hostile.filter_bombers, hostile.half_open) == (45.0, 8, 4, 400)
    assert hostile.think_s == (0.5, 2.5) and hostile.service == {}  # people reading results; shipped settings
    tuned = ["reliability", "--hostile", "--think-seconds", "0.05,0.15", "--service-setting", "search_slots=1"]
    chosen = _options(monkeypatch, "hostile", tuned)
    assert chosen.think_s == (0.05, 0.15) and chosen.service == {"search_slots": "1"}
    assert _options(monkeypatch, "hostile", ["reliability", "--hostile", "--minutes", "2"]).phase_seconds == 60.0
    assert _options(monkeypatch, "hostile", ["reliability", "--hostile", "--phase-seconds", "30"]).phase_seconds == 30
    assert hostile.attackers == ATTACKERS
    some = ["reliability", "--hostile", "--attackers", "filter-bombs, half-open"]
    assert _options(monkeypatch, "hostile", some).attackers == ("filter-bombs", "half-open")


def test_an_unknown_attacker_is_a_one_line_error(capsys: pytest.CaptureFixture[str]) -> None:
    import benchmarks.__main__ as cli

    assert cli.main(["reliability", "--hostile", "--attackers", "filter-bombs,dragons"]) == 2
    assert capsys.readouterr().err.strip().count("\n") == 0
    for bad in (["--think-seconds", "2,1"], ["--think-seconds", "x"], ["--service-setting", "search_slots"]):
        assert cli.main(["reliability", "--hostile", *bad]) == 2
        assert capsys.readouterr().err.strip().count("\n") == 0
