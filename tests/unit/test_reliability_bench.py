"""The reliability benchmark's bookkeeping: which outcomes are certain, and what must be found after the run."""

from __future__ import annotations

from typing import Any

from benchmarks.reliability import REFUSED_CONNECTION, Expectations, _latency


def test_only_acknowledged_or_unknown_outcomes_set_expectations() -> None:
    expected = Expectations()
    records: list[dict[str, Any]] = [
        {"op": "search", "status": 200},
        {"op": "upsert", "id": "a", "status": 201, "passages": 2},
        {"op": "delete", "id": "a", "status": 503, "problem": "not-ready"},  # refused: a stays
        {"op": "upsert", "id": "b", "status": 400, "problem": "invalid-input"},  # refused: nothing
        {"op": "upsert", "id": "c", "error": REFUSED_CONNECTION},  # never reached the server
        {"op": "upsert", "id": "d", "error": "connection lost mid-request (server killed)"},  # unknown
        {"op": "upsert", "id": "e", "status": 201, "passages": 1},
        {"op": "delete", "id": "e", "status": 200},
    ]
    for record in records:
        expected.add(record)
    assert (expected.upserts, expected.deletes) == (2, 1)
    assert {k: (v["op"], v["acked"]) for k, v in expected.last.items()} == {
        "a": ("upsert", True),
        "d": ("upsert", False),
        "e": ("delete", True),
    }


def test_latency_percentiles() -> None:
    lat = _latency([float(n) for n in range(1, 101)])
    assert (lat.count, lat.p50_ms, lat.p99_ms, lat.max_ms) == (100, 51.0, 100.0, 100.0)
    assert _latency([]).count == 0
