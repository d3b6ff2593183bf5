"""Hostile request bodies through the app (TestClient, HashEncoder): each is a 4xx problem, never a 500."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from poshuk.encoder import HashEncoder
from poshuk.errors import StorageFullError
from poshuk.index import Index
from poshuk.settings import load_settings
from service.app import create_app
from service.bodies import MAX_JSON_DEPTH, json_too_deep
from service.errors import redact_paths
from tests.support.api import assert_problem
from tests.support.app import ARTICLE, AUTH, make_settings, service_state
from tests.support.app import build_service_index as _build_index


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient[Litestar]]:
    """The app over a small HashEncoder index, with a write key (``AUTH``)."""
    folder = tmp_path / "index"
    _build_index(folder, HashEncoder())
    with TestClient(create_app(make_settings(tmp_path), folder, encoder=HashEncoder())) as test_client:
        assert service_state(test_client.app).wait(10)
        yield test_client


JSON = "application/json"
DEEP = b"[" * 1000 + b"]" * 1000


@pytest.mark.parametrize(
    ("body", "deep"),
    [
        (b"[" * MAX_JSON_DEPTH + b"]" * MAX_JSON_DEPTH, False),
        (b"[" * (MAX_JSON_DEPTH + 1) + b"]" * (MAX_JSON_DEPTH + 1), True),
        (b'{"a": "' + b"[" * 5000 + b'"}', False),  # brackets in a string
        (b'{"a": "\\"' + b"[" * 5000 + b'"}', False),  # after an escaped quote, still in the string
        (b'{"a": "\\\\"' + b", " + b"[" * 40, True),  # an escaped backslash ends the string
        (b'{"a": "unterminated\n' + b"[" * 40, True),  # NDJSON: a line's broken string does not hide the next
        (b"[]" * 10_000, False),  # many siblings, shallow
    ],
)
def test_json_depth_scan(body: bytes, deep: bool) -> None:
    assert json_too_deep(body) is deep


def test_deep_json_is_400_on_put_batch_and_ndjson_and_logs_no_traceback(
    client: TestClient[Litestar], caplog: pytest.LogCaptureFixture
) -> None:
    put_body = b'{"title": "t", "text": "x", "tags": ' + DEEP + b"}"
    with caplog.at_level(logging.INFO):
        answers = [
            client.put("/v1/documents/deep", content=put_body, headers={**AUTH, "content-type": "application/json"}),
            client.post(
                "/v1/documents", content=b"[" + DEEP + b"]", headers={**AUTH, "content-type": "application/json"}
            ),
            client.post(
                "/v1/documents",
                content=b'{"id": "a", "text": "x"}\n{"id": "b", "text": ' + DEEP + b"}\n",
                headers={**AUTH, "content-type": "application/x-ndjson"},
            ),
            client.post("/v1/search", content=b'{"query": "x", "filters": ' + DEEP + b"}"),
        ]
    for response in answers:
        body = assert_problem(response, 400, "invalid-request")
        assert f"more than {MAX_JSON_DEPTH} levels deep" in body["detail"]
    assert not [r for r in caplog.records if r.exc_info], "a refused body left a traceback in the log"


# --- faults: a full disk, a path in a 5xx detail ------------------------------------------------


def test_a_full_disk_is_507_problem_json_without_a_traceback(
    client: TestClient[Litestar], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    def full(*_args: object, **_kwargs: object) -> None:
        raise StorageFullError(f"database or disk is full while writing {tmp_path}/index/v000001/meta.sqlite")

    monkeypatch.setattr(Index, "write", full)  # the boundary: SQLite saying SQLITE_FULL
    with caplog.at_level(logging.INFO):
        response = client.put("/v1/documents/full", json=ARTICLE, headers=AUTH)
    body = assert_problem(response, 507, "storage-full")
    assert "disk is full" in body["detail"] and str(tmp_path) not in response.text
    assert not [r for r in caplog.records if r.exc_info]
    assert any("storage full" in r.getMessage() for r in caplog.records)  # the cause, with its path, is logged


def test_503_details_never_name_the_server_path(tmp_path: Path) -> None:
    missing = tmp_path / "srv" / "no-index-here"
    settings = load_settings(env={"POSHUK_HOME": str(tmp_path / "home")})
    with TestClient(create_app(settings, missing, encoder=HashEncoder())) as test_client:
        assert service_state(test_client.app).wait(10)
        answers = [test_client.get("/readyz"), test_client.get("/v1/search", params={"q": "x"})]
    for response in answers:
        body = assert_problem(response, 503, "not-ready")
        assert str(tmp_path) not in response.text and "srv" not in body["detail"], body["detail"]
        assert "failed to load" in body["detail"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "no index at /srv/poshuk/index (hint: run poshuk index)",
            "no index at <server path> (hint: run poshuk index)",
        ),
        ("cannot read '/a/b/meta.sqlite': malformed", "cannot read '<server path>': malformed"),
        ("model in ~/.cache/poshuk/models is missing", "model in <server path> is missing"),
        ("3/4 of the index", "3/4 of the index"),
    ],
)
def test_redact_paths(text: str, expected: str) -> None:
    assert redact_paths(text) == expected


# --- dates at the ends of the calendar --------------------------------------------------------

EARLIEST, LATEST = "0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"


@pytest.mark.parametrize("value", [EARLIEST, LATEST])
def test_a_published_at_that_overflows_in_utc_is_400_on_put_and_batch(client: TestClient[Litestar], value: str) -> None:
    put = client.put("/v1/documents/dated", json={**ARTICLE, "published_at": value}, headers=AUTH)
    assert "out of range" in assert_problem(put, 400, "invalid-input")["detail"]
    batch = client.post("/v1/documents", json=[{**ARTICLE, "id": "b", "published_at": value}], headers=AUTH)
    assert "out of range" in assert_problem(batch, 400, "invalid-input")["detail"]


def test_filters_at_the_ends_of_the_calendar_answer_and_mean_what_they_say(client: TestClient[Litestar]) -> None:
    def count(**filters: str) -> int:
        response = client.post("/v1/search", json={"query": "новини", "k": 100, "filters": filters})
        assert response.status_code == 200, response.text
        return len(response.json()["hits"])

    every_dated = count(published_from="1900-01-01")
    assert every_dated > 0
    assert count(published_from=EARLIEST) == every_dated
    assert count(published_to=LATEST) == every_dated
    assert count(published_to=EARLIEST) == 0
    assert count(published_from=LATEST) == 0
    assert count(published_from="0001-01-01", published_to="9999-12-31") == every_dated
    for bound in (EARLIEST, LATEST):
        assert client.get("/v1/search", params={"q": "новини", "from": bound, "to": bound}).status_code == 200
