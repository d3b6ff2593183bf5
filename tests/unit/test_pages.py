"""Documents with pages (issue 15): JSONL ``pages`` and PDF files; passages never cross a page; hits name it."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import pytest

from poshuk.chunking import chunk_article, document_context
from poshuk.documents import Article, Page
from poshuk.encoder import HashEncoder
from poshuk.errors import BadRecordError
from poshuk.headings import OPENING_CHARS
from poshuk.index import Index, IndexWriter, RetrievalQuery, Upsert, live_version
from poshuk.language import LanguageDetector
from poshuk.query import analyse_query
from poshuk.readers import read_articles
from poshuk.search import Searcher
from poshuk.settings import ChunkingSettings
from poshuk_cli.main import main
from tests.support.consistency import check_index
from tests.support.pdf import make_pdf

ENCODER = HashEncoder()


def WORDS(text: str) -> int:
    return len(text.split())


def _read(path: Path) -> list[Article | BadRecordError]:
    return list(read_articles(path, detector=LanguageDetector()))


def test_passages_never_cross_a_page_and_carry_its_number() -> None:
    doc = Article(
        id="report",
        title="Annual report",
        text="",
        pages=(Page(1, "Revenue grew.\nCosts fell."), Page(3, "Outlook is stable.")),
    )
    passages = chunk_article(doc, ChunkingSettings(min_chars=1000), WORDS)
    # min_chars would merge everything on one page into one passage, but never across pages
    assert [(p.ordinal, p.page, p.text) for p in passages] == [
        (0, 1, "Revenue grew.\nCosts fell."),
        (1, 3, "Outlook is stable."),
    ]
    assert all(p.embed_text.startswith("Annual report\n") for p in passages)
    article = Article(id="a", title="T", text="One.\nTwo.")
    assert [p.page for p in chunk_article(article, ChunkingSettings(), WORDS)] == [None]


def test_a_document_without_a_title_or_heading_is_embedded_with_its_opening() -> None:
    opening = "Наказ Міністерства охорони здоров'я " * 20
    doc = Article(id="d", title="", text=opening, pages=(Page(1, opening),))
    context = document_context(doc)
    assert 0 < len(context) <= OPENING_CHARS and opening.startswith(context) and not context.endswith(" ")
    assert all(p.embed_text.startswith(context + "\n") for p in chunk_article(doc, ChunkingSettings(), WORDS))
    assert document_context(Article(id="a", title="", text="Text.")) == ""  # an article keeps no context


def test_a_document_without_a_title_is_embedded_with_its_first_heading() -> None:
    first = (
        "ЗАТВЕРДЖУЮ\nЗаступник Міністра молоді та спорту\nОлена ПЕТРЕНКО\n\n"
        "ПРАВИЛА\nспортивних змагань з веслування\n2\nI. Загальні положення\n1. Ці Правила визначають засади."
    )
    doc = Article(id="d", title="", text=first, pages=(Page(1, first), Page(2, "Судді змагань.")))
    assert document_context(doc) == "ПРАВИЛА спортивних змагань з веслування"  # the stamp is no part of it
    passages = chunk_article(doc, ChunkingSettings(), WORDS)
    assert {p.embed_text.split("\n")[0] for p in passages} == {"ПРАВИЛА спортивних змагань з веслування"}
    titled = Article(id="t", title="Rules", text=first, pages=(Page(1, first),))
    assert document_context(titled) == "Rules"  # a title is the context whenever there is one


@pytest.mark.parametrize(
    ("first_page", "context"),
    [
        # a label ends the heading («Склад:»), and the product name on its own lines belongs to it
        (
            "ІНСТРУКЦІЯ\nдля медичного застосування лікарського засобу\n\nКОФЕЇН (COFFEINE)\n\nСклад:\nкофеїн;",
            "ІНСТРУКЦІЯ для медичного застосування лікарського засобу КОФЕЇН (COFFEINE)",
        ),
        # a sentence ends it, and so does body text (a line over 90 characters)
        ("Annual report 2024\nNorthwind Ltd\nRevenue grew by a tenth.", "Annual report 2024 Northwind Ltd"),
        ("Звіт\nпро діяльність\n" + "Протягом року відділ " * 8, "Звіт про діяльність"),
        # a section number or word ends it
        ("ПОЛОЖЕННЯ\nпро конкурс\nРозділ 1\nЗагальне", "ПОЛОЖЕННЯ про конкурс"),
        ("APPROVED\nBoard of directors\n\nCODE OF CONDUCT\n1. Scope of the code", "CODE OF CONDUCT"),
        # no heading (a text opening with its first section, or too short): the opening, stamps skipped
        ("1. Перша стаття договору.\n2. Друга стаття.", "1. Перша стаття договору. 2. Друга стаття."),
        ("ЗАТВЕРДЖЕНО\nнаказом\n\nАкт\n1. Склад комісії.", "Акт 1. Склад комісії."),
        # a stamp with no blank line under it ends at the heading in capitals
        ("ЗАТВЕРДЖУЮ\nДиректор\nІван КОВАЛЬ\nПОЛОЖЕННЯ\nпро архів\n1. Загальне", "ПОЛОЖЕННЯ про архів"),
        # ... and with neither, only the stamp's own line is dropped
        ("APPROVED\nBoard meeting minutes\n1. Attendance", "Board meeting minutes"),
    ],
)
def test_first_heading_by_the_shape_of_lines(first_page: str, context: str) -> None:
    doc = Article(id="d", title="", text=first_page, pages=(Page(1, first_page),))
    assert document_context(doc) == context


def test_a_heading_ends_with_its_page_and_an_opening_reads_on() -> None:
    # the heading is the first page's; the second page's first line is not part of it
    cover = Page(1, "ЗАТВЕРДЖУЮ\nДиректор\n\nПРАВИЛА ПРОВЕДЕННЯ ЗМАГАНЬ\nЗ БАСКЕТБОЛУ")
    body = Page(2, "Текст офіційних Правил з баскетболу стосується рівною мірою осіб\nобох статей.")
    doc = Article(id="d", title="", text=f"{cover.text}\n\n{body.text}", pages=(cover, body))
    assert document_context(doc) == "ПРАВИЛА ПРОВЕДЕННЯ ЗМАГАНЬ З БАСКЕТБОЛУ"
    # no heading on a short first page: the opening goes on into the next pages
    short = Page(1, "Копія")
    doc = Article(id="e", title="", text="", pages=(short, Page(2, "1. Перша стаття договору."), Page(3, "Ще.")))
    assert document_context(doc) == "Копія 1. Перша стаття договору. Ще."


def test_a_long_heading_is_cut_at_a_word() -> None:
    heading = "ПОЛОЖЕННЯ " + "про порядок проведення " * 20
    doc = Article(id="d", title="", text=heading, pages=(Page(1, heading + "\nТекст."),))
    context = document_context(doc)
    assert 100 < len(context) <= 200 and heading.startswith(context) and not context.endswith(" ")


def test_jsonl_pages_are_read_and_checked(tmp_path: Path) -> None:
    good = {"id": "r1", "title": "Report", "pages": [{"number": 1, "text": "A.\nB."}, {"number": 2, "text": "  "}]}
    bad = [
        {"id": "x1", "text": "t", "pages": [{"number": 1, "text": "a"}]},
        {"id": "x2", "pages": [{"number": 1, "text": "a"}, {"number": 1, "text": "b"}]},
        {"id": "x3", "pages": [{"number": 0, "text": "a"}]},
        {"id": "x4", "pages": [{"number": 1, "text": " "}]},
        {"id": "x5", "pages": "page one"},
        {"id": "x6", "pages": [{"number": 1, "text": "a", "image": "x"}]},
    ]
    source = tmp_path / "docs.jsonl"
    source.write_text("\n".join(json.dumps(r) for r in [good, *bad]) + "\n", encoding="utf-8")
    first, *errors = _read(source)
    assert isinstance(first, Article) and first.pages == (Page(1, "A.\nB."),) and first.text == "A.\nB."
    reasons = [str(e) for e in errors]
    assert all(isinstance(e, BadRecordError) for e in errors)
    for fragment, reason in zip(
        ("not both", "appears twice", "from 1", "every page is empty", "must be a list", "'number' and 'text'"),
        reasons,
        strict=True,
    ):
        assert fragment in reason


def test_a_pdf_is_read_page_by_page_with_its_title(tmp_path: Path) -> None:
    pdf = tmp_path / "annual-report.pdf"
    pdf.write_bytes(make_pdf([["Annual report 2024", "Revenue grew by nine percent."], [], ["Outlook."]], title="AR"))
    (doc,) = _read(pdf)
    assert isinstance(doc, Article)
    assert (doc.id, doc.title) == ("annual-report", "AR")
    assert [(p.number, p.text) for p in doc.pages] == [
        (1, "Annual report 2024\nRevenue grew by nine percent."),
        (3, "Outlook."),
    ]
    generic = tmp_path / "memo.pdf"
    generic.write_bytes(make_pdf([["Memo text."]], title="Microsoft Word - memo.docx"))
    (memo,) = _read(generic)
    assert isinstance(memo, Article) and memo.title == ""


def test_a_first_page_of_stamps_costs_linear_time() -> None:
    page = "ЗАТВЕРДЖУЮ\n" * 200_000 + "ПОЛОЖЕННЯ про архів"
    doc = Article(id="d", title="", text=page, pages=(Page(1, page),))
    started = time.perf_counter()
    assert document_context(doc) == "ПОЛОЖЕННЯ про архів"
    assert time.perf_counter() - started < 5.0  # a slice per stamp took minutes (quadratic)


def test_a_pdf_without_a_title_is_named_by_the_heading_under_its_stamp(tmp_path: Path) -> None:
    # A PDF's text layer has no blank lines: the stamp ends at the heading in capitals under it.
    first = ["APPROVED", "Deputy Minister of Youth and Sports", "Olena PETRENKO", "12 May 2025", "RULES"]
    first += ["of rowing competitions", "1. General provisions", "1.1. These rules set out how competitions run."]
    pdf = tmp_path / "rules.pdf"
    pdf.write_bytes(make_pdf([first, ["2. Judges", "Each race has three judges."]]))
    (doc,) = _read(pdf)
    assert isinstance(doc, Article) and doc.title == ""
    assert "\n\n" not in doc.pages[0].text
    assert document_context(doc) == "RULES of rowing competitions"
    passages = chunk_article(doc, ChunkingSettings(), WORDS)
    assert [p.page for p in passages] == [1, 2]
    assert all(p.embed_text.startswith("RULES of rowing competitions\n") for p in passages)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (make_pdf([[], []]), "no text layer on any of its 2 page(s)"),
        (b"%PDF-1.4\nthis is not a PDF at all", "not a readable PDF"),
    ],
)
def test_scanned_and_broken_pdfs_are_bad_records(tmp_path: Path, data: bytes, reason: str) -> None:
    path = tmp_path / "scan.pdf"
    path.write_bytes(data)
    (bad,) = _read(path)
    assert isinstance(bad, BadRecordError) and reason in str(bad)


def _index(folder: Path, *docs: Article) -> Path:
    from poshuk.chunking import chunk_article as chunk

    with IndexWriter(folder, ENCODER.identity, ChunkingSettings()) as writer:
        for doc in docs:
            passages = chunk(doc, ChunkingSettings(), WORDS)
            writer.upsert_many([Upsert(doc, passages, ENCODER.encode_passages([p.embed_text for p in passages]))])
    return folder


REPORT = Article(
    id="report",
    title="Annual report",
    text="",
    pages=(Page(1, "Revenue grew by nine percent."), Page(12, "Drone production doubled at the plant.")),
)


def test_hits_and_documents_name_their_page(tmp_path: Path) -> None:
    folder = _index(tmp_path / "index", REPORT, Article(id="news", title="News", text="Drones attacked the port."))
    searcher = Searcher(Index.open(folder), ENCODER)
    try:
        hits = {h.doc_id: h for h in reversed(searcher.search("drone production plant", k=5).hits)}  # best kept
        assert hits["report"].page == 12 and hits["news"].page is None
        assert [p.page for p in searcher.document("report").passages] == [1, 12]
    finally:
        searcher.close()


def test_each_page_is_an_article_unit_of_its_own(tmp_path: Path) -> None:
    """The article-level BM25 ranks a document's pages apart (one row per page), so its vote can
    point to the page that holds the words, and every retriever's candidates carry their page."""
    folder = _index(tmp_path / "index", REPORT, Article(id="news", title="News", text="Drones attacked the port."))
    check_index(folder)  # one article row per page of the report, one for the news article
    index = Index.open(folder)
    try:
        terms = analyse_query("drone production plant", index.analyzer)
        vector = ENCODER.encode_queries(["drone production plant"])
        query = RetrievalQuery(terms=terms, vector=vector, limit=10, lexical=True, articles=True)
        found = index.retrieve(query)
        assert index.load_lexical()  # the postings in memory name the same pages
        assert index.retrieve(query) == found
        assert [(c.doc_id, c.page) for c in found.articles][:1] == [("report", 12)]
        assert {(c.doc_id, c.page) for c in found.dense} == {("report", 1), ("report", 12), ("news", None)}
        assert {(c.doc_id, c.page) for c in found.passages} >= {("report", 12)}
        units = index.read().execute("SELECT count(*) FROM article_lexical").fetchone()[0]
        assert units == 3
    finally:
        index.close()


def test_an_index_from_before_pages_reads_without_them_and_gains_the_column_when_written(tmp_path: Path) -> None:
    folder = _index(tmp_path / "index", Article(id="news", title="News", text="Drones attacked the port."))
    db = sqlite3.connect(live_version(folder) / "meta.sqlite")
    db.execute("ALTER TABLE passages DROP COLUMN page")  # the schema before documents with pages
    db.commit()
    db.close()
    old = Index.open(folder, read_only=True)
    try:
        assert [p.page for p in old.document("news").passages] == [None]
        query = RetrievalQuery(terms=analyse_query("drones port", old.analyzer), limit=5, lexical=True, articles=True)
        fts5 = old.retrieve(query)
        assert old.load_lexical()
        assert old.retrieve(query) == fts5 and [c.page for c in fts5.passages] == [None]
    finally:
        old.close()
    _index(folder, REPORT)  # a writer adds the column, then stores pages
    index = Index.open(folder)
    try:
        assert [p.page for p in index.document("report").passages] == [1, 12]
        assert [p.page for p in index.document("news").passages] == [None]
    finally:
        index.close()


def test_poshuk_index_reads_a_pdf_and_search_prints_the_page(
    hash_model: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pdf = tmp_path / "plant.pdf"
    pdf.write_bytes(make_pdf([["Introduction to the plant."], ["Drone production doubled at the plant."]]))
    index = str(tmp_path / "index")
    assert main(["index", str(pdf), "--index", index, "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["search", "drone production", "--index", index, "-k", "1"]) == 0
    assert "(plant p. 2)" in capsys.readouterr().out
