"""``poshuk serve --read-only`` as a real process over a ``chmod -R a-w`` copy of the example index.

What a read-only mount (``docker/compose.yaml``) gives the service: it must start, answer
reads, refuse writes with 405 problem+json, stop cleanly, and leave every file as it was.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.support.api import assert_problem
from tests.support.folders import listing, make_read_only, make_writable
from tests.support.repo import copy_index
from tests.support.serving import start_server, stop_server

pytestmark = [pytest.mark.e2e, pytest.mark.model]


def test_serve_read_only_over_a_read_only_folder(example_index_source: Path, tmp_path: Path) -> None:
    index = copy_index(example_index_source, tmp_path / "index")
    make_read_only(index)
    try:
        before = listing(index)
        server = start_server(index, tmp_path / "server.log", args=["--read-only"])
        try:
            with httpx.Client(base_url=server.base_url, timeout=60.0) as http:
                ready = http.get("/readyz").json()
                assert ready["read_only"] is True and ready["documents"] >= 30
                hits = http.post("/v1/search", json={"query": "візит Шойгу до Північної Кореї", "k": 3}).json()
                assert hits["hits"][0]["doc_id"] == "uk-001"
                assert http.get("/v1/documents/uk-001").status_code == 200
                refused = http.put("/v1/documents/uk-001", json={"title": "x", "text": "y"})
                assert_problem(refused, 405, "read-only")
                assert refused.headers["allow"] == "GET, OPTIONS"
                assert_problem(http.delete("/v1/documents/uk-001"), 405, "read-only")
                assert http.get("/metrics").status_code == 200
        finally:
            stop_server(server)
        assert "Traceback" not in server.output()
        assert listing(index) == before  # no -wal/-shm, no snapshot on shutdown, nothing touched
    finally:
        make_writable(index)
