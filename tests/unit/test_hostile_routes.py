"""Route edges: HEAD /, Allow headers, /metrics behind read_requires_key, a schema that says what is refused."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from poshuk.encoder import HashEncoder
from service.app import create_app
from tests.support.api import assert_problem
from tests.support.app import AUTH, make_settings, service_state
from tests.support.app import build_service_index as _build_index


def _client(tmp_path: Path, **env: str) -> TestClient[Litestar]:
    folder = tmp_path / "index"
    if not folder.exists():
        _build_index(folder, HashEncoder())
    return TestClient(create_app(make_settings(tmp_path, **env), folder, encoder=HashEncoder()))


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient[Litestar]]:
    with _client(tmp_path) as test_client:
        assert service_state(test_client.app).wait(10)
        yield test_client


def test_head_of_the_page_is_200_without_a_body(client: TestClient[Litestar]) -> None:
    got, head = client.get("/"), client.head("/")
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-type"] == got.headers["content-type"]
    assert head.headers["content-security-policy"] == got.headers["content-security-policy"]
    assert int(head.headers["content-length"]) == len(got.content)


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("POST", "/v1/documents/uk-001", {"GET", "PUT", "DELETE"}),
        ("PATCH", "/v1/documents/a/b", {"GET", "PUT", "DELETE"}),
        ("DELETE", "/v1/search", {"GET", "POST"}),
        ("GET", "/v1/documents", {"POST"}),
    ],
)
def test_405_lists_every_method_of_the_path(
    client: TestClient[Litestar], method: str, path: str, allowed: set[str]
) -> None:
    response = client.request(method, path)
    assert_problem(response, 405, "about:blank")
    assert allowed <= {m.strip() for m in response.headers["allow"].split(",")}


def test_metrics_needs_a_key_when_reads_do(tmp_path: Path) -> None:
    with _client(tmp_path, auth_read_requires_key="true") as client:
        assert service_state(client.app).wait(10)
        assert_problem(client.get("/metrics"), 401, "unauthorized")
        assert client.get("/metrics", headers=AUTH).status_code == 200
        assert client.get("/healthz").status_code == 200  # probes stay open


def test_metrics_is_open_when_reads_are(client: TestClient[Litestar]) -> None:
    assert client.get("/metrics").status_code == 200


def test_the_schema_says_unknown_fields_are_refused_and_batch_items_need_an_id(client: TestClient[Litestar]) -> None:
    schema = client.get("/schema/openapi.json").json()
    components = schema["components"]["schemas"]
    for name in ("SearchRequest", "FiltersIn", "ArticleIn"):
        assert components[name]["additionalProperties"] is False, name
    batch = schema["paths"]["/v1/documents"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert {"required": ["id"]} in batch["items"]["allOf"]
    assert client.post("/v1/search", json={"query": "x", "top_k": 3}).status_code == 400  # as the schema says


def test_unmatched_routes_and_405s_are_counted_logged_and_rate_limited(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with _client(tmp_path, service_rate_limit_per_second="0.01", service_rate_limit_burst="5") as client:
        assert service_state(client.app).wait(10)
        with caplog.at_level(logging.INFO, logger="poshuk.access"):
            answers = [client.get(f"/v1/nothing-{n}") for n in range(4)]
            answers += [client.request("BREW", "/v1/search"), client.delete("/v1/search")]
        statuses = [a.status_code for a in answers]
        assert statuses[:4] == [404] * 4 and statuses[4] == 405
        assert_problem(answers[5], 429, "rate-limited")  # the sixth: the burst of 5 is spent
        metrics = client.get("/metrics").text
        assert 'route="unmatched",status="404"' in metrics.replace('method="GET",', "")
        assert 'method="other",route="unmatched"' in metrics  # made-up methods do not grow the label set
        assert "BREW" not in metrics
    unmatched = [r for r in caplog.records if getattr(r, "route", None) == "unmatched"]
    assert len(unmatched) == 6
