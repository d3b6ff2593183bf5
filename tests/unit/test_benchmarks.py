"""The recall benchmark's pieces: metrics, loaders, the workspace and the CLI's skip path.

Fast and offline: a fake encoder, synthetic data files in tmp_path, no ../shared data.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from benchmarks.datasets import (
    BenchSet,
    Query,
    Scoring,
    load_bruk_press,
    load_ntrex_docs,
    load_unlp2026,
    load_unlp2026_documents,
    unit_id,
)
from benchmarks.metrics import (
    collapse_to_docs,
    mean_scores,
    mrr_at_k,
    ndcg_at_k,
    percentile,
    recall_at_k,
    score_query,
)
from benchmarks.recall import score_set
from benchmarks.workspace import Workspace
from poshuk import Article
from poshuk.encoder import HashEncoder
from poshuk.settings import Settings
from tests.support.repo import REPO


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


# --- metrics -------------------------------------------------------------------------------


def test_single_relevant_metrics_on_hand_made_rankings() -> None:
    rel = frozenset({"d3"})
    ranking = ["d1", "d2", "d3", "d4"]
    assert recall_at_k(ranking, rel, 1) == 0.0
    assert recall_at_k(ranking, rel, 3) == 1.0
    assert mrr_at_k(ranking, rel, 10) == pytest.approx(1 / 3)
    assert mrr_at_k(ranking, rel, 2) == 0.0
    assert ndcg_at_k(ranking, rel, 10) == pytest.approx(0.5)  # 1 / log2(3 + 1)
    assert ndcg_at_k(["d3"], rel, 10) == 1.0
    assert score_query([], ["d3"]) == {"recall_at_1": 0.0, "recall_at_10": 0.0, "mrr_at_10": 0.0, "ndcg_at_10": 0.0}


def test_several_relevant_use_fraction_retrieved_and_ideal_dcg() -> None:
    rel = frozenset({"a", "b"})
    ranking = ["a", "x", "b"]
    assert recall_at_k(ranking, rel, 1) == 0.5
    assert recall_at_k(ranking, rel, 10) == 1.0
    assert mrr_at_k(ranking, rel, 10) == 1.0
    ideal = 1 + 1 / 1.5849625007211563
    assert ndcg_at_k(ranking, rel, 10) == pytest.approx((1 + 0.5) / ideal)


def test_any_of_relevance_counts_the_first_neighbour_page_once() -> None:
    pm1 = ["doc#p4", "doc#p5", "doc#p6"]
    scores = score_query(["other", "doc#p6", "doc#p5"], pm1, any_relevant=True)
    assert scores == {
        "recall_at_1": 0.0,
        "recall_at_10": 1.0,
        "mrr_at_10": 0.5,
        "ndcg_at_10": pytest.approx(1 / 1.5849625),
    }
    # the same ranking read as "all of them" recalls only two of three
    assert score_query(["other", "doc#p6", "doc#p5"], pm1)["recall_at_10"] == pytest.approx(2 / 3)


def test_collapse_keeps_each_document_at_its_best_passage() -> None:
    assert collapse_to_docs(["b", "a", "b", "c", "a"]) == ["b", "a", "c"]
    assert collapse_to_docs([]) == []


def test_mean_scores_of_no_queries_are_zero() -> None:
    assert mean_scores([]) == {"recall_at_1": 0.0, "recall_at_10": 0.0, "mrr_at_10": 0.0, "ndcg_at_10": 0.0}


# --- loaders -------------------------------------------------------------------------------


def test_percentile_is_numpys_linear_definition() -> None:
    values = [5.0, 1.0, 4.0, 2.0, 3.0, 10.0, 7.5]
    for percent in (0, 5, 50, 90, 95, 99, 100):
        assert percentile(values, percent) == pytest.approx(float(np.percentile(values, percent)))
    assert percentile([2.0], 99) == 2.0
    with pytest.raises(ValueError):
        percentile([], 50)


def test_unlp2026_loader_splits_halves_and_keeps_both_scorings(tmp_path: Path) -> None:
    folder = tmp_path / "unlp2026-dev-uk-docqa"
    pages = [
        {"id": f"d#p{n}", "doc_id": "d.pdf", "page": n, "title": None, "text": f"сторінка {n}", "lang": "uk"}
        for n in (1, 2, 3)
    ]
    _write_jsonl(folder / "corpus.jsonl", pages)
    queries = [
        {
            "id": f"q{n}",
            "text": f"питання {n}",
            "lang": "uk",
            "relevant_ids": [f"d#p{n}"],
            "relevant_ids_pm1": ["d#p1", "d#p2"],
        }
        for n in (1, 2, 3)
    ]
    _write_jsonl(folder / "queries.jsonl", queries)
    bench = load_unlp2026(tmp_path)
    assert [a.id for a in bench.corpus] == ["d#p1", "d#p2", "d#p3"]
    assert bench.corpus[0].title == ""
    assert [q.split for q in bench.queries] == ["dev", "test", "test"]
    assert bench.queries[1].relevant == {"page": ("d#p2",), "page±1": ("d#p1", "d#p2")}
    assert [(s.name, s.any_relevant) for s in bench.scorings] == [("page", False), ("page±1", True)]
    assert len(bench.limited(2).queries) == 2 and len(bench.limited(2).corpus) == 3
    documents = load_unlp2026_documents(tmp_path)  # the same pages as one document with pages
    (document,) = documents.corpus
    assert document.id == "d" and [(p.number, p.text) for p in document.pages] == [
        (1, "сторінка 1"),
        (2, "сторінка 2"),
        (3, "сторінка 3"),
    ]
    assert documents.queries == bench.queries and documents.name == "unlp2026-docs"
    assert unit_id("d", 2) == "d#p2" == bench.queries[1].relevant["page"][0] and unit_id("x", None) == "x"


def test_bruk_loader_indexes_articles_without_their_headline(tmp_path: Path) -> None:
    folder = tmp_path / "bruk-ukr-corpus"
    _write_jsonl(
        folder / "press_A.jsonl",
        [
            {
                "id": "bruk-1",
                "title": "Крим: за крок до катастрофи",
                "text": "Крим:  за крок до катастрофи\n\nОчисні споруди.",
                "lang": "uk",
            },
            {
                "id": "bruk-2",
                "title": " Культура сортування сміття",
                "text": "Жителі міста сортують сміття.",
                "lang": "uk",
            },
        ],
    )
    _write_jsonl(
        folder / "press_title_queries.jsonl",
        [
            {"id": "q-bruk-1", "text": "Крим: за крок до катастрофи", "lang": "uk", "relevant_ids": ["bruk-1"]},
            {"id": "q-bruk-2", "text": " Культура сортування сміття", "lang": "uk", "relevant_ids": ["bruk-2"]},
        ],
    )
    bench = load_bruk_press(tmp_path)
    assert [(a.title, a.text) for a in bench.corpus] == [
        ("", "Очисні споруди."),
        ("", "Жителі міста сортують сміття."),
    ]
    assert [q.text for q in bench.queries] == ["Крим: за крок до катастрофи", "Культура сортування сміття"]
    assert bench.queries[0].relevant == {"exact": ("bruk-1",)}


def test_ntrex_docs_queries_are_headline_and_lead(tmp_path: Path) -> None:
    folder = tmp_path / "ntrex128-eng-ukr-news"
    _write_jsonl(
        folder / "docs_en.jsonl",
        [
            {
                "id": "d-en",
                "title": "Welsh AMs worried",
                "text": "First sentence.\nSecond one.",
                "lang": "en",
                "relevant_ids": ["d-uk"],
            }
        ],
    )
    _write_jsonl(
        folder / "docs_uk.jsonl",
        [
            {
                "id": "d-uk",
                "title": "Члени асамблеї",
                "text": "Перше речення.\nДруге.",
                "lang": "uk",
                "relevant_ids": ["d-en"],
            }
        ],
    )
    bench = load_ntrex_docs(tmp_path)
    assert bench.queries[0].text == "Welsh AMs worried\nFirst sentence."
    assert bench.corpus[0].title == "Члени асамблеї"


# --- workspace, systems, scoring -----------------------------------------------------------


def _tiny_set() -> BenchSet:
    corpus = [
        Article(id="kyiv", title="", text="У Києві відкрили новий міст через Дніпро.", lang="uk"),
        Article(id="lviv", title="", text="У Львові відкрили дитячу бібліотеку з читальною залою.", lang="uk"),
        Article(id="odesa", title="", text="В Одесі шторм пошкодив причал у порту.", lang="uk"),
    ]
    queries = [
        Query(id="q1", text="бібліотеку у Львові", lang="uk", relevant={"exact": ("lviv",)}, split="dev"),
        Query(id="q2", text="шторм пошкодив причал", lang="uk", relevant={"exact": ("odesa",)}, split="test"),
    ]
    return BenchSet(
        name="tiny",
        description="",
        granularity="document",
        corpus=corpus,
        queries=queries,
        scorings=(Scoring(name="exact"),),
    )


def test_every_poshuk_mode_ranks_a_tiny_index_and_the_index_is_cached(tmp_path: Path, settings: Settings) -> None:
    from benchmarks.systems import make_system, system_names
    from poshuk.search import MODES

    bench = _tiny_set()
    ws = Workspace(tmp_path / "work", settings, max_k=200, encoder=HashEncoder(dimension=64))
    assert [f"poshuk-{m}" for m in MODES] == [n for n in system_names() if n.startswith("poshuk-")]
    for mode in MODES:
        system = make_system(f"poshuk-{mode}")
        system.prepare(bench, ws)
        rankings = system.rank(bench.queries, 200)
        system.close()
        assert len(rankings) == 2 and set(rankings[0]) <= {"kyiv", "lviv", "odesa"}
        rows = score_set(bench, system.name, rankings)
        assert [(r.split, r.queries) for r in rows] == [("all", 2), ("dev", 1), ("test", 1)]
    ws.release(bench)
    assert "tiny" in ws.index_seconds
    again = Workspace(tmp_path / "work", settings, max_k=200, encoder=HashEncoder(dimension=64))
    again.searcher(bench)
    assert again.index_seconds == {}  # opened from the cache, nothing re-embedded
    again.release(bench)


def test_bm25s_adapter_ranks_the_same_passages(tmp_path: Path, settings: Settings) -> None:
    pytest.importorskip("bm25s")
    pytest.importorskip("Stemmer")
    from benchmarks.systems.bm25 import Bm25System

    bench = _tiny_set()
    ws = Workspace(tmp_path / "work", settings, max_k=200, encoder=HashEncoder(dimension=64))
    system = Bm25System()
    notes = system.prepare(bench, ws)
    rankings = system.rank([*bench.queries, Query(id="q3", text="zzz", lang="en", relevant={"exact": ()})], 200)
    assert [r[0] for r in rankings[:2]] == ["lviv", "odesa"]
    assert rankings[2] == []  # no shared term, no hit
    assert "prefix" in notes["corpus_analysis"]


# --- command line --------------------------------------------------------------------------


def test_missing_data_skips_cleanly(tmp_path: Path) -> None:
    out = tmp_path / "results"
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", "recall", "--data", "/nonexistent", "--out", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "data not found at /nonexistent; skipping"
    assert not out.exists()


def test_ray_indexing_skips_cleanly_without_data_and_refuses_bad_pools(tmp_path: Path) -> None:
    out = tmp_path / "results"
    base = [sys.executable, "-m", "benchmarks", "ray-indexing", "--data", "/nonexistent", "--out", str(out)]
    done = subprocess.run(base, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "skipped: evaluation data not found under /nonexistent"
    refused = subprocess.run([*base, "--pools", "2y1"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert refused.returncode == 2 and "--pools like 2x1" in refused.stderr
    assert not out.exists()


def test_report_tables_show_each_set_scoring_and_unavailable_systems() -> None:
    from datetime import UTC, datetime

    from benchmarks.machine import machine, versions
    from benchmarks.report import MetricRow, ModelInfo, RecallReport, SetRun, SystemRun, markdown
    from poshuk import ChunkingSettings

    def row(system: str, scoring: str, split: str) -> MetricRow:
        return MetricRow(
            set="unlp2026",
            system=system,
            scoring=scoring,
            split=split,
            queries=2,
            recall_at_1=0.5,
            recall_at_10=1.0,
            mrr_at_10=0.75,
            ndcg_at_10=0.8,
        )

    report = RecallReport(
        created_at=datetime.now(UTC),
        command=["python", "-m", "benchmarks", "recall"],
        data="/data",
        limit=None,
        depth=200,
        model=ModelInfo(name="m", weights_sha256="0" * 64, dimension=3, query_prompt="", passage_prompt=""),
        chunking=ChunkingSettings(),
        machine=machine(),
        versions=versions(),
        sets=[
            SetRun(
                name="unlp2026",
                description="",
                granularity="page",
                documents=3,
                passages=4,
                queries=2,
                queries_in_file=2,
                scorings=["page", "page±1"],
                chunk_seconds=0.1,
                index_build_seconds=None,
                wall_seconds=1.0,
            )
        ],
        runs=[
            SystemRun(set="unlp2026", system="poshuk-dense", status="ok", search_seconds=0.2, queries=2),
            SystemRun(set="unlp2026", system="txtai", status="unavailable", error="not available: test"),
        ],
        metrics=[row("poshuk-dense", s, split) for s in ("page", "page±1") for split in ("all", "dev", "test")],
    )
    text = markdown(report)
    assert "| unlp2026 (page) | 1.000 / 0.750 | n/a |" in text
    assert "| unlp2026 (page±1) | 0.500 / 0.800 | n/a |" in text
    assert "| unlp2026 (page) test | 1.000 / 0.750 | n/a |" in text
    assert report.machine.cores >= 1 and report.versions["poshuk"]


def test_weighted_sum_normalises_weights_by_coverage_and_votes_per_article_unit() -> None:
    from benchmarks.ranking import weighted_sum
    from poshuk.candidates import Candidate, Candidates

    found = Candidates(
        dense=[Candidate(1, "a", 0.9, page=1), Candidate(2, "a", 0.5, page=2)],
        passages=[Candidate(2, "a", 8.0, ("x", "y"), page=2), Candidate(3, "b", 4.0, ("x",))],
        articles=[Candidate(2, "a", 5.0, ("x", "y"), page=2)],
    )
    scores = dict(weighted_sum(found, 2, alpha=0.5, beta=0.0))
    assert scores == pytest.approx({1: 0.5, 2: 0.5, 3: 0.0})  # min-max: the worst of a list scores 0
    voted = dict(weighted_sum(found, 2, alpha=0.5, beta=0.5))
    assert voted[2] == pytest.approx(1.0) and voted[1] == pytest.approx(0.5)  # page 2's vote skips page 1
