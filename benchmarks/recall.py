"""``python -m benchmarks recall``: every system on every evaluation set, scored alike.

For each set the corpus is chunked once by poshuk's chunker; each system retrieves the
``depth`` best passages per query, which are collapsed to documents by best passage and
scored with ``benchmarks.metrics``. Results go to ``recall.json`` and ``recall.md``.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from benchmarks.datasets import SETS, BenchSet
from benchmarks.machine import machine, versions
from benchmarks.metrics import collapse_to_docs, mean_scores, score_query
from benchmarks.report import MetricRow, ModelInfo, RecallReport, SetRun, SystemRun, write_json, write_markdown
from benchmarks.systems import SystemUnavailable, make_system
from benchmarks.workspace import Workspace

NOTES = [
    "recall@k with one relevant document per query = fraction of queries with it in the top k; "
    "with several, the fraction of them retrieved (see benchmarks/metrics.py).",
    "unlp2026 page±1: the gold page or either neighbour answers the query (any-of relevance).",
    "bruk-press: the corpus is indexed without headlines (7 texts repeated theirs as the first line; removed); "
    "9 headlines are shared by 2-3 texts (multi-part articles, reprints) and each query counts only its own text.",
    "ntrex-passages and flores200 are indexed without titles; ntrex-docs keeps the Ukrainian headline as title.",
]


@dataclass
class Options:
    data: Path
    sets: list[str]
    systems: list[str]
    work: Path
    out: Path
    limit: int | None
    depth: int
    command: list[str]


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def score_set(bench: BenchSet, system: str, rankings: Sequence[list[str]]) -> list[MetricRow]:
    """Metric rows of one system's passage rankings: per scoring, for all queries and each split."""
    docs = [collapse_to_docs(r) for r in rankings]
    rows: list[MetricRow] = []
    splits = ["all", *dict.fromkeys(q.split for q in bench.queries if q.split)]
    for scoring in bench.scorings:
        for split in splits:
            chosen = [i for i, q in enumerate(bench.queries) if split == "all" or q.split == split]
            if not chosen:
                continue
            per_query = [
                score_query(docs[i], bench.queries[i].relevant[scoring.name], any_relevant=scoring.any_relevant)
                for i in chosen
            ]
            means = mean_scores(per_query)
            rows.append(
                MetricRow(
                    set=bench.name, system=system, scoring=scoring.name, split=split, queries=len(chosen), **means
                )
            )
    return rows


def _run_system(name: str, bench: BenchSet, ws: Workspace, depth: int) -> tuple[SystemRun, list[MetricRow]]:
    system = make_system(name)
    try:
        started = time.perf_counter()
        notes = system.prepare(bench, ws)
        prepared = time.perf_counter()
        rankings = system.rank(bench.queries, depth)
        searched = time.perf_counter()
    except SystemUnavailable as exc:
        _log(f"[{bench.name}] {name}: {exc}")
        return SystemRun(set=bench.name, system=name, status="unavailable", error=str(exc)), []
    finally:
        system.close()
    run = SystemRun(
        set=bench.name,
        system=name,
        status="ok",
        prepare_seconds=round(prepared - started, 2),
        search_seconds=round(searched - prepared, 2),
        queries=len(bench.queries),
        notes=notes,
    )
    return run, score_set(bench, name, rankings)


def run(opts: Options) -> int:
    from poshuk import load_settings

    host = machine()  # before the run, so its load average shows what else was running
    settings = load_settings()
    ws = Workspace(opts.work, settings, max_k=opts.depth)
    set_runs: list[SetRun] = []
    runs: list[SystemRun] = []
    metrics: list[MetricRow] = []
    for set_name in opts.sets:
        folder, loader = SETS[set_name]
        if not (opts.data / folder).is_dir():
            _log(f"[{set_name}] data folder {opts.data / folder} not found; skipping this set")
            continue
        set_started = time.perf_counter()
        full = loader(opts.data)
        bench = full.limited(opts.limit)
        passages = ws.passages(bench)
        chunked = time.perf_counter()
        embedded_before = ws.embedded
        _log(f"[{set_name}] {len(bench.corpus)} documents, {len(passages)} passages, {len(bench.queries)} queries")
        for name in opts.systems:
            run_, rows = _run_system(name, bench, ws, opts.depth)
            runs.append(run_)
            metrics.extend(rows)
            for r in rows:
                if r.split == "all":
                    _log(
                        f"[{set_name}] {name} ({r.scoring}): R@1 {r.recall_at_1:.3f} R@10 {r.recall_at_10:.3f} "
                        f"MRR@10 {r.mrr_at_10:.3f} nDCG@10 {r.ndcg_at_10:.3f} "
                        f"(prepare {run_.prepare_seconds:.0f}s, search {run_.search_seconds:.1f}s)"
                    )
        ws.release(bench)
        build = ws.index_seconds.get(set_name)
        set_runs.append(
            SetRun(
                name=set_name,
                description=bench.description,
                granularity=bench.granularity,
                documents=len(bench.corpus),
                passages=len(passages),
                queries=len(bench.queries),
                queries_in_file=len(full.queries),
                scorings=[s.name for s in bench.scorings],
                chunk_seconds=round(chunked - set_started, 2),
                index_build_seconds=None if build is None else round(build, 1),
                wall_seconds=round(time.perf_counter() - set_started, 1),
                passages_embedded=ws.embedded - embedded_before,
            )
        )
    identity = ws.encoder.identity
    report = RecallReport(
        created_at=datetime.now(UTC).replace(microsecond=0),
        command=opts.command,
        data=str(opts.data),
        limit=opts.limit,
        depth=opts.depth,
        model=ModelInfo(
            name=identity.name,
            weights_sha256=identity.weights_sha256,
            dimension=identity.dimension,
            query_prompt=identity.query_prompt,
            passage_prompt=identity.passage_prompt,
            backend=identity.backend,
        ),
        chunking=ws.settings.chunking,
        machine=host,
        versions=versions(),
        sets=set_runs,
        runs=runs,
        metrics=metrics,
        notes=NOTES,
    )
    write_json(report, opts.out / "recall.json")
    write_markdown(report, opts.out / "recall.md")
    _log(f"wrote {opts.out / 'recall.json'} and {opts.out / 'recall.md'}")
    return 0
