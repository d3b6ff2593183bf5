"""The latency and indexing benchmarks' own pieces: FLOPs count, scaled index, query pool, skips.

Fast and offline: a fake encoder, a tiny synthetic set, no ../shared data, no servers.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.datasets import BenchSet, Query, Scoring
from benchmarks.indexing import encoder_flops
from benchmarks.latency import real_queries
from benchmarks.scaled import build_scaled_index
from benchmarks.workspace import Workspace
from poshuk import Article
from poshuk.encoder import HashEncoder
from poshuk.index import Index
from poshuk.settings import Settings
from tests.conftest import REPO


def _set(name: str, texts: list[str], queries: list[str]) -> BenchSet:
    return BenchSet(
        name=name,
        description="",
        granularity="document",
        corpus=[Article(id=f"d{n}", title="", text=t, lang="uk") for n, t in enumerate(texts)],
        queries=[Query(id=f"q{n}", text=q, lang="uk", relevant={"exact": ("d0",)}) for n, q in enumerate(queries)],
        scorings=(Scoring(name="exact"),),
    )


def test_encoder_flops_counts_projections_ffn_and_attention() -> None:
    # one layer, hidden 2, FFN 4, one sequence of 3 tokens:
    # per token 4*2*2 + 2*2*4 = 32 multiply-adds in the projections, 2*3*2 = 12 in attention
    assert encoder_flops([3], layers=1, hidden=2, intermediate=4) == 2 * 3 * (32 + 12)
    assert encoder_flops([3, 3], layers=2, hidden=2, intermediate=4) == 4 * encoder_flops(
        [3], layers=1, hidden=2, intermediate=4
    )


def test_real_queries_are_distinct_and_in_a_fixed_order() -> None:
    sets = {"a": _set("a", ["x"], ["Шойгу в Пхеньяні", "grain exports"]), "b": _set("b", ["y"], ["grain  exports"])}
    first = real_queries(sets)
    assert sorted(first) == ["grain exports", "Шойгу в Пхеньяні"]
    assert real_queries(sets) == first


def test_scaled_index_repeats_real_passages_until_the_size_and_is_reused(tmp_path: Path) -> None:
    texts = [f"Новина номер {n}. У місті відкрили нову бібліотеку з читальною залою." for n in range(5)]
    sets = {"s": _set("s", texts, ["бібліотека"])}
    ws = Workspace(tmp_path / "work", Settings(), max_k=100, encoder=HashEncoder(dimension=32))
    folder = build_scaled_index(ws, sets, 12)
    index = Index.open(folder)
    counts = index.counts()
    index.close()
    assert counts.passages >= 12 and counts.passages % 5 == 0
    assert counts.documents == counts.passages  # one passage per tiny article here
    assert ws.embedded == 5  # each distinct text once, copies reuse the vectors
    assert build_scaled_index(ws, sets, 12) == folder and ws.embedded == 5


@pytest.mark.parametrize("benchmark", ["latency", "indexing"])
def test_missing_data_skips_cleanly(benchmark: str, tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", benchmark, "--data", "/nonexistent", "--out", str(tmp_path / "out")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("skipped: evaluation data not found under /nonexistent")
    assert not (tmp_path / "out").exists()
