"""The latency benchmark's load generator: wrk's result line, the request file, the report's ratios, real wrk.

The parsing, file and report tests need no wrk; the last one runs the real wrk with the
benchmark's Lua script for a second against a tiny HTTP server in this process.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar
from urllib.parse import parse_qs, urlsplit

import pytest

from benchmarks.__main__ import main
from benchmarks.datasets import SETS
from benchmarks.latency_report import Cell, Corpus, LatencyReport, ratios, render
from benchmarks.machine import Machine
from benchmarks.serverproc import cpu_seconds, rss_mb, tree
from benchmarks.wrk import MISSING, WrkMissing, find_wrk, parse, request_path, run_wrk, write_paths

OUTPUT = """Running 1s test @ http://127.0.0.1:8000
  1 threads and 2 connections
  658 requests in 1.01s, 197.81KB read
WRK_RESULT {"requests":658,"sent":660,"duration_s":1.014398,"connect":0,"read":1,"write":0,"timeout":2,\
"status":219,"non2xx":219,"p50_ms":1.816,"p90_ms":8.389,"p99_ms":18.457,"mean_ms":3.539,"max_ms":24.156}
Requests/sec:    648.66
"""


def test_parse_reads_the_scripts_line() -> None:
    result = parse(OUTPUT)
    assert (result.requests, result.sent, result.non2xx, result.p99_ms) == (658, 660, 219, 18.457)
    assert result.errors == 1 + 2 + 219  # socket errors, timeouts and every non-2xx answer
    assert result.qps == pytest.approx(658 / 1.014398)


def test_parse_refuses_output_without_the_line() -> None:
    with pytest.raises(ValueError, match="no WRK_RESULT line"):
        parse("Running 1s test @ http://127.0.0.1:8000\nunable to connect\n")


def test_request_paths_are_url_encoded_one_per_line(tmp_path: Path) -> None:
    query = "Шойгу в Пхеньяні: 5 & 6?\nновий рядок"
    path = request_path("/v1/search", {"q": query, "k": 10, "mode": "dense"})
    assert path.startswith("/v1/search?q=") and " " not in path and "\n" not in path
    assert parse_qs(urlsplit(path).query) == {"q": [query], "k": ["10"], "mode": ["dense"]}
    file = tmp_path / "paths.txt"
    assert write_paths(file, [path, request_path("/search", {"query": "grain", "limit": 10})]) == 2
    assert file.read_text(encoding="ascii").splitlines() == [path, "/search?query=grain&limit=10"]


@pytest.mark.parametrize("bad", [[], ["/a b"], ["no-slash"], ["/a\n/b"]])
def test_write_paths_refuses_what_would_split_a_request(tmp_path: Path, bad: list[str]) -> None:
    with pytest.raises(ValueError):
        write_paths(tmp_path / "paths.txt", bad)


def test_missing_wrk_stops_the_benchmark_with_the_install_hint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(WrkMissing):
        find_wrk()
    for folder, _ in SETS.values():  # data present, so the benchmark gets as far as looking for wrk
        (tmp_path / "data" / folder).mkdir(parents=True, exist_ok=True)
    code = main(["latency", "--data", str(tmp_path / "data"), "--out", str(tmp_path / "out")])
    assert code == 1
    assert MISSING in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def _cell(system: str, kind: str, conc: int, qps: float, rnd: int = 1) -> Cell:
    return Cell(
        corpus="unlp2026",
        system=system,
        kind=kind,
        cache="off",
        concurrency=conc,
        round=rnd,
        requests=int(qps * 10),
        sent=int(qps * 10),
        seconds=10.0,
        qps=qps,
        p50_ms=1.0,
        p90_ms=2.0,
        p99_ms=3.0,
        mean_ms=1.5,
        max_ms=4.0,
        errors=0,
        error_detail={},
        cpu_ms_per_request=5.0,
        rss_mb=300.0,
    )


def test_report_shows_every_cell_and_the_ratio_over_rounds() -> None:
    cells = [
        _cell("poshuk", "default", 1, 90.0, 1),
        _cell("poshuk", "default", 1, 110.0, 2),
        _cell("poshuk", "dense", 1, 150.0),
        _cell("txtai", "search", 1, 50.0),
    ]
    host = Machine(
        cpu_model="cpu", cores=2, usable_cores=2, ram_gib=8.0, os="linux", python="3.11", date=datetime.now(UTC)
    )
    report = LatencyReport(
        command="python -m benchmarks latency",
        encoder="onnx-fp32",
        load_generator="wrk 4.1.0",
        wrk_threads=1,
        seconds=10.0,
        rounds=2,
        queries={"off": 300, "on": 20},
        max_query_chars=200,
        corpora=[Corpus(name="unlp2026", passages={"poshuk": 9746, "txtai": 9746})],
        servers=[],
        cells=cells,
        machine=host,
        versions={},
    )
    assert ratios(report, "unlp2026") == {("default", "off", 1): 2.0, ("dense", "off", 1): 3.0}
    table = render(report)
    assert "| poshuk | default | off | 1 | 100.0 (90.0 / 110.0) |" in table
    assert "| default | off | 2.00× |" in table and "| dense | off | 3.00× |" in table


class _Handler(BaseHTTPRequestHandler):
    seen: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        self.seen.append(self.path)
        status = 404 if self.path.startswith("/missing") else 200
        self.send_response(status)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def tiny_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed (make bench-tools)")
def test_real_wrk_cycles_the_paths_and_counts_non_2xx(tiny_server: str, tmp_path: Path) -> None:
    _Handler.seen = []
    paths = ["/search?q=1", "/search?q=2", "/missing?q=3"]
    write_paths(tmp_path / "paths.txt", paths)
    result = run_wrk(tiny_server, tmp_path / "paths.txt", connections=2, seconds=1)
    assert result.requests >= 3 and result.sent >= result.requests
    assert set(_Handler.seen) == set(paths)  # every line sent, nothing else
    misses = _Handler.seen[: result.requests].count("/missing?q=3")
    assert result.non2xx == pytest.approx(misses, abs=2) and result.non2xx > 0
    assert result.errors >= result.non2xx
    assert 0 < result.p50_ms <= result.p99_ms <= result.max_ms


def test_server_cpu_and_memory_are_read_from_proc_for_the_process_tree() -> None:
    burn = "import time\nend = time.process_time() + 0.3\nwhile time.process_time() < end: pass\n"
    child = subprocess.Popen(
        [sys.executable, "-c", burn + "print(1, flush=True)\ntime.sleep(30)"], stdout=subprocess.PIPE
    )
    with child:
        try:
            assert child.pid in tree(os.getpid())
            before, own = cpu_seconds(os.getpid()), time.process_time()
            assert child.stdout is not None and child.stdout.readline()  # the child has burnt its 0.3 s of CPU
            child_cpu = cpu_seconds(os.getpid()) - before - (time.process_time() - own)
            assert child_cpu >= 0.2  # a descendant's CPU counts toward the server's
            assert rss_mb(os.getpid()) > rss_mb(child.pid) > 1
        finally:
            child.kill()
