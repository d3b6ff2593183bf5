"""The search page in Debian's headless Chromium, driven by Playwright, against a real ``poshuk serve``.

The index is built with the real CLI over the example articles and the real default model
(from ``POSHUK_HOME``), the server runs as its own process on a free 127.0.0.1 port, and
each test gets a fresh browser profile. Playwright drives the system Chromium
(``/usr/bin/chromium``, Debian's ``chromium`` package); it never downloads a browser.

Screenshots and the measured time to first results go to ``tests/artifacts/browser/``.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from tests.conftest import REPO, copy_index

if TYPE_CHECKING:
    from playwright.sync_api import BrowserContext, ConsoleMessage, Page, Playwright

POSHUK = str(Path(sys.executable).with_name("poshuk"))
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
READY_TIMEOUT = 120.0
ACTION_TIMEOUT_MS = 60_000  # a hybrid search on a busy 2-core CI machine can take seconds
ARTIFACTS = REPO / "tests" / "artifacts" / "browser"


def _env() -> dict[str, str]:
    """The test's environment without Poshuk settings, except where the model lives."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("POSHUK_") or k == "POSHUK_HOME"}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    base_url: str
    log: Path

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")


def _start(index_dir: Path, log: Path) -> Server:
    """Start ``poshuk serve`` on a free port and wait until ``/readyz`` answers 200."""
    for _attempt in range(3):  # another process may take the free port before the server binds it
        port = _free_port()
        with log.open("wb") as out:
            process = subprocess.Popen(
                [POSHUK, "serve", "--index", str(index_dir), "--host", "127.0.0.1", "--port", str(port)],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=_env(),
            )
        server = Server(process, f"http://127.0.0.1:{port}", log)
        deadline = time.monotonic() + READY_TIMEOUT
        with httpx.Client(base_url=server.base_url, timeout=5.0) as client:
            while time.monotonic() < deadline:
                if process.poll() is not None:
                    break
                try:
                    if client.get("/readyz").status_code == 200:
                        return server
                except httpx.TransportError:
                    pass
                time.sleep(0.25)
        if process.poll() is None:
            process.kill()
            process.wait()
            pytest.fail(f"server not ready after {READY_TIMEOUT:.0f} s:\n{server.output()}")
        if "address already in use" not in server.output().casefold():
            pytest.fail(f"server exited with {process.returncode}:\n{server.output()}")
    pytest.fail("no free port could be bound")


def _stop(server: Server) -> None:
    server.process.send_signal(signal.SIGINT)
    try:
        code = server.process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()
        pytest.fail(f"server did not stop on SIGINT:\n{server.output()}")
    assert code == 0, server.output()


@pytest.fixture(scope="session")
def page_index(example_index_source: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example articles indexed by the real CLI with the real default model (a private copy)."""
    return copy_index(example_index_source, tmp_path_factory.mktemp("browser") / "index")


@pytest.fixture(scope="session")
def server(page_index: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = _start(page_index, tmp_path_factory.mktemp("browser-log") / "server.log")
    yield running
    _stop(running)


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


@dataclass
class Browser:
    """One fresh browser profile with one page, and what the page logged."""

    context: BrowserContext
    page: Page
    base_url: str
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)

    def open(self, path: str = "/") -> Page:
        self.page.goto(self.base_url + path)
        self.page.wait_for_function("document.readyState === 'complete'")
        return self.page

    def screenshot(self, name: str) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path


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


RENDER_TIMES: list[dict[str, Any]] = []


@pytest.fixture(scope="session", autouse=True)
def _write_render_times() -> Iterator[None]:
    """Save every measured time to first results, for the report and for trends."""
    yield
    if RENDER_TIMES:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        (ARTIFACTS / "render-ms.json").write_text(json.dumps(RENDER_TIMES, indent=2, ensure_ascii=False) + "\n")
