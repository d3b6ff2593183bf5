"""``python -m benchmarks latency``: HTTP query latency, saturation QPS and memory of real servers.

Three servers, one after another, each its own process on a free 127.0.0.1 port, loaded
by client threads in this (separate) process at each concurrency level:

- ``poshuk`` on the *scaled* index: every passage of the recall sets (real text, vectors
  from the benchmark's vector cache), repeated under new document ids until ``--passages``
  (default 100,000) — real text only, as the issue allows for distractors;
- ``poshuk`` (under uvicorn, as ``poshuk serve`` runs it, and under granian) and ``txtai``'s
  own API (``uvicorn txtai.api:app``, its saved index from the recall benchmark, same model
  and passages) on the unlp2026 corpus, side by side.

Every request carries a distinct real query from the recall sets (Ukrainian questions and
headlines, English headlines and sentences), so no level is served from the query cache.
A poshuk request is what the web page sends: hybrid, k=10, with highlights; the
``dense, no highlights`` row is the like-for-like comparison with txtai, which returns
ids and scores only. The query cache is measured separately: the same queries again.
"""

from __future__ import annotations

import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import msgspec

from benchmarks.datasets import SETS, BenchSet
from benchmarks.machine import Machine, machine, versions
from benchmarks.metrics import percentile

REPO = Path(__file__).resolve().parent.parent
READY_TIMEOUT_S = 600.0
_FACTORY = "benchmarks.asgi_factory:app"


class Options(msgspec.Struct, frozen=True, kw_only=True):
    data: Path
    work: Path
    out: Path
    passages: int = 100_000
    queries: int = 200  # requests per concurrency level
    levels: tuple[int, ...] = (1, 8, 32)
    systems: tuple[str, ...] = ("poshuk", "txtai")
    encoder: str | None = None  # POSHUK_ENCODER for poshuk (None: the default setting)
    command: tuple[str, ...] = ()


class Level(msgspec.Struct, frozen=True, kw_only=True):
    concurrency: int
    requests: int
    errors: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    qps: float


class ServerRun(msgspec.Struct, frozen=True, kw_only=True):
    system: str
    corpus: str
    request: str  # what each request asks for
    documents: int | None
    passages: int
    ready_s: float  # from process start to the first successful answer
    rss_mb_ready: float
    rss_mb_after: float
    # RssAnon: memory of the process's own; the rest of RSS is file pages (the memory-mapped model),
    # clean and shared, which the kernel drops under pressure and reads back when needed
    anon_mb_ready: float | None = None
    anon_mb_after: float | None = None
    torch_loaded: bool | None  # whether the server process mapped torch's library (None: not checked)
    levels: list[Level]


class LatencyReport(msgspec.Struct, frozen=True, kw_only=True):
    command: str
    encoder: str
    runs: list[ServerRun]
    machine: Machine
    versions: dict[str, str | None]
    notes: list[str] = []


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _tree(pid: int) -> list[int]:
    """``pid`` and its descendants (granian serves from a worker process it starts)."""
    out = [pid]
    for task in Path(f"/proc/{pid}/task").iterdir():
        children = (task / "children").read_text().split()
        for child in children:
            out += _tree(int(child))
    return out


def _rss_mb(pid: int, field: str = "VmRSS") -> float:
    """Resident memory of the server (``field`` of /proc/PID/status): the process and its workers, summed."""
    total = 0.0
    for member in _tree(pid):
        for line in Path(f"/proc/{member}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                total += int(line.split()[1]) / 1024
    return total


def _torch_loaded(pid: int) -> bool:
    return any("libtorch" in Path(f"/proc/{member}/maps").read_text() for member in _tree(pid))


Send = Callable[[httpx.Client, str], httpx.Response]


def _level(base: str, concurrency: int, queries: list[str], send: Send) -> Level:
    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()
    pending = iter(queries)

    def worker() -> None:
        nonlocal errors
        with httpx.Client(base_url=base, timeout=120) as client:
            while True:
                with lock:
                    query = next(pending, None)
                if query is None:
                    return
                started = time.perf_counter()
                response = send(client, query)
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
        p95_ms=round(percentile(latencies, 95), 1),
        p99_ms=round(percentile(latencies, 99), 1),
        qps=round(len(latencies) / wall, 1),
    )


@contextmanager
def _server(argv: list[str], env: dict[str, str], probe: Callable[[httpx.Client], bool]) -> Iterator[tuple[str, Any]]:
    """Start a server process, wait until ``probe`` passes; yields (base url, process, ready seconds)."""
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    started = time.perf_counter()
    process = subprocess.Popen(
        [part.replace("{port}", str(port)) for part in argv],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        with httpx.Client(base_url=base, timeout=30) as client:
            while True:
                if process.poll() is not None:
                    err = process.stderr.read().decode(errors="replace")[-2000:] if process.stderr else ""
                    raise RuntimeError(f"{argv[0]} exited with {process.returncode}: {err}")
                if time.perf_counter() - started > READY_TIMEOUT_S:
                    raise RuntimeError(f"{argv} not ready in {READY_TIMEOUT_S:.0f} s")
                try:
                    if probe(client):
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.05)
        yield base, (process, time.perf_counter() - started)
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _measure(
    *,
    system: str,
    corpus: str,
    request: str,
    argv: list[str],
    env: dict[str, str],
    probe: Callable[[httpx.Client], bool],
    send: Send,
    queries: list[str],
    opts: Options,
    count: Callable[[httpx.Client], tuple[int | None, int]],
    repeated: bool = False,
) -> ServerRun:
    """One server: ready time and RSS, a warm-up, then each concurrency level on fresh queries
    (``repeated``: each level's queries are sent once before, so the query cache answers them)."""
    with _server(argv, env, probe) as (base, (process, ready_s)):
        rss_ready, anon_ready = _rss_mb(process.pid), _rss_mb(process.pid, "RssAnon")
        with httpx.Client(base_url=base, timeout=30) as client:
            documents, passages = count(client)
        pool = iter(queries)
        _level(base, 1, [next(pool) for _ in range(5)], send)  # warm-up
        levels = []
        for concurrency in opts.levels:
            batch = [next(pool) for _ in range(opts.queries)]
            if repeated:
                _level(base, 8, batch, send)  # fills the cache
            levels.append(_level(base, concurrency, batch, send))
            _log(f"[{system} {corpus} {request}] c={concurrency}: {levels[-1]}")
        return ServerRun(
            system=system,
            corpus=corpus,
            request=request,
            documents=documents,
            passages=passages,
            ready_s=round(ready_s, 2),
            rss_mb_ready=round(rss_ready, 1),
            rss_mb_after=round(_rss_mb(process.pid), 1),
            anon_mb_ready=round(anon_ready, 1),
            anon_mb_after=round(_rss_mb(process.pid, "RssAnon"), 1),
            torch_loaded=_torch_loaded(process.pid),
            levels=levels,
        )


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def real_queries(sets: dict[str, BenchSet]) -> list[str]:
    """Every distinct query text of the recall sets, in a fixed shuffled order."""
    seen: dict[str, None] = {}
    for bench in sets.values():
        for q in bench.queries:
            seen.setdefault(" ".join(q.text.split())[:900], None)
    texts = [t for t in seen if t]
    random.Random(0).shuffle(texts)
    return texts


def _poshuk_probe(client: httpx.Client) -> bool:
    return client.get("/readyz").status_code == 200


def _poshuk_count(client: httpx.Client) -> tuple[int | None, int]:
    ready = client.get("/readyz").json()
    return int(ready.get("documents", 0)), int(ready.get("passages", 0))


def _poshuk_sender(body: dict[str, Any]) -> Send:
    def send(client: httpx.Client, query: str) -> httpx.Response:
        return client.post("/v1/search", json={**body, "query": query})

    return send


def _txtai_send(client: httpx.Client, query: str) -> httpx.Response:
    return client.get("/search", params={"query": query, "limit": 10})


def _txtai_probe(client: httpx.Client) -> bool:
    return client.get("/search", params={"query": "warm-up", "limit": 1}).status_code == 200


def run(opts: Options) -> LatencyReport | None:
    """The report, or None (with a message) when the evaluation data is absent."""
    from benchmarks.scaled import build_scaled_index
    from benchmarks.workspace import Workspace
    from poshuk import load_settings

    missing = [folder for folder, _ in SETS.values() if not (opts.data / folder).is_dir()]
    if missing:
        print(f"skipped: evaluation data not found under {opts.data} ({', '.join(sorted(set(missing)))})")
        return None
    host = machine()
    overrides = {} if opts.encoder is None else {"encoder": opts.encoder}
    settings = load_settings(overrides=overrides)
    ws = Workspace(opts.work, settings, max_k=100)
    sets = {name: loader(opts.data) for name, (_, loader) in SETS.items()}
    queries = real_queries(sets)
    needed = 5 + opts.queries * len(opts.levels)
    if len(queries) < needed:
        raise SystemExit(f"only {len(queries)} distinct queries; lower --queries to {(len(queries) - 5) // 3}")
    env = {**os.environ, "POSHUK_ENCODER": settings.encoder, "POSHUK_SERVICE_LOG_LEVEL": "warning"}
    env["POSHUK_SERVICE_RATE_LIMIT_PER_SECOND"] = "0"  # the load comes from one client address
    poshuk = str(Path(sys.executable).with_name("poshuk"))
    runs: list[ServerRun] = []
    notes: list[str] = []

    def serve_poshuk(
        index: Path, corpus: str, request: str, body: dict[str, Any], pool: list[str], *, repeated: bool = False
    ) -> None:
        runs.append(
            _measure(
                system="poshuk",
                corpus=corpus,
                request=request,
                argv=[poshuk, "serve", "--index", str(index), "--port", "{port}"],
                env=env,
                probe=_poshuk_probe,
                send=_poshuk_sender(body),
                queries=pool,
                opts=opts,
                count=_poshuk_count,
                repeated=repeated,
            )
        )

    hybrid = {"k": 10, "mode": "hybrid"}
    if "poshuk" in opts.systems:
        scaled = build_scaled_index(ws, sets, opts.passages)
        serve_poshuk(scaled, f"scaled {opts.passages}", "hybrid, highlights", hybrid, queries)
        filtered = {**hybrid, "collapse": True, "filters": {"lang": ["uk"]}}
        serve_poshuk(scaled, f"scaled {opts.passages}", "hybrid, highlights, lang=uk, collapse", filtered, queries)
    unlp = sets["unlp2026"]
    if "poshuk" in opts.systems:
        ws.searcher(unlp).close()  # built from the vector cache if absent
        index = ws.folder(unlp) / "index"
        serve_poshuk(index, "unlp2026", "hybrid, highlights", hybrid, queries)
        dense = {"k": 10, "mode": "dense", "highlight": False}
        serve_poshuk(index, "unlp2026", "dense, no highlights", dense, queries)
        request = "dense, no highlights, repeated queries (query cache)"
        serve_poshuk(index, "unlp2026", request, dense, queries, repeated=True)
        granian = Path(sys.executable).with_name("granian")
        if granian.is_file():
            runs.append(
                _measure(
                    system="poshuk (granian)",
                    corpus="unlp2026",
                    request="dense, no highlights",
                    argv=[str(granian), "--interface", "asgi", "--factory", "--port", "{port}", "--no-log", _FACTORY],
                    env={**env, "POSHUK_BENCH_INDEX": str(index)},
                    probe=_poshuk_probe,
                    send=_poshuk_sender(dense),
                    queries=queries,
                    opts=opts,
                    count=_poshuk_count,
                )
            )
        else:
            notes.append("granian not measured: not installed (pip install granian)")
    if "txtai" in opts.systems:
        txtai = _txtai_run(ws, unlp, env, queries, opts)
        if isinstance(txtai, str):
            notes.append(txtai)
        else:
            runs.append(txtai)
    return LatencyReport(
        command=" ".join(opts.command),
        encoder=settings.encoder,
        runs=runs,
        machine=host,
        versions=versions(),
        notes=notes,
    )


def _txtai_run(ws: Any, unlp: BenchSet, env: dict[str, str], queries: list[str], opts: Options) -> ServerRun | str:
    """txtai's API over its saved unlp2026 index (built by the recall benchmark's adapter if absent)."""
    from benchmarks.systems import SystemUnavailable
    from benchmarks.systems.txtai_system import TxtaiSystem

    try:
        import txtai.api  # noqa: F401  (its API extra: fastapi)
    except ImportError as exc:
        return f"txtai not measured: its API is not installed ({exc}); pip install 'txtai[api]'"
    system = TxtaiSystem()
    try:
        system.prepare(unlp, ws)
    except SystemUnavailable as exc:
        return f"txtai not measured: {exc}"
    folder = system.folder
    system.close()
    with tempfile.TemporaryDirectory(prefix="txtai-api-") as tmp:
        config = Path(tmp) / "config.yml"
        config.write_text(f"path: {folder}\nembeddings: {{}}\n", encoding="utf-8")  # the key mounts /search
        passages = len(ws.passages(unlp))
        return _measure(
            system="txtai",
            corpus="unlp2026",
            request="dense (its API's /search, ids and scores)",
            argv=[sys.executable, "-m", "uvicorn", "txtai.api:app", "--port", "{port}", "--log-level", "warning"],
            env={**env, "CONFIG": str(config)},
            probe=_txtai_probe,
            send=_txtai_send,
            queries=queries,
            opts=opts,
            count=lambda _client: (None, passages),
        )


def render(report: LatencyReport) -> str:
    m = report.machine
    lines = [
        "# Query latency over HTTP",
        "",
        f"`{report.command}`; poshuk encoder `{report.encoder}`. {m.cpu_model}, {m.usable_cores} cores, "
        f"{m.ram_gib} GiB, load {m.load_avg[0]:.1f} at the start, {m.date:%Y-%m-%d}. Client threads run in a "
        "separate process on the same cores. Every request is a distinct real query (no cache hits) except "
        "in the query-cache row. RSS counts the process's own (anonymous) memory and the file pages it has "
        "touched; poshuk memory-maps the model's weights, so the gap between the two is clean, shared page "
        "cache of the model file (mostly embedding rows of the tokens seen), which the kernel reclaims.",
        "",
        "| system | corpus | passages | request | ready s | RSS MB ready / after | anonymous MB ready / after "
        "| torch | c | p50 ms | p95 ms | p99 ms | QPS | errors |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in report.runs:
        for n, lv in enumerate(r.levels):
            head = (
                [
                    r.system,
                    r.corpus,
                    f"{r.passages:,}",
                    r.request,
                    f"{r.ready_s}",
                    f"{r.rss_mb_ready:.0f} / {r.rss_mb_after:.0f}",
                    "" if r.anon_mb_ready is None else f"{r.anon_mb_ready:.0f} / {r.anon_mb_after or 0:.0f}",
                    "yes" if r.torch_loaded else "no",
                ]
                if n == 0
                else [""] * 8
            )
            cells = [*head, str(lv.concurrency), f"{lv.p50_ms}", f"{lv.p95_ms}", f"{lv.p99_ms}", f"{lv.qps}"]
            lines.append("| " + " | ".join([*cells, str(lv.errors)]) + " |")
    if report.notes:
        lines += ["", *[f"- {note}" for note in report.notes]]
    return "\n".join(lines) + "\n"
