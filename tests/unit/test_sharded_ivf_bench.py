"""``python -m benchmarks sharded --approximate-above N``: its pure parts (overlap, queries, the tally of
three sides, the table), how it turns a copy of an index and each shard into IVF-SQ8 (leaving the source
exact), and how its command line refuses or skips. The measurement itself stays outside the suite."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from benchmarks.__main__ import main
from benchmarks.datasets import BenchSet, Query, Scoring
from benchmarks.machine import Machine
from benchmarks.sharded_ivf import (
    IvfIndex,
    IvfReport,
    IvfSet,
    Tally,
    distinct_texts,
    ivf_copy,
    ivf_shards,
    overlap,
    render,
)
from poshuk.encoder import HashEncoder
from poshuk.index import Index
from poshuk.search import Searcher
from poshuk.shards import ShardedIndex, split_index
from poshuk.vectors import FLAT_IP
from tests.support.news import build_news_index


def test_overlap_is_the_share_of_the_references_top_k_found() -> None:
    assert overlap(["a", "b", "c"], ["c", "a", "b"]) == 1.0  # order within the top k does not count
    assert overlap(["a", "x"], ["a", "b", "c", "d"]) == 0.25
    assert overlap(["a", "b"], ["a", "b", "c"], k=2) == 1.0
    assert overlap(["z", "a"], ["a", "b"], k=1) == 0.0
    assert overlap([], []) == 1.0 and overlap(["a"], []) == 0.0 and overlap([], ["a"]) == 0.0


def test_distinct_texts_normalise_whitespace_and_keep_the_sets_order() -> None:
    queries = [Query(id=str(n), text=t, lang="uk", relevant={}) for n, t in enumerate(["b  c", "a", "b c", " ", "d"])]
    bench = BenchSet(name="s", description="", granularity="page", corpus=[], queries=queries, scorings=())
    assert distinct_texts(bench, 10) == ["b c", "a", "d"]
    assert distinct_texts(bench, 2) == ["b c", "a"]


def _answer(*ids: str) -> dict[str, Any]:
    return {"query": "q", "hits": [{"passage_id": f"{i}#0", "doc_id": i, "score": 1.0} for i in ids]}


def test_tally_counts_identical_answers_overlaps_and_gold_recall_per_side() -> None:
    queries = [
        Query(id="1", text="one", lang="uk", relevant={"exact": ("a",)}),
        Query(id="2", text="two", lang="uk", relevant={"exact": ("z",)}),
        Query(id="3", text="one ", lang="uk", relevant={"exact": ("b",)}),  # same text, other gold: counted too
        Query(id="4", text="not searched", lang="uk", relevant={"exact": ("a",)}),
    ]
    bench = BenchSet(
        name="s", description="", granularity="doc", corpus=[], queries=queries, scorings=(Scoring(name="exact"),)
    )
    tally = Tally()
    tally.add("one", {"exact": _answer("a", "b"), "single-ivf": _answer("a", "b"), "sharded-ivf": _answer("a", "c")})
    tally.add("two", {"exact": _answer("x", "y"), "single-ivf": _answer("x", "w"), "sharded-ivf": _answer("x", "w")})
    row = tally.row(bench, "dense", 3)
    assert (row.set, row.mode, row.shards, row.searches) == ("s", "dense", 3, 2)
    assert row.identical_sharded_vs_single_ivf == 1  # "two"
    assert row.identical_single_ivf_vs_exact == 1  # "one"
    assert row.identical_sharded_ivf_vs_exact == 0
    assert row.same_order_sharded_vs_single_ivf == 1 and row.same_order_single_ivf_vs_exact == 1
    assert row.same_order_sharded_ivf_vs_exact == 0
    assert row.overlap_single_ivf_vs_exact == 0.75  # (2/2 + 1/2) / 2
    assert row.overlap_sharded_ivf_vs_exact == 0.5
    assert row.overlap_sharded_vs_single_ivf == 0.75
    assert row.differences == ["one"]
    assert (row.scoring, row.gold_queries) == ("exact", 3)
    assert row.recall_exact == round(2 / 3, 4)  # a and b found for "one", z not for "two"
    assert row.recall_single_ivf == round(2 / 3, 4)
    assert row.recall_sharded_ivf == round(1 / 3, 4)  # b lost


def test_table_shows_lists_of_each_index_and_every_row() -> None:
    tally = Tally()
    tally.add("q", {"exact": _answer("a"), "single-ivf": _answer("a"), "sharded-ivf": _answer("b")})
    bench = BenchSet(
        name="bruk-press",
        description="",
        granularity="doc",
        corpus=[],
        queries=[Query(id="1", text="q", lang="uk", relevant={"exact": ("a",)})],
        scorings=(Scoring(name="exact"),),
    )
    indexes = [
        IvfIndex(name="single", kind="IVF64,SQ8,IP", vectors=4757, nlist=64, nprobe=16),
        *(IvfIndex(name=f"shard-00{n}", kind="IVF32,SQ8,IP", vectors=1586, nlist=32, nprobe=16) for n in range(3)),
    ]
    host = Machine(
        cpu_model="cpu", cores=2, usable_cores=2, ram_gib=8.0, os="linux", python="3.11", date=datetime.now(UTC)
    )
    report = IvfReport(
        command=["python", "-m", "benchmarks", "sharded", "--approximate-above", "1000"],
        machine=host,
        versions={"poshuk": "0.1.0"},
        approximate_above=1000,
        queries_per_set=300,
        sets=[IvfSet(set="bruk-press", passages=4757, shards=3, indexes=indexes)],
        rows=[tally.row(bench, "dense", 3)],
    )
    table = render(report)
    assert "`approximate_above=1,000`" in table
    assert "| bruk-press | 4,757 | 3 | 64/16 | 32/16, 32/16, 32/16 |" in table
    row = "| bruk-press | dense | 3 | 0/1 | 1/1 | 0/1 | 0/1 | 1/1 | 0/1 | 1.0000 | 0.0000 | 0.0000 | 1.0000 / "
    row += "1.0000 / 0.0000 "
    assert row + "(exact, 1 queries) |" in table
    assert "- bruk-press, dense, 3 shards: q" in table


def _kind(folder: Path) -> str:
    index = Index.open(folder, approximate_above=1, read_only=True)
    try:
        return "ivf" if index.vectors.approximate_kind else "flat"
    finally:
        index.close()


def test_a_copy_and_each_shard_become_ivf_and_the_source_stays_exact(tmp_path: Path) -> None:
    encoder = HashEncoder()
    source = build_news_index(tmp_path / "source", encoder)
    passages = Index.open(source, read_only=True)
    try:
        total = passages.counts().passages
    finally:
        passages.close()
    single = ivf_copy(source, tmp_path / "single", 2)
    assert single.name == "single" and single.vectors == total and single.nlist >= 1 and single.nprobe >= 1
    assert single.kind == f"IVF{single.nlist},SQ8,IP"
    assert _kind(tmp_path / "single") == "ivf" and _kind(source) == "flat"  # opened alike: only the copy changed
    split_index(source, tmp_path / "archive", 2)
    shards = ivf_shards(tmp_path / "archive", 2)
    assert [s.name for s in shards] == ["shard-000", "shard-001"]
    assert sum(s.vectors for s in shards) == total and all(s.kind.startswith("IVF") for s in shards)
    split_index(source, tmp_path / "flat", 2)
    assert {s.kind for s in ivf_shards(tmp_path / "flat", total)} == {FLAT_IP}  # small shards stay exact
    archive = Searcher(ShardedIndex.open(tmp_path / "archive", approximate_above=2), encoder)
    try:
        assert archive.search("дрони", k=3, mode="dense").hits  # the IVF shards answer
    finally:
        archive.close()


def test_ivf_command_line_refuses_bad_choices_and_skips_without_data(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    base = ["sharded", "--data", str(tmp_path / "none"), "--out", str(out)]
    assert main([*base, "--approximate-above", "0"]) == 2
    assert "--approximate-above takes a passage count" in capsys.readouterr().err
    assert main([*base, "--approximate-above", "1000", "--served"]) == 2
    assert "separate runs" in capsys.readouterr().err
    assert main([*base, "--approximate-above", "1000", "--shards", "x"]) == 2
    assert main([*base, "--approximate-above", "1000"]) == 0
    assert capsys.readouterr().out.strip() == f"skipped: evaluation data not found under {tmp_path / 'none'}"
    assert not out.exists()
