"""``python -m benchmarks sharded --served``: its pure parts (queries, answers compared, ratios, the table),
the /proc reading it adds, and how its command line refuses or skips. The benchmark itself (servers
under wrk, Ray) stays outside the test suite."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from benchmarks.__main__ import main
from benchmarks.datasets import SETS, BenchSet, Query
from benchmarks.latency_report import Cell
from benchmarks.machine import Machine
from benchmarks.serverproc import names, pss_mb, rss_mb, tagged, tree
from benchmarks.sharded_served import comparable, set_queries
from benchmarks.sharded_served_report import ServedReport, ServerRun, ratios, render
from benchmarks.wrk import MISSING


def _cell(server: str, conc: int, qps: float, p50: float, rnd: int = 1, cpu: float = 10.0) -> Cell:
    return Cell(
        corpus="bruk-press",
        system=server,
        kind="default",
        cache="off",
        concurrency=conc,
        round=rnd,
        requests=int(qps * 10),
        sent=int(qps * 10),
        seconds=10.0,
        qps=qps,
        p50_ms=p50,
        p90_ms=2 * p50,
        p99_ms=4 * p50,
        mean_ms=p50,
        max_ms=8 * p50,
        errors=0,
        error_detail={},
        cpu_ms_per_request=cpu,
        rss_mb=300.0,
    )


def _run(
    server: str, rnd: int, *, checked: int = 30, identical: int = 30, outside: list[str] | None = None
) -> ServerRun:
    return ServerRun(
        set="bruk-press",
        server=server,
        shards=1 if server == "single" else 3,
        round=rnd,
        ready_s=40.0 if server.startswith("ray") else 4.0,
        rss_mb_ready=2000.0,
        pss_mb_ready=900.0,
        idle_cpu_ms_per_s=60.0,
        processes=1 if server == "single" else 14,
        programs={"poshuk": 1}
        if server == "single"
        else {"gcs_server": 1, "poshuk": 1, "ray::ServeReplica:poshuk:Ingress": 1, "raylet": 1},
        tagged=1 if server == "single" else 14,
        outside_tree=outside or [],
        checked=checked,
        identical=identical,
        differences=["дрони атакували"] if identical < checked else [],
    )


def _report(cells: list[Cell], servers: list[ServerRun]) -> ServedReport:
    host = Machine(
        cpu_model="cpu", cores=2, usable_cores=2, ram_gib=8.0, os="linux", python="3.11", date=datetime.now(UTC)
    )
    return ServedReport(
        command="python -m benchmarks sharded --served",
        encoder="onnx-fp32",
        load_generator="wrk 4.1.0",
        wrk_threads=1,
        seconds=10.0,
        rounds=2,
        levels=[1, 8],
        max_query_chars=200,
        queries={"bruk-press": 500},
        passages={"bruk-press": 4757},
        servers=servers,
        cells=cells,
        machine=host,
        versions={"poshuk": "0.1.0", "ray": "2.60.0"},
    )


def test_ratios_are_means_over_rounds_against_the_single_server_at_the_same_concurrency() -> None:
    cells = [
        _cell("single", 1, 40.0, 20.0, 1),
        _cell("single", 1, 60.0, 30.0, 2),
        _cell("single", 8, 100.0, 70.0),
        _cell("ray-3", 1, 25.0, 50.0, 1, cpu=30.0),
        _cell("ray-3", 1, 15.0, 50.0, 2, cpu=30.0),
        _cell("archive-3", 16, 10.0, 5.0),  # no single cell at c=16: no ratio
    ]
    found = ratios(_report(cells, []))
    assert found[("bruk-press", "ray-3", 1)] == {
        "qps": 0.4,
        "p50_ms": 2.0,
        "p99_ms": 2.0,
        "cpu_ms_per_request": 3.0,
    }
    assert found[("bruk-press", "single", 8)]["qps"] == 1.0
    assert ("bruk-press", "archive-3", 16) not in found


def test_table_shows_each_server_with_its_ratio_and_every_start() -> None:
    cells = [_cell("single", 1, 40.0, 20.0, 1), _cell("single", 1, 60.0, 30.0, 2), _cell("ray-3", 1, 20.0, 50.0)]
    servers = [
        _run("single", 1, checked=0, identical=0),
        _run("ray-3", 1, identical=29, outside=["4242 raylet"]),
        _run("single", 2),
    ]
    table = render(_report(cells, servers))
    # idle 60 CPU ms/s over 10 s: 600 ms spread over 400 and 600 requests sent (single), 200 (ray-3)
    assert "| single | 1 | 50.0 (40.0 / 60.0) | 25.0 | 100.0 | 0 | 10.0 (1.2) | 300 | – | – | – | – |" in table
    assert "| ray-3 | 1 | 20.0 | 50.0 | 200.0 | 0 | 10.0 (3.0) | 300 | 0.40× | 2.00× | 2.00× | 1.00× |" in table
    assert "| bruk-press | single | 1 | 4.0 | 2000 | 900 | 60 | 1 / 1 | 0 | 0 | reference |" in table
    assert "| bruk-press | ray-3 | 1 | 40.0 | 2000 | 900 | 60 | 14 / 14 | 1 | 0 | 29/30 |" in table
    assert "| bruk-press | single | 2 | 4.0 | 2000 | 900 | 60 | 1 / 1 | 0 | 0 | 30/30 |" in table
    assert "- bruk-press ray-3 r1: 4242 raylet" in table  # CPU not counted: named, never hidden
    assert "- bruk-press ray-3 r1: gcs_server, poshuk, ray::ServeReplica:poshuk:Ingress, raylet" in table
    assert "- bruk-press single r" not in table.split("Process trees")[1].split("Answers that differ")[0]
    assert "- bruk-press ray-3 r1: дрони атакували" in table
    assert "## bruk-press (4,757 passages, 500 distinct queries)" in table


def test_set_queries_are_distinct_short_and_in_a_fixed_order() -> None:
    queries = [
        Query(id=str(n), text=text, lang="uk", relevant={})
        for n, text in enumerate(["a  b", "a b", "", "x" * 300, *(f"q{i}" for i in range(20))])
    ]
    bench = BenchSet(name="s", description="", granularity="document", corpus=[], queries=queries, scorings=())
    found = set_queries(bench, 200)
    assert sorted(found) == sorted(["a b", *(f"q{i}" for i in range(20))])
    assert found == set_queries(bench, 200) and found != sorted(found)


def test_answers_compare_status_and_every_field_but_took_ms() -> None:
    one = comparable(200, {"query": "q", "took_ms": 1.0, "hits": [{"id": "a", "score": 0.5}]})
    assert one == comparable(200, {"query": "q", "took_ms": 9.0, "hits": [{"id": "a", "score": 0.5}]})
    assert one != comparable(200, {"query": "q", "took_ms": 1.0, "hits": [{"id": "a", "score": 0.50001}]})
    assert one != comparable(503, {"query": "q", "took_ms": 1.0, "hits": [{"id": "a", "score": 0.5}]})


def test_tagged_processes_are_found_by_their_environment_and_pss_is_below_rss() -> None:
    tag = uuid.uuid4().hex
    child = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(30)"], env={**os.environ, "BENCH_TEST_TAG": tag}
    )
    with child:
        try:
            found = tagged("BENCH_TEST_TAG", tag)
            assert list(found) == [child.pid] and found[child.pid].startswith("python")
            assert names([child.pid]) == {Path(sys.executable).name: 1}  # `python -c`: no script to name
            assert names([os.getpid()])  # pytest's own process, by its script or executable
            assert child.pid in tree(os.getpid())
            assert 0 < pss_mb(os.getpid()) <= rss_mb(os.getpid())
        finally:
            child.kill()
    assert tagged("BENCH_TEST_TAG", tag) == {}


def test_served_command_line_refuses_bad_choices_and_skips_without_data(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    base = ["sharded", "--served", "--data", str(tmp_path / "none"), "--out", str(out)]
    assert main([*base, "--servers", "single,bogus"]) == 2
    assert "--servers takes single, archive, ray" in capsys.readouterr().err
    assert main([*base, "--concurrency", "0"]) == 2
    assert main(base) == 0
    assert capsys.readouterr().out.strip() == f"skipped: evaluation data not found under {tmp_path / 'none'}"
    assert not out.exists()


def test_served_benchmark_stops_without_wrk_with_the_install_hint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    (tmp_path / "data" / SETS["bruk-press"][0]).mkdir(parents=True)
    code = main(
        [
            "sharded",
            "--served",
            "--sets",
            "bruk-press",
            "--data",
            str(tmp_path / "data"),
            "--out",
            str(tmp_path / "out"),
        ]
    )
    assert code == 1
    assert MISSING in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
