"""Result records of the recall benchmark and their JSON / Markdown renderings."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Literal

import msgspec

from benchmarks.machine import Machine
from poshuk import ChunkingSettings


class MetricRow(msgspec.Struct, frozen=True, kw_only=True):
    """Mean metrics of one system on one set, scoring and query split."""

    set: str
    system: str
    scoring: str  # which relevance list: "exact", or UNLP's "page" / "page±1"
    split: str  # "all", or UNLP's "dev" (first half of the file) / "test"
    queries: int
    recall_at_1: float
    recall_at_10: float
    mrr_at_10: float
    ndcg_at_10: float


class SystemRun(msgspec.Struct, frozen=True, kw_only=True):
    set: str
    system: str
    status: Literal["ok", "unavailable"]
    prepare_seconds: float = 0.0  # indexing or loading; the first poshuk mode's includes the shared index build
    search_seconds: float = 0.0
    queries: int = 0
    notes: dict[str, str] = {}
    error: str | None = None


class SetRun(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    description: str
    granularity: str
    documents: int
    passages: int
    queries: int
    queries_in_file: int
    scorings: list[str]
    chunk_seconds: float
    index_build_seconds: float | None  # None: the poshuk index came from the cache (or was not needed)
    wall_seconds: float
    passages_embedded: int = 0  # by the poshuk index build; the rest came from the vector cache


class ModelInfo(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    weights_sha256: str
    dimension: int
    query_prompt: str
    passage_prompt: str
    backend: str = ""  # encoder backend: sentence-transformers (torch) or ONNX


class RecallReport(msgspec.Struct, frozen=True, kw_only=True):
    benchmark: str = "recall"
    created_at: datetime
    command: list[str]
    data: str
    limit: int | None
    depth: int  # passages retrieved per query before collapsing to documents
    model: ModelInfo
    chunking: ChunkingSettings
    machine: Machine
    versions: dict[str, str | None]
    sets: list[SetRun]
    runs: list[SystemRun]
    metrics: list[MetricRow]
    notes: list[str] = []


def write_json(report: RecallReport, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(msgspec.json.format(msgspec.json.encode(report)) + b"\n")


def _table(
    report: RecallReport, split: str, cell: Callable[[MetricRow], str], systems: list[str]
) -> list[tuple[str, list[str]]]:
    by_key = {(m.set, m.scoring, m.system): m for m in report.metrics if m.split == split}
    unavailable = {(r.set, r.system) for r in report.runs if r.status == "unavailable"}
    rows: list[tuple[str, list[str]]] = []
    for s in report.sets:
        for scoring in s.scorings:
            label = s.name if len(s.scorings) == 1 else f"{s.name} ({scoring})"
            cells = []
            for system in systems:
                m = by_key.get((s.name, scoring, system))
                cells.append(cell(m) if m else ("n/a" if (s.name, system) in unavailable else "–"))
            rows.append((label, cells))
    return rows


def _render(header: list[str], rows: list[tuple[str, list[str]]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join([label, *cells]) + " |" for label, cells in rows]
    return lines


def markdown(report: RecallReport) -> str:
    systems = list(dict.fromkeys(r.system for r in report.runs))
    head = ["set", *systems]
    m = report.machine
    out = [
        "# Recall benchmark",
        "",
        f"{m.date:%Y-%m-%d}, {m.cpu_model}, {m.usable_cores} cores, {m.ram_gib} GiB, Python {m.python}, "
        f"load {m.load_avg[0]:.1f} at the start; "
        f"model {report.model.name} (weights {report.model.weights_sha256[:12]}, {report.model.backend or '?'}); "
        f"{report.depth} passages per query collapsed to documents by best passage"
        + (f"; at most {report.limit} queries per set" if report.limit else "")
        + ". Full records: `recall.json`.",
        "",
        "## R@10 / MRR@10",
        "",
        *_render(head, _table(report, "all", lambda r: f"{r.recall_at_10:.3f} / {r.mrr_at_10:.3f}", systems)),
        "",
        "## R@1 / nDCG@10",
        "",
        *_render(head, _table(report, "all", lambda r: f"{r.recall_at_1:.3f} / {r.ndcg_at_10:.3f}", systems)),
    ]
    split_sets = {m.set for m in report.metrics if m.split != "all"}
    halves = [s for s in report.sets if s.name in split_sets]
    if halves:
        out += ["", "## unlp2026 halves, R@10 / MRR@10 (dev = first half of the questions file, test = second)", ""]
        sub = msgspec.structs.replace(report, sets=halves)
        rows = []
        for split in ("dev", "test"):
            for label, cells in _table(sub, split, lambda r: f"{r.recall_at_10:.3f} / {r.mrr_at_10:.3f}", systems):
                rows.append((f"{label} {split}", cells))
        out += _render(head, rows)
    runs = {(r.set, r.system): r for r in report.runs}
    out += ["", "## Sizes and time (seconds; search = ms per query)", ""]
    timing_rows = []
    for s in report.sets:
        cells = [
            str(s.documents),
            str(s.passages),
            str(s.queries),
            "cached"
            if s.index_build_seconds is None
            else f"{s.index_build_seconds:.0f} ({s.passages_embedded} embedded)",
            f"{s.wall_seconds:.0f}",
        ]
        for system in systems:
            r = runs.get((s.name, system))
            ok = r is not None and r.status == "ok" and r.queries
            cells.append(
                f"{r.prepare_seconds:.0f} + {1000 * r.search_seconds / r.queries:.0f}ms" if r and ok else "n/a"
            )
        timing_rows.append((s.name, cells))
    timing_head = [
        "set",
        "docs",
        "passages",
        "queries",
        "index build",
        "wall",
        *(f"{x} prep + search" for x in systems),
    ]
    out += _render(timing_head, timing_rows)
    if report.notes:
        out += ["", "## Notes", "", *(f"- {n}" for n in report.notes)]
    return "\n".join(out) + "\n"


def write_markdown(report: RecallReport, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(markdown(report), encoding="utf-8")
