"""The integrity check at start: a damaged SQLite page keeps ``/readyz`` at 503 with the reason."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from litestar.testing import TestClient

from poshuk.encoder import HashEncoder
from poshuk.errors import IndexCorruptError
from poshuk.index import live_version
from poshuk.integrity import check_integrity
from poshuk.search import Searcher
from poshuk.settings import load_settings
from service.app import ServiceState, create_app
from tests.service_support import assert_problem
from tests.unit.test_service_api import _build_index


def damage(database: Path, table_or_index: str) -> None:
    """Overwrite the root page of ``table_or_index`` with garbage (its header byte stays, as a bad sector might)."""
    conn = sqlite3.connect(database)
    (root,) = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = ?", (table_or_index,)).fetchone()
    (page_size,) = conn.execute("PRAGMA page_size").fetchone()
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    with database.open("r+b") as handle:
        handle.seek((root - 1) * page_size + 8)
        handle.write(b"\xa5" * (page_size - 8))


@pytest.fixture
def damaged_index(tmp_path: Path) -> Path:
    folder = tmp_path / "index"
    _build_index(folder, HashEncoder())
    damage(live_version(folder) / "meta.sqlite", "passages_doc")
    return folder


def test_a_damaged_page_that_searches_do_not_touch_at_once_is_found(damaged_index: Path) -> None:
    # Without the check the damage is invisible at start: the index opens and answers.
    searcher = Searcher.open(damaged_index, load_settings(env={}), encoder=HashEncoder())
    try:
        assert searcher.search("Київ", k=3, mode="dense").hits
    finally:
        searcher.close()
    with pytest.raises(IndexCorruptError, match="damaged"):
        check_integrity(live_version(damaged_index))


def test_a_sound_index_passes(tmp_path: Path) -> None:
    _build_index(tmp_path / "index", HashEncoder())
    check_integrity(live_version(tmp_path / "index"))


def test_not_a_database_at_all_is_damaged(tmp_path: Path) -> None:
    (tmp_path / "meta.sqlite").write_bytes(b"x" * 8192)
    with pytest.raises(IndexCorruptError, match="damaged"):
        check_integrity(tmp_path)


def test_readyz_stays_503_with_the_reason_and_no_path(damaged_index: Path, tmp_path: Path) -> None:
    settings = load_settings(env={"POSHUK_HOME": str(tmp_path / "home")})
    with TestClient(create_app(settings, damaged_index, encoder=HashEncoder())) as client:
        assert ServiceState.of(client.app.state).wait(10)
        ready = client.get("/readyz")
        search = client.post("/v1/search", json={"query": "Київ", "mode": "dense"})
    for response in (ready, search):
        body = assert_problem(response, 503, "not-ready")
        assert "damaged" in body["detail"] and str(tmp_path) not in response.text
