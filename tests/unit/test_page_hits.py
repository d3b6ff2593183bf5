"""A collapsed hit of a document with pages lists the other pages its document matched on (issue 15)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from poshuk.chunking import chunk_article
from poshuk.documents import Article, Page
from poshuk.encoder import HashEncoder
from poshuk.index import Index, IndexWriter, Upsert
from poshuk.page_hits import MAX_OTHER_PAGES
from poshuk.search import Searcher
from poshuk.settings import ChunkingSettings
from poshuk_cli.main import main

ENCODER = HashEncoder()
DRONES = "Drone production doubled at the plant in Kharkiv."
QUERY = "drone production Kharkiv"  # not the title's words: the title goes with every page


def _searcher(folder: Path, *docs: Article) -> Searcher:
    with IndexWriter(folder, ENCODER.identity, ChunkingSettings()) as writer:
        for doc in docs:
            passages = chunk_article(doc, ChunkingSettings(), lambda text: len(text.split()))
            writer.upsert_many([Upsert(doc, passages, ENCODER.encode_passages([p.embed_text for p in passages]))])
    return Searcher(Index.open(folder), ENCODER)


def test_a_collapsed_document_lists_its_other_matching_pages_best_first(tmp_path: Path) -> None:
    pages = [
        Page(n, f"{DRONES} Report line {n}.") if n in (3, 12, 40) else Page(n, f"Weather on day {n}.")
        for n in range(1, 50)
    ]
    report = Article(id="report", title="Plant report", text="", pages=tuple(pages))
    news = Article(id="news", title="Drones", text=DRONES)
    searcher = _searcher(tmp_path / "index", report, news)
    try:
        for mode in ("lexical", "hybrid", "dense"):
            hits = {h.doc_id: h for h in searcher.search(QUERY, k=5, collapse=True, mode=mode).hits}
            hit = hits["report"]
            assert hit.page in (3, 12, 40)
            # best first: the two other pages that hold the words and the meaning come before any other
            assert set(hit.other_pages[:2]) == {3, 12, 40} - {hit.page}, (mode, hit.page, hit.other_pages)
            assert hit.page not in hit.other_pages and len(hit.other_pages) <= MAX_OTHER_PAGES
            if mode == "lexical":  # only those pages hold the words at all
                assert len(hit.other_pages) == 2 and hit.other_matches == 2
            assert hits["news"].other_pages == []  # an article has no pages
        flat = searcher.search(QUERY, k=5, mode="lexical").hits
        assert all(h.other_pages == [] for h in flat)  # without collapse each passage is its own hit
    finally:
        searcher.close()


def test_other_pages_are_capped_and_name_each_page_once(tmp_path: Path) -> None:
    # two passages on each page (a page's paragraphs are cut when they pass max_words), 30 pages match
    many = tuple(Page(n, f"{DRONES} First half {n}.\n{DRONES} Second half {n}.") for n in range(1, 31))
    report = Article(id="big", title="Big report", text="", pages=many)
    searcher = _searcher(tmp_path / "index", report)
    try:
        hit = searcher.search("drone production", k=1, collapse=True, mode="lexical").hits[0]
        assert hit.other_matches > MAX_OTHER_PAGES
        assert hit.page not in hit.other_pages and len(set(hit.other_pages)) == len(hit.other_pages)
        assert 1 <= len(hit.other_pages) <= MAX_OTHER_PAGES
    finally:
        searcher.close()


def test_poshuk_search_collapse_prints_the_other_pages(
    hash_model: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "report.jsonl"
    # a title: else the document's opening (pages 1 and 2 here) would go with every page as its context
    lines = [
        {"doc_id": "report", "page": n, "title": "Weekly log", "text": DRONES if n in (2, 5) else f"Weather, day {n}."}
        for n in range(1, 7)
    ]
    source.write_text("".join(json.dumps(r) + "\n" for r in lines), encoding="utf-8")
    index = str(tmp_path / "index")
    assert main(["index", str(source), "--index", index, "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["search", QUERY, "--index", index, "--mode", "lexical", "--collapse", "-k", "1"]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert first.endswith(("(report p. 2) (+1 more, also on p. 5)", "(report p. 5) (+1 more, also on p. 2)")), first
