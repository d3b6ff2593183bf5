"""The integrity check at start: a damaged SQLite page keeps ``/readyz`` at 503 with the reason."""

from __future__ import annotations

from pathlib import Path

import pytest
from litestar.testing import TestClient

from poshuk.encoder import HashEncoder
from poshuk.errors import IndexCorruptError
from poshuk.index import live_version
from poshuk.integrity import check_integrity
from poshuk.search import Searcher
from poshuk.settings import load_settings
from service.app import create_app
from tests.support.api import assert_problem
from tests.support.app import build_service_index as _build_index
from tests.support.app import service_state
from tests.support.hostile import damage


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
        assert service_state(client.app).wait(10)
        ready = client.get("/readyz")
        search = client.post("/v1/search", json={"query": "Київ", "mode": "dense"})
    for response in (ready, search):
        body = assert_problem(response, 503, "not-ready")
        assert "damaged" in body["detail"] and str(tmp_path) not in response.text
