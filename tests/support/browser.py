"""The browser tests' page handle and where their screenshots and render times go."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tests.support.repo import REPO

if TYPE_CHECKING:
    from playwright.sync_api import BrowserContext, Page

ARTIFACTS = REPO / "tests" / "artifacts" / "browser"
RENDER_TIMES: list[dict[str, Any]] = []  # every measured time to first results, saved at session end


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
