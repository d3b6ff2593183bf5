"""A PDF made by the test, indexed by the real ``poshuk index`` into the served index: its hits name
their page, open the PDF at that page (``#page=N``), and its other matching pages are listed once
under the document, each opening there and showing its text on demand (issue 15)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.support.app import KEY
from tests.support.browser import Browser
from tests.support.pdf import make_pdf
from tests.support.processes import cli_env
from tests.support.serving import Server

PREFIX = "http://127.0.0.1:9/dumps/"  # where the dump would be published; the test never opens it
DOC_ID = "turbine-report"
MATCHING = (3, 7, 9)
QUERY = "cracks found in the turbine blades"


def _report() -> bytes:
    pages = []
    for n in range(1, 13):
        if n in MATCHING:
            lines = [f"Inspection of unit {n}.", f"Inspectors found cracks in the turbine blades of unit {n}."]
        else:
            lines = [f"Week {n}.", f"Water levels and weather in week {n} were within the normal ranges."]
        pages.append(lines)
    return make_pdf(pages, title="Dniester hydropower plant: annual inspection")


def _index_pdf(pdf: Path, index_dir: Path) -> None:
    poshuk = str(Path(sys.executable).with_name("poshuk"))
    args = [poshuk, "index", str(pdf), "--index", str(index_dir), "--url-prefix", PREFIX, "--no-progress"]
    done = subprocess.run(args, capture_output=True, text=True, timeout=600, env=cli_env())
    assert done.returncode == 0, done.stderr
    assert "indexed 1 documents" in done.stdout, done.stdout


def _wait_until_served(server: Server) -> None:
    """The service picks up what another process wrote within a second or so."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        answer = httpx.get(f"{server.base_url}/v1/documents/{DOC_ID}", timeout=30)
        if answer.status_code == 200:
            return
        time.sleep(0.3)
    raise AssertionError("the served index never showed the indexed PDF")


def test_a_pdfs_hits_open_at_their_page_and_its_pages_group_under_the_document(
    browser: Browser, server: Server, page_index: Path, tmp_path: Path
) -> None:
    pdf = tmp_path / f"{DOC_ID}.pdf"
    pdf.write_bytes(_report())
    _index_pdf(pdf, page_index)
    url = f"{server.base_url}/v1/documents/{DOC_ID}"
    try:
        _wait_until_served(server)
        page = browser.open()
        page.fill("#q", QUERY)
        page.press("#q", "Enter")
        page.wait_for_selector("#results[data-render-ms]", state="attached")
        items = page.locator("#results > li.result")
        ids = items.evaluate_all("items => items.map(li => li.dataset.docId)")
        assert ids[0] == DOC_ID and ids.count(DOC_ID) == 1, ids  # the document once, its pages under it
        first = items.first

        label = first.locator(".meta .page-link")
        best = int(label.get_attribute("data-page") or "0")
        assert best in MATCHING
        assert label.inner_text() == f"с. {best}"
        assert label.get_attribute("href") == f"{PREFIX}{DOC_ID}.pdf#page={best}"
        assert f"unit {best}." in first.locator("p.passage").inner_text()  # the passage is from that page
        assert first.locator(".result-title a").get_attribute("href") == f"{PREFIX}{DOC_ID}.pdf#page={best}"

        others = first.locator(".doc-page")
        listed = [int(p) for p in others.evaluate_all("items => items.map(li => li.dataset.page)")]
        assert best not in listed and len(set(listed)) == len(listed)
        assert set(listed[:2]) == set(MATCHING) - {best}, listed  # the pages with matches, best first
        assert first.locator(".more-passages").count() == 0  # the pages say it instead of a count
        for n, number in enumerate(listed):
            item = others.nth(n)
            assert item.locator(".page-toggle").inner_text() == f"с. {number}"
            assert item.locator(".page-open").get_attribute("href") == f"{PREFIX}{DOC_ID}.pdf#page={number}"

        other = listed[0]
        toggle = others.nth(0).locator(".page-toggle")
        assert toggle.get_attribute("aria-expanded") == "false"
        toggle.click()
        panel = first.locator(f".page-text[data-page='{other}'][data-state='done']")
        panel.wait_for()
        assert toggle.get_attribute("aria-expanded") == "true"
        assert f"cracks in the turbine blades of unit {other}." in panel.inner_text()
        assert "Water levels" not in panel.inner_text()  # that page only
        browser.screenshot("08-document-pages")
        toggle.click()
        assert panel.is_hidden()
    finally:
        assert httpx.delete(url, headers={"X-API-Key": KEY}, timeout=60).status_code == 200
