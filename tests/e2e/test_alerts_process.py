"""Saved searches against a real ``poshuk serve`` with the real model, and a webhook receiver that dies.

An English alert, saved through ``poshuk.Client``, must fire for Ukrainian articles on the same
story written afterwards (and not for an unrelated one), and its webhook receiver, killed with
SIGKILL mid-stream and started again on the same port, must end up with every notification,
each key once (retries repeat a key, never invent one).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import feedparser
import httpx
import pytest

import poshuk
from poshuk.alerts import notification_key
from tests.support.app import KEY, KEY_HASH
from tests.support.repo import copy_index
from tests.support.serving import ONE_BUSY_CLIENT, Server, free_port, start_server, stop_server

pytestmark = [pytest.mark.e2e, pytest.mark.model]

ALERT = "North Korea to supply Russia with artillery shells"  # each story below scores 0.83+ with it
ON_THE_STORY = {
    "story-1": (
        "КНДР може передати Росії артилерійські снаряди",
        "Північна Корея веде з Росією переговори про постачання артилерійських боєприпасів, заявили у Вашингтоні.",
    ),
    "story-2": (
        "Москва і Пхеньян домовляються про зброю",
        "Росія намагається отримати від КНДР снаряди та ракети для війни проти України.",
    ),
    "story-3": (
        "Кім Чен Ин може зустрітися з Путіним",
        "Лідер Північної Кореї може обговорити з Путіним продаж зброї та боєприпасів Росії.",
    ),
    "story-4": (
        "США попередили КНДР щодо продажу снарядів Росії",
        "Вашингтон закликав Пхеньян припинити переговори з Москвою про постачання боєприпасів.",
    ),
    "story-5": (
        "Шойгу обговорював у Пхеньяні постачання снарядів",
        "Міністр оборони Росії під час візиту до КНДР обговорював закупівлю північнокорейських боєприпасів.",
    ),
    "story-6": (
        "Розвідка: КНДР вже відправила Росії боєприпаси",
        "За даними розвідки, Північна Корея передала Росії перші партії снарядів для артилерії.",
    ),
}
UNRELATED = (
    "У Львові відкрили новий парк",
    "На місці колишнього заводу у Львові висадили триста дерев і облаштували дитячі майданчики.",
)


@pytest.fixture
def receiver_port() -> int:
    return free_port()


@pytest.fixture
def receivers() -> Iterator[list[subprocess.Popen[str]]]:
    """The receivers a test starts; a failing test leaves none behind."""
    started: list[subprocess.Popen[str]] = []
    yield started
    for process in started:
        kill(process)


def start_receiver(port: int, log: Path, started: list[subprocess.Popen[str]]) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.support.webhook_receiver", str(port), str(log)],
        stdout=subprocess.PIPE,
        text=True,
    )
    started.append(process)
    assert process.stdout is not None and process.stdout.readline().strip() == "listening"
    return process


def kill(receiver: subprocess.Popen[str]) -> None:
    if receiver.poll() is None:
        receiver.send_signal(signal.SIGKILL)
    receiver.wait()
    if receiver.stdout is not None:
        receiver.stdout.close()


def received(log: Path) -> list[dict[str, str]]:
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines() if line.strip()]


def wait_for(condition, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def server(example_index_source: Path, tmp_path: Path) -> Iterator[Server]:
    index = copy_index(example_index_source, tmp_path / "index")
    env = {
        **ONE_BUSY_CLIENT,
        "POSHUK_AUTH_KEYS": KEY_HASH,
        "POSHUK_ALERTS_ALLOW_PRIVATE_WEBHOOKS": "true",  # the receiver listens on 127.0.0.1
        "POSHUK_ALERTS_WEBHOOK_RETRY_S": "0.3",
    }
    running = start_server(index, tmp_path / "server.log", env)
    yield running
    stop_server(running)


def test_an_english_alert_fires_for_the_ukrainian_story_and_a_killed_receiver_misses_nothing(
    server: Server, receiver_port: int, receivers: list[subprocess.Popen[str]], tmp_path: Path
) -> None:
    log = tmp_path / "received.jsonl"
    receiver = start_receiver(receiver_port, log, receivers)
    stories = list(ON_THE_STORY.items())
    with poshuk.Client(server.base_url, api_key=KEY, timeout=60.0) as client:
        alert = client.create_alert(ALERT, webhook=f"http://127.0.0.1:{receiver_port}/hook")
        for doc_id, (title, text) in stories[:3]:
            client.upsert(poshuk.Article(id=doc_id, title=title, text=text, lang="uk"))
        wait_for(lambda: len({r["key"] for r in received(log)}) >= 3, "the first three notifications")
        kill(receiver)  # mid-stream: more are about to come
        for doc_id, (title, text) in stories[3:]:
            client.upsert(poshuk.Article(id=doc_id, title=title, text=text, lang="uk"))
        client.upsert(poshuk.Article(id="unrelated", title=UNRELATED[0], text=UNRELATED[1], lang="uk"))
        wait_for(
            lambda: len(client.alert_matches(alert.id, limit=100).matches) >= len(stories),
            "every story matched while the receiver is down",
        )
        time.sleep(1.0)  # deliveries fail and back off meanwhile
        receiver = start_receiver(receiver_port, log, receivers)
        try:
            expected = {notification_key(alert.id, doc_id) for doc_id in ON_THE_STORY}
            wait_for(lambda: {r["key"] for r in received(log)} >= expected, "every notification after the restart")
            time.sleep(1.5)  # anything more would come now
        finally:
            kill(receiver)
        matches = client.alert_matches(alert.id, limit=100)
        feed = feedparser.parse(httpx.get(f"{server.base_url}/v1/alerts/{alert.id}/feed.atom", timeout=30).content)
    assert sorted(m.doc_id for m in matches.matches) == sorted(ON_THE_STORY)  # not the unrelated article
    assert all(m.matched_by in ("meaning", "both") for m in matches.matches)
    deliveries = received(log)
    assert {r["key"] for r in deliveries} == expected
    by_key: dict[str, set[str]] = {}
    for r in deliveries:
        by_key.setdefault(r["key"], set()).add(r["body"])
    assert all(len(bodies) == 1 for bodies in by_key.values()), "a retried notification changed"
    for body in (json.loads(next(iter(b))) for b in by_key.values()):
        assert body["alert_id"] == alert.id and body["match"]["doc_id"] in ON_THE_STORY
    assert not feed.bozo and len(feed.entries) == len(ON_THE_STORY)
    assert "Traceback" not in server.output()
