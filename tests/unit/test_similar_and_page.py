"""``/v1/documents/{id}/similar`` and the web page at ``/``, through Litestar's TestClient (HashEncoder)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from poshuk.encoder import HashEncoder
from poshuk.settings import Settings
from service.app import create_app
from service.routes.page import ASSETS, STATIC_DIR
from tests.support.api import HIT_FIELDS, RESULT_FIELDS, assert_problem
from tests.support.app import service_state
from tests.support.news import NEWS_BY_ID, build_news_index


@pytest.fixture(scope="module")
def news_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_news_index(tmp_path_factory.mktemp("news") / "index", HashEncoder())


@pytest.fixture
def client(settings: Settings, news_dir: Path) -> Iterator[TestClient[Litestar]]:
    app = create_app(settings, news_dir, encoder=HashEncoder())
    with TestClient(app) as test_client:
        assert service_state(app).wait(10), "the index never finished loading"
        yield test_client


# --- similar -----------------------------------------------------------------------------------


def test_similar_lists_other_articles_once_each_in_the_search_shape(client: TestClient[Litestar]) -> None:
    response = client.get("/v1/documents/uk-war-1/similar", params={"k": 3})
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == RESULT_FIELDS
    assert body["query"] == "similar:uk-war-1"
    assert body["mode"] == "dense"
    hits = body["hits"]
    assert 1 <= len(hits) <= 3
    assert all(set(h) == HIT_FIELDS for h in hits)
    ids = [h["doc_id"] for h in hits]
    assert "uk-war-1" not in ids
    assert len(set(ids)) == len(ids)
    assert [h["rank"] for h in hits] == list(range(1, len(hits) + 1))
    scores = [h["score"] for h in hits]
    assert scores == sorted(scores, reverse=True)


def test_similar_k_defaults_to_ten(client: TestClient[Litestar]) -> None:
    hits = client.get("/v1/documents/uk-war-1/similar").json()["hits"]
    assert len(hits) == min(10, len(NEWS_BY_ID) - 1)


def test_similar_takes_the_search_filters(client: TestClient[Litestar]) -> None:
    hits = client.get("/v1/documents/uk-war-1/similar", params={"lang": "en"}).json()["hits"]
    assert hits and all(NEWS_BY_ID[h["doc_id"]].lang == "en" for h in hits)
    dated = client.get("/v1/documents/uk-war-1/similar", params={"from": "2023-09-01", "to": "2023-09-30"}).json()
    assert {h["doc_id"] for h in dated["hits"]} == {"uk-econ-1", "en-econ-1"}


def test_similar_for_an_unknown_document_is_404(client: TestClient[Litestar]) -> None:
    body = assert_problem(client.get("/v1/documents/no-such-doc/similar"), 404, "not-found")
    assert "no-such-doc" in body["detail"]


@pytest.mark.parametrize(
    ("k", "problem_type"), [("0", "invalid-query"), ("101", "invalid-query"), ("x", "invalid-request")]
)
def test_similar_k_out_of_range_is_400(client: TestClient[Litestar], k: str, problem_type: str) -> None:
    body = assert_problem(client.get("/v1/documents/uk-war-1/similar", params={"k": k}), 400, problem_type)
    assert "k" in body["detail"]


def test_similar_bad_dates_are_400(client: TestClient[Litestar]) -> None:
    response = client.get("/v1/documents/uk-war-1/similar", params={"from": "2023-09-30", "to": "2023-09-01"})
    assert "after" in assert_problem(response, 400, "invalid-query")["detail"]


def test_similar_is_in_the_openapi_schema(client: TestClient[Litestar]) -> None:
    paths = client.get("/schema").json()["paths"]
    operation = paths["/v1/similar/{doc_id}"]["get"]  # the older /v1/documents/{doc_id}/similar still answers
    assert operation["description"]
    assert {"404", "400"} <= set(operation["responses"])
    assert "/" not in paths and "/static/{name}" not in paths


# --- the page ----------------------------------------------------------------------------------


def test_page_is_served_with_a_strict_policy(client: TestClient[Litestar]) -> None:
    response = client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    policy = response.headers["content-security-policy"]
    assert "default-src 'self'" in policy and "script-src 'self'" in policy
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
    assert response.headers["x-content-type-options"] == "nosniff"
    html = response.text
    assert '<html lang="uk">' in html
    assert not re.search(r"<script(?![^>]*\bsrc=)", html), "no inline script"
    assert "<style" not in html and " style=" not in html and " on" + "click=" not in html
    for src in re.findall(r'(?:src|href)="([^"#]+)"', html):
        assert src.startswith("/"), f"{src} is not served by this origin"


@pytest.mark.parametrize("name", sorted(ASSETS))
def test_page_assets_are_served_with_their_types(client: TestClient[Litestar], name: str) -> None:
    response = client.get(f"/static/{name}")
    assert response.status_code == 200
    assert response.headers["content-type"].split(";")[0] == ASSETS[name]
    assert response.content == (STATIC_DIR / name).read_bytes()
    assert "content-security-policy" in response.headers


@pytest.mark.parametrize("path", ["/static/index.html", "/static/nothing.js", "/static/..%2Fapp.py"])
def test_only_the_pages_own_files_are_served(client: TestClient[Litestar], path: str) -> None:
    assert_problem(client.get(path), 404)


def test_every_page_file_is_packaged() -> None:
    names = {p.name for p in STATIC_DIR.iterdir()}
    assert names == {"index.html", *ASSETS}


def test_the_script_never_writes_html() -> None:
    script = (STATIC_DIR / "app.js").read_text(encoding="utf-8")
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
        assert sink not in script, sink
