"""A damaged SQLite page: the real server stays alive, ``/readyz`` says 503 and why, and no path leaks."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from poshuk.index import live_version
from tests.support.api import assert_problem
from tests.support.hostile import damage, serving

pytestmark = [pytest.mark.e2e, pytest.mark.model]


def test_a_damaged_database_keeps_readyz_at_503_with_the_reason(
    example_index_source: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    def break_a_page(index: Path) -> None:
        damage(live_version(index) / "meta.sqlite", "passages_doc")

    with serving(example_index_source, tmp_path_factory, damage=break_a_page) as server:
        index_dir = str(Path(server.log).parent)
        with httpx.Client(base_url=server.base_url, timeout=30) as client:
            deadline = time.monotonic() + 120
            while (ready := client.get("/readyz")).status_code == 503 and "loading" in ready.json()["detail"]:
                assert time.monotonic() < deadline, "the index never finished loading"
                time.sleep(0.25)
            body = assert_problem(ready, 503, "not-ready")
            assert "damaged" in body["detail"], body
            assert index_dir not in ready.text and "/tmp" not in ready.text
            for mode in ("dense", "hybrid"):
                search = client.post("/v1/search", json={"query": "Північна Корея", "mode": mode})
                assert_problem(search, 503, "not-ready")
            assert client.get("/healthz").status_code == 200
    assert "Traceback" not in server.output()
