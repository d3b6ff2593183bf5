"""``python -m benchmarks sharded --served``: one index and its sharded archive, each served and loaded by wrk.

For each set, on its cached poshuk index (the recall benchmark's; split into N shards here, nothing
encoded again), three servers are started in turn, never two at once, the order reversed each
round: ``single`` (``poshuk serve --index INDEX``), ``archive-N`` (``poshuk serve --index ARCHIVE``,
the shards in one process) and ``ray-N`` (``poshuk serve --index ARCHIVE --ray local``: a Ray
Serve deployment per shard and the app as ingress). Each is loaded as the latency benchmark loads
poshuk (its ``load_cells``: the default request, query cache off, distinct queries, wrk at each
concurrency), and asked a few queries whose answers must equal the single server's. The server's
CPU and memory are read for its process tree; every process that carries the server's tag in its
environment must be in that tree (else its CPU would be missed: the report names it), and none may
outlive the server (the benchmark kills those by id and names them).
"""

from __future__ import annotations

import importlib.util
import os
import random
import signal
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import msgspec

from benchmarks.datasets import SETS, BenchSet
from benchmarks.latency import Options, Target, is_ready, load_cells, poshuk_target, server_env
from benchmarks.latency_report import Cell
from benchmarks.machine import machine, versions
from benchmarks.serverproc import Server, background_cpu_per_s, names, pss_mb, rss_mb, serve, tagged, tree
from benchmarks.sharded_served_report import SINGLE, ServedReport, ServerRun
from benchmarks.workspace import Workspace
from benchmarks.wrk import find_wrk, request_path, wrk_version

TAG = "POSHUK_BENCHMARK_SERVER_TAG"  # not a setting: poshuk reads only its own POSHUK_ names
SERVERS = ("single", "archive", "ray")
RAY_MISSING = "ray not measured: the ray extra is not installed (pip install 'poshuk[ray]'; `make setup` installs it)"
_STOP_GRACE_S = 10.0  # how long a stopped server's processes may take to end on their own


class ServedOptions(msgspec.Struct, frozen=True, kw_only=True):
    data: Path
    work: Path
    sets: tuple[str, ...]
    shards: tuple[int, ...] = (3,)
    servers: tuple[str, ...] = SERVERS
    seconds: float = 10.0
    rounds: int = 2
    levels: tuple[int, ...] = (1, 8)
    check_queries: int = 30
    max_query_chars: int = 200
    warm_queries: int = 20
    idle_seconds: float = 3.0
    wrk_threads: int = 1
    command: tuple[str, ...] = ()


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def set_queries(bench: BenchSet, max_chars: int) -> list[str]:
    """The set's distinct query texts of at most ``max_chars`` characters, in a fixed shuffled order."""
    texts = list(dict.fromkeys(" ".join(q.text.split()) for q in bench.queries))
    kept = [t for t in texts if t and len(t) <= max_chars]
    random.Random(0).shuffle(kept)
    return kept


def comparable(status: int, body: Any) -> Any:
    """What must be equal between two servers' answers: the status and the JSON body but ``took_ms``."""
    if isinstance(body, dict):
        body = {k: v for k, v in body.items() if k != "took_ms"}
    return [status, body]


def _answers(base: str, queries: list[str]) -> list[Any]:
    out = []
    with httpx.Client(base_url=base, timeout=120) as client:
        for query in queries:
            response = client.get(request_path("/v1/search", {"q": query, "k": 10}))
            out.append(comparable(response.status_code, response.json()))
    return out


def _stop_leftovers(tag: str) -> list[str]:
    """Processes carrying ``tag`` still alive after their server stopped: waited for, then killed by id."""
    deadline = time.monotonic() + _STOP_GRACE_S
    while (left := tagged(TAG, tag)) and time.monotonic() < deadline:
        time.sleep(0.5)
    for pid in left:
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            continue
    return [f"{pid} {name}" for pid, name in sorted(left.items())]


def _outside(server: Server, tag: str) -> dict[int, str]:
    members = set(tree(server.pid))
    return {pid: name for pid, name in tagged(TAG, tag).items() if pid not in members}


def _run_one(
    target: Target,
    name: str,
    shards: int,
    rnd: int,
    pool: list[str],
    checks: list[str],
    reference: list[Any] | None,
    lopts: Options,
    opts: ServedOptions,
    tmp: Path,
) -> tuple[ServerRun, list[Cell], list[Any]]:
    tag = uuid.uuid4().hex
    env = {**target.env, TAG: tag}
    with serve(target.argv, env, lambda client: is_ready(client, target)) as server:
        ready_s, rss, pss = server.ready_s, rss_mb(server.pid), pss_mb(server.pid)
        _log(f"[{name} r{rnd} {target.system}] ready in {ready_s:.1f} s, RSS {rss:.0f} MB, PSS {pss:.0f} MB")
        idle = background_cpu_per_s(server.pid, opts.idle_seconds)
        outside = _outside(server, tag)
        cells = load_cells(server, target, name, "off", rnd, pool, lopts, tmp, background_per_s=idle)
        answers = _answers(server.base, checks)
        outside |= _outside(server, tag)
        members, carrying = tree(server.pid), tagged(TAG, tag)
        programs = names(members)  # while they run
    leftovers = _stop_leftovers(tag)
    same = [a == b for a, b in zip(answers, reference or [], strict=False)]
    run = ServerRun(
        set=name,
        server=target.system,
        shards=shards,
        round=rnd,
        ready_s=round(ready_s, 2),
        rss_mb_ready=round(rss, 1),
        pss_mb_ready=round(pss, 1),
        idle_cpu_ms_per_s=round(1000 * idle, 1),
        processes=len(members),
        programs=programs,
        tagged=len(carrying),
        outside_tree=[f"{pid} {comm}" for pid, comm in sorted(outside.items())],
        leftovers=leftovers,
        checked=len(same),
        identical=sum(same),
        differences=[checks[i][:80] for i, ok in enumerate(same) if not ok][:5],
    )
    _log(
        f"[{name} r{rnd} {target.system}] {run.identical}/{run.checked} answers as the single server's; "
        f"{run.processes} processes ({run.tagged} tagged), {len(outside)} outside the tree, "
        f"{len(leftovers)} left after stop; idle {run.idle_cpu_ms_per_s} CPU ms/s"
    )
    return run, cells, answers


def _targets(
    index: Path, archives: dict[int, Path], passages: int, env: dict[str, str], servers: tuple[str, ...]
) -> list[tuple[Target, int]]:
    targets: list[tuple[Target, int]] = []
    if "single" in servers:
        targets.append((msgspec.structs.replace(poshuk_target(index, passages, env, ("default",)), system=SINGLE), 1))
    for count, archive in archives.items():
        base = poshuk_target(archive, passages, env, ("default",))
        if "archive" in servers:
            targets.append((msgspec.structs.replace(base, system=f"archive-{count}"), count))
        if "ray" in servers:
            ray = msgspec.structs.replace(base, system=f"ray-{count}", argv=[*base.argv, "--ray", "local"])
            targets.append((ray, count))
    return targets


def run(opts: ServedOptions) -> ServedReport | None:
    """The report, or None (with a message) when no chosen set's data is present; ``WrkMissing`` without wrk."""
    from poshuk import load_settings
    from poshuk.shards import split_index

    chosen = [name for name in opts.sets if (opts.data / SETS[name][0]).is_dir()]
    if not chosen:
        print(f"skipped: evaluation data not found under {opts.data}")
        return None
    wrk = find_wrk()
    host = machine()
    notes: list[str] = []
    servers = opts.servers
    if "ray" in servers and importlib.util.find_spec("ray") is None:
        _log(RAY_MISSING)
        notes.append(RAY_MISSING)
        servers = tuple(s for s in servers if s != "ray")
    settings = load_settings()
    ws = Workspace(opts.work, settings, max_k=100)
    env = {**server_env(settings.encoder), "POSHUK_QUERY_CACHE_SIZE": "0"}
    lopts = Options(
        data=opts.data,
        work=opts.work,
        out=opts.work,
        seconds=opts.seconds,
        rounds=opts.rounds,
        levels=opts.levels,
        repeated=opts.warm_queries,
        wrk_threads=opts.wrk_threads,
    )
    runs: list[ServerRun] = []
    cells: list[Cell] = []
    queries: dict[str, int] = {}
    passages: dict[str, int] = {}
    for name in chosen:
        bench = SETS[name][1](opts.data)
        searcher = ws.searcher(bench)  # built from the vector cache if absent
        passages[name] = searcher.stats().passages
        ws.release(bench)
        index = ws.folder(bench) / "index"
        pool = set_queries(bench, opts.max_query_chars)
        if len(pool) <= opts.warm_queries:
            raise ValueError(f"{name}: only {len(pool)} queries of at most {opts.max_query_chars} characters")
        queries[name] = len(pool)
        checks = pool[: opts.check_queries]
        with tempfile.TemporaryDirectory(prefix="poshuk-served-", dir=opts.work) as tmp_name:
            tmp = Path(tmp_name)
            archives = {n: tmp / f"archive-{n}" for n in opts.shards}
            for count, archive in archives.items():
                split_index(index, archive, count)
            targets = _targets(index, archives, passages[name], env, servers)
            reference: list[Any] | None = None  # the single server's first answers (it starts round 1)
            for rnd in range(1, opts.rounds + 1):
                for target, count in targets if rnd % 2 else targets[::-1]:
                    one, done, answers = _run_one(target, name, count, rnd, pool, checks, reference, lopts, opts, tmp)
                    if target.system == SINGLE and reference is None:
                        reference = answers
                    runs.append(one)
                    cells += done
    return ServedReport(
        command=" ".join(opts.command),
        encoder=settings.encoder,
        load_generator=wrk_version(wrk),
        wrk_threads=opts.wrk_threads,
        seconds=opts.seconds,
        rounds=opts.rounds,
        levels=list(opts.levels),
        max_query_chars=opts.max_query_chars,
        queries=queries,
        passages=passages,
        servers=runs,
        cells=cells,
        machine=host,
        versions=versions(),
        notes=notes,
    )
