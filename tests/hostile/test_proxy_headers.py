"""A rotating ``X-Forwarded-For`` cannot dodge the rate limit unless the proxy is trusted by name."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.support.api import assert_problem
from tests.support.hostile import serving

pytestmark = [pytest.mark.e2e, pytest.mark.model]

LIMITS = {"rate_limit_per_second": "0.5", "rate_limit_burst": "5"}


def _statuses(base_url: str, count: int) -> list[httpx.Response]:
    with httpx.Client(base_url=base_url, timeout=30) as client:
        return [client.get("/v1/documents/uk-001", headers={"X-Forwarded-For": f"203.0.113.{n}"}) for n in range(count)]


def test_forwarded_for_from_loopback_is_ignored_by_default(
    example_index_source: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    with serving(example_index_source, tmp_path_factory, LIMITS) as server:
        answers = _statuses(server.base_url, 12)
    codes = [a.status_code for a in answers]
    assert codes[:5] == [200] * 5
    assert 429 in codes, codes
    assert_problem(next(a for a in answers if a.status_code == 429), 429, "rate-limited")


def test_a_named_trusted_proxy_is_believed(
    example_index_source: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    with serving(example_index_source, tmp_path_factory, {**LIMITS, "trusted_proxies": "127.0.0.1"}) as server:
        codes = [a.status_code for a in _statuses(server.base_url, 12)]
    assert codes == [200] * 12  # each forwarded client has a bucket of its own
