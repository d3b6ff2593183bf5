"""Records of ``python -m benchmarks latency`` and their Markdown table: every cell, and poshuk/txtai ratios."""

from __future__ import annotations

import statistics
from collections.abc import Sequence

import msgspec

from benchmarks.machine import Machine


class Cell(msgspec.Struct, frozen=True, kw_only=True):
    """One wrk run: a system, corpus, request kind, query cache mode and concurrency, in one round."""

    corpus: str
    system: str
    kind: str
    cache: str  # "off": every query new, server cache size 0; "on": a few queries repeated, after a warm-up pass
    concurrency: int
    round: int
    requests: int  # completed
    sent: int  # started, including those still open when the run ended
    seconds: float
    qps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    max_ms: float
    errors: int
    error_detail: dict[str, int]
    cpu_ms_per_request: float  # server tree's utime+stime over the cell, in flight work included, / requests sent
    rss_mb: float  # VmRSS of the server tree after the cell


class ServerStart(msgspec.Struct, frozen=True, kw_only=True):
    corpus: str
    system: str
    cache: str
    round: int
    ready_s: float
    rss_mb_ready: float
    torch_loaded: bool


class Corpus(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    passages: dict[str, int]  # system -> passages it serves


class LatencyReport(msgspec.Struct, frozen=True, kw_only=True):
    command: str
    encoder: str
    load_generator: str  # wrk's version line
    wrk_threads: int
    seconds: float
    rounds: int
    queries: dict[str, int]  # cache mode -> distinct queries cycled
    max_query_chars: int  # the longest query kept from the recall sets
    corpora: list[Corpus]
    servers: list[ServerStart]
    cells: list[Cell]
    machine: Machine
    versions: dict[str, str | None]
    notes: list[str] = []


# What each request kind sends, for the report.
KIND_DOC = {
    "default": "`GET /v1/search?q=…&k=10`, nothing else: what an integrator sends by default",
    "dense": "`…&mode=dense&highlight=false`: the like-for-like comparison with txtai",
    "semantic": "`…&semantic_highlights=true`: what the web page's second request asks for (sentence marks)",
    "search": "txtai's `GET /search?query=…&limit=10` (dense; ids and scores only)",
}


def _mean(values: Sequence[float]) -> float:
    return statistics.fmean(values) if values else 0.0


def _group(cells: list[Cell]) -> dict[tuple[str, str, str, str, int], list[Cell]]:
    out: dict[tuple[str, str, str, str, int], list[Cell]] = {}
    for c in cells:
        out.setdefault((c.corpus, c.system, c.kind, c.cache, c.concurrency), []).append(c)
    return out


def _qps(cells: list[Cell]) -> str:
    mean = _mean([c.qps for c in cells])
    rounds = " / ".join(f"{c.qps:.1f}" for c in sorted(cells, key=lambda c: c.round))
    return f"{mean:.1f}" + (f" ({rounds})" if len(cells) > 1 else "")


def _latencies(cells: list[Cell]) -> list[str]:
    """Mean p50 and p99 over the rounds that completed a request (wrk has no percentile of nothing)."""
    timed = [c for c in cells if c.requests]
    if not timed:
        return ["none completed", "–"]
    return [f"{_mean([c.p50_ms for c in timed]):.1f}", f"{_mean([c.p99_ms for c in timed]):.1f}"]


def _cells_table(report: LatencyReport, corpus: str) -> list[str]:
    lines = [
        "| system | request | query cache | c | QPS (per round) | p50 ms | p99 ms | errors | server CPU ms/request "
        "| RSS MB after |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for (corp, system, kind, cache, conc), cells in _group(report.cells).items():
        if corp != corpus:
            continue
        row = [
            system,
            kind,
            cache,
            str(conc),
            _qps(cells),
            *_latencies(cells),
            str(sum(c.errors for c in cells)),
            f"{_mean([c.cpu_ms_per_request for c in cells]):.1f}",
            f"{max(c.rss_mb for c in cells):.0f}",
        ]
        lines.append("| " + " | ".join(row) + " |")
    return lines


def ratios(report: LatencyReport, corpus: str) -> dict[tuple[str, str, int], float]:
    """poshuk QPS / txtai QPS, by (poshuk request kind, cache mode, concurrency), means over rounds."""
    groups = _group(report.cells)
    out: dict[tuple[str, str, int], float] = {}
    for (corp, system, kind, cache, conc), cells in groups.items():
        if corp != corpus or system != "poshuk" or kind not in ("default", "dense"):
            continue
        theirs = groups.get((corpus, "txtai", "search", cache, conc))
        if theirs and _mean([c.qps for c in theirs]) > 0:
            out[(kind, cache, conc)] = _mean([c.qps for c in cells]) / _mean([c.qps for c in theirs])
    return out


def _ratio_table(report: LatencyReport, corpus: str) -> list[str]:
    found = ratios(report, corpus)
    if not found:
        return ["No poshuk/txtai ratio: txtai was not measured on this corpus."]
    levels = sorted({conc for _, _, conc in found})
    lines = [
        "| poshuk request / txtai `/search` | query cache | " + " | ".join(f"c={c}" for c in levels) + " |",
        "| --- | --- | " + " | ".join("---" for _ in levels) + " |",
    ]
    for kind in ("default", "dense"):
        for cache in ("off", "on"):
            if any((kind, cache, c) in found for c in levels):
                values = [f"{found[(kind, cache, c)]:.2f}×" if (kind, cache, c) in found else "–" for c in levels]
                lines.append(f"| {kind} | {cache} | " + " | ".join(values) + " |")
    return lines


def render(report: LatencyReport) -> str:
    m = report.machine
    lines = [
        "# Query latency over HTTP, loaded by wrk",
        "",
        f"`{report.command}`; poshuk encoder `{report.encoder}`. {m.cpu_model}, {m.usable_cores} cores, "
        f"{m.ram_gib} GiB, load {m.load_avg[0]:.1f} at the start, {m.date:%Y-%m-%d}. Load from "
        f"{report.load_generator} ({report.wrk_threads} thread, on the same cores as the server: with 2 cores "
        f"there is none to pin it to), {report.seconds:g} s per cell, {report.rounds} round(s), systems "
        "alternating in order round by round; one server at a time, rate limit off.",
        "",
        f"Query cache **off**: the server's query cache is 0 and requests cycle through "
        f"{report.queries.get('off', 0):,} distinct real queries of the recall sets (those of at most "
        f"{report.max_query_chars} characters). **on**: "
        f"{report.queries.get('on', 0)} queries repeated after one warm-up pass (txtai has no query cache; it "
        "gets the same requests). Server CPU ms/request: utime+stime of the server's processes over the cell "
        "(including requests still open when wrk stopped) divided by the requests sent. Errors: socket errors, "
        "timeouts and non-2xx answers.",
        "",
        "Requests: " + "; ".join(f"`{k}` = {v}" for k, v in KIND_DOC.items()) + ".",
    ]
    for corpus in report.corpora:
        served = ", ".join(f"{system} {n:,}" for system, n in corpus.passages.items())
        lines += ["", f"## {corpus.name} (passages: {served})", "", *_cells_table(report, corpus.name)]
        lines += ["", "poshuk QPS / txtai QPS:", "", *_ratio_table(report, corpus.name)]
    lines += [
        "",
        "## Server starts",
        "",
        "ready s: from the process's start until it answers (poshuk: until `/readyz` also says its BM25 postings "
        "are in memory, `lexical_in_memory`; it serves from FTS5 a few seconds before that).",
        "",
        "| corpus | system | query cache | round | ready s | RSS MB | torch |",
    ]
    lines.append("| --- | --- | --- | --- | --- | --- | --- |")
    for s in report.servers:
        row = [s.corpus, s.system, s.cache, str(s.round), f"{s.ready_s:.1f}", f"{s.rss_mb_ready:.0f}"]
        lines.append("| " + " | ".join([*row, "yes" if s.torch_loaded else "no"]) + " |")
    if report.notes:
        lines += ["", *[f"- {note}" for note in report.notes]]
    return "\n".join(lines) + "\n"
