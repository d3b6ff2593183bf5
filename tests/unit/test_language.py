"""Language detection on short texts, where a byte model alone confuses Cyrillic languages."""

from __future__ import annotations

import pytest

from poshuk.language import UNDETERMINED, LanguageDetector


@pytest.fixture(scope="module")
def detector() -> LanguageDetector:
    return LanguageDetector()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Київ", "uk"),
        ("Це тест", "uk"),
        ("Ми тут", "uk"),
        ("Привіт, як справи?", "uk"),
        ("Уряд ухвалив рішення", "uk"),
        ("Сьогодні холодно", "uk"),
        ("Привет, как дела?", "ru"),
        ("Сегодня холодно", "ru"),
        ("Москва объявила", "ru"),
        ("Правительство приняло решение", "ru"),
        ("The government approved the budget", "en"),
        ("Hello world", "en"),
        ("Kyiv officials met their partners in Київ", "en"),
        ("Dzień dobry, jak się masz?", "pl"),
    ],
)
def test_short_texts(detector: LanguageDetector, text: str, expected: str) -> None:
    assert detector.detect(text) == expected


def test_bulgarian_is_not_forced_to_russian(detector: LanguageDetector) -> None:
    assert detector.detect("Това е тест на български език") == "bg"


@pytest.mark.parametrize("text", ["", "   ", "123 456", "!!!"])
def test_no_letters_is_undetermined(detector: LanguageDetector, text: str) -> None:
    assert detector.detect(text) == UNDETERMINED


def test_model_is_built_lazily() -> None:
    detector = LanguageDetector()
    assert detector._model is None
    assert detector.detect("Добрий день, друзі") == "uk"  # settled by the script guard alone
    assert detector._model is None
    assert detector.detect("Good morning, friends") == "en"
    assert detector._model is not None


def test_restricted_language_set() -> None:
    detector = LanguageDetector(["en", "de"])
    assert detector.detect("Das ist ein kurzer Test") == "de"
    assert {code for code, _ in detector.rank("hello")} == {"en", "de"}


def test_guard_respects_language_set() -> None:
    # Without "uk" in the set, Ukrainian letters cannot force "uk".
    assert LanguageDetector(["ru", "en"]).detect("Київ і Харків") == "ru"


def test_unknown_language_code_is_rejected() -> None:
    with pytest.raises(ValueError, match="xx"):
        LanguageDetector(["en", "xx"]).detect("hello")
