"""Chunking: credits dropped, short paragraphs merged, long ones split, ids stable, budget kept."""

from __future__ import annotations

import pytest

from poshuk.chunking import PROMPT_TOKENS, chunk_article, is_credit_line, split_sentences
from poshuk.documents import Article, Passage
from poshuk.encoder import HashEncoder
from poshuk.settings import ChunkingSettings

count_tokens = HashEncoder().count_tokens

LONG_UK = (
    "Координатор з комунікацій Ради національної безпеки США заявив, що переговори щодо озброєнь "
    "між Росією і КНДР активно просуваються, і Вашингтон вживатиме заходів проти їхніх учасників."
)
LONG_EN = (
    "The city council approved the budget on Tuesday after a long debate that lasted well into the "
    "evening, with most of the money going to roads, bridges and schools across the region."
)


def article(*paragraphs: str, title: str = "Заголовок новини", doc_id: str = "doc") -> Article:
    return Article(id=doc_id, title=title, text="\n\n".join(paragraphs))


def chunk(art: Article, **settings: int | bool) -> list[Passage]:
    return chunk_article(art, ChunkingSettings(**settings), count_tokens)  # type: ignore[arg-type]


def assert_within_budget(passages: list[Passage], max_tokens: int) -> None:
    for passage in passages:
        assert count_tokens(passage.embed_text) + PROMPT_TOKENS <= max_tokens, passage


# --- sentences -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "Про це заявив Дж. Кірбі. Він додав, що США стурбовані.",
            ["Про це заявив Дж. Кірбі.", "Він додав, що США стурбовані."],
        ),
        (
            "У м. Київ у 2023 р. відбулася зустріч. Т.зв. «операція» триває! Чи буде мир? Так.",
            ["У м. Київ у 2023 р. відбулася зустріч.", "Т.зв. «операція» триває!", "Чи буде мир?", "Так."],
        ),
        (
            "Mr. Smith visited the U.S. Army base. He left… Then J. Kirby spoke.",
            ["Mr. Smith visited the U.S. Army base.", "He left…", "Then J. Kirby spoke."],
        ),
        (
            "«Ми стурбовані», - підкреслив він. «Це важливо.» Далі.",
            ["«Ми стурбовані», - підкреслив він.", "«Це важливо.»", "Далі."],
        ),
        ("Він спитав: «Чому?» — відповіді не було.", ["Він спитав: «Чому?» — відповіді не було."]),
        ("Ціна зросла на 3.5 відсотка. Вагнер. 15 вересня засідання.", None),
        ("Купили хліб, молоко і т.д. Потім пішли.", ["Купили хліб, молоко і т.д.", "Потім пішли."]),
        ("", []),
    ],
)
def test_split_sentences(text: str, expected: list[str] | None) -> None:
    if expected is None:
        expected = ["Ціна зросла на 3.5 відсотка.", "Вагнер.", "15 вересня засідання."]
    assert split_sentences(text) == expected


# --- credits ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "line",
    [
        "Фото: KCNA",
        "Фото: Укрінформ",
        "фото - Reuters",
        "Photo: Reuters",
        "(Photo: AP)",
        "Photo by John Smith",
        "Джерело: Міноборони",
        "Ілюстративне фото",
        "На фото: Джон Кірбі",
        "Читайте також: Зеленський провів нараду зі Ставкою щодо постачання зброї",
        "Read more: Kyiv opens a new metro station",
    ],
)
def test_credit_lines(line: str) -> None:
    assert is_credit_line(line)


@pytest.mark.parametrize(
    "line",
    [
        "Фотографи з усього світу приїхали до Києва.",
        "Джерело в уряді повідомило про відставку.",
        "Фото: " + "дуже довгий підпис, що насправді є частиною тексту статті " * 2,
        "Source code of the app was published on Tuesday.",
        "Фото-звіт з місця подій.",
    ],
)
def test_content_is_not_a_credit(line: str) -> None:
    assert not is_credit_line(line)


# --- passages --------------------------------------------------------------------


def test_credits_dropped_and_ids_stable() -> None:
    art = article(LONG_UK, "Фото: KCNA", LONG_EN, "Читайте також: Інша новина")
    passages = chunk(art, min_chars=0)
    assert [p.text for p in passages] == [LONG_UK, LONG_EN]
    assert [p.id for p in passages] == ["doc#0", "doc#1"]
    assert [p.ordinal for p in passages] == [0, 1]
    assert all(p.doc_id == "doc" for p in passages)
    assert chunk(art, min_chars=0) == passages


def test_embed_text_carries_title_context() -> None:
    [with_title] = chunk(article(LONG_EN, title="Budget approved"))
    assert with_title.text == LONG_EN
    assert with_title.embed_text == f"Budget approved\n{LONG_EN}"
    [without] = chunk(article(LONG_EN, title="Budget approved"), title_context=False)
    assert without.embed_text == LONG_EN


def test_short_paragraphs_merge_with_the_following_one() -> None:
    passages = chunk(article("Коротко.", "Ще коротко.", LONG_UK, LONG_EN), min_chars=40)
    assert [p.text for p in passages] == [f"Коротко.\nЩе коротко.\n{LONG_UK}", LONG_EN]


def test_short_last_paragraph_merges_with_the_previous_one() -> None:
    passages = chunk(article(LONG_UK, LONG_EN, "Кінець."), min_chars=40)
    assert [p.text for p in passages] == [LONG_UK, f"{LONG_EN}\nКінець."]


def test_merge_stops_at_the_budget() -> None:
    short = [f"Абзац номер {n} про події." for n in range(30)]
    passages = chunk(article(*short), max_tokens=64, min_chars=4000)
    assert len(passages) > 1
    assert_within_budget(passages, 64)
    assert "\n".join(p.text for p in passages) == "\n".join(short)


def test_long_paragraph_split_at_sentences() -> None:
    sentences = [f"Речення номер {n} розповідає про важливу подію в місті." for n in range(20)]
    passages = chunk(article(" ".join(sentences)), max_tokens=64, min_chars=0)
    assert len(passages) > 2
    assert_within_budget(passages, 64)
    for passage in passages:
        assert passage.text.startswith("Речення") and passage.text.endswith(".")
    assert " ".join(p.text for p in passages) == " ".join(sentences)


def test_overlong_sentence_split_at_words() -> None:
    words = [f"слово{n}" for n in range(300)]
    passages = chunk(article(" ".join(words)), max_tokens=64)
    assert len(passages) > 3
    assert_within_budget(passages, 64)
    assert " ".join(p.text for p in passages).split() == words


def test_pieces_are_balanced_not_a_stub() -> None:
    words = [f"слово{n}" for n in range(50)]
    passages = chunk(article(" ".join(words), title=""), max_tokens=64, min_chars=0)
    sizes = [len(p.text.split()) for p in passages]
    assert len(sizes) == 2 and min(sizes) >= 20


def test_overlong_token_is_cut() -> None:
    passages = chunk(article("x" * 5000), max_tokens=32)
    assert_within_budget(passages, 32)
    assert "".join(p.text for p in passages) == "x" * 5000


def test_huge_title_leaves_room_for_text() -> None:
    title = " ".join(f"заголовок{n}" for n in range(200))
    passages = chunk(article(LONG_UK, title=title), max_tokens=64)
    assert_within_budget(passages, 64)
    assert " ".join(p.text for p in passages) == LONG_UK


def test_single_newlines_are_paragraph_breaks_too() -> None:
    art = Article(id="d", title="T", text=f"{LONG_UK}\nФото: KCNA\n{LONG_EN}")
    assert [p.text for p in chunk(art, min_chars=0)] == [LONG_UK, LONG_EN]


def test_title_only_article_gives_one_passage() -> None:
    passages = chunk(article(title="Лише заголовок"))
    assert [(p.id, p.text, p.embed_text) for p in passages] == [("doc#0", "Лише заголовок", "Лише заголовок")]
    assert [p.text for p in chunk(article("Фото: KCNA", title="Заголовок"))] == ["Заголовок"]
    assert chunk(article(title="")) == []


def test_default_settings_keep_real_paragraphs_whole() -> None:
    passages = chunk(article(LONG_UK, LONG_EN, LONG_UK))
    assert [p.text for p in passages] == [LONG_UK, LONG_EN, LONG_UK]
    assert_within_budget(passages, ChunkingSettings().max_tokens)
