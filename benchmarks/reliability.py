"""``python -m benchmarks reliability``: mixed load on a live ``poshuk serve`` with periodic ``kill -9``.

Several client processes on 127.0.0.1 search, write (``PUT``) and delete for N minutes;
the orchestrator kills the server with SIGKILL at seeded random intervals and starts it
again on the same port. Each client logs every operation the server acknowledged. At
the end the server is started once more and every acknowledged write is checked: an
upsert must be there with the passage count its answer gave, a delete must be gone.
Lost writes must be 0. Results go to ``benchmarks/results/reliability.{json,md}``.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import msgspec

from benchmarks.machine import Machine, machine, versions

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples" / "articles"
POSHUK = str(Path(sys.executable).with_name("poshuk"))
QUERIES = (
    "переговори Росії та КНДР про зброю",
    "North Korea ammunition deliveries",
    "експорт зерна через порти Одеси",
    "ECB interest rates inflation",
    "міська рада ухвалила бюджет",
    "drone attack on energy infrastructure",
)
READY_TIMEOUT_S = 180.0
REFUSED_BEFORE_WORK = frozenset({"not-ready", "index-busy", "rate-limited"})  # 503/429 answers that changed nothing


@dataclass(frozen=True)
class Options:
    minutes: float = 5.0
    clients: int = 4
    kill_every_s: float = 30.0
    write_share: float = 0.3
    delete_share: float = 0.05
    seed: int = 20230831
    out: Path = REPO / "benchmarks" / "results"
    work: Path | None = None
    command: tuple[str, ...] = ()


class Latency(msgspec.Struct, frozen=True, kw_only=True):
    count: int
    p50_ms: float
    p99_ms: float
    max_ms: float


class ReliabilityResult(msgspec.Struct, frozen=True, kw_only=True):
    """One run's figures; ``lost_writes`` must be 0."""

    command: list[str]
    machine: Machine
    versions: dict[str, str | None]
    minutes: float
    clients: int
    requests: int
    requests_per_second: float
    served: dict[str, int]  # by operation and status class, e.g. "search 2xx"
    errors: dict[str, int]  # by kind, e.g. "connection (server down)", "503 not-ready"
    latency: dict[str, Latency]  # successful searches and writes
    kills: int
    restart_seconds: list[float]
    acknowledged_upserts: int
    acknowledged_deletes: int
    articles_checked: int  # articles whose last write was acknowledged: each must be as that write left it
    writes_found: int
    lost_writes: int
    unanswered_writes: int
    unanswered_took_effect: int
    index_consistent: bool
    final_counts: dict[str, int]
    notes: list[str] = []


# --- the server ---------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _env(config: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("POSHUK_") or k == "POSHUK_HOME"}
    env.update(PYTHONUNBUFFERED="1", POSHUK_CONFIG=str(config))
    return env


class Server:
    def __init__(self, index_dir: Path, config: Path, port: int, log: Path) -> None:
        self.index_dir, self.config, self.port, self.log = index_dir, config, port, log
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> float:
        """Start and wait until ready; returns the seconds it took."""
        started = time.monotonic()
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [POSHUK, "serve", "--index", str(self.index_dir), "--port", str(self.port)],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=_env(self.config),
            )
        with httpx.Client(base_url=self.base_url, timeout=5.0) as client:
            while time.monotonic() - started < READY_TIMEOUT_S:
                if self.process.poll() is not None:
                    raise RuntimeError(f"server exited:\n{self.log.read_text(errors='replace')[-3000:]}")
                try:
                    if client.get("/readyz").status_code == 200:
                        return time.monotonic() - started
                except httpx.TransportError:
                    pass
                time.sleep(0.1)
        raise RuntimeError("server not ready in time")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.kill()


# --- the clients --------------------------------------------------------------------------------


def _article(rng: random.Random, doc_id: str) -> dict[str, Any]:
    topics = ["бюджет", "ремонт доріг", "нові тролейбуси", "шкільне харчування", "енергетика", "зерновий коридор"]
    paragraphs = [
        f"{doc_id}: депутати обговорили {rng.choice(topics)} і ухвалили рішення №{rng.randint(1, 99_999)}."
        for _ in range(rng.randint(1, 4))
    ]
    return {"title": f"Новина {doc_id}", "text": "\n".join(paragraphs), "lang": "uk", "source": "benchmark"}


REFUSED_CONNECTION = "connection refused (server down)"


def _error_kind(exc: Exception) -> str:
    if isinstance(exc, httpx.ConnectError):
        return REFUSED_CONNECTION  # never reached the server: changed nothing
    if isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError | httpx.WriteError):
        return "connection lost mid-request (server killed)"
    if isinstance(exc, httpx.TimeoutException):
        return "client timeout"
    return f"client {type(exc).__name__}"


def client_main(number: int, base_url: str, key: str, deadline: float, opts: Options, log_path: Path) -> None:
    """One client: a seeded mix of searches, upserts and deletes until ``deadline``; every outcome logged."""
    rng = random.Random(opts.seed * 100 + number)
    mine: list[str] = []
    n = 0
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=base_url, timeout=60.0) as client, log_path.open("w", encoding="utf-8") as log:
        while time.time() < deadline:
            roll = rng.random()
            record: dict[str, Any]
            if roll < opts.delete_share and mine:
                doc_id = mine.pop(rng.randrange(len(mine)))
                record = {"op": "delete", "id": doc_id}
                request = client.build_request("DELETE", f"/v1/documents/{doc_id}", headers=headers)
            elif roll < opts.delete_share + opts.write_share:
                doc_id = f"c{number}-{n:06d}"
                n += 1
                body = _article(rng, doc_id)
                record = {"op": "upsert", "id": doc_id}
                request = client.build_request("PUT", f"/v1/documents/{doc_id}", json=body, headers=headers)
            else:
                record = {"op": "search"}
                params: dict[str, str | int] = {
                    "q": rng.choice(QUERIES),
                    "k": 10,
                    "mode": rng.choice(["hybrid", "dense", "lexical"]),
                }
                request = client.build_request("GET", "/v1/search", params=params)
            started = time.perf_counter()
            try:
                response = client.send(request)
            except Exception as exc:
                record.update(error=_error_kind(exc), ms=(time.perf_counter() - started) * 1000)
                log.write(json.dumps(record) + "\n")
                time.sleep(0.2)  # the server is restarting
                continue
            record.update(status=response.status_code, ms=(time.perf_counter() - started) * 1000)
            if response.status_code >= 400:
                try:
                    record["problem"] = response.json().get("type", "").rsplit("/", 1)[-1]
                except ValueError:
                    record["problem"] = "not json"
                if response.status_code == 503:
                    time.sleep(0.25)  # loading after a restart: Retry-After says wait
            elif record["op"] == "upsert":
                record["passages"] = response.json()["passages"]
                mine.append(record["id"])
            log.write(json.dumps(record) + "\n")
            log.flush()


# --- checking -------------------------------------------------------------------------------------


@dataclass
class Expectations:
    """Per article id: its last operation, and whether the server acknowledged it."""

    last: dict[str, dict[str, Any]] = field(default_factory=dict)
    upserts: int = 0
    deletes: int = 0

    def add(self, record: dict[str, Any]) -> None:
        if record["op"] == "search":
            return
        status = record.get("status", 0)
        acked = 200 <= status < 300
        if acked:
            self.upserts += record["op"] == "upsert"
            self.deletes += record["op"] == "delete"
        refused = (
            400 <= status < 500
            or record.get("problem") in REFUSED_BEFORE_WORK
            or record.get("error") == REFUSED_CONNECTION
        )
        if not refused:  # acknowledged, or an unknown outcome (connection lost, a time-out)
            self.last[record["id"]] = {**record, "acked": acked}


def get_waiting(client: httpx.Client, path: str) -> httpx.Response:
    """``GET path``, waiting out any 429 as its ``Retry-After`` says (the hostile run keeps the rate limit on)."""
    while True:
        response = client.get(path)
        if response.status_code != 429:
            return response
        time.sleep(float(response.headers.get("retry-after", "1")))


def check_writes(
    base_url: str, expected: Expectations, headers: dict[str, str] | None = None
) -> tuple[int, int, int, list[str]]:
    """(found, lost, unknown outcomes that took effect, problems) for every write the clients made.

    An acknowledged upsert must be there with the passage count its answer gave, an
    acknowledged delete must be gone. A write whose answer never came (the server was
    killed) may have taken effect or not, but an article that is there must be whole.
    ``headers`` (an API key) keep the reads clear of the rate limit where it is on.
    """
    found = lost = present = 0
    problems: list[str] = []
    with httpx.Client(base_url=base_url, timeout=60.0, headers=headers) as client:
        for doc_id, record in expected.last.items():
            response = get_waiting(client, f"/v1/documents/{doc_id}")
            if response.status_code not in (200, 404):
                problems.append(f"{doc_id}: {response.status_code}")
                continue
            here = response.status_code == 200
            if here:
                passages = response.json()["passages"]
                if [p["ordinal"] for p in passages] != list(range(len(passages))) or not passages:
                    problems.append(f"{doc_id}: half-present ({len(passages)} passages)")
            if not record["acked"]:
                present += here == (record["op"] == "upsert")  # the unanswered write took effect
                continue
            wanted = record["op"] == "upsert"
            if here == wanted and (not here or len(response.json()["passages"]) == record["passages"]):
                found += 1
            else:
                lost += 1
                problems.append(f"{doc_id}: acknowledged {record['op']} not reflected")
    return found, lost, present, problems


def index_consistent(index_dir: Path) -> tuple[bool, dict[str, int]]:
    """Counts from SQLite equal FAISS (snapshot + replay) and the lexical rows."""
    from poshuk.index import Index, live_version

    folder = live_version(index_dir)
    conn = sqlite3.connect(folder / "meta.sqlite")
    try:
        (lexical,) = conn.execute("SELECT count(*) FROM lexical").fetchone()
    finally:
        conn.close()
    index = Index(folder)
    try:
        counts = index.counts()
        vectors = len(index.vectors)
    finally:
        index.close()
    figures = {"documents": counts.documents, "passages": counts.passages, "vectors": vectors, "lexical": lexical}
    return counts.passages == vectors == lexical, figures


def _latency(values: list[float]) -> Latency:
    ordered = sorted(values) or [0.0]

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1)

    return Latency(count=len(values), p50_ms=at(0.5), p99_ms=at(0.99), max_ms=round(ordered[-1], 1))


# --- the run --------------------------------------------------------------------------------------


def run(opts: Options) -> ReliabilityResult:
    from service.auth import new_key

    work = opts.work or Path(tempfile.mkdtemp(prefix="poshuk-reliability-"))
    work.mkdir(parents=True, exist_ok=True)
    index_dir = work / "index"
    shutil.rmtree(index_dir, ignore_errors=True)
    key, digest = new_key()
    config = work / "poshuk.toml"
    config.write_text(
        # One key carries every client's load: no rate limit and no share of server time (durability is measured).
        f'[auth]\nkeys = ["{digest}"]\n\n'
        "[service]\nrate_limit_per_second = 0\nclient_time_share = 0\nsnapshot_every_writes = 200\n",
        encoding="utf-8",
    )
    print(f"building the index from {EXAMPLES} ...", flush=True)
    built = subprocess.run(
        [POSHUK, "index", str(EXAMPLES), "--index", str(index_dir), "--no-progress"],
        capture_output=True,
        text=True,
        env=_env(config),
        check=False,
    )
    if built.returncode != 0:
        raise RuntimeError(built.stderr)
    server = Server(index_dir, config, _free_port(), work / "server.log")
    restarts = [server.start()]
    rng = random.Random(opts.seed)
    started = time.time()
    deadline = started + opts.minutes * 60
    ctx = multiprocessing.get_context("spawn")
    logs = [work / f"client-{n}.jsonl" for n in range(opts.clients)]
    clients = [
        ctx.Process(target=client_main, args=(n, server.base_url, key, deadline, opts, logs[n]), daemon=True)
        for n in range(opts.clients)
    ]
    for process in clients:
        process.start()
    kills = 0
    print(f"load for {opts.minutes:g} min with {opts.clients} clients; kill -9 about every {opts.kill_every_s:g} s")
    while True:
        pause = rng.uniform(0.5, 1.5) * opts.kill_every_s
        if time.time() + pause >= deadline - 5:
            break
        time.sleep(pause)
        server.kill()
        kills += 1
        restarts.append(server.start())
        print(f"  kill {kills}: back in {restarts[-1]:.1f} s", flush=True)
    for process in clients:
        process.join(timeout=max(1.0, deadline - time.time() + 90))
    elapsed = time.time() - started

    expected = Expectations()
    served: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    latencies: dict[str, list[float]] = {"search": [], "upsert": [], "delete": []}
    for path in logs:
        for line in path.read_text(encoding="utf-8").splitlines():
            record = json.loads(line)
            expected.add(record)
            if "error" in record:
                errors[record["error"]] += 1
                continue
            status = record["status"]
            served[f"{record['op']} {status // 100}xx"] += 1
            if status >= 400:
                errors[f"{status} {record.get('problem', '')}".strip()] += 1
            else:
                latencies[record["op"]].append(record["ms"])
    found, lost, present, problems = check_writes(server.base_url, expected)
    server.stop()
    consistent, counts = index_consistent(index_dir)
    result = ReliabilityResult(
        command=list(opts.command),
        machine=machine(),
        versions=versions(),
        minutes=round(elapsed / 60, 2),
        clients=opts.clients,
        requests=sum(served.values()) + sum(v for k, v in errors.items() if not k[0].isdigit()),
        requests_per_second=round(sum(served.values()) / elapsed, 1),
        served=dict(sorted(served.items())),
        errors=dict(sorted(errors.items())),
        latency={op: _latency(values) for op, values in latencies.items()},
        kills=kills,
        restart_seconds=[round(s, 1) for s in restarts],
        acknowledged_upserts=expected.upserts,
        acknowledged_deletes=expected.deletes,
        articles_checked=sum(r["acked"] for r in expected.last.values()),
        writes_found=found,
        lost_writes=lost,
        unanswered_writes=sum(not r["acked"] for r in expected.last.values()),
        unanswered_took_effect=present,
        index_consistent=consistent,
        final_counts=counts,
        notes=problems[:20],
    )
    opts.out.mkdir(parents=True, exist_ok=True)
    (opts.out / "reliability.json").write_bytes(msgspec.json.format(msgspec.json.encode(result)) + b"\n")
    (opts.out / "reliability.md").write_text(render(result), encoding="utf-8")
    if opts.work is None:
        shutil.rmtree(work, ignore_errors=True)
    return result


def render(r: ReliabilityResult) -> str:
    """The Markdown report."""
    restarts = ", ".join(f"{s:g}" for s in r.restart_seconds[1:]) or "-"
    rows = [
        "# Reliability: mixed load with kill -9",
        "",
        f"`{' '.join(r.command) or 'python -m benchmarks reliability'}` — {r.machine.date:%Y-%m-%d}, "
        f"{r.machine.cpu_model}, {r.machine.usable_cores} usable cores, {r.machine.ram_gib} GiB, "
        f"Python {r.machine.python}, poshuk {r.versions.get('poshuk')}.",
        "",
        "| figure | value |",
        "| --- | --- |",
        f"| duration | {r.minutes} min, {r.clients} client processes on 127.0.0.1 |",
        f"| requests answered | {sum(r.served.values())} ({r.requests_per_second} /s) |",
        f"| `kill -9` of the server | {r.kills} (restart to ready: {restarts} s) |",
        f"| acknowledged upserts / deletes | {r.acknowledged_upserts} / {r.acknowledged_deletes} |",
        f"| articles whose last write was acknowledged: found as written | {r.writes_found} of {r.articles_checked} |",
        f"| **lost writes** | **{r.lost_writes}** |",
        f"| writes never answered (server killed) / of them applied, whole | {r.unanswered_writes} / "
        f"{r.unanswered_took_effect} |",
        f"| index consistent (SQLite = FAISS = lexical) | {r.index_consistent} {r.final_counts} |",
        "",
        "| operation | answered | p50 ms | p99 ms | max ms |",
        "| --- | --- | --- | --- | --- |",
    ]
    for op, lat in r.latency.items():
        rows.append(f"| {op} (2xx) | {lat.count} | {lat.p50_ms} | {lat.p99_ms} | {lat.max_ms} |")
    rows += ["", "| answers by status | count |", "| --- | --- |"]
    rows += [f"| {k} | {v} |" for k, v in r.served.items()]
    rows += ["", "| errors by kind | count |", "| --- | --- |"]
    rows += [f"| {k} | {v} |" for k, v in r.errors.items()] or ["| none | 0 |"]
    if r.notes:
        rows += ["", "Problems:", "", *[f"- {n}" for n in r.notes]]
    rows += [
        "",
        "Connection errors and `503 not-ready` are the injected faults: requests sent while the server was",
        "dead or still loading after a kill. Latencies are of answered requests, measured by the clients.",
        "",
    ]
    return "\n".join(rows)
