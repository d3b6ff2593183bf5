"""schemathesis against the service's own OpenAPI: no generated request gets a 5xx.

Requests valid by the schema (positive) and invalid ones (negative) are generated for
every operation and sent, with a valid key, to the in-process app (HashEncoder, keys
configured, rate limit off). Every answer must be below 500, and every error a
problem+json body. Writes really happen; the index must be whole afterwards.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from litestar import Litestar
from litestar.testing import TestClient
from schemathesis import GenerationMode

from poshuk.encoder import HashEncoder
from service.app import create_app
from tests.support.app import AUTH, build_service_index, make_settings, service_state
from tests.support.consistency import check_index

OPERATIONS = [
    ("GET", "/v1/search"),
    ("POST", "/v1/search"),
    ("GET", "/v1/search.atom"),
    ("GET", "/v1/similar/{doc_id}"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/v1/documents/{doc_id}"),
    ("PUT", "/v1/documents/{doc_id}"),
    ("DELETE", "/v1/documents/{doc_id}"),
    ("POST", "/v1/documents"),
    ("POST", "/v1/admin/reload"),
    ("POST", "/v1/alerts"),
    ("GET", "/v1/alerts"),
    ("GET", "/v1/alerts/{alert_id}"),
    ("DELETE", "/v1/alerts/{alert_id}"),
    ("GET", "/v1/alerts/{alert_id}/matches"),
    ("GET", "/v1/alerts/{alert_id}/feed.atom"),
]
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "30"))
NO_INVALID_FORM = {  # nothing to break
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/v1/documents/{doc_id}"),
    ("GET", "/v1/alerts"),
    ("GET", "/v1/alerts/{alert_id}"),
    ("DELETE", "/v1/alerts/{alert_id}"),
}
CASES = [(m, p, GenerationMode.POSITIVE) for m, p in OPERATIONS] + [
    (m, p, GenerationMode.NEGATIVE) for m, p in OPERATIONS if (m, p) not in NO_INVALID_FORM
]


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient[Litestar], Any, Path]]:
    folder = tmp_path_factory.mktemp("fuzz")
    index_dir = folder / "index"
    build_service_index(index_dir, HashEncoder())
    # Generated webhook hosts are not resolved (no DNS lookups of random names): the targets' own
    # rules have their tests (test_alerts, test_alert_api).
    settings = make_settings(folder, service_rate_limit_per_second="0", alerts_allow_private_webhooks="true")
    app = create_app(settings, index_dir, encoder=HashEncoder())
    with TestClient(app) as client:
        assert service_state(app).wait(10)
        schema = schemathesis.openapi.from_dict(client.get("/schema/openapi.json").json())
        yield client, schema, index_dir
    check_index(index_dir)


def test_the_schema_lists_every_operation(service: tuple[TestClient[Litestar], Any, Path]) -> None:
    _, schema, _ = service
    found = {(r.ok().method.upper(), r.ok().path) for r in schema.get_all_operations()}
    assert found == set(OPERATIONS)


def _send(client: TestClient[Litestar], case: Any) -> Any:
    kwargs = case.as_transport_kwargs(base_url="http://testserver.local", headers=AUTH)
    request: dict[str, Any] = {
        "method": kwargs["method"],
        "url": kwargs["url"].removeprefix("http://testserver.local"),
        "params": kwargs.get("params"),
        "headers": {k: str(v) for k, v in (kwargs.get("headers") or {}).items()},
    }
    if "json" in kwargs:
        request["json"] = kwargs["json"]
    elif kwargs.get("data") is not None:
        data = kwargs["data"]
        request["content"] = data if isinstance(data, bytes) else str(data).encode()
    return client.request(**request)


@pytest.mark.parametrize(("method", "path", "mode"), CASES, ids=[f"{m} {p} {g.value}" for m, p, g in CASES])
def test_no_generated_request_gets_a_server_error(
    service: tuple[TestClient[Litestar], Any, Path], method: str, path: str, mode: GenerationMode
) -> None:
    client, schema, _ = service
    operation = schema[path][method]

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),  # the generator's speed is not under test, the server is
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def check(case: Any) -> None:
        response = _send(client, case)
        assert response.status_code < 500, f"{case.as_curl_command()}\n-> {response.status_code} {response.text}"
        if response.status_code >= 400:
            assert response.headers["content-type"].startswith("application/problem+json"), response.text

    check()
