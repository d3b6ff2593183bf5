"""A small news index with varied metadata (languages, sources, sections, tags, dates) for filter tests.

Built with the ``HashEncoder``; the HTTP tests and the CLI tests both search it. Many
articles mention drones, so a filtered «дрони» query has more matches than a page.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from poshuk.documents import Article, Passage, passage_id
from poshuk.encoder import HashEncoder
from poshuk.index import IndexWriter
from poshuk.settings import ChunkingSettings


def _article(
    doc_id: str,
    title: str,
    paragraphs: list[str],
    *,
    lang: str,
    source: str | None,
    section: str | None,
    tags: tuple[str, ...] = (),
    published: datetime | None = None,
) -> tuple[Article, list[str]]:
    article = Article(
        id=doc_id,
        title=title,
        text="\n\n".join(paragraphs),
        url=f"https://example.com/{doc_id}",
        source=source,
        published_at=published,
        lang=lang,
        section=section,
        tags=tags,
    )
    return article, paragraphs


NEWS: list[tuple[Article, list[str]]] = [
    _article(
        "uk-war-1",
        "Дрони атакували Одещину",
        [
            "Уночі дрони атакували портову інфраструктуру Одещини.",
            "Сили ППО знищили більшість дронів над областю.",
        ],
        lang="uk",
        source="Укрінформ",
        section="війна",
        tags=("фронт", "дрони"),
        published=datetime(2023, 8, 1, 6, 30, tzinfo=UTC),
    ),
    _article(
        "uk-war-2",
        "Нова хвиля атак дронів на Київ",
        [
            "Ворожі дрони знову летіли на Київ з півдня.",
            "Уламки дрона пошкодили дах будинку на Оболоні.",
            "Мешканці провели ніч в укриттях.",
        ],
        lang="uk",
        source="Суспільне",
        section="війна",
        tags=("дрони",),
        published=datetime(2023, 8, 15, 23, 10, tzinfo=UTC),
    ),
    _article(
        "uk-econ-1",
        "Експорт зерна через Дунай зріс",
        [
            "Експорт зерна через порти Дунаю зріс попри атаки дронів.",
            "Аграрії чекають на нові страхові гарантії.",
        ],
        lang="uk",
        source="Укрінформ",
        section="економіка",
        tags=("зерно",),
        published=datetime(2023, 9, 1, 12, 0, tzinfo=UTC),
    ),
    _article(
        "en-war-1",
        "Drones strike Odesa port",
        [
            "Russian drones struck grain facilities in the port of Odesa overnight.",
            "Air defence shot down most of the drones, officials said.",
        ],
        lang="en",
        source="Reuters",
        section="world",
        tags=("drones", "frontline"),
        published=datetime(2023, 8, 20, 4, 0, tzinfo=UTC),
    ),
    _article(
        "en-econ-1",
        "Central bank holds rates",
        ["The central bank kept interest rates unchanged as inflation slowed."],
        lang="en",
        source="Reuters",
        section="business",
        tags=("rates",),
        published=datetime(2023, 9, 10, 15, 0, tzinfo=UTC),
    ),
    _article(
        "en-econ-2",
        "Inflation eases in July",
        [
            "Consumer inflation eased in July, giving the central bank room on rates.",
            "Food prices rose less than expected.",
        ],
        lang="en",
        source="AP",
        section="business",
        tags=("rates", "inflation"),
        published=datetime(2023, 7, 5, 9, 0, tzinfo=UTC),
    ),
    _article(
        "uk-blog-1",
        "Нотатки про дрони",
        ["Дрони змінили війну, пише автор блогу.", "Дешеві дрони стали зброєю масового вжитку."],
        lang="uk",
        source="Блог",
        section=None,
    ),
]

NEWS_BY_ID = {article.id: article for article, _ in NEWS}


def build_news_index(folder: Path, encoder: HashEncoder) -> Path:
    with IndexWriter(folder, encoder.identity, ChunkingSettings()) as writer:
        for article, texts in NEWS:
            passages = [
                Passage(
                    id=passage_id(article.id, n),
                    doc_id=article.id,
                    ordinal=n,
                    text=text,
                    embed_text=f"{article.title}\n{text}",
                )
                for n, text in enumerate(texts)
            ]
            writer.upsert(article, passages, encoder.encode_passages([p.embed_text for p in passages]))
    return folder


def matching(predicate: Callable[[Article], bool]) -> set[str]:
    """Ids of the articles ``predicate`` accepts."""
    return {article.id for article, _ in NEWS if predicate(article)}
