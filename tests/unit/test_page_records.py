"""One JSONL record per page (issue 15): records sharing a ``doc_id`` become one document with pages."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from poshuk.documents import Article, Page
from poshuk.errors import BadRecordError, NotFoundError
from poshuk.index import Index
from poshuk.language import LanguageDetector
from poshuk.page_records import MAX_PAGES
from poshuk.readers import read_articles
from poshuk_cli.main import main


def _write(tmp_path: Path, records: list[dict[str, Any]], name: str = "pages.jsonl") -> Path:
    source = tmp_path / name
    source.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return source


def _read(path: Path) -> tuple[list[Article], list[BadRecordError]]:
    found = list(read_articles(path, detector=LanguageDetector()))
    articles = [a for a in found if isinstance(a, Article)]
    bad = [b for b in found if isinstance(b, BadRecordError)]
    assert len(articles) + len(bad) == len(found)
    return articles, bad


def test_page_records_join_into_one_document_in_page_order_wherever_they_are(tmp_path: Path) -> None:
    source = _write(
        tmp_path,
        [
            {"doc_id": "ruling-7", "page": 3, "text": "The court finds the tender void."},
            {"id": "news-1", "title": "A story", "text": "Whole article."},
            {"doc_id": "ruling-7", "page": 1, "text": "Case 7.\n\nParties.", "title": "Ruling 7", "lang": "en"},
            {"doc_id": 42, "page": 1, "text": "Numeric ids work as for 'id'."},
            {"doc_id": "ruling-7", "page": 2, "text": "   ", "url": "https://court.example/7.pdf"},
            {"doc_id": "ruling-7", "page": 4, "text": "Costs.", "published_at": "2024-03-01", "title": "Ruling 7"},
        ],
    )
    articles, bad = _read(source)
    assert bad == []
    assert [a.id for a in articles] == ["news-1", "ruling-7", "42"]  # whole records first, then the joined
    ruling = articles[1]
    # not adjacent, out of order: joined in page order; page 2 had no text and is left out, as in `pages`
    assert ruling.pages == (
        Page(1, "Case 7.\nParties."),
        Page(3, "The court finds the tender void."),
        Page(4, "Costs."),
    )
    assert ruling.text == "Case 7.\nParties.\n\nThe court finds the tender void.\n\nCosts."
    assert ruling.title == "Ruling 7" and ruling.lang == "en" and ruling.url == "https://court.example/7.pdf"
    assert ruling.published_at == datetime(2024, 3, 1, tzinfo=UTC)
    assert articles[2].pages == (Page(1, "Numeric ids work as for 'id'."),)


def test_page_records_read_the_same_as_a_pages_array(tmp_path: Path) -> None:
    by_page = _write(
        tmp_path,
        [
            {"doc_id": "r", "page": 2, "text": "Second.", "title": "Report", "tags": ["a", "b"]},
            {"doc_id": "r", "page": 1, "text": "First.\nLine two."},
        ],
        "by-page.jsonl",
    )
    whole = _write(
        tmp_path,
        [
            {
                "id": "r",
                "title": "Report",
                "tags": ["a", "b"],
                "pages": [{"number": 1, "text": "First.\nLine two."}, {"number": 2, "text": "Second."}],
            }
        ],
        "whole.jsonl",
    )
    assert _read(by_page)[0] == _read(whole)[0]


BAD_LINES: list[tuple[dict[str, Any], str]] = [
    ({"doc_id": "d", "page": 1, "text": "again"}, "page 1 of document 'd' appears twice (first at line 1)"),
    ({"doc_id": "d", "page": 2, "text": "t", "title": "Other"}, "'title' of document 'd' differs from the one"),
    ({"doc_id": "d", "page": 3, "text": "t", "id": "d-3"}, "takes no 'id'"),
    ({"doc_id": "d", "page": 0, "text": "t"}, "'page' must be a whole number from 1"),
    ({"doc_id": "d", "page": True, "text": "t"}, "'page' must be a whole number from 1"),
    ({"doc_id": "d", "page": 2**63, "text": "t"}, "'page' must be a whole number from 1 to 1,000,000"),
    ({"doc_id": "d", "page": 4}, "needs its page's 'text'"),
    ({"doc_id": "d", "page": 5, "pages": [{"number": 5, "text": "t"}]}, "not 'pages'"),
    ({"doc_id": ["d"], "page": 6, "text": "t"}, "'doc_id' must be a string or an integer"),
    ({"doc_id": "\u200b", "page": 6, "text": "t"}, "the doc_id is empty"),
    ({"doc_id": "d", "page": 7, "text": "t", "published_at": "yesterday"}, "unknown date format"),
    ({"doc_id": "w", "page": 1, "text": "t"}, "document 'w' is also given as a whole record (line 2)"),
    ({"id": "d", "text": "whole"}, "document 'd' is also given as page records (from line 1)"),
]


def test_each_bad_page_record_is_reported_with_its_line_and_the_rest_is_indexed(tmp_path: Path) -> None:
    head: list[dict[str, Any]] = [
        {"doc_id": "d", "page": 1, "text": "One.", "title": "Doc"},
        {"id": "w", "text": "A whole article."},
    ]
    tail: list[dict[str, Any]] = [
        {"doc_id": "d", "page": 9, "text": "Nine."},
        {"doc_id": "empty", "page": 1, "text": " "},
    ]
    source = _write(tmp_path, [*head, *(record for record, _ in BAD_LINES), *tail])
    articles, bad = _read(source)
    assert [a.id for a in articles] == ["w", "d"]
    assert articles[1].pages == (Page(1, "One."), Page(9, "Nine.")) and articles[1].title == "Doc"
    expected = [(3 + n, reason) for n, (_, reason) in enumerate(BAD_LINES)]
    expected.append((len(head) + len(BAD_LINES) + 2, "document 'empty': every page is empty"))
    assert len(bad) == len(expected)
    for error, (line, reason) in zip(bad, expected, strict=True):
        assert error.line == line and reason in str(error), (error.line, str(error))


def test_a_document_keeps_its_first_max_pages_pages_and_reports_the_rest(tmp_path: Path) -> None:
    records = [{"doc_id": "big", "page": n, "text": f"p{n}"} for n in range(1, MAX_PAGES + 3)]
    articles, bad = _read(_write(tmp_path, records))
    assert len(articles) == 1 and len(articles[0].pages) == MAX_PAGES
    assert [b.line for b in bad] == [MAX_PAGES + 1, MAX_PAGES + 2]
    assert f"more than {MAX_PAGES} pages" in str(bad[0])


def test_a_record_without_both_doc_id_and_page_stays_a_whole_article(tmp_path: Path) -> None:
    records: list[dict[str, Any]] = [
        {"id": "n1", "text": "Story.", "page": 5, "doc_id": None},
        {"id": "n2", "text": "Two.", "doc_id": "x"},
    ]
    articles, bad = _read(_write(tmp_path, [*records, {"id": "n3", "text": "Three.", "doc_id": "y", "page": None}]))
    assert bad == [] and [a.id for a in articles] == ["n1", "n2", "n3"] and all(a.pages == () for a in articles)


@pytest.mark.parametrize("first", ["one.jsonl", "two.jsonl"])
def test_page_records_are_joined_per_file(tmp_path: Path, first: str) -> None:
    one = _write(tmp_path, [{"doc_id": "d", "page": 1, "text": "From one."}], "one.jsonl")
    two = _write(tmp_path, [{"doc_id": "d", "page": 2, "text": "From two."}], "two.jsonl")
    order = [one, two] if first == "one.jsonl" else [two, one]
    read = [_read(path)[0][0] for path in order]
    assert [a.pages[0].number for a in read] == ([1, 2] if first == "one.jsonl" else [2, 1])


def test_poshuk_index_reports_bad_page_records_and_keeps_what_the_index_holds(
    hash_model: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    index_dir = tmp_path / "index"
    earlier = _write(tmp_path, [{"id": "kept", "text": "An article indexed before."}], "earlier.jsonl")
    assert main(["index", str(earlier), "--index", str(index_dir), "--no-progress"]) == 0
    source = _write(
        tmp_path,
        [
            {"doc_id": "r", "page": 1, "text": "First page.", "title": "Report"},
            {"doc_id": "r", "page": 1, "text": "Page one again."},
            {"doc_id": "r", "page": 2, "text": "Second page."},
        ],
    )
    capsys.readouterr()
    assert main(["index", str(source), "--index", str(index_dir), "--no-progress", "--strict"]) != 0
    assert "page 1 of document 'r' appears twice" in capsys.readouterr().err
    index = Index.open(index_dir)
    try:
        with pytest.raises(NotFoundError):
            index.document("r")  # --strict: nothing of the run written
    finally:
        index.close()
    assert main(["index", str(source), "--index", str(index_dir), "--no-progress"]) == 1  # reported, rest indexed
    err = capsys.readouterr().err
    assert f"skipped {source}:2: page 1 of document 'r' appears twice (first at line 1)" in err, err
    index = Index.open(index_dir)
    try:
        assert [p.page for p in index.document("r").passages] == [1, 2]
        assert index.document("r").article.text == "First page.\n\nSecond page."
        assert index.document("kept").article.text == "An article indexed before."
    finally:
        index.close()
