"""``/v1/alerts`` through Litestar's TestClient with the HashEncoder: keys, owners, matches, feed, bounds."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import feedparser
import pytest
from litestar import Litestar
from litestar.testing import TestClient

from poshuk.encoder import HashEncoder
from service.alert_worker import AlertWorker
from service.app import ALERT_WORKER_KEY, create_app
from service.auth import new_key
from tests.support.api import assert_problem
from tests.support.app import AUTH, KEY_HASH, build_service_index, make_settings, service_state

OTHER_KEY, OTHER_HASH = new_key()
OTHER = {"X-API-Key": OTHER_KEY}
NEWS = {
    "title": "Дрони атакували порт Одеси",
    "text": "Уночі дрони атакували порт Одеси, пошкоджено склади зерна.",
    "lang": "uk",
    "source": "Приклад",
    "url": "https://example.com/drones",
}
UNRELATED = {"title": "Динамо виграло", "text": "Динамо виграло матч чемпіонату з рахунком два нуль.", "lang": "uk"}


def start(tmp_path: Path, **env: str) -> Iterator[TestClient[Litestar]]:
    index_dir = tmp_path / "index"
    if not index_dir.exists():
        build_service_index(index_dir, HashEncoder())
    settings = make_settings(tmp_path, auth_keys=f"{KEY_HASH},{OTHER_HASH}", alerts_threshold="0.5", **env)
    app = create_app(settings, index_dir, encoder=HashEncoder())
    with TestClient(app) as client:
        assert service_state(app).wait(10)
        yield client


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient[Litestar]]:
    yield from start(tmp_path)


def matched(client: TestClient[Litestar], alert_id: str) -> list[str]:
    """The alert's matched article ids, once the worker's matching pass has run (it runs every 0.5 s;
    this runs one pass itself first)."""
    worker = client.app.state[ALERT_WORKER_KEY]
    assert isinstance(worker, AlertWorker)
    worker.match_once()
    response = client.get(f"/v1/alerts/{alert_id}/matches")
    assert response.status_code == 200, response.text
    return [m["doc_id"] for m in response.json()["matches"]]


def test_an_alert_is_saved_with_a_key_and_matches_what_is_written_after_it(client: TestClient[Litestar]) -> None:
    answer = client.post("/v1/alerts", json={"query": "дрони атакували порт Одеси"}, headers=AUTH)
    assert answer.status_code == 201, answer.text
    alert = answer.json()
    assert alert["mode"] == "hybrid" and alert["threshold"] == 0.5 and alert["matches"] == 0
    assert matched(client, alert["id"]) == []
    for doc_id, body in (("drones", NEWS), ("football", UNRELATED)):
        assert client.put(f"/v1/documents/{doc_id}", json=body, headers=AUTH).status_code == 201
    assert matched(client, alert["id"]) == ["drones"]
    match = client.get(f"/v1/alerts/{alert['id']}/matches").json()["matches"][0]
    assert match["title"] == NEWS["title"] and match["passage_id"] == "drones#0" and match["score"] >= 0.5
    assert client.get(f"/v1/alerts/{alert['id']}", headers=AUTH).json()["matches"] == 1
    feed = feedparser.parse(client.get(f"/v1/alerts/{alert['id']}/feed.atom").content)
    assert not feed.bozo and [e.link for e in feed.entries] == ["https://example.com/drones"]
    assert feed.feed.title == "Poshuk alert: дрони атакували порт Одеси"


def test_keys_own_their_alerts(client: TestClient[Litestar]) -> None:
    assert_problem(client.post("/v1/alerts", json={"query": "дрони"}), 401)
    assert_problem(client.get("/v1/alerts"), 401)
    assert_problem(client.post("/v1/alerts", json={"query": "дрони"}, headers={"X-API-Key": "psk_wrong"}), 403)
    mine = client.post("/v1/alerts", json={"query": "дрони"}, headers=AUTH).json()
    theirs = client.post("/v1/alerts", json={"query": "ракети"}, headers=OTHER).json()
    assert [a["id"] for a in client.get("/v1/alerts", headers=AUTH).json()] == [mine["id"]]
    assert [a["id"] for a in client.get("/v1/alerts", headers=OTHER).json()] == [theirs["id"]]
    assert_problem(client.get(f"/v1/alerts/{theirs['id']}", headers=AUTH), 404)
    assert_problem(client.delete(f"/v1/alerts/{theirs['id']}", headers=AUTH), 404)
    assert client.delete(f"/v1/alerts/{mine['id']}", headers=AUTH).status_code == 204
    assert_problem(client.get(f"/v1/alerts/{mine['id']}/matches"), 404)
    assert_problem(client.get(f"/v1/alerts/{mine['id']}/feed.atom"), 404)


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ({"query": ""}, "empty"),
        ({"query": "x" * 1001}, "at most 1000"),
        ({"query": "дрони", "threshold": 1.5}, "threshold"),
        ({"query": "дрони", "mode": "fuzzy"}, "mode"),
        ({"query": "дрони", "webhook": "http://127.0.0.1:6379/"}, "not a public address"),
        ({"query": "дрони", "webhook": "http://169.254.169.254/latest/meta-data/"}, "not a public address"),
        ({"query": "дрони", "webhook": "file:///etc/passwd"}, "http:// or https://"),
        ({"query": "дрони", "filters": {"lang": [f"x{n}" for n in range(65)]}}, "64"),
        ({"query": "дрони", "every": "day"}, "every"),
    ],
)
def test_bad_alerts_get_a_problem_saying_what_is_wrong(client: TestClient[Litestar], body: dict, detail: str) -> None:
    problem = assert_problem(client.post("/v1/alerts", json=body, headers=AUTH), 400)
    assert detail in problem["detail"] + str(problem.get("errors", ""))


def test_matches_limit_is_bounded(client: TestClient[Litestar]) -> None:
    alert = client.post("/v1/alerts", json={"query": "дрони"}, headers=AUTH).json()
    for limit in (0, 101):
        assert_problem(client.get(f"/v1/alerts/{alert['id']}/matches", params={"limit": limit}), 400)


def test_a_read_only_service_keeps_no_alerts(tmp_path: Path) -> None:
    for client in start(tmp_path, service_read_only="true"):
        assert_problem(client.post("/v1/alerts", json={"query": "дрони"}, headers=AUTH), 405)
        assert_problem(client.get("/v1/alerts/abc/matches"), 405)
    assert not (tmp_path / "index" / "alerts.sqlite").exists()


def test_the_worker_matches_writes_on_its_own(client: TestClient[Litestar]) -> None:
    """No pass run by the test: the service's matcher thread finds the write within seconds."""
    alert = client.post("/v1/alerts", json={"query": "дрони атакували порт Одеси"}, headers=AUTH).json()
    client.put("/v1/documents/drones", json=NEWS, headers=AUTH)
    deadline = time.monotonic() + 10
    found: list[str] = []
    while time.monotonic() < deadline and not found:
        found = [m["doc_id"] for m in client.get(f"/v1/alerts/{alert['id']}/matches").json()["matches"]]
        time.sleep(0.1)
    assert found == ["drones"]
