"""A 300-page PDF indexes with a progress bar that moves page by page (issue 15)."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from indexer.page_progress import PageBar
from poshuk.language import LanguageDetector
from poshuk.readers import read_articles
from poshuk_cli.main import main
from tests.support.pdf import make_pdf

PAGES = 300


def _report(tmp_path: Path, pages: int = PAGES) -> Path:
    pdf = tmp_path / "report.pdf"
    pdf.write_bytes(make_pdf([[f"Page {n} of the annual procurement report."] for n in range(1, pages + 1)]))
    return pdf


def test_reading_a_pdf_tells_each_page_as_it_goes(tmp_path: Path) -> None:
    told: list[tuple[int, int]] = []
    read = list(
        read_articles(_report(tmp_path, 5), detector=LanguageDetector(), on_page=lambda d, t: told.append((d, t)))
    )
    assert len(read) == 1
    assert told == [(0, 5), (1, 5), (2, 5), (3, 5), (4, 5), (5, 5)]


def test_poshuk_index_shows_a_300_page_pdf_being_read_page_by_page(
    hash_model: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pdf = _report(tmp_path)
    started = time.perf_counter()
    assert main(["index", str(pdf), "--index", str(tmp_path / "index")]) == 0
    seconds = time.perf_counter() - started
    captured = capsys.readouterr()
    assert "indexed 1 document" in captured.out
    # the bar's states as tqdm writes them: it shows the PDF's pages as it opens and ends at the last one
    counts = [(int(done), int(total)) for done, total in re.findall(r"reading pages: .*?(\d+)/(\d+)", captured.err)]
    assert counts[-1] == (PAGES, PAGES), captured.err[-500:]
    assert counts[0] == (0, PAGES)
    assert seconds < 60  # pypdf reads such pages in a few milliseconds each; the bound only catches a hang


def test_no_progress_shows_no_page_bar(hash_model: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["index", str(_report(tmp_path, 3)), "--index", str(tmp_path / "index"), "--no-progress"]) == 0
    assert "reading pages" not in capsys.readouterr().err


def test_the_page_bar_counts_every_pdf_of_a_run(capsys: pytest.CaptureFixture[str]) -> None:
    with PageBar(enabled=True) as bar:
        for total in (2, 3):
            for done in range(total + 1):
                bar(done, total)
    assert "5/5" in capsys.readouterr().err
    with PageBar(enabled=True):
        pass
    assert capsys.readouterr().err == ""  # no PDF, no bar
