"""What the service's unit and e2e tests share: the problem+json check and the bad requests.

Both run the same ``BAD_REQUESTS`` table: the unit tests through Litestar's TestClient,
the e2e test over real HTTP against ``poshuk serve``. Limits assume default settings
(max_query_chars 1000, max_k 100, max_body_bytes 65536).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx

from poshuk.settings import ServiceSettings

PROBLEM_BASE = "https://poshuk.dev/problems/"
DEFAULTS = ServiceSettings()

HIT_FIELDS = {
    "rank",
    "score",
    "passage_id",
    "doc_id",
    "title",
    "text",
    "url",
    "source",
    "published_at",
    "lang",
    "highlights",
    "highlight_kind",
    "other_matches",
    "cluster",
    "page",
    "other_pages",
}
RESULT_FIELDS = {"query", "took_ms", "model", "hits", "mode", "offset", "sort", "facets"}


def assert_problem(response: httpx.Response, status: int, problem_type: str | None = None) -> dict[str, Any]:
    """``response`` is an RFC 9457 problem of ``status`` (and of ``problem_type`` if given)."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].split(";")[0].strip() == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert {"type", "title", "status", "detail"} <= body.keys(), body
    assert body["status"] == status
    assert isinstance(body["title"], str) and body["title"]
    assert isinstance(body["detail"], str) and body["detail"]
    assert body["type"] == "about:blank" or body["type"].startswith(PROBLEM_BASE), body["type"]
    assert body.get("instance") == response.request.url.path
    assert "Traceback" not in response.text
    if problem_type is not None:
        expected = problem_type if problem_type == "about:blank" else PROBLEM_BASE + problem_type
        assert body["type"] == expected, body
    return body


@dataclass(frozen=True)
class BadRequest:
    """One request the service must refuse, and how."""

    name: str
    method: str
    path: str
    status: int
    problem_type: str
    detail: str = ""  # a fragment the problem's detail must contain (case-insensitive)
    json: Any = None
    content: bytes | None = None
    params: dict[str, str] = field(default_factory=dict)

    def send(self, client: httpx.Client) -> httpx.Response:
        headers = {"content-type": "application/json"} if self.content is not None else None
        return client.request(
            self.method,
            self.path,
            json=self.json,
            content=self.content,
            params=self.params or None,
            headers=headers,
        )

    def check(self, response: httpx.Response) -> dict[str, Any]:
        body = assert_problem(response, self.status, self.problem_type)
        assert self.detail.casefold() in body["detail"].casefold(), body
        return body


_TOO_BIG = b'{"query": "' + b"x" * DEFAULTS.max_body_bytes + b'"}'

BAD_REQUESTS: tuple[BadRequest, ...] = (
    BadRequest("empty query", "POST", "/v1/search", 400, "invalid-query", "query is empty", json={"query": ""}),
    BadRequest(
        "whitespace query",
        "POST",
        "/v1/search",
        400,
        "invalid-query",
        "query is empty",
        json={"query": " \t\n "},
    ),
    BadRequest("whitespace q", "GET", "/v1/search", 400, "invalid-query", "query is empty", params={"q": "   "}),
    BadRequest(
        "over-long query",
        "POST",
        "/v1/search",
        400,
        "invalid-query",
        str(DEFAULTS.max_query_chars),
        json={"query": "ш" * (DEFAULTS.max_query_chars + 1)},
    ),
    BadRequest(
        "over-long q",
        "GET",
        "/v1/search",
        400,
        "invalid-query",
        str(DEFAULTS.max_query_chars),
        params={"q": "a" * (DEFAULTS.max_query_chars + 1)},
    ),
    BadRequest("k=0", "POST", "/v1/search", 400, "invalid-query", "between 1 and", json={"query": "Київ", "k": 0}),
    BadRequest(
        "k=max+1",
        "POST",
        "/v1/search",
        400,
        "invalid-query",
        f"between 1 and {DEFAULTS.max_k}",
        json={"query": "Київ", "k": DEFAULTS.max_k + 1},
    ),
    BadRequest("k=-1 GET", "GET", "/v1/search", 400, "invalid-query", "between 1 and", params={"q": "x", "k": "-1"}),
    BadRequest("k not int", "POST", "/v1/search", 400, "invalid-request", "k", json={"query": "x", "k": "abc"}),
    BadRequest("k not int GET", "GET", "/v1/search", 400, "invalid-request", "k", params={"q": "x", "k": "abc"}),
    BadRequest("k float", "POST", "/v1/search", 400, "invalid-request", "k", json={"query": "x", "k": 2.5}),
    BadRequest("query not a string", "POST", "/v1/search", 400, "invalid-request", "query", json={"query": 42}),
    BadRequest("query null", "POST", "/v1/search", 400, "invalid-request", "query", json={"query": None}),
    BadRequest("missing query", "POST", "/v1/search", 400, "invalid-request", "query", json={}),
    BadRequest("missing q", "GET", "/v1/search", 400, "invalid-request", "q"),
    BadRequest(
        "unknown field",
        "POST",
        "/v1/search",
        400,
        "invalid-request",
        "top_k",
        json={"query": "x", "top_k": 3},
    ),
    BadRequest("body not an object", "POST", "/v1/search", 400, "invalid-request", json=["x"]),
    BadRequest("invalid JSON", "POST", "/v1/search", 400, "invalid-request", "JSON", content=b'{"query": '),
    BadRequest(
        "body too large",
        "POST",
        "/v1/search",
        413,
        "body-too-large",
        str(DEFAULTS.max_body_bytes),
        content=_TOO_BIG,
    ),
    BadRequest(
        "mode unknown", "POST", "/v1/search", 400, "invalid-request", "mode", json={"query": "x", "mode": "bm25"}
    ),
    BadRequest(
        "mode unknown GET", "GET", "/v1/search", 400, "invalid-request", "mode", params={"q": "x", "mode": "fts"}
    ),
    BadRequest("offset<0", "POST", "/v1/search", 400, "invalid-query", "offset", json={"query": "x", "offset": -1}),
    BadRequest("offset<0 GET", "GET", "/v1/search", 400, "invalid-query", "offset", params={"q": "x", "offset": "-3"}),
    BadRequest(
        "offset too large",
        "POST",
        "/v1/search",
        400,
        "invalid-query",
        "offset must be between 0 and 199",
        json={"query": "x", "offset": 200},
    ),
    BadRequest(
        "offset too large GET",
        "GET",
        "/v1/search",
        400,
        "invalid-query",
        "offset must be between 0 and 199",
        params={"q": "x", "offset": "1000"},
    ),
    BadRequest(
        "sort unknown", "POST", "/v1/search", 400, "invalid-request", "sort", json={"query": "x", "sort": "latest"}
    ),
    BadRequest(
        "sort unknown GET", "GET", "/v1/search", 400, "invalid-request", "sort", params={"q": "x", "sort": "new"}
    ),
    BadRequest(
        "facet unknown", "POST", "/v1/search", 400, "invalid-request", "facets", json={"query": "x", "facets": ["who"]}
    ),
    BadRequest(
        "facet repeated",
        "POST",
        "/v1/search",
        400,
        "invalid-query",
        "facets lists a facet twice",
        json={"query": "x", "facets": ["lang", "lang"]},
    ),
    BadRequest(
        "facet unknown GET", "GET", "/v1/search", 400, "invalid-request", "facet", params={"q": "x", "facet": "who"}
    ),
    BadRequest(
        "recency zero",
        "POST",
        "/v1/search",
        400,
        "invalid-query",
        "recency_half_life_days must be above 0",
        json={"query": "x", "recency_half_life_days": 0},
    ),
    BadRequest(
        "recency not a number GET",
        "GET",
        "/v1/search",
        400,
        "invalid-request",
        "recency_half_life_days",
        params={"q": "x", "recency_half_life_days": "soon"},
    ),
    BadRequest(
        "recency with a date order GET",
        "GET",
        "/v1/search",
        400,
        "invalid-query",
        "applies to sort=relevance only",
        params={"q": "x", "sort": "newest", "recency_half_life_days": "7"},
    ),
    BadRequest(
        "offset not int", "POST", "/v1/search", 400, "invalid-request", "offset", json={"query": "x", "offset": "two"}
    ),
    BadRequest(
        "collapse not bool GET",
        "GET",
        "/v1/search",
        400,
        "invalid-request",
        "collapse",
        params={"q": "x", "collapse": "sometimes"},
    ),
    BadRequest(
        "highlight not bool",
        "POST",
        "/v1/search",
        400,
        "invalid-request",
        "highlight",
        json={"query": "x", "highlight": "yes"},
    ),
    BadRequest(
        "from after to",
        "POST",
        "/v1/search",
        400,
        "invalid-query",
        "published_from (2023-09-01) is after published_to (2023-08-01)",
        json={"query": "x", "filters": {"published_from": "2023-09-01", "published_to": "2023-08-01"}},
    ),
    BadRequest(
        "from after to GET",
        "GET",
        "/v1/search",
        400,
        "invalid-query",
        "from (2023-09-01T00:00:00Z) is after to (2023-08-31)",
        params={"q": "x", "from": "2023-09-01T00:00:00Z", "to": "2023-08-31"},
    ),
    BadRequest(
        "malformed date",
        "POST",
        "/v1/search",
        400,
        "invalid-query",
        "published_to must be an ISO 8601 date",
        json={"query": "x", "filters": {"published_to": "31.08.2023"}},
    ),
    BadRequest(
        "impossible date GET",
        "GET",
        "/v1/search",
        400,
        "invalid-query",
        "from must be an ISO 8601 date",
        params={"q": "x", "from": "2023-02-30"},
    ),
    BadRequest(
        "date not a string",
        "POST",
        "/v1/search",
        400,
        "invalid-request",
        "filters.published_from",
        json={"query": "x", "filters": {"published_from": 20230801}},
    ),
    BadRequest(
        "unknown filter field",
        "POST",
        "/v1/search",
        400,
        "invalid-request",
        "langs",
        json={"query": "x", "filters": {"langs": ["uk"]}},
    ),
    BadRequest(
        "filter value not a list",
        "POST",
        "/v1/search",
        400,
        "invalid-request",
        "filters.lang",
        json={"query": "x", "filters": {"lang": "uk"}},
    ),
    BadRequest(
        "filters not an object",
        "POST",
        "/v1/search",
        400,
        "invalid-request",
        "filters",
        json={"query": "x", "filters": ["uk"]},
    ),
    # Strict types: a body's values are JSON values, never strings converted on the way (issue 13).
    BadRequest("k as a string", "POST", "/v1/search", 400, "invalid-request", "k", json={"query": "x", "k": "5"}),
    BadRequest(
        "dedupe as a string",
        "POST",
        "/v1/search",
        400,
        "invalid-request",
        "dedupe",
        json={"query": "x", "dedupe": "true"},
    ),
    BadRequest(
        "collapse as a string",
        "POST",
        "/v1/search",
        400,
        "invalid-request",
        "collapse",
        json={"query": "x", "collapse": "false"},
    ),
    BadRequest(
        "tags as a string inside filters",
        "POST",
        "/v1/search",
        400,
        "invalid-request",
        "filters.tags",
        json={"query": "x", "filters": {"tags": "a"}},
    ),
    # JSON nested deeper than the limit: refused before any decoder recurses (was 500 RecursionError).
    BadRequest(
        "1000-deep JSON",
        "POST",
        "/v1/search",
        400,
        "invalid-request",
        "levels deep",
        content=b'{"query": "x", "filters": ' + b"[" * 1000 + b"]" * 1000 + b"}",
    ),
    BadRequest(
        "1000-deep JSON in an unknown field",
        "POST",
        "/v1/search",
        400,
        "invalid-request",
        "levels deep",
        content=b'{"query": "x", "x": ' + b'{"a":' * 1000 + b"1" + b"}" * 1000 + b"}",
    ),
    BadRequest(
        "brackets inside strings are not nesting",
        "POST",
        "/v1/search",
        400,
        "invalid-query",
        "k must be between",
        content=b'{"query": "' + b"[{" * 500 + b'", "k": 0}',
    ),
    BadRequest("unknown route", "GET", "/v1/nothing-here", 404, "about:blank", "/v1/nothing-here"),
    BadRequest("unknown document", "GET", "/v1/documents/no-such-doc", 404, "not-found", "no-such-doc"),
    BadRequest("wrong method on search", "DELETE", "/v1/search", 405, "about:blank", "DELETE"),
    BadRequest("wrong method on documents", "POST", "/v1/documents/uk-001", 405, "about:blank", "POST"),
)
