"""``python -m benchmarks sharded``: a sharded archive against one index, same process, same data.

Each set's cached poshuk index (the recall benchmark's, built on first use) is split into
N shards (``poshuk.shards.split_index``: nothing encoded again); then every distinct query of
the set is searched in each mode on the single index and on the shards, alternately, with the
query vectors computed once beforehand (both sides would spend the same time encoding). The
report gives how many answers are identical (every field but ``took_ms``) and the search
latency of each side: the router's own overhead, in process. No Ray here: RPC between
processes and machines comes on top, measured over HTTP by ``--served`` (``sharded_served.py``).
Results go to ``benchmarks/results/sharded.{json,md}``.
"""

from __future__ import annotations

import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import msgspec

from benchmarks.datasets import SETS
from benchmarks.machine import Machine, machine, versions
from benchmarks.workspace import Workspace

MODES = ("hybrid", "lexical", "dense")
DEFAULT_SETS = ("unlp2026", "bruk-press")


class Cell(msgspec.Struct, frozen=True, kw_only=True):
    set: str
    passages: int
    shards: int
    split_s: float
    searches: int
    identical: int
    second_rounds: int  # shards asked again for BM25 candidates
    single_p50_ms: float
    single_p99_ms: float
    sharded_p50_ms: float
    sharded_p99_ms: float
    differences: list[str]  # the first few (mode, query) that differ


class ShardedReport(msgspec.Struct, frozen=True, kw_only=True):
    command: list[str]
    machine: Machine
    versions: dict[str, str | None]
    queries_per_set: int
    cells: list[Cell]


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(len(ordered) * share))], 2)


def _answer(result: Any) -> dict[str, Any]:
    found: dict[str, Any] = msgspec.to_builtins(result)
    found.pop("took_ms")
    return found


def run(
    data: Path,
    work: Path,
    out: Path,
    *,
    shards: tuple[int, ...],
    queries: int,
    sets: tuple[str, ...],
    command: list[str],
) -> ShardedReport | None:
    from poshuk import load_settings
    from poshuk.query_encoding import CachingEncoder
    from poshuk.search import Searcher
    from poshuk.shards import ShardedIndex, split_index

    chosen = [name for name in sets if (data / SETS[name][0]).is_dir()]
    if not chosen:
        print(f"skipped: evaluation data not found under {data}")
        return None
    settings = load_settings()
    ws = Workspace(work, settings, max_k=100)
    cells: list[Cell] = []
    for name in chosen:
        bench = SETS[name][1](data)
        single = ws.searcher(bench)
        texts = list(dict.fromkeys(" ".join(q.text.split()) for q in bench.queries if q.text.strip()))[:queries]
        encoder = CachingEncoder(single.encoder, len(texts) + 1)
        for text in texts:
            encoder.encode_queries([text])
        single = Searcher(single.index, encoder, max_k=100)
        passages = single.stats().passages
        for count in shards:
            with tempfile.TemporaryDirectory(prefix="poshuk-sharded-", dir=work) as tmp:
                started = time.perf_counter()
                split_index(ws.folder(bench) / "index", Path(tmp) / "archive", count)
                split_s = time.perf_counter() - started
                reader = ShardedIndex.open(Path(tmp) / "archive")
                sharded = Searcher(reader, encoder, max_k=100)
                times: dict[str, list[float]] = {"single": [], "sharded": []}
                identical = 0
                differences: list[str] = []
                for mode in MODES:
                    for text in texts:
                        answers = []
                        for side, searcher in (("single", single), ("sharded", sharded)):
                            t0 = time.perf_counter()
                            result = searcher.search(text, k=10, mode=mode)  # type: ignore[arg-type]
                            times[side].append((time.perf_counter() - t0) * 1000)
                            answers.append(_answer(result))
                        if answers[0] == answers[1]:
                            identical += 1
                        elif len(differences) < 5:
                            differences.append(f"{mode}: {text[:80]}")
                cell = Cell(
                    set=name,
                    passages=passages,
                    shards=count,
                    split_s=round(split_s, 2),
                    searches=len(texts) * len(MODES),
                    identical=identical,
                    second_rounds=reader.second_rounds,
                    single_p50_ms=_percentile(times["single"], 0.5),
                    single_p99_ms=_percentile(times["single"], 0.99),
                    sharded_p50_ms=_percentile(times["sharded"], 0.5),
                    sharded_p99_ms=_percentile(times["sharded"], 0.99),
                    differences=differences,
                )
                print(
                    f"[{name}] {count} shards: {identical}/{cell.searches} identical; p50 single "
                    f"{cell.single_p50_ms} ms, sharded {cell.sharded_p50_ms} ms (mean "
                    f"{statistics.fmean(times['sharded']):.1f})",
                    flush=True,
                )
                cells.append(cell)
                sharded.close()
                shutil.rmtree(Path(tmp) / "archive", ignore_errors=True)
    report = ShardedReport(
        command=command, machine=machine(), versions=versions(), queries_per_set=queries, cells=cells
    )
    out.mkdir(parents=True, exist_ok=True)
    (out / "sharded.json").write_bytes(msgspec.json.format(msgspec.json.encode(report)))
    (out / "sharded.md").write_text(render(report), encoding="utf-8")
    return report


def render(report: ShardedReport) -> str:
    m = report.machine
    lines = [
        "# A sharded archive against one index (in process)",
        "",
        f"`{' '.join(report.command)}` — {m.date:%Y-%m-%d}, {m.cpu_model}, {m.usable_cores} usable cores, "
        f"{m.ram_gib} GiB, Python {m.python}, poshuk {report.versions.get('poshuk')}.",
        "",
        f"Each set's poshuk index split into N shards (no encoding again); up to {report.queries_per_set} distinct "
        f"queries of the set x {', '.join(MODES)}, k=10, searched on the single index and on the shards alternately, "
        "query vectors computed once beforehand. *Identical*: every field of the answer but `took_ms`. Latency: "
        "one search in this process (retrieval, fusion, page, highlights), so the sharded column is the router's "
        "own overhead over N local shards; no Ray, no RPC.",
        "",
        "| set | passages | shards | split s | identical | second rounds | single p50 / p99 ms | "
        "sharded p50 / p99 ms | sharded / single p50 |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for c in report.cells:
        ratio = c.sharded_p50_ms / c.single_p50_ms if c.single_p50_ms else 0.0
        lines.append(
            f"| {c.set} | {c.passages:,} | {c.shards} | {c.split_s} | {c.identical}/{c.searches} | {c.second_rounds} "
            f"| {c.single_p50_ms} / {c.single_p99_ms} | {c.sharded_p50_ms} / {c.sharded_p99_ms} | {ratio:.2f}x |"
        )
    differing = [f"- {c.set}, {c.shards} shards: {d}" for c in report.cells for d in c.differences]
    if differing:
        lines += ["", "First differences:", "", *differing]
    return "\n".join(lines) + "\n"
