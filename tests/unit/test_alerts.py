"""Saved searches: what matches, when, exactly once, through rebuilds; webhook targets and delivery."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import httpx
import msgspec
import pytest

from poshuk.alerts import Alerts, WebhookSender, WebhookTargetError, check_target, notification_key
from poshuk.documents import Article, Passage, passage_id
from poshuk.encoder import HashEncoder
from poshuk.errors import InputError, InvalidQueryError, NotFoundError
from poshuk.filters import Filters
from poshuk.index import Index, Upsert
from poshuk.settings import AlertSettings
from poshuk.wire import WebhookNotification
from tests.support.store import write_articles

ENCODER = HashEncoder()
PUBLIC = "https://hooks.example.com/poshuk"


def public_resolver(host: str, port: int) -> list[str]:
    return ["93.184.216.34"]


def article(doc_id: str, title: str, *paragraphs: str, lang: str = "uk", source: str = "Укрінформ"):
    art = Article(
        id=doc_id,
        title=title,
        text="\n\n".join(paragraphs),
        lang=lang,
        source=source,
        published_at=datetime(2024, 5, 1, tzinfo=UTC),
    )
    passages = [
        Passage(id=passage_id(doc_id, n), doc_id=doc_id, ordinal=n, text=p, embed_text=f"{title}\n{p}")
        for n, p in enumerate(paragraphs)
    ]
    return art, passages


def write_live(index_dir: Path, *docs) -> None:
    """Write through the live write path (``Index.write``, as HTTP writes do)."""
    index = Index.open(index_dir)
    try:
        index.write(
            [Upsert(a, p, ENCODER.encode_passages([x.embed_text for x in p])) for a, p in docs],
        )
    finally:
        index.close()


OLD = article("old-1", "Шахтарі страйкують на Донбасі", "Шахтарі страйкують на Донбасі через борги із зарплати.")
DRONES = article("new-1", "Дрони атакували Одесу", "Уночі дрони атакували порт Одеси, пошкоджено склади зерна.")
FOOTBALL = article("new-2", "Футбол: Динамо виграло", "Динамо виграло матч чемпіонату з рахунком два нуль.")


@pytest.fixture
def index_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "index"
    write_articles(folder, ENCODER, OLD)
    return folder


@pytest.fixture
def alerts(index_dir: Path):
    book = Alerts(index_dir, ENCODER, AlertSettings(threshold=0.5), resolver=public_resolver)
    yield book
    book.close()


def test_only_articles_written_after_the_alert_match_and_each_once(index_dir: Path, alerts: Alerts) -> None:
    old_twin = alerts.create("Шахтарі страйкують на Донбасі через борги")  # OLD matches it, but is older
    drones = alerts.create("дрони атакували порт Одеси")
    write_live(index_dir, DRONES, FOOTBALL)
    assert alerts.match_new_writes() == 1
    found = alerts.matches(drones.id)
    assert [m.doc_id for m in found.matches] == ["new-1"]
    match = found.matches[0]
    assert match.passage_id == "new-1#0" and match.score >= 0.5 and match.matched_by == "both"
    assert found.alert.matches == 1
    assert alerts.matches(old_twin.id).matches == []
    # Running again finds nothing new; re-writing the matched article does not notify again.
    assert alerts.match_new_writes() == 0
    write_live(index_dir, DRONES)
    assert alerts.match_new_writes() == 0
    assert len(alerts.matches(drones.id).matches) == 1


def test_modes_words_meaning_and_filters(index_dir: Path, alerts: Alerts) -> None:
    words = alerts.create("Динамо чемпіонату", mode="lexical")
    meaning_only = alerts.create("Динамо чемпіонату", mode="dense", threshold=0.99)  # too strict for the fake
    english_only = alerts.create("дрони Одеса", filters=Filters(lang=("en",)))
    write_live(index_dir, DRONES, FOOTBALL)
    alerts.match_new_writes()
    assert [m.doc_id for m in alerts.matches(words.id).matches] == ["new-2"]
    assert alerts.matches(words.id).matches[0].matched_by == "words"
    assert alerts.matches(meaning_only.id).matches == []
    assert alerts.matches(english_only.id).matches == []


def test_a_rebuild_copies_articles_without_alerting_and_later_writes_still_do(index_dir: Path, alerts: Alerts) -> None:
    drones = alerts.create("дрони атакували порт Одеси")
    write_live(index_dir, DRONES)
    alerts.match_new_writes()
    assert len(alerts.matches(drones.id).matches) == 1
    late = alerts.create("Динамо виграло матч чемпіонату")
    write_articles(index_dir, ENCODER, OLD, DRONES, FOOTBALL, rebuild=True)  # a rebuild with FOOTBALL in it
    alerts.match_new_writes()
    assert alerts.matches(late.id).matches == []  # copied by the build: not a new write
    again = article("new-3", "Динамо виграло знову", "Динамо виграло матч чемпіонату у Львові.")
    write_live(index_dir, again)
    alerts.match_new_writes()
    assert [m.doc_id for m in alerts.matches(late.id).matches] == ["new-3"]
    assert len(alerts.matches(drones.id).matches) == 1


def test_the_previous_versions_tail_is_matched_after_a_swap(index_dir: Path, alerts: Alerts) -> None:
    drones = alerts.create("дрони атакували порт Одеси")
    write_live(index_dir, DRONES)  # not yet matched when the rebuild goes live
    write_articles(index_dir, ENCODER, OLD, rebuild=True)
    alerts.match_new_writes()
    assert [m.doc_id for m in alerts.matches(drones.id).matches] == ["new-1"]


def test_bad_alerts_are_refused_with_reasons(index_dir: Path, tmp_path: Path) -> None:
    book = Alerts(index_dir, ENCODER, AlertSettings(max_alerts=1), max_query_chars=50, resolver=public_resolver)
    with pytest.raises(InvalidQueryError, match="empty"):
        book.create("   ")
    with pytest.raises(InvalidQueryError, match="at most 50"):
        book.create("x" * 51)
    with pytest.raises(InvalidQueryError, match="threshold"):
        book.create("дрони", threshold=1.5)
    with pytest.raises(InvalidQueryError, match="mode"):
        book.create("дрони", mode="fuzzy")  # type: ignore[arg-type]
    with pytest.raises(InvalidQueryError, match="no words"):
        book.create("і", mode="lexical")
    book.create("дрони")
    with pytest.raises(InputError, match="max_alerts"):
        book.create("ракети")
    with pytest.raises(NotFoundError):
        book.get("no-such-alert")
    with pytest.raises(NotFoundError):
        book.delete(book.alerts()[0].id, owner="someone-else")
    book.close()


@pytest.mark.parametrize(
    ("url", "addresses", "reason"),
    [
        ("ftp://example.com/x", ["93.184.216.34"], "http:// or https://"),
        ("https://user:pw@example.com/", ["93.184.216.34"], "credentials"),
        ("http://localhost:6379/", ["127.0.0.1"], "not a public address"),
        ("http://metadata/", ["169.254.169.254"], "not a public address"),
        ("http://intranet/", ["10.1.2.3"], "not a public address"),
        ("http://v6/", ["::1"], "not a public address"),
        ("http://mapped/", ["::ffff:192.168.0.1"], "not a public address"),
        ("http://split/", ["93.184.216.34", "192.168.1.1"], "not a public address"),  # any address private
        ("http://example.com:99999/", ["93.184.216.34"], "port"),
        ("https://example.com/" + "a" * 2000, ["93.184.216.34"], "at most 2000"),
    ],
)
def test_webhook_targets_that_could_reach_inside_are_refused(url: str, addresses: list[str], reason: str) -> None:
    with pytest.raises(WebhookTargetError, match=reason):
        check_target(url, allow_private=False, resolver=lambda host, port: addresses)


def test_private_targets_pass_only_where_allowed() -> None:
    assert check_target("http://127.0.0.1:9/x", allow_private=True) == "http://127.0.0.1:9/x"
    assert check_target(PUBLIC, allow_private=False, resolver=public_resolver) == PUBLIC


def test_a_webhook_alert_is_refused_when_its_target_is_internal(alerts: Alerts) -> None:
    alerts._resolver = lambda host, port: ["127.0.0.1"]
    with pytest.raises(WebhookTargetError):
        alerts.create("дрони", webhook="http://localhost:8080/hook")
    assert alerts.alerts() == []


def test_webhooks_retry_with_the_same_key_until_delivered_then_never_again(index_dir: Path, alerts: Alerts) -> None:
    drones = alerts.create("дрони атакували порт Одеси", webhook=PUBLIC)
    write_live(index_dir, DRONES)
    alerts.match_new_writes()
    seen: list[tuple[str, WebhookNotification]] = []
    answers = iter([503, 200])

    def receiver(request: httpx.Request) -> httpx.Response:
        seen.append(
            (request.headers["idempotency-key"], msgspec.json.decode(request.content, type=WebhookNotification))
        )
        return httpx.Response(next(answers))

    settings = AlertSettings(webhook_retry_s=10.0)
    sender = WebhookSender(alerts.store, settings, resolver=public_resolver, transport=httpx.MockTransport(receiver))
    assert sender.send_due() == 0  # 503: kept, retried later
    assert sender.send_due() == 0  # not due yet (10 s backoff)
    assert alerts.store.outbox_counts() == {"delivered": 0, "waiting": 1, "gave_up": 0}
    assert sender.send_due(now=datetime.now(UTC).timestamp() + 11) == 1
    assert sender.send_due(now=datetime.now(UTC).timestamp() + 10_000) == 0
    keys = {key for key, _ in seen}
    assert keys == {notification_key(drones.id, "new-1")}
    assert all(body.key == key and body.match.doc_id == "new-1" and body.alert_id == drones.id for key, body in seen)
    assert alerts.store.outbox_counts() == {"delivered": 1, "waiting": 0, "gave_up": 0}
    sender.close()


def test_a_target_that_turns_internal_is_not_sent_to_and_is_given_up(index_dir: Path, alerts: Alerts) -> None:
    alerts.create("дрони атакували порт Одеси", webhook=PUBLIC)
    write_live(index_dir, DRONES)
    alerts.match_new_writes()
    sent: list[httpx.Request] = []

    def receiver(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(200)

    sender = WebhookSender(
        alerts.store,
        AlertSettings(webhook_attempts=2, webhook_retry_s=0.001),
        resolver=lambda host, port: ["10.0.0.5"],  # the name now points inside
        transport=httpx.MockTransport(receiver),
    )
    sender.send_due()
    sender.send_due(now=datetime.now(UTC).timestamp() + 1)
    assert sent == []
    assert alerts.store.outbox_counts()["gave_up"] == 1
    sender.close()


def test_deleting_an_alert_drops_its_matches_and_pending_notifications(index_dir: Path, alerts: Alerts) -> None:
    drones = alerts.create("дрони атакували порт Одеси", webhook=PUBLIC)
    write_live(index_dir, DRONES)
    alerts.match_new_writes()
    alerts.delete(drones.id)
    with pytest.raises(NotFoundError):
        alerts.matches(drones.id)
    assert alerts.store.due(now=1e12) == []
    db = sqlite3.connect(index_dir / "alerts.sqlite")
    assert db.execute("SELECT count(*) FROM matches").fetchone() == (0,)
    db.close()


def test_a_crash_between_passes_repeats_nothing(index_dir: Path, alerts: Alerts) -> None:
    """The matches, the outbox and the cursor commit together: a second store on the same file (a
    restarted process) resumes exactly where the first stopped."""
    drones = alerts.create("дрони атакували порт Одеси", webhook=PUBLIC)
    write_live(index_dir, DRONES)
    alerts.match_new_writes()
    restarted = Alerts(index_dir, ENCODER, AlertSettings(threshold=0.5), resolver=public_resolver)
    assert restarted.match_new_writes() == 0
    assert len(restarted.matches(drones.id).matches) == 1
    assert len(restarted.store.due(now=1e12)) == 1
    body = json.loads(restarted.store.due(now=1e12)[0].body)
    assert body["match"]["doc_id"] == "new-1"
    restarted.close()


def test_an_alert_saved_while_the_matcher_is_behind_skips_what_was_written_before_it(
    index_dir: Path, alerts: Alerts
) -> None:
    first = alerts.create("дрони атакували порт Одеси")
    write_live(index_dir, DRONES)  # not matched yet: the cursor is behind it
    second = alerts.create("дрони атакували порт Одеси")
    alerts.match_new_writes()
    assert [m.doc_id for m in alerts.matches(first.id).matches] == ["new-1"]
    assert alerts.matches(second.id).matches == []


def test_top_k_derives_the_threshold_from_the_alerts_own_search(index_dir: Path) -> None:
    write_live(index_dir, FOOTBALL)  # the archive: OLD and FOOTBALL
    from poshuk.search import Searcher

    searcher = Searcher(Index.open(index_dir), ENCODER)
    book = Alerts(index_dir, ENCODER, AlertSettings(threshold=0.5), searcher=lambda: searcher)
    try:
        top = searcher.search("Динамо виграло матч", k=2, mode="dense", collapse=True, highlight=False).hits
        first = book.create("Динамо виграло матч", top_k=1)
        assert first.top_k == 1 and first.threshold == pytest.approx(top[0].score, abs=1e-6)
        second = book.create("Динамо виграло матч", top_k=2)
        assert second.threshold == pytest.approx(top[1].score, abs=1e-6)
        deep = book.create("Динамо виграло матч", top_k=50)  # fewer articles than that: the default
        assert deep.threshold == 0.5
        for bad, reason in (
            ({"top_k": 0}, "between 1 and 100"),
            ({"top_k": 2, "threshold": 0.7}, "not both"),
            ({"top_k": 2, "mode": "lexical"}, "meaning"),
        ):
            with pytest.raises(InvalidQueryError, match=reason):
                book.create("Динамо", **bad)
        twin = article("new-9", "Динамо виграло матч", "Динамо виграло матч чемпіонату з рахунком два нуль.")
        write_live(index_dir, twin)  # as close as FOOTBALL, the best so far: within the top 1
        book.match_new_writes()
        assert [m.doc_id for m in book.matches(first.id).matches] == ["new-9"]
    finally:
        book.close()
        searcher.close()
    with pytest.raises(InputError, match="searcher"):
        Alerts(index_dir, ENCODER).create("Динамо", top_k=3)
