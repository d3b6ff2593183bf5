"""``python -m benchmarks ray-indexing``: ``poshuk index`` locally against ``--ray local`` with 1, 2
and 4 encoder actors, on the same real articles (issue 12).

Each run is the real CLI in its own process, timed from start to exit (Ray's start and the actors'
model loads included: what a user waits for), into a fresh folder. Every ``--ray`` index is
compared row by row with the local one (row ids, passage ids, vector bytes, lexical terms, story
clusters): the speed is only worth reporting if the index is the same.
"""

from __future__ import annotations

import glob
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import msgspec

from benchmarks.datasets import SETS
from benchmarks.machine import Machine, machine, versions


class Run(msgspec.Struct, frozen=True, kw_only=True):
    how: str  # "local" or "ray, K actors x C CPUs"
    actors: int  # 0: local
    cpus_per_actor: float
    seconds: float
    documents: int
    passages: int
    passages_per_second: float
    identical_rows: int  # rows equal to the local run's, of ``passages``
    peak_memory_mb: int  # the machine's memory in use at the run's peak, above what it used before it


class RayIndexingReport(msgspec.Struct, frozen=True, kw_only=True):
    command: list[str]
    machine: Machine
    versions: dict[str, str | None]
    set: str
    articles: int
    runs: list[Run]


def _stored(index: Path) -> list[tuple[Any, ...]]:
    (db,) = glob.glob(str(index / "versions" / "*" / "meta.sqlite"))
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        rows: list[tuple[Any, ...]] = conn.execute(
            "SELECT p.row_id, p.passage_id, p.vector, l.terms, d.cluster FROM passages p "
            "JOIN lexical l ON l.rowid = p.row_id JOIN documents d ON d.doc_id = p.doc_id ORDER BY p.row_id"
        ).fetchall()
    return rows


def _used_mb() -> int:
    """Memory in use on the machine (MemTotal - MemAvailable), MB: every process a run starts counts,
    Ray's raylet, object store and actors included."""
    fields = dict(line.split(":", 1) for line in Path("/proc/meminfo").read_text().splitlines())
    return (int(fields["MemTotal"].split()[0]) - int(fields["MemAvailable"].split()[0])) // 1024


def _index(source: Path, target: Path, extra: list[str]) -> tuple[float, int, int, int]:
    """Seconds, documents, passages and peak memory above idle (MB) of one ``poshuk index`` process."""
    poshuk = str(Path(sys.executable).with_name("poshuk"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("POSHUK_") or k == "POSHUK_HOME"}
    idle = peak = _used_mb()
    started = time.perf_counter()
    process = subprocess.Popen(
        [poshuk, "index", str(source), "--index", str(target), "--no-progress", *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    while process.poll() is None:
        peak = max(peak, _used_mb())
        time.sleep(0.2)
    stdout, stderr = process.communicate()
    done = subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"poshuk index {' '.join(extra)} failed: {done.stderr.strip()[-500:]}")
    words = done.stdout.split()
    documents, passages = int(words[1]), int(words[3].strip("("))  # "indexed N documents (M passages) ..."
    return seconds, documents, passages, peak - idle


def run(
    data: Path,
    work: Path,
    *,
    set_name: str,
    articles: int,
    pools: list[tuple[int, float]],
    command: list[str],
) -> RayIndexingReport | None:
    folder, loader = SETS[set_name]
    if not (data / folder).is_dir():
        print(f"skipped: evaluation data not found under {data}")
        return None
    corpus = loader(data).corpus[:articles]
    work.mkdir(parents=True, exist_ok=True)
    runs: list[Run] = []
    with tempfile.TemporaryDirectory(prefix="poshuk-ray-indexing-", dir=work) as tmp:
        source = Path(tmp) / "articles.jsonl"
        with source.open("w", encoding="utf-8") as fh:
            for article in corpus:
                fh.write(json.dumps(msgspec.to_builtins(article), ensure_ascii=False) + "\n")
        local_rows: list[tuple[Any, ...]] = []
        for actors, cpus in [(0, 0.0), *pools]:
            target = Path(tmp) / f"index-{actors}"
            extra = [] if actors == 0 else ["--ray", "local", "--encoder-actors", str(actors)]
            extra += [] if actors == 0 else ["--cpus-per-actor", str(cpus)]
            seconds, documents, passages, memory = _index(source, target, extra)
            rows = _stored(target)
            if actors == 0:
                local_rows = rows
            identical = (
                sum(a == b for a, b in zip(rows, local_rows, strict=False)) if len(rows) == len(local_rows) else 0
            )
            how = "local (one process)" if actors == 0 else f"--ray local, {actors} actor(s) x {cpus:g} CPU"
            runs.append(
                Run(
                    how=how,
                    actors=actors,
                    cpus_per_actor=cpus,
                    seconds=round(seconds, 1),
                    documents=documents,
                    passages=passages,
                    passages_per_second=round(passages / seconds, 1),
                    identical_rows=identical,
                    peak_memory_mb=memory,
                )
            )
            print(f"{how}: {seconds:.1f} s, {passages / seconds:.1f} passages/s, {identical}/{passages} rows equal")
    report = RayIndexingReport(
        command=command,
        machine=machine(),
        versions=versions(),
        set=set_name,
        articles=len(corpus),
        runs=runs,
    )
    return report


def render(report: RayIndexingReport) -> str:
    m = report.machine
    lines = [
        "# Indexing on Ray Data against one process",
        "",
        f"`{' '.join(report.command)}`; {m.cpu_model}, {m.usable_cores} usable cores, {m.ram_gib} GiB; "
        f"ray {report.versions.get('ray')}. The first {report.articles} articles of {report.set}, each run a "
        "fresh `poshuk index` process timed start to exit (Ray's start and the actors' model loads included). "
        "Rows equal: row id, passage id, vector bytes, lexical terms and story cluster, against the local run. "
        "Peak memory: the machine's memory in use (MemTotal - MemAvailable) at the run's peak, sampled every "
        "0.2 s, above what it used before the run: Ray's own processes and the actors included.",
        "",
        "| run | seconds | documents | passages | passages/s | rows equal to local | peak memory above idle, MB |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in report.runs:
        lines.append(
            f"| {r.how} | {r.seconds} | {r.documents} | {r.passages} | {r.passages_per_second} | "
            f"{r.identical_rows}/{r.passages} | {r.peak_memory_mb} |"
        )
    lines.append("")
    return "\n".join(lines)
