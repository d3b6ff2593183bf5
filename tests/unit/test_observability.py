"""``/metrics``, request ids, JSON access logs, ``service.log_queries`` and ``poshuk stats``."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest
from litestar import Litestar
from litestar.testing import TestClient

from poshuk.encoder import HashEncoder
from poshuk.settings import Settings, load_settings
from poshuk_cli.main import main
from service.app import create_app
from service.auth import new_key
from service.logging_setup import JsonFormatter, log_config
from tests.support.app import service_state
from tests.support.news import NEWS, build_news_index

KEY, KEY_HASH = new_key()
QUERY = "Кірбі переговори Росії та Північної Кореї"


@pytest.fixture(scope="module")
def news_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_news_index(tmp_path_factory.mktemp("obs") / "index", HashEncoder())


def _settings(tmp_path: Path, **env: str) -> Settings:
    return load_settings(
        env={"POSHUK_HOME": str(tmp_path / "home"), **{f"POSHUK_{k.upper()}": v for k, v in env.items()}}
    )


def _client(settings: Settings, index_dir: Path) -> Iterator[TestClient[Litestar]]:
    app = create_app(settings, index_dir, encoder=HashEncoder())
    with TestClient(app) as client:
        assert service_state(app).wait(10)
        yield client


@pytest.fixture
def client(tmp_path: Path, news_dir: Path) -> Iterator[TestClient[Litestar]]:
    yield from _client(_settings(tmp_path), news_dir)


def _sample(text: str, name: str, **labels: str) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    raise AssertionError(f"no sample {name} {labels} in:\n{text}")


def test_metrics_count_requests_searches_and_index_size(client: TestClient[Litestar]) -> None:
    assert client.post("/v1/search", json={"query": QUERY, "k": 3}).status_code == 200
    assert client.get("/v1/search", params={"q": QUERY, "mode": "lexical"}).status_code == 200
    assert client.post("/v1/search", json={"query": " ", "k": 3}).status_code == 400
    scraped = client.get("/metrics")
    assert scraped.status_code == 200
    assert scraped.headers["content-type"].startswith("text/plain")
    text = scraped.text
    assert _sample(text, "poshuk_http_requests_total", route="/v1/search", method="POST", status="200") == 1
    assert _sample(text, "poshuk_http_requests_total", route="/v1/search", method="POST", status="400") == 1
    assert _sample(text, "poshuk_http_request_duration_seconds_count", route="/v1/search") == 3
    assert _sample(text, "poshuk_search_seconds_count", mode="hybrid") == 1
    assert _sample(text, "poshuk_search_seconds_count", mode="lexical") == 1
    assert _sample(text, "poshuk_index_documents") == len(NEWS)
    assert _sample(text, "poshuk_index_passages") >= len(NEWS)


def test_metrics_count_writes_and_need_no_rate_budget(tmp_path: Path, news_dir: Path) -> None:
    index_dir = tmp_path / "copy"
    build_news_index(index_dir, HashEncoder())
    settings = _settings(tmp_path, auth_keys=KEY_HASH, auth_read_requires_key="true", service_rate_limit_burst="2")
    for client in _client(settings, index_dir):
        auth = {"Authorization": f"Bearer {KEY}"}
        article = {"title": "Бюджет", "text": "Міська рада ухвалила бюджет на наступний рік."}
        assert client.put("/v1/documents/new-1", json=article, headers=auth).status_code == 201
        assert client.delete("/v1/documents/new-1", headers=auth).status_code == 200
        for _ in range(5):  # past the burst: /metrics is never limited
            assert client.get("/metrics", headers=auth).status_code == 200
        assert client.get("/metrics").status_code == 401  # reads need a key here, and counts are reads (issue 13)
        text = client.get("/metrics", headers=auth).text
        assert _sample(text, "poshuk_writes_total", op="upsert") == 1
        assert _sample(text, "poshuk_writes_total", op="delete") == 1


def test_refusals_of_the_limits_are_counted_and_logged_with_their_own_status(
    tmp_path: Path, news_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The rate limit answers 429 from a middleware; /metrics and the access log said 500."""
    settings = _settings(tmp_path, service_rate_limit_burst="1", service_rate_limit_per_second="0.001")
    caplog.set_level(logging.INFO, logger="poshuk.access")
    for client in _client(settings, news_dir):
        statuses = [client.get("/v1/search", params={"q": "бюджет"}).status_code for _ in range(3)]
        assert statuses == [200, 429, 429]
        text = client.get("/metrics").text
        assert _sample(text, "poshuk_http_requests_total", route="/v1/search", method="GET", status="429") == 2
        assert "500" not in {str(getattr(r, "status", "")) for r in caplog.records}


def test_request_id_is_echoed_or_made(client: TestClient[Litestar]) -> None:
    given = client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert given.headers["x-request-id"] == "abc-123"
    made = client.get("/healthz").headers["x-request-id"]
    assert len(made) == 32
    assert client.get("/healthz", headers={"X-Request-ID": "bad id\x7f"}).headers["x-request-id"] != "bad id\x7f"
    problem = client.get("/v1/documents/nope", headers={"X-Request-ID": "r-404"})
    assert problem.status_code == 404 and problem.headers["x-request-id"] == "r-404"


def _json_lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, object]]:
    formatter = JsonFormatter()
    return [json.loads(formatter.format(record)) for record in caplog.records]


def test_access_log_is_one_json_object_per_request_without_the_query(
    client: TestClient[Litestar], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger="poshuk"):
        client.get("/v1/search", params={"q": QUERY}, headers={"X-Request-ID": "req-1"})
    lines = _json_lines(caplog)
    access = [line for line in lines if line["logger"] == "poshuk.access"]
    assert len(access) == 1
    entry = access[0]
    assert entry["request_id"] == "req-1"
    assert entry["method"] == "GET"
    assert entry["route"] == "/v1/search"
    assert entry["status"] == 200
    assert isinstance(entry["duration_ms"], float)
    assert "Кірбі" not in caplog.text and "%D0" not in caplog.text  # no query text, raw or URL-encoded
    for line in lines:
        assert "\n" not in json.dumps(line, ensure_ascii=False)


def test_log_queries_logs_the_query_at_info(tmp_path: Path, news_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    for client in _client(_settings(tmp_path, service_log_queries="true"), news_dir):
        with caplog.at_level(logging.INFO, logger="poshuk"):
            client.post("/v1/search", json={"query": QUERY, "k": 2})
    logged = [r for r in caplog.records if getattr(r, "query", None) == QUERY]
    assert logged and logged[0].levelno == logging.INFO


def test_log_config_formats_uvicorn_and_poshuk_as_json() -> None:
    config = log_config("info")
    assert config["loggers"]["poshuk"]["handlers"] == ["json"]
    assert config["loggers"]["uvicorn"]["handlers"] == ["json"]
    record = logging.LogRecord("poshuk.x", logging.ERROR, __file__, 1, "boom %s", ("x",), None)
    record.request_id = "r1"
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "boom x" and line["level"] == "error" and line["request_id"] == "r1"


class _Report(msgspec.Struct):
    version: str
    model: str
    backend: str
    dimension: int
    documents: int
    passages: int
    languages: dict[str, int]
    disk_bytes: int
    kept_versions: list[str]


def test_stats_reports_the_index(news_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["stats", "--index", str(news_dir), "--json"]) == 0
    report = msgspec.json.decode(capsys.readouterr().out, type=_Report)
    identity = HashEncoder().identity
    assert report.model == identity.name and report.backend == identity.backend
    assert report.dimension == identity.dimension
    assert report.documents == len(NEWS)
    assert report.passages >= len(NEWS)
    expected: dict[str, int] = {}
    for article, _ in NEWS:
        expected[article.lang or "?"] = expected.get(article.lang or "?", 0) + 1
    assert report.languages == expected
    assert report.disk_bytes > 0
    assert report.version in report.kept_versions
    assert main(["stats", "--index", str(news_dir)]) == 0
    text = capsys.readouterr().out
    assert f"documents   {len(NEWS)}" in text and f"languages   {len(expected)}" in text


def test_stats_on_a_missing_index_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["stats", "--index", str(tmp_path / "none")]) == 1
    assert capsys.readouterr().err.startswith("poshuk: error: ")
