"""``python -m benchmarks reliability --hostile``: normal users' latency with and without attackers.

One real ``poshuk serve`` on 127.0.0.1 and two phases of the same length: *quiet* (a few
normal users: ordinary ``GET /v1/search`` with think time, an occasional ``PUT``) and
*attacked* (the same users while the attackers of ``benchmarks.attackers`` run, each in
its own process: filter bombs, half-open connections, slow bodies, and a write storm
beside a ``poshuk index`` run on the same index). The report gives the users' p50/p99
and error rate per phase, what each attacker got, and the reliability benchmark's
check that no acknowledged write was lost. Issue 13's target: the attacked p50 within
2x of the quiet p50. Results go to ``benchmarks/results/reliability-hostile.{json,md}``.
"""

from __future__ import annotations

import json
import multiprocessing
import random
import shutil
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import msgspec

from benchmarks import attackers
from benchmarks.machine import Machine, machine, versions
from benchmarks.reliability import (
    EXAMPLES,
    POSHUK,
    QUERIES,
    REPO,
    Expectations,
    Latency,
    Server,
    _article,
    _env,
    _error_kind,
    _free_port,
    _latency,
    check_writes,
    get_waiting,
    index_consistent,
)

TARGET_RATIO = 2.0  # issue 13: attacked p50 within 2x of quiet p50
MORE_QUERIES = (
    "вибори до Верховної Ради",
    "COVID-19 vaccination campaign",
    "ціни на пальне",
    "Black Sea grain corridor",
)


ATTACKERS = ("filter-bombs", "half-open", "slow-bodies", "write-storm")
"""Every attacker ``--attackers`` can name; issue 13's target names the first two."""


@dataclass(frozen=True)
class HostileOptions:
    phase_seconds: float = 45.0
    users: int = 8
    write_share: float = 0.1
    think_s: tuple[float, float] = (0.5, 2.5)  # people reading results between searches
    filter_bombers: int = 4
    half_open: int = 400
    slow_bodies: int = 20
    storm_articles: int = 300
    seed: int = 20230831
    attackers: tuple[str, ...] = ATTACKERS
    service: dict[str, str] = field(
        default_factory=dict
    )  # [service] settings other than the shipped defaults, as TOML values
    out: Path = REPO / "benchmarks" / "results"
    work: Path | None = None
    command: tuple[str, ...] = ()


class Phase(msgspec.Struct, frozen=True, kw_only=True):
    """The normal users' figures in one phase."""

    name: str
    seconds: float
    requests: int
    search: Latency  # answered searches (2xx), client-measured
    put: Latency
    error_rate: float  # non-2xx answers and transport errors over all the users' requests
    search_error_rate: float
    outcomes: dict[str, int]  # e.g. "search 200", "put 429", "search client timeout"


class FilterBombs(msgspec.Struct, frozen=True, kw_only=True):
    attackers: int
    statuses: dict[str, int]  # "worst 200", "over-limit 400", ...
    worst: Latency  # accepted worst-case bodies
    over_limit: Latency  # bodies past a bound: must be 400, fast


class HostileResult(msgspec.Struct, frozen=True, kw_only=True):
    command: list[str]
    machine: Machine
    versions: dict[str, str | None]
    uptime_before: str
    uptime_after: str
    settings: dict[str, Any]  # what the server ran with beyond the shipped defaults
    users: int
    think_s: tuple[float, float] = (0.5, 2.5)  # each user's pause between requests
    attackers: list[str]  # which ran in the attacked phase
    phases: list[Phase]
    p50_ratio: float  # attacked / quiet
    target_holds: bool
    filter_bombs: FilterBombs
    half_open: dict[str, Any]
    slow_bodies: dict[str, Any]
    write_storm: dict[str, Any]
    acknowledged_upserts: int
    articles_checked: int
    writes_found: int
    lost_writes: int
    index_consistent: bool
    final_counts: dict[str, int]
    notes: list[str] = []


# --- the normal users ---------------------------------------------------------------------------


def user_request(rng: random.Random, who: str, n: int, write_share: float) -> tuple[str, str, dict[str, Any]]:
    """(method, path, params or body) of a normal user's next request: mostly a search, sometimes a ``PUT``."""
    if rng.random() < write_share:
        doc_id = f"u{who}-{n:06d}"
        return "PUT", f"/v1/documents/{doc_id}", _article(rng, doc_id)
    query = (
        f"{rng.choice(QUERIES + MORE_QUERIES)} {who}-{n}"  # a new text each time, in either phase: no query-cache hits
    )
    return "GET", "/v1/search", {"q": query, "k": 10, "mode": rng.choice(["hybrid", "hybrid", "dense", "lexical"])}


def user_main(
    who: str, base_url: str, key: str, deadline: float, opts: HostileOptions, seed: int, log_path: Path
) -> None:
    """One normal user until ``deadline``: a request, a pause to think, again; every outcome logged."""
    rng = random.Random(seed)
    headers = {"Authorization": f"Bearer {key}"}
    n = 0
    with httpx.Client(base_url=base_url, timeout=60.0) as client, log_path.open("w", encoding="utf-8") as log:
        while time.time() < deadline:
            method, path, payload = user_request(rng, who, n, opts.write_share)
            n += 1
            record: dict[str, Any] = {"op": "upsert" if method == "PUT" else "search"}
            if method == "PUT":
                record["id"] = path.rsplit("/", 1)[-1]
                request = client.build_request(method, path, json=payload, headers=headers)
            else:
                request = client.build_request(method, path, params=payload, headers=headers)
            started = time.perf_counter()
            try:
                response = client.send(request)
            except Exception as exc:
                record.update(error=_error_kind(exc), ms=(time.perf_counter() - started) * 1000)
            else:
                record.update(status=response.status_code, ms=(time.perf_counter() - started) * 1000)
                if response.status_code < 300 and method == "PUT":
                    record["passages"] = response.json()["passages"]
                elif response.status_code >= 400:
                    record["problem"] = attackers._problem(response)
            log.write(json.dumps(record) + "\n")
            time.sleep(rng.uniform(*opts.think_s))


def phase_figures(name: str, seconds: float, records: list[dict[str, Any]]) -> Phase:
    """Percentiles and error rates of one phase's user records."""
    outcomes: Counter[str] = Counter()
    searches: list[float] = []
    puts: list[float] = []
    failed = failed_searches = total_searches = 0
    for record in records:
        op = "search" if record["op"] == "search" else "put"
        total_searches += op == "search"
        ok = 200 <= record.get("status", 0) < 300
        outcomes[f"{op} {record.get('status', record.get('error'))}"] += 1
        if ok:
            (searches if op == "search" else puts).append(record["ms"])
        else:
            failed += 1
            failed_searches += op == "search"
    return Phase(
        name=name,
        seconds=round(seconds, 1),
        requests=len(records),
        search=_latency(searches),
        put=_latency(puts),
        error_rate=round(failed / len(records), 4) if records else 0.0,
        search_error_rate=round(failed_searches / total_searches, 4) if total_searches else 0.0,
        outcomes=dict(sorted(outcomes.items())),
    )


def merge_filter_bombs(summaries: list[dict[str, Any]]) -> FilterBombs:
    statuses: Counter[str] = Counter()
    worst: list[float] = []
    over: list[float] = []
    for summary in summaries:
        statuses.update(summary["statuses"])
        worst += summary["worst_ms"]
        over += summary["over_ms"]
    return FilterBombs(
        attackers=len(summaries),
        statuses=dict(sorted(statuses.items())),
        worst=_latency(worst),
        over_limit=_latency(over),
    )


def p50_ratio(quiet: Phase, attacked: Phase) -> float:
    return round(attacked.search.p50_ms / quiet.search.p50_ms, 2) if quiet.search.p50_ms > 0 else float("inf")


# --- the run --------------------------------------------------------------------------------------


def _uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()
    except OSError:
        return ""


def _read_log(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _users(ctx: Any, server: Server, keys: list[str], opts: HostileOptions, phase: str, work: Path) -> list[Path]:
    """Run the users for one phase; returns their logs."""
    deadline = time.time() + opts.phase_seconds
    logs = [work / f"user-{phase}-{n}.jsonl" for n in range(opts.users)]
    processes = [
        ctx.Process(
            target=user_main,
            args=(f"{phase[0]}{n}", server.base_url, keys[n], deadline, opts, opts.seed * 10 + n, logs[n]),
            daemon=True,
        )
        for n in range(opts.users)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=opts.phase_seconds + 120)
    return logs


def run(opts: HostileOptions) -> HostileResult:
    from service.auth import new_key

    uptime_before = _uptime()
    work = opts.work or Path(tempfile.mkdtemp(prefix="poshuk-hostile-"))
    work.mkdir(parents=True, exist_ok=True)
    index_dir = work / "index"
    shutil.rmtree(index_dir, ignore_errors=True)
    pairs = [new_key() for _ in range(opts.users + opts.filter_bombers + 2)]
    keys = [key for key, _ in pairs]
    user_keys = keys[: opts.users]
    bomb_keys = keys[opts.users : opts.users + opts.filter_bombers]
    storm_key, slow_key = keys[-2:]
    config = work / "poshuk.toml"
    service = "".join(f"{name} = {value}\n" for name, value in opts.service.items())
    config.write_text(
        f"[auth]\nkeys = {json.dumps([digest for _, digest in pairs])}\n"
        + (f"\n[service]\n{service}" if service else ""),
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
    server.start()
    ctx = multiprocessing.get_context("spawn")
    try:
        print(f"quiet phase: {opts.users} users for {opts.phase_seconds:g} s", flush=True)
        started = time.time()
        quiet_logs = _users(ctx, server, user_keys, opts, "quiet", work)
        quiet_seconds = time.time() - started

        print("attacked phase: starting the attackers", flush=True)
        warmup = 3.0
        deadline = time.time() + warmup + opts.phase_seconds
        bombers = opts.filter_bombers if "filter-bombs" in opts.attackers else 0
        bomb_summaries = [work / f"filter-bomb-{n}.json" for n in range(bombers)]
        storm_log = work / "write-storm.jsonl"
        attacker_processes = [
            ctx.Process(
                target=attackers.filter_bomb_main,
                args=(n, server.base_url, bomb_keys[n], deadline, opts.seed, bomb_summaries[n]),
                daemon=True,
            )
            for n in range(bombers)
        ]
        others: dict[str, tuple[Callable[..., None], tuple[Any, ...]]] = {
            "half-open": (attackers.half_open_main, (server.port, opts.half_open, deadline, work / "half-open.json")),
            "slow-bodies": (
                attackers.slow_body_main,
                (server.port, slow_key, opts.slow_bodies, deadline, work / "slow-body.json"),
            ),
            "write-storm": (
                attackers.write_storm_main,
                (server.base_url, storm_key, index_dir, config, opts.storm_articles, deadline, storm_log),
            ),
        }
        attacker_processes += [
            ctx.Process(target=target, args=args, daemon=True)
            for name, (target, args) in others.items()
            if name in opts.attackers
        ]
        for process in attacker_processes:
            process.start()
        time.sleep(warmup)  # the half-open connections and the index run get going
        print(f"attacked phase: {opts.users} users for {opts.phase_seconds:g} s", flush=True)
        started = time.time()
        attacked_logs = _users(ctx, server, user_keys, opts, "attacked", work)
        attacked_seconds = time.time() - started
        for process in attacker_processes:
            process.join(timeout=max(1.0, deadline - time.time()) + 180)
        notes = [f"attacker {p.name} did not finish" for p in attacker_processes if p.exitcode is None]

        expected = Expectations()
        user_records = {"quiet": [], "attacked": []}  # type: dict[str, list[dict[str, Any]]]
        for phase, logs in (("quiet", quiet_logs), ("attacked", attacked_logs)):
            for path in logs:
                for record in _read_log(path):
                    user_records[phase].append(record)
                    expected.add(record)
        storm_records = _read_log(storm_log)
        for record in storm_records:
            expected.add(record)
        reader = {"Authorization": f"Bearer {storm_key}"}  # the rate limit stays on: read with a key
        found, lost, _, problems = check_writes(server.base_url, expected, reader)
        storm_index = _read_json(storm_log.with_suffix(".index.json"))
        if "write-storm" in opts.attackers:
            storm_index["found_after"] = _count_present(
                server.base_url, [a["id"] for a in attackers.storm_articles(opts.storm_articles)], reader
            )
        server.stop()
    finally:
        server.kill()
    consistent, counts = index_consistent(index_dir)
    phases = [
        phase_figures("quiet", quiet_seconds, user_records["quiet"]),
        phase_figures("attacked", attacked_seconds, user_records["attacked"]),
    ]
    ratio = p50_ratio(*phases)
    storm_statuses = Counter(str(r.get("status", r.get("error"))) for r in storm_records)
    result = HostileResult(
        command=list(opts.command),
        machine=machine(),
        versions=versions(),
        uptime_before=uptime_before,
        uptime_after=_uptime(),
        settings={
            "auth.keys": f"{len(pairs)} keys: one per user and per attacker (rate limit counts each apart)",
            **{f"service.{name}": value for name, value in opts.service.items()},
        },
        users=opts.users,
        think_s=opts.think_s,
        attackers=list(opts.attackers),
        phases=phases,
        p50_ratio=ratio,
        target_holds=ratio <= TARGET_RATIO,
        filter_bombs=merge_filter_bombs([_read_json(p) for p in bomb_summaries if p.exists()]),
        half_open=_read_json(work / "half-open.json"),
        slow_bodies=_read_json(work / "slow-body.json"),
        write_storm={
            "puts": len(storm_records),
            "statuses": dict(sorted(storm_statuses.items())),
            "put": msgspec.to_builtins(_latency([r["ms"] for r in storm_records if 200 <= r.get("status", 0) < 300])),
            "index_run": storm_index,
        },
        acknowledged_upserts=expected.upserts,
        articles_checked=sum(r["acked"] for r in expected.last.values()),
        writes_found=found,
        lost_writes=lost,
        index_consistent=consistent,
        final_counts=counts,
        notes=notes + problems[:20],
    )
    opts.out.mkdir(parents=True, exist_ok=True)
    (opts.out / "reliability-hostile.json").write_bytes(msgspec.json.format(msgspec.json.encode(result)) + b"\n")
    (opts.out / "reliability-hostile.md").write_text(render(result), encoding="utf-8")
    if opts.work is None:
        shutil.rmtree(work, ignore_errors=True)
    return result


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {"missing": str(path.name)}
    return data


def _count_present(base_url: str, ids: list[str], headers: dict[str, str]) -> int:
    with httpx.Client(base_url=base_url, timeout=60.0, headers=headers) as client:
        return sum(get_waiting(client, f"/v1/documents/{doc_id}").status_code == 200 for doc_id in ids)


# --- the report -----------------------------------------------------------------------------------


def _statuses(counts: dict[str, Any]) -> str:
    return ", ".join(f"{k}: {v}" for k, v in counts.items()) or "-"


def render(r: HostileResult) -> str:
    """The Markdown report."""
    quiet, attacked = r.phases
    verdict = "holds" if r.target_holds else "does NOT hold"
    half, slow, storm = r.half_open, r.slow_bodies, r.write_storm
    bombs = r.filter_bombs
    run_ = storm.get("index_run", {})
    rows = [
        "# Reliability under hostile traffic",
        "",
        f"`{' '.join(r.command) or 'python -m benchmarks reliability --hostile'}` — {r.machine.date:%Y-%m-%d}, "
        f"{r.machine.cpu_model}, {r.machine.usable_cores} usable cores, {r.machine.ram_gib} GiB, "
        f"Python {r.machine.python}, poshuk {r.versions.get('poshuk')}.",
        "",
        f"Load before: `{r.uptime_before}`; after: `{r.uptime_after}`.",
        "",
        f"{r.users} normal users (one process each, own API key, {'a search or an occasional PUT'}, "
        f"{r.think_s[0]:g}-{r.think_s[1]:g} s think time between requests) against one `poshuk serve` on "
        "127.0.0.1 with the shipped defaults (rate limit on); "
        f"changed: {_statuses(r.settings)}.",
        "",
        "| phase | seconds | requests | search p50 ms | search p99 ms | search max ms | error rate | "
        "search error rate | PUT p50 ms |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for p in r.phases:
        rows.append(
            f"| {p.name} | {p.seconds} | {p.requests} | {p.search.p50_ms} | {p.search.p99_ms} | {p.search.max_ms} | "
            f"{p.error_rate:.2%} | {p.search_error_rate:.2%} | {p.put.p50_ms} |"
        )
    rows += [
        "",
        f"**attacked / quiet search p50: {r.p50_ratio}x** — issue 13's target (within {TARGET_RATIO:g}x) "
        f"**{verdict}**. Attackers in this run: {', '.join(r.attackers)}.",
        "",
        "Users' outcomes: quiet " + _statuses(quiet.outcomes) + "; attacked " + _statuses(attacked.outcomes) + ".",
        "",
        "| attacker | what it did | what it got |",
        "| --- | --- | --- |",
    ]
    table = [
        f"| filter bombs ({bombs.attackers} processes, own keys) | `POST /v1/search`, 4 lists x 64 values x 200 "
        f"chars; 1 in 10 over a bound | {_statuses(bombs.statuses)}; accepted p50 {bombs.worst.p50_ms} ms, p99 "
        f"{bombs.worst.p99_ms} ms; over-limit p50 {bombs.over_limit.p50_ms} ms, p99 {bombs.over_limit.p99_ms} ms |",
        f"| half-open connections (target {half.get('target')}) | connect, partial head, never finish; reopen | "
        f"opened {half.get('opened')}, peak open {half.get('peak_open')}, refused {half.get('refused')}, closed by "
        f"server {half.get('closed_by_server')} (median held {half.get('median_seconds_held')} s), answered "
        f"{half.get('answered')} {half.get('replies')}, open at end {half.get('still_open_at_end')} |",
        f"| slow bodies ({slow.get('connections')} connections) | `PUT` head, body 1 byte / 0.5 s | opened "
        f"{slow.get('opened')}, refused {slow.get('refused')}, ended: {slow.get('replies')} (median held "
        f"{slow.get('median_seconds_held')} s), open at end {slow.get('still_open_at_end')} "
        f"(oldest {slow.get('oldest_open_seconds')} s) |",
        f"| write storm (own key) | `PUT`s back to back beside `poshuk index` of {run_.get('articles')} articles "
        f"| {storm.get('puts')} PUTs: {_statuses(storm.get('statuses', {}))}, 2xx p50 "
        f"{storm.get('put', {}).get('p50_ms')} ms; index run exit {run_.get('exit')} in {run_.get('seconds')} s, "
        f"{run_.get('found_after')} of its articles found after |",
    ]
    rows += [line for name, line in zip(ATTACKERS, table, strict=True) if name in r.attackers]
    rows += [
        "",
        "| writes | value |",
        "| --- | --- |",
        f"| acknowledged upserts (users + storm) | {r.acknowledged_upserts} |",
        f"| articles whose last write was acknowledged: found as written | {r.writes_found} of {r.articles_checked} |",
        f"| **lost writes** | **{r.lost_writes}** |",
        f"| index consistent (SQLite = FAISS = lexical) | {r.index_consistent} {r.final_counts} |",
    ]
    if r.notes:
        rows += ["", "Problems:", "", *[f"- {n}" for n in r.notes]]
    rows += [
        "",
        "Latencies are measured by the clients, of answered (2xx) requests; error rate counts non-2xx answers",
        "and transport errors. Both phases ran against the same server, one after the other; other work on the",
        "machine (see the load above) slows both and makes the numbers noisy.",
        "",
    ]
    return "\n".join(rows)
