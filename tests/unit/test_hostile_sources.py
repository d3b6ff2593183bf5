"""Hostile source files and metadata: dates that overflow, links out of the folder, control characters."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from poshuk.documents import Article, clean_line, clean_text, normalise_id, printable
from poshuk.encoder import Encoder, HashEncoder
from poshuk.errors import BadRecordError
from poshuk.highlight import Span
from poshuk.language import LanguageDetector
from poshuk.readers import article_from_record, iter_sources, parse_date, read_articles
from poshuk.search import Hit, SearchResult
from poshuk.settings import Settings
from poshuk_cli.main import main
from poshuk_cli.search import format_result

EXTREME_DATES = ("0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00")
NASTY = "a\rb\x9b31m\u202egnp.exe\u2066c\x1b[2Jd\u2028e\x85f"


@pytest.fixture(scope="module")
def detector() -> LanguageDetector:
    return LanguageDetector()


# --- dates -----------------------------------------------------------------------------------


@pytest.mark.parametrize("value", EXTREME_DATES)
def test_a_date_that_overflows_in_utc_is_a_clear_value_error(value: str) -> None:
    with pytest.raises(ValueError, match="out of range"):
        parse_date(value)


@pytest.mark.parametrize("value", ["0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "0001-01-01T10:00:00+09:00"])
def test_the_extremes_that_fit_are_accepted(value: str) -> None:
    assert parse_date(value) is not None


@pytest.fixture
def hash_model(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """``poshuk index`` in-process with the HashEncoder in place of the model (the boundary)."""

    def load_encoder(settings: Settings, **_kwargs: object) -> Encoder:
        return HashEncoder()

    monkeypatch.setattr("poshuk.models.load_encoder", load_encoder)
    monkeypatch.setattr("poshuk.commands.quiet_model_loading", lambda: None)
    for name in ("POSHUK_CONFIG", "POSHUK_MODEL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("POSHUK_HOME", str(tmp_path / "home"))


@pytest.mark.usefixtures("hash_model")
def test_poshuk_index_reports_and_skips_a_line_with_an_overflowing_date(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "news.jsonl"
    lines = [{"id": "ok-1", "title": "Добрий", "text": "Звичайна новина про бюджет міста."}]
    lines += [{"id": f"bad-{n}", "text": "Текст.", "published_at": v} for n, v in enumerate(EXTREME_DATES)]
    lines.append({"id": "ok-2", "title": "Ще", "text": "Інша новина про дороги.", "published_at": "2023-08-31"})
    source.write_text("\n".join(json.dumps(line, ensure_ascii=False) for line in lines) + "\n", encoding="utf-8")
    code = main(["index", str(source), "--index", str(tmp_path / "index"), "--no-progress"])
    out, err = capsys.readouterr()
    assert code == 1, err  # the run finishes; its exit code says records were skipped
    assert err.count("out of range") == 2 and "news.jsonl:2" in err and "news.jsonl:3" in err
    assert "indexed 2 documents" in out and "Traceback" not in err


# --- links out of the folder -----------------------------------------------------------------


def test_links_out_of_the_folder_are_not_read(tmp_path: Path, detector: LanguageDetector) -> None:
    outside = tmp_path / "outside"
    (outside / "secrets").mkdir(parents=True)
    (outside / "passwd.txt").write_text("root:x:0:0:root:/root:/bin/bash\n", encoding="utf-8")
    (outside / "secrets" / "key.txt").write_text("Секрет\nНе для індексу.\n", encoding="utf-8")
    folder = tmp_path / "articles"
    (folder / "world").mkdir(parents=True)
    (folder / "world" / "kyiv.txt").write_text("Київ\nНовина з Києва.\n", encoding="utf-8")
    os.symlink(outside / "passwd.txt", folder / "passwd.txt")  # a file out of the folder
    os.symlink(outside / "secrets", folder / "secrets")  # a folder out of it
    os.symlink(folder / "world" / "kyiv.txt", folder / "same.txt")  # inside: read (once, by its first name)
    sources = list(iter_sources([folder]))
    assert sources == [folder / "passwd.txt", folder / "same.txt"]  # secrets/ is not followed
    records = [r for path in sources for r in read_articles(path, detector=detector, root=folder)]
    bad = [r for r in records if isinstance(r, BadRecordError)]
    good = [r for r in records if isinstance(r, Article)]
    assert [a.id for a in good] == ["same"]
    assert len(bad) == 1 and "outside" in bad[0].reason and "not read" in bad[0].reason
    assert not any("root:x" in a.text for a in good)


def test_a_link_inside_the_folder_is_read(tmp_path: Path, detector: LanguageDetector) -> None:
    folder = tmp_path / "articles"
    (folder / "a").mkdir(parents=True)
    (folder / "a" / "one.txt").write_text("Перша\nТекст.\n", encoding="utf-8")
    (folder / "b").mkdir()
    os.symlink(folder / "a" / "one.txt", folder / "b" / "alias.txt")
    [path] = [p for p in iter_sources([folder / "b"])]
    [record] = read_articles(path, detector=detector, root=folder)
    assert isinstance(record, Article) and record.title == "Перша"


# --- control characters ----------------------------------------------------------------------


def test_metadata_loses_controls_and_bidi_overrides_body_keeps_its_paragraphs(detector: LanguageDetector) -> None:
    article = article_from_record(
        {
            "id": "ctl-1",
            "title": NASTY,
            "source": NASTY,
            "section": NASTY,
            "url": "https://example.com/\u202ex",
            "tags": [NASTY, "звичайний"],
            "text": "Перший абзац\u202e тут.\nДругий\x9b абзац.",
            "lang": "uk",
        },
        detector,
    )
    for value in (article.title, article.source, article.section, article.url, *article.tags):
        assert value is not None
        assert printable(value) == value, repr(value)  # nothing a terminal would obey or hide
    assert article.title == "a b31mgnp.exec[2Jd e f"
    assert article.text == "Перший абзац тут.\n\nДругий абзац."


def test_clean_line_and_clean_text() -> None:
    assert clean_line(" a\r\n\tb\u2028c ") == "a b c"
    assert clean_text("a\r\nb\u202e\x9b") == "a\r\nb"


def test_cli_text_output_never_prints_raw_control_or_bidi_characters() -> None:
    text = "Passage \u202eevil\x1b[31m red\u2066 end"
    hit = Hit(
        rank=1,
        score=0.5,
        passage_id="x#0",
        doc_id="x\r\x9b",
        title="T\u202eitle\rOverwritten",
        text=text,
        highlights=[Span(0, 7)],
    )
    result = SearchResult(query="q", hits=[hit], took_ms=1.0, model="m")
    for bold in (False, True):
        out = format_result(result, bold=bold)
        visible = out.replace("\033[1m", "").replace("\033[0m", "").replace("\n", "")
        assert printable(visible) == visible, repr(out)


# Any Unicode, controls and bidi characters included: what comes out is normalised and shows as it is.
_NASTY_CHARS = list("\r\n\t\x0b\x1b\x7f\x85\x9b\u200b\u200e\u2028\u2029\u202a\u202e\u2066\u2069\ufeff e\u0301")
_ANY_TEXT = st.text(
    st.one_of(st.characters(codec="utf-8", exclude_categories=["Cs"]), st.sampled_from(_NASTY_CHARS)), max_size=40
)


@settings(max_examples=200, deadline=None)
@given(doc_id=_ANY_TEXT, title=_ANY_TEXT, source=_ANY_TEXT, tags=st.lists(_ANY_TEXT, max_size=4))
def test_any_metadata_comes_out_normalised_and_printable(
    detector: LanguageDetector, doc_id: str, title: str, source: str, tags: list[str]
) -> None:
    record = {"id": doc_id, "title": title, "source": source, "tags": tags, "text": "Текст статті.", "lang": "uk"}
    try:
        article = article_from_record(record, detector)
    except ValueError:
        assert not normalise_id(doc_id)  # the only way a record with a text is refused here: no id left
        return
    assert article.id == normalise_id(article.id) == normalise_id(doc_id)
    for value in (article.id, article.title, article.source or "", *article.tags):
        assert printable(value) == value and value == value.strip(), repr(value)
