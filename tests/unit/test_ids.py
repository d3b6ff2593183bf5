"""Ids are normalised identically on every route, and ids containing ``/`` work everywhere (TestClient)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from poshuk.documents import normalise_id
from poshuk.encoder import HashEncoder
from service.app import create_app
from tests.support.api import assert_problem
from tests.support.app import ARTICLE, AUTH, make_settings, service_state
from tests.support.app import build_service_index as _build_index


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient[Litestar]]:
    folder = tmp_path / "index"
    _build_index(folder, HashEncoder())
    with TestClient(create_app(make_settings(tmp_path), folder, encoder=HashEncoder())) as test_client:
        assert service_state(test_client.app).wait(10)
        yield test_client


def _put(client: TestClient[Litestar], path: str, **fields: Any) -> Any:
    return client.put(f"/v1/documents/{path}", json={**ARTICLE, **fields}, headers=AUTH)


def test_normalise_id() -> None:
    assert normalise_id("e\u0301") == "é"
    assert normalise_id(" rt-norm\u200b ") == "rt-norm"
    assert normalise_id("a\r\nb\u202e") == "a b"


def test_an_invisible_character_does_not_make_a_new_id(client: TestClient[Litestar]) -> None:
    assert _put(client, "rt-norm").status_code == 201
    again = _put(client, "rt-norm%E2%80%8B", title="Оновлено")
    assert again.status_code == 200, again.text  # it replaced rt-norm: say so
    assert again.json()["ids"] == ["rt-norm"]
    assert client.get("/v1/documents/rt-norm%E2%80%8B").json()["title"] == "Оновлено"


def test_decomposed_and_composed_ids_name_the_same_article(client: TestClient[Litestar]) -> None:
    assert _put(client, "e%CC%81").status_code == 201
    for path in ("e%CC%81", "%C3%A9"):
        response = client.get(f"/v1/documents/{path}")
        assert response.status_code == 200, response.text
        assert response.json()["id"] == "é"
    assert client.get("/v1/similar/e%CC%81").status_code == 200
    assert client.delete("/v1/documents/e%CC%81", headers=AUTH).status_code == 200
    assert_problem(client.get("/v1/documents/%C3%A9"), 404, "not-found")


def test_body_id_is_compared_after_normalising(client: TestClient[Litestar]) -> None:
    assert _put(client, "e%CC%81", id="é").status_code == 201
    assert_problem(_put(client, "e%CC%81", id="other"), 409, "id-mismatch")


@pytest.mark.parametrize("path", ["world/2023/kirby", "world%2F2023%2Fkirby"])
def test_ids_with_slashes_can_be_written_read_found_similar_and_deleted(
    client: TestClient[Litestar], path: str
) -> None:
    assert _put(client, path).status_code == 201
    got = client.get(f"/v1/documents/{path}")
    assert got.status_code == 200 and got.json()["id"] == "world/2023/kirby"
    similar = client.get(f"/v1/similar/{path}", params={"k": 3})
    assert similar.status_code == 200 and similar.json()["query"] == "similar:world/2023/kirby"
    older = client.get(f"/v1/documents/{path}/similar", params={"k": 3})  # the older form still answers
    assert older.status_code == 200 and older.json()["mode"] == "dense"
    assert client.delete(f"/v1/documents/{path}", headers=AUTH).status_code == 200
    assert_problem(client.get(f"/v1/documents/{path}"), 404, "not-found")


def test_an_id_ending_in_similar_is_its_own_article_not_another_articles_similar_list(
    client: TestClient[Litestar],
) -> None:
    assert _put(client, "base").status_code == 201
    batch = client.post("/v1/documents", json=[{**ARTICLE, "id": "base/similar", "title": "Сам"}], headers=AUTH)
    assert batch.status_code == 200, batch.text
    document = client.get("/v1/documents/base/similar")
    assert document.status_code == 200 and document.json()["id"] == "base/similar"
    similar = client.get("/v1/similar/base")
    assert similar.status_code == 200 and similar.json()["query"] == "similar:base"


@pytest.mark.parametrize("path", ["%E2%80%8B", "%E2%80%AE%20"])
def test_an_id_of_nothing_but_invisible_characters_is_400(client: TestClient[Litestar], path: str) -> None:
    for response in (
        client.get(f"/v1/documents/{path}"),
        _put(client, path),
        client.delete(f"/v1/documents/{path}", headers=AUTH),
        client.get(f"/v1/similar/{path}"),
    ):
        assert "empty" in assert_problem(response, 400, "invalid-input")["detail"]


def test_an_encoded_slash_before_similar_is_part_of_the_id(client: TestClient[Litestar]) -> None:
    assert _put(client, "base").status_code == 201
    assert_problem(client.get("/v1/documents/base%2Fsimilar"), 404, "not-found")  # as poshuk.Client sends it
    assert client.get("/v1/documents/base/similar").json()["query"] == "similar:base"  # the older form
