"""Readers: every format, and every way a record can be bad."""

from __future__ import annotations

import json
import unicodedata
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from poshuk.documents import Article
from poshuk.errors import BadRecordError, ConfigError
from poshuk.language import LanguageDetector
from poshuk.readers import MAX_FILE_BYTES, iter_sources, parse_date, read_articles

FIXTURES = Path(__file__).parent.parent / "fixtures" / "sources"


@pytest.fixture(scope="module")
def detector() -> LanguageDetector:
    return LanguageDetector()


def read(path: Path, detector: LanguageDetector, **kwargs: Any) -> list[Article | BadRecordError]:
    return list(read_articles(path, detector=detector, **kwargs))


def one_article(path: Path, detector: LanguageDetector) -> Article:
    [record] = read(path, detector)
    assert isinstance(record, Article), record
    return record


def one_error(path: Path, detector: LanguageDetector) -> BadRecordError:
    [record] = read(path, detector)
    assert isinstance(record, BadRecordError), record
    return record


def write_jsonl(path: Path, *records: object) -> Path:
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in records) + "\n", encoding="utf-8")
    return path


GOOD = {"id": "a1", "title": "Заголовок", "text": "Текст статті про події в Україні."}


# --- sources ---------------------------------------------------------------------


def test_iter_sources_recurses_sorted_and_skips_hidden_and_unsupported() -> None:
    found = [p.relative_to(FIXTURES).as_posix() for p in iter_sources([FIXTURES])]
    assert found == ["articles.jsonl", "nested/deeper.txt", "note.txt", "page.html", "story.md"]


def test_iter_sources_skips_hidden_folders_and_deduplicates(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "x.txt").write_text("a\nb", encoding="utf-8")
    (tmp_path / "b.TXT").write_text("a\nb", encoding="utf-8")
    (tmp_path / "a.md").write_text("a\nb", encoding="utf-8")
    found = list(iter_sources([tmp_path, tmp_path / "a.md"]))
    assert [p.name for p in found] == ["a.md", "b.TXT"]


def test_iter_sources_missing_path(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="source not found"):
        list(iter_sources([tmp_path / "nope"]))


def test_iter_sources_explicit_unsupported_file(tmp_path: Path) -> None:
    path = tmp_path / "data.docx"
    path.write_bytes(b"PK")
    with pytest.raises(ConfigError, match="unsupported source file") as info:
        list(iter_sources([path]))
    assert info.value.hint and ".jsonl" in info.value.hint and ".pdf" in info.value.hint


def test_read_articles_rejects_unsupported_file(tmp_path: Path, detector: LanguageDetector) -> None:
    (tmp_path / "a.csv").write_text("id,text\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="unsupported"):
        read(tmp_path / "a.csv", detector)


# --- JSONL -----------------------------------------------------------------------


def test_jsonl_fixture(detector: LanguageDetector) -> None:
    first, second = read(FIXTURES / "articles.jsonl", detector)
    assert isinstance(first, Article) and isinstance(second, Article)
    assert first.id == "ukr-001"
    assert first.lang == "uk" and first.section == "world" and first.source == "Укрінформ"
    assert first.tags == ("КНДР", "Росія")
    assert first.published_at == datetime(2023, 8, 31, 6, 15, tzinfo=UTC)
    assert first.text.split("\n\n")[-1] == "Фото: KCNA"  # credits are the chunker's business
    assert second.lang == "en"  # detected; the unknown "extra_field" is ignored
    assert second.published_at == datetime(2023, 9, 4, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2023-09-01T10:00:00Z", datetime(2023, 9, 1, 10, tzinfo=UTC)),
        ("2023-09-01T12:00:00+02:00", datetime(2023, 9, 1, 10, tzinfo=UTC)),
        ("2023-09-01T10:00:00", datetime(2023, 9, 1, 10, tzinfo=UTC)),
        ("2023-09-01 10:00", datetime(2023, 9, 1, 10, tzinfo=UTC)),
        ("2023-09-01", datetime(2023, 9, 1, tzinfo=UTC)),
        (None, None),
    ],
)
def test_dates(value: str | None, expected: datetime | None) -> None:
    assert parse_date(value) == expected


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        ({"title": "t", "text": "x"}, "missing id"),
        ({"id": "  ", "title": "t", "text": "x"}, "missing id"),
        ({"id": ["a"], "title": "t", "text": "x"}, "'id' must be"),
        ({"id": "a", "title": "t"}, "missing text"),
        ({"id": "a", "title": "t", "text": " \n\n "}, "empty text"),
        ({"id": "a", "title": "t", "text": 5}, "'text' must be a string"),
        ({**GOOD, "title": 42}, "'title' must be a string"),
        ({**GOOD, "tags": "war, peace"}, "'tags' must be a list of strings"),
        ({**GOOD, "tags": ["ok", 3]}, "'tags' must be a list of strings"),
        ({**GOOD, "url": 7}, "'url' must be a string"),
        ({**GOOD, "lang": "ukrainian"}, "'lang' is not a language code"),
        ({**GOOD, "published_at": "01.09.2023"}, "unknown date format"),
        ({**GOOD, "published_at": 1693562400}, "unknown date format"),
        (["not", "an", "object"], "expected a JSON object"),
    ],
)
def test_jsonl_bad_records(tmp_path: Path, detector: LanguageDetector, record: object, reason: str) -> None:
    path = write_jsonl(tmp_path / "a.jsonl", GOOD, record)
    good, bad = read(path, detector)
    assert isinstance(good, Article)
    assert isinstance(bad, BadRecordError)
    assert reason in bad.reason
    assert bad.line == 2 and bad.source == str(path)
    assert str(bad).startswith(f"{path}:2: ")


def test_jsonl_invalid_json_has_line_number(tmp_path: Path, detector: LanguageDetector) -> None:
    path = tmp_path / "a.jsonl"
    path.write_text(json.dumps(GOOD) + "\n\n" + '{"id": "b", "text": \n' + json.dumps(GOOD) + "\n")
    records = read(path, detector)
    assert [type(r).__name__ for r in records] == ["Article", "BadRecordError", "Article"]
    bad = records[1]
    assert isinstance(bad, BadRecordError)
    assert bad.line == 3 and bad.reason.startswith("invalid JSON")


def test_jsonl_broken_utf8_has_line_number(tmp_path: Path, detector: LanguageDetector) -> None:
    good = json.dumps(GOOD, ensure_ascii=False).encode()
    broken = '{"id": "b", "text": "Київ'.encode() + b"\xd0\x28" + b'"}'
    (tmp_path / "a.jsonl").write_bytes(good + b"\n" + broken + b"\n" + good + b"\n")
    records = read(tmp_path / "a.jsonl", detector)
    assert [type(r).__name__ for r in records] == ["Article", "BadRecordError", "Article"]
    bad = records[1]
    assert isinstance(bad, BadRecordError)
    assert bad.line == 2 and "invalid UTF-8" in bad.reason


def test_jsonl_normalises_text(tmp_path: Path, detector: LanguageDetector) -> None:
    decomposed = unicodedata.normalize("NFD", "Мій край")
    assert decomposed != "Мій край"
    record = {
        "id": " 42 ",
        "title": f"  {decomposed}\u200b ",
        "text": "Перший абзац.\r\nДругий\t\tабзац.\r\n\r\n\r\n\r\nТретій.",
        "lang": "uk-UA",
        "tags": ["a", " a ", "", "b"],
        "url": "",
    }
    article = one_article(write_jsonl(tmp_path / "a.jsonl", record), detector)
    assert article.id == "42"
    assert article.title == "Мій край"
    assert article.text == "Перший абзац.\n\nДругий абзац.\n\nТретій."
    assert article.lang == "uk" and article.tags == ("a", "b") and article.url is None


def test_jsonl_integer_id_is_accepted(tmp_path: Path, detector: LanguageDetector) -> None:
    assert one_article(write_jsonl(tmp_path / "a.jsonl", {**GOOD, "id": 7}), detector).id == "7"


def test_jsonl_missing_title_is_empty(tmp_path: Path, detector: LanguageDetector) -> None:
    record = {"id": "a", "text": "Only a body."}
    assert one_article(write_jsonl(tmp_path / "a.jsonl", record), detector).title == ""


@pytest.mark.parametrize("content", [b"", b"\n\n  \n"])
def test_empty_jsonl(tmp_path: Path, detector: LanguageDetector, content: bytes) -> None:
    (tmp_path / "a.jsonl").write_bytes(content)
    assert one_error(tmp_path / "a.jsonl", detector).reason == "empty file"


# --- text and Markdown -----------------------------------------------------------


def test_txt_fixture_one_paragraph_per_line(detector: LanguageDetector) -> None:
    article = one_article(FIXTURES / "note.txt", detector)
    assert article.id == "note"
    assert article.title == "Уряд ухвалив рішення про ремонт шкіл"
    assert article.text.split("\n\n") == [
        "Кабінет міністрів виділив кошти на ремонт шкіл у прифронтових областях.",
        "Роботи мають завершитися до початку навчального року.",
        "Фото: Укрінформ",
    ]
    assert article.lang == "uk"


def test_txt_nfc_and_line_endings(tmp_path: Path, detector: LanguageDetector) -> None:
    text = unicodedata.normalize("NFD", "Йорданія\r\n\r\nЇжак й їжачиха.\rДругий рядок.")
    (tmp_path / "n.txt").write_text(text, encoding="utf-8", newline="")
    article = one_article(tmp_path / "n.txt", detector)
    assert article.title == "Йорданія" and len(article.title) == 8
    assert article.text == "Їжак й їжачиха.\n\nДругий рядок."
    assert unicodedata.is_normalized("NFC", article.text)


def test_txt_title_only(tmp_path: Path, detector: LanguageDetector) -> None:
    (tmp_path / "t.txt").write_text("\n\n  Лише заголовок  \n", encoding="utf-8")
    article = one_article(tmp_path / "t.txt", detector)
    assert (article.title, article.text) == ("Лише заголовок", "")


@pytest.mark.parametrize("name", ["e.txt", "e.md", "e.html"])
def test_empty_files(tmp_path: Path, detector: LanguageDetector, name: str) -> None:
    (tmp_path / name).write_text(" \n\n", encoding="utf-8")
    assert one_error(tmp_path / name, detector).reason == "empty file"


def test_txt_broken_utf8_has_line_number(tmp_path: Path, detector: LanguageDetector) -> None:
    (tmp_path / "b.txt").write_bytes("Заголовок\nТекст\n".encode() + b"\xff\xfe bad\n")
    bad = one_error(tmp_path / "b.txt", detector)
    assert bad.line == 3 and "invalid UTF-8" in bad.reason


def test_root_gives_relative_ids(detector: LanguageDetector) -> None:
    [article] = read(FIXTURES / "nested" / "deeper.txt", detector, root=FIXTURES)
    assert isinstance(article, Article) and article.id == "nested/deeper"


def test_markdown_fixture(detector: LanguageDetector) -> None:
    article = one_article(FIXTURES / "story.md", detector)
    assert article.title == "Council approves the city budget"
    assert article.text.split("\n\n") == [
        "The city council approved the budget on Tuesday after a long debate that lasted well into the evening.",
        "Spending",
        "- Roads and bridges",
        "- Schools",
        "Read the full decision on the council website.",
    ]
    assert article.lang == "en"


def test_markdown_front_matter_is_skipped(tmp_path: Path, detector: LanguageDetector) -> None:
    (tmp_path / "f.md").write_text("---\ntitle: x\n---\n## Title here\n\nBody text.\n", encoding="utf-8")
    article = one_article(tmp_path / "f.md", detector)
    assert (article.title, article.text) == ("Title here", "Body text.")


# --- HTML ------------------------------------------------------------------------


def test_html_extracts_article_body_not_navigation(detector: LanguageDetector) -> None:
    article = one_article(FIXTURES / "page.html", detector)
    assert article.id == "page"
    assert article.title == "Енергетики відновили світло в Харкові"
    paragraphs = article.text.split("\n\n")
    assert len(paragraphs) == 2
    assert paragraphs[0].startswith("Енергетики відновили електропостачання")
    for noise in ("Головна", "Спорт", "Усі права захищено", "Контакти"):
        assert noise not in article.text
    assert article.lang == "uk"


def test_html_title_falls_back_to_title_tag(tmp_path: Path, detector: LanguageDetector) -> None:
    body = "<p>" + "Місто отримало нові автобуси для громадського транспорту. " * 4 + "</p>"
    html = f"<html><head><title>Нові автобуси</title></head><body><article>{body}</article></body></html>"
    (tmp_path / "bus.htm").write_text(html, encoding="utf-8")
    article = one_article(tmp_path / "bus.htm", detector)
    assert article.title == "Нові автобуси"
    assert article.text.startswith("Місто отримало")


def test_html_without_text_is_bad(tmp_path: Path, detector: LanguageDetector) -> None:
    (tmp_path / "x.html").write_text("<html><head><title>t</title></head><body></body></html>")
    assert "no article text" in one_error(tmp_path / "x.html", detector).reason


def test_oversized_file_is_bad(tmp_path: Path, detector: LanguageDetector) -> None:
    path = tmp_path / "big.html"
    with path.open("wb") as handle:
        handle.truncate(MAX_FILE_BYTES + 1)
    assert "larger than" in one_error(path, detector).reason
