"""``python -m benchmarks latency``: HTTP query latency and memory of a real ``poshuk serve``.

Indexes the example articles (or ``--index``), starts the server as its own process
on a free 127.0.0.1 port, reads its RSS once ready, then sends ``--queries`` searches
from client threads at each concurrency level and reports p50/p95/p99 and QPS.
"""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import msgspec

from benchmarks.machine import Machine, machine

REPO = Path(__file__).resolve().parent.parent
QUERIES = (
    "переговори Росії та Північної Кореї про постачання боєприпасів",
    "Which country is Russia buying artillery shells from?",
    "експорт зерна через порти Одеси",
    "central bank interest rates inflation",
    "відновлення електропостачання в Харкові",
    "wildfire evacuation California",
    "виставка картин Марії Приймаченко",
    "Mars rover ancient lake",
    "новий трамвай у Львові",
    "Dynamo Kyiv football match",
)


class Level(msgspec.Struct, frozen=True, kw_only=True):
    concurrency: int
    requests: int
    errors: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    qps: float


class LatencyResult(msgspec.Struct, frozen=True, kw_only=True):
    command: str
    encoder: str
    mode: str
    documents: int
    passages: int
    ready_s: float
    rss_mb_ready: float
    rss_mb_after: float
    levels: list[Level]
    machine: Machine


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _level(base: str, concurrency: int, total: int, mode: str) -> Level:
    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()
    counter = iter(range(total))

    def worker() -> None:
        nonlocal errors
        with httpx.Client(base_url=base, timeout=60) as client:
            while True:
                with lock:
                    n = next(counter, None)
                if n is None:
                    return
                started = time.perf_counter()
                response = client.post("/v1/search", json={"query": QUERIES[n % len(QUERIES)], "k": 10, "mode": mode})
                elapsed = (time.perf_counter() - started) * 1000
                with lock:
                    latencies.append(elapsed)
                    errors += response.status_code != 200

    started = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    return Level(
        concurrency=concurrency,
        requests=len(latencies),
        errors=errors,
        p50_ms=round(statistics.median(latencies), 1),
        p95_ms=round(_percentile(latencies, 0.95), 1),
        p99_ms=round(_percentile(latencies, 0.99), 1),
        qps=round(len(latencies) / wall, 1),
    )


def run(*, index: Path | None, queries: int, levels: list[int], encoder: str, mode: str, command: str) -> LatencyResult:
    poshuk = str(Path(sys.executable).with_name("poshuk"))
    env = {**os.environ, "POSHUK_ENCODER": encoder}
    with tempfile.TemporaryDirectory(prefix="poshuk-latency-") as tmp:
        if index is None:
            index = Path(tmp) / "index"
            subprocess.run(
                [poshuk, "index", str(REPO / "examples" / "articles"), "--index", str(index), "--no-progress"],
                check=True,
                env=env,
                stdout=subprocess.DEVNULL,
            )
        port = _free_port()
        base = f"http://127.0.0.1:{port}"
        started = time.perf_counter()
        server = subprocess.Popen(
            [poshuk, "serve", "--index", str(index), "--port", str(port)],
            env={**env, "POSHUK_SERVICE_LOG_LEVEL": "warning"},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            ready: dict[str, object] = {}
            while time.perf_counter() - started < 300:
                try:
                    response = httpx.get(f"{base}/readyz", timeout=2)
                    if response.status_code == 200:
                        ready = response.json()
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.1)
            ready_s = time.perf_counter() - started
            rss_ready = _rss_mb(server.pid)
            _level(base, 1, 5, mode)  # warm-up
            results = [_level(base, c, queries, mode) for c in levels]
            rss_after = _rss_mb(server.pid)
        finally:
            server.terminate()
            server.wait(timeout=30)
    return LatencyResult(
        command=command,
        encoder=encoder,
        mode=mode,
        documents=int(str(ready.get("documents", 0))),
        passages=int(str(ready.get("passages", 0))),
        ready_s=round(ready_s, 2),
        rss_mb_ready=round(rss_ready, 1),
        rss_mb_after=round(rss_after, 1),
        levels=results,
        machine=machine(),
    )


def render(result: LatencyResult) -> str:
    lines = [
        f"# Query latency over HTTP ({result.encoder}, {result.mode})",
        "",
        f"`{result.command}` on {result.documents} documents / {result.passages} passages; "
        f"ready in {result.ready_s} s; RSS {result.rss_mb_ready} MB when ready, {result.rss_mb_after} MB after.",
        f"Machine: {result.machine.cpu_model}, {result.machine.usable_cores} cores, {result.machine.date:%Y-%m-%d}.",
        "",
        "| concurrency | requests | errors | p50 ms | p95 ms | p99 ms | QPS |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for lv in result.levels:
        lines.append(
            f"| {lv.concurrency} | {lv.requests} | {lv.errors} | {lv.p50_ms} | {lv.p95_ms} | {lv.p99_ms} | {lv.qps} |"
        )
    return "\n".join(lines) + "\n"
