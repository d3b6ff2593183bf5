"""A small service index over the HashEncoder, write keys and settings, and the app's parts for tests."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from litestar import Litestar

from poshuk.documents import Article, Passage
from poshuk.encoder import HashEncoder
from poshuk.index import IndexWriter
from poshuk.settings import ChunkingSettings, Settings, load_settings
from service.app import LIFECYCLE_KEY
from service.auth import new_key
from service.lifecycle import Lifecycle
from service.state import STATE_KEY, ServiceState

KEY, KEY_HASH = new_key()
AUTH = {"Authorization": f"Bearer {KEY}"}

ARTICLE = {
    "title": "Міська рада ухвалила бюджет",
    "text": "Депутати міської ради ухвалили бюджет на наступний рік.\nНа ремонт доріг виділили найбільше.",
    "lang": "uk",
    "source": "Приклад",
    "published_at": "2023-09-01T10:00:00+03:00",
    "tags": ["бюджет"],
}

ARTICLES: dict[Article, tuple[str, ...]] = {
    Article(
        id="uk-001",
        title="Кірбі: Росія та КНДР просувають переговори про зброю",
        text="Джон Кірбі заявив про переговори Росії та Північної Кореї.\n\nШойгу відвідав Пхеньян у липні.",
        url="https://example.com/uk-001",
        source="Приклад",
        published_at=datetime(2023, 8, 31, 9, 15, tzinfo=UTC),
        lang="uk",
        section="світ",
        tags=("КНДР", "Росія"),
    ): (
        "Джон Кірбі заявив про переговори Росії та Північної Кореї.",
        "Шойгу відвідав Пхеньян у липні.",
    ),
    Article(
        id="uk-002",
        title="Через порти Одеси вивезли рекордні обсяги зерна",
        text="Порти Великої Одеси за місяць експортували рекордні обсяги зерна.",
        lang="uk",
    ): ("Порти Великої Одеси за місяць експортували рекордні обсяги зерна.",),
    Article(
        id="en-001",
        title="ECB holds interest rates steady",
        text="The European Central Bank kept its deposit rate unchanged as inflation settled near target.",
        lang="en",
    ): ("The European Central Bank kept its deposit rate unchanged as inflation settled near target.",),
}


def build_service_index(index_dir: Path, encoder: HashEncoder) -> None:
    with IndexWriter(index_dir, encoder.identity, ChunkingSettings()) as writer:
        for article, texts in ARTICLES.items():
            passages = [
                Passage(
                    id=f"{article.id}#{n}",
                    doc_id=article.id,
                    ordinal=n,
                    text=text,
                    embed_text=f"{article.title}\n{text}",
                )
                for n, text in enumerate(texts)
            ]
            writer.upsert(article, passages, encoder.encode_passages([p.embed_text for p in passages]))


def make_settings(tmp_path: Path, **env: str) -> Settings:
    base = {"POSHUK_HOME": str(tmp_path / "home"), "POSHUK_AUTH_KEYS": KEY_HASH}
    return load_settings(env={**base, **{f"POSHUK_{k.upper()}": v for k, v in env.items()}})


def service_state(app: Litestar) -> ServiceState:
    """The app's ``ServiceState`` (tests wait on its loading)."""
    found = app.state[STATE_KEY]
    assert isinstance(found, ServiceState)
    return found


def app_lifecycle(app: Litestar) -> Lifecycle:
    """The app's ``Lifecycle`` (tests stop its upkeep thread to drive reloads themselves)."""
    found = app.state[LIFECYCLE_KEY]
    assert isinstance(found, Lifecycle)
    return found
