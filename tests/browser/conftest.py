"""The search page in Debian's headless Chromium, driven by Playwright, against a real ``poshuk serve``.

The index is built with the real CLI over the example articles and the real default model
(from ``POSHUK_HOME``), the server runs as its own process on a free 127.0.0.1 port, and
each test gets a fresh browser profile. Playwright drives the system Chromium
(``/usr/bin/chromium``, Debian's ``chromium`` package); it never downloads a browser.

Screenshots and the measured time to first results go to ``tests/artifacts/browser/``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.support.app import KEY_HASH
from tests.support.browser import ARTIFACTS, RENDER_TIMES, Browser
from tests.support.repo import copy_index
from tests.support.serving import ONE_BUSY_CLIENT, Server, start_server, stop_server

if TYPE_CHECKING:
    from playwright.sync_api import ConsoleMessage, Playwright

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ACTION_TIMEOUT_MS = 60_000  # a hybrid search on a busy 2-core CI machine can take seconds


@pytest.fixture(scope="session")
def page_index(example_index_source: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example articles indexed by the real CLI with the real default model (a private copy)."""
    return copy_index(example_index_source, tmp_path_factory.mktemp("browser") / "index")


@pytest.fixture(scope="session")
def server(page_index: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    # Every browser test searches from one address, dozens within a minute (each page search is two
    # requests, one with sentence marks): far past a person's share of server time, so none here.
    env = {**ONE_BUSY_CLIENT, "POSHUK_AUTH_KEYS": KEY_HASH}  # the page saves alerts with a key
    running = start_server(page_index, tmp_path_factory.mktemp("browser-log") / "server.log", env)
    yield running
    stop_server(running)


@pytest.fixture(scope="session")
def playwright() -> Iterator[Playwright]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("the browser tests need Playwright's Python package: pip install -e '.[dev]'")
    if not Path(CHROMIUM).exists():
        pytest.fail(f"the browser tests need Debian's Chromium at {CHROMIUM}: apt-get install chromium")
    with sync_playwright() as driver:
        yield driver


@pytest.fixture
def browser(playwright: Playwright, server: Server, tmp_path: Path) -> Iterator[Browser]:
    context = playwright.chromium.launch_persistent_context(
        str(tmp_path / "profile"),
        executable_path=CHROMIUM,
        headless=True,
        args=CHROMIUM_ARGS,
        viewport={"width": 1280, "height": 900},
        locale="uk-UA",
        timezone_id="Europe/Kyiv",
        color_scheme="light",
    )
    context.set_default_timeout(ACTION_TIMEOUT_MS)
    page = context.pages[0] if context.pages else context.new_page()
    running = Browser(context, page, server.base_url)

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            running.console_errors.append(message.text)

    page.on("console", on_console)
    page.on("pageerror", lambda error: running.page_errors.append(str(error)))
    yield running
    context.close()
    assert running.page_errors == [], running.page_errors


@pytest.fixture(scope="session", autouse=True)
def _write_render_times() -> Iterator[None]:
    """Save every measured time to first results, for the report and for trends."""
    yield
    if RENDER_TIMES:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        (ARTIFACTS / "render-ms.json").write_text(json.dumps(RENDER_TIMES, indent=2, ensure_ascii=False) + "\n")
