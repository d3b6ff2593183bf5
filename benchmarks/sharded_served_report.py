"""Records of ``python -m benchmarks sharded --served`` and their Markdown: each server against the single one.

The cells are the latency benchmark's (``latency_report.Cell``: corpus = the set, system = the
server: ``single``, ``archive-N`` or ``ray-N``); a ``ServerRun`` holds what one start of one
server showed besides load: start-to-ready time, memory, idle CPU, the process tree (Ray's
processes in it or not) and whether its answers equal the single server's.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence

import msgspec

from benchmarks.latency_report import Cell
from benchmarks.machine import Machine

SINGLE = "single"


class ServerRun(msgspec.Struct, frozen=True, kw_only=True):
    """One start of one server, in one round."""

    set: str
    server: str  # "single", "archive-N" (in process), "ray-N" (Ray Serve)
    shards: int  # 1 for the single index
    round: int
    ready_s: float  # from process start to the first 200 of /readyz
    rss_mb_ready: float  # VmRSS summed over the process tree (shared pages counted in each process)
    pss_mb_ready: float  # proportional set size of the tree (shared pages counted once)
    idle_cpu_ms_per_s: float  # the tree's CPU while no request comes (Ray's controller and raylet tick)
    processes: int  # in the server's process tree, after the load
    programs: dict[str, int] = {}  # ... by program (Ray's workers by their title: ray::ServeReplica:poshuk:...)
    tagged: int = 0  # processes then carrying the server's tag in their environment (tree or not)
    outside_tree: list[str] = []  # processes started under this server but not in its tree ("pid name")
    leftovers: list[str] = []  # processes of this server still alive after it stopped (then killed)
    checked: int = 0  # queries whose answer was compared with the single server's first run
    identical: int = 0  # ... equal in status and every JSON field but took_ms
    differences: list[str] = []  # the first few that were not


class ServedReport(msgspec.Struct, frozen=True, kw_only=True):
    command: str
    encoder: str
    load_generator: str  # wrk's version line
    wrk_threads: int
    seconds: float
    rounds: int
    levels: list[int]
    max_query_chars: int
    queries: dict[str, int]  # set -> distinct queries cycled with the cache off
    passages: dict[str, int]  # set -> passages served
    servers: list[ServerRun]
    cells: list[Cell]
    machine: Machine
    versions: dict[str, str | None]
    notes: list[str] = []


def _mean(values: Sequence[float]) -> float:
    return statistics.fmean(values) if values else 0.0


def _group(cells: list[Cell]) -> dict[tuple[str, str, int], list[Cell]]:
    out: dict[tuple[str, str, int], list[Cell]] = {}
    for c in cells:
        out.setdefault((c.corpus, c.system, c.concurrency), []).append(c)
    return out


def summary(cells: list[Cell]) -> dict[str, float]:
    """Means over rounds: QPS, and p50/p99 over the rounds that completed a request; CPU ms per request."""
    timed = [c for c in cells if c.requests]
    return {
        "qps": _mean([c.qps for c in cells]),
        "p50_ms": _mean([c.p50_ms for c in timed]),
        "p99_ms": _mean([c.p99_ms for c in timed]),
        "cpu_ms_per_request": _mean([c.cpu_ms_per_request for c in cells]),
    }


def ratios(report: ServedReport) -> dict[tuple[str, str, int], dict[str, float]]:
    """Each server's means over the single server's at the same set and concurrency (server -> ratio)."""
    groups = _group(report.cells)
    out: dict[tuple[str, str, int], dict[str, float]] = {}
    for (name, server, conc), cells in groups.items():
        base = groups.get((name, SINGLE, conc))
        if not base:
            continue
        mine, theirs = summary(cells), summary(base)
        out[(name, server, conc)] = {k: mine[k] / theirs[k] for k in mine if theirs[k] > 0}
    return out


def idle_share(report: ServedReport, cell: Cell) -> float:
    """CPU ms per request sent that the server's tree spends anyway while idle (Ray's background), over the cell."""
    for run in report.servers:
        if (run.set, run.server, run.round) == (cell.corpus, cell.system, cell.round):
            return run.idle_cpu_ms_per_s * cell.seconds / max(1, cell.sent)
    return 0.0


def _x(found: dict[str, float], key: str) -> str:
    return f"{found[key]:.2f}×" if key in found else "–"


def _cells_table(report: ServedReport, name: str) -> list[str]:
    lines = [
        "| server | c | QPS (per round) | p50 ms | p99 ms | errors | server CPU ms/request (idle share) | RSS MB after "
        "| QPS / single | p50 / single | p99 / single | CPU / single |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    found = ratios(report)
    for (set_name, server, conc), cells in _group(report.cells).items():
        if set_name != name:
            continue
        s = summary(cells)
        r = found.get((set_name, server, conc), {}) if server != SINGLE else {}
        rounds = " / ".join(f"{c.qps:.1f}" for c in sorted(cells, key=lambda c: c.round))
        timed = any(c.requests for c in cells)
        row = [
            server,
            str(conc),
            f"{s['qps']:.1f}" + (f" ({rounds})" if len(cells) > 1 else ""),
            f"{s['p50_ms']:.1f}" if timed else "none completed",
            f"{s['p99_ms']:.1f}" if timed else "–",
            str(sum(c.errors for c in cells)),
            f"{s['cpu_ms_per_request']:.1f} ({statistics.fmean(idle_share(report, c) for c in cells):.1f})",
            f"{max(c.rss_mb for c in cells):.0f}",
            *(_x(r, key) for key in ("qps", "p50_ms", "p99_ms", "cpu_ms_per_request")),
        ]
        lines.append("| " + " | ".join(row) + " |")
    return lines


def _starts_table(report: ServedReport) -> list[str]:
    lines = [
        "| set | server | round | ready s | RSS MB | PSS MB | idle CPU ms/s | processes / tagged | outside the tree "
        "| left after stop | same answers |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for s in report.servers:
        row = [
            s.set,
            s.server,
            str(s.round),
            f"{s.ready_s:.1f}",
            f"{s.rss_mb_ready:.0f}",
            f"{s.pss_mb_ready:.0f}",
            f"{s.idle_cpu_ms_per_s:.0f}",
            f"{s.processes} / {s.tagged}",
            str(len(s.outside_tree)),
            str(len(s.leftovers)),
            "reference" if s.server == SINGLE and not s.checked else f"{s.identical}/{s.checked}",
        ]
        lines.append("| " + " | ".join(row) + " |")
    return lines


def render(report: ServedReport) -> str:
    m = report.machine
    levels = ", ".join(str(c) for c in report.levels)
    lines = [
        "# A sharded archive served over HTTP against one index, loaded by wrk",
        "",
        f"`{report.command}`; encoder `{report.encoder}`. {m.cpu_model}, {m.usable_cores} cores, {m.ram_gib} GiB, "
        f"load {m.load_avg[0]:.1f} at the start, {m.date:%Y-%m-%d}, poshuk {report.versions.get('poshuk')}, "
        f"ray {report.versions.get('ray')}. Load from {report.load_generator} ({report.wrk_threads} thread, on "
        f"the same cores as the servers), {report.seconds:g} s per cell at concurrency {levels}, "
        f"{report.rounds} round(s), the servers' order reversed each round; one server at a time.",
        "",
        "Servers: `single` = `poshuk serve --index INDEX` (the set's cached index); `archive-N` = `poshuk serve "
        "--index ARCHIVE` (that index split into N shards, served in one process); `ray-N` = `poshuk serve --index "
        "ARCHIVE --ray local` (a Ray Serve deployment per shard and the app as ingress behind Serve's proxy, Ray "
        "started by the command). Request: `GET /v1/search?q=…&k=10` (the default search), query cache off (server "
        "cache size 0, requests cycling through the set's distinct queries), rate limits off. The "
        "ratios: each server's means over rounds to `single`'s at the same concurrency.",
        "",
        "Server CPU ms/request: utime+stime of the server's process tree over the cell (requests in flight when "
        "wrk stopped included, Ray's idle background too) / requests sent; in brackets the share the tree "
        "would have spent idle (its idle CPU ms/s x the cell's seconds / requests sent). RSS sums each process "
        "of the tree (for Ray's many processes shared pages count many times; PSS below counts them once). "
        "*Same answers*: status and every JSON field but `took_ms` equal to the single server's, over HTTP.",
    ]
    for name, passages in report.passages.items():
        lines += [
            "",
            f"## {name} ({passages:,} passages, {report.queries.get(name, 0):,} distinct queries)",
            "",
            *_cells_table(report, name),
        ]
    lines += ["", "## Server starts", "", *_starts_table(report)]
    outside = [
        f"- {s.set} {s.server} r{s.round}: {', '.join(s.outside_tree)}" for s in report.servers if s.outside_tree
    ]
    if outside:
        lines += ["", "Processes started under a server but outside its process tree (their CPU is not counted):"]
        lines += ["", *outside]
    trees = [
        f"- {s.set} {s.server} r{s.round}: " + ", ".join(f"{k} ×{v}" if v > 1 else k for k, v in s.programs.items())
        for s in report.servers
        if s.processes > 1
    ]
    if trees:
        lines += ["", "Process trees of the servers with more than one process (CPU and memory are read for these):"]
        lines += ["", *trees]
    left = [f"- {s.set} {s.server} r{s.round}: {', '.join(s.leftovers)}" for s in report.servers if s.leftovers]
    if left:
        lines += ["", "Processes still running after their server stopped (killed by the benchmark):", "", *left]
    differing = [f"- {s.set} {s.server} r{s.round}: {d}" for s in report.servers for d in s.differences]
    if differing:
        lines += ["", "Answers that differ from the single server's:", "", *differing]
    if report.notes:
        lines += ["", *[f"- {note}" for note in report.notes]]
    return "\n".join(lines) + "\n"
