"""Language of an article: py3langid restricted to a news-sized set, plus a script guard.

A naive-Bayes byte model confuses short Cyrillic texts: «Це тест» scores as Russian or
Bulgarian. Letters that only one language uses (і ї є ґ for Ukrainian; ы э ё ъ for
Russian) settle most of those cases before the model is asked. The model (~0.6 s to
load) is built on first use by ``LanguageDetector``, never at import.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable
from typing import Any

UNDETERMINED = "und"
"""Returned for texts without letters (ISO 639-2 "undetermined")."""

DEFAULT_LANGUAGES: tuple[str, ...] = (
    "uk", "en", "ru", "pl", "de", "fr", "es", "it", "pt", "nl", "cs", "sk", "ro", "hu", "tr",
    "be", "bg", "lt", "lv", "et",
)  # fmt: skip

_UK_ONLY = frozenset("іїєґІЇЄҐ")
_RU_ONLY = frozenset("ыэёЫЭЁ")  # Russian and Belarusian; never Ukrainian or Bulgarian
_HARD_SIGN = frozenset("ъЪ")  # Russian and Bulgarian; never Ukrainian
_RU_HARD_SIGN = re.compile(r"[ъЪ][еёюяЕЁЮЯ]")  # Russian separator use; Bulgarian ъ is a vowel
# Frequent function words that exist in only one of the two languages: the tie-breaker
# for short texts without telling letters («Це тест», «Привет, как дела?»).
_UK_WORDS = frozenset({"це", "що", "та", "або", "але", "ця", "ще", "як", "ми", "ви", "щоб", "тому", "коли", "вже"})
_RU_WORDS = frozenset({"что", "как", "это", "он", "она", "они", "или", "когда", "чтобы", "уже", "только", "очень"})
_CYRILLIC = re.compile(r"[\u0400-\u04ff]")
_WORD = re.compile(r"\w+")
_LETTER = re.compile(r"[^\W\d_]")


class LanguageDetector:
    """Detects the ISO 639-1 code of a text among ``languages``.

    Safe to share between threads; the model is loaded once, on the first ``detect``.
    ``sample_chars`` bounds the work on long articles: the head of a text decides.
    """

    def __init__(self, languages: Iterable[str] = DEFAULT_LANGUAGES, *, sample_chars: int = 2000) -> None:
        self.languages: tuple[str, ...] = tuple(dict.fromkeys(code.lower() for code in languages))
        if not self.languages:
            raise ValueError("LanguageDetector needs at least one language")
        self.sample_chars = sample_chars
        self._model: Any = None
        self._lock = threading.Lock()

    def _identifier(self) -> Any:
        if self._model is None:
            with self._lock:
                if self._model is None:
                    from py3langid.langid import MODEL_FILE, LanguageIdentifier

                    model = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
                    model.set_languages(list(self.languages))  # ValueError names unknown codes
                    self._model = model
        return self._model

    def rank(self, text: str) -> list[tuple[str, float]]:
        """Model probabilities for every language of the set, best first (no script guard)."""
        ranked: list[tuple[str, float]] = self._identifier().rank(text[: self.sample_chars])
        return [(str(code), float(prob)) for code, prob in ranked]

    def detect(self, text: str) -> str:
        """The language code of ``text``; ``UNDETERMINED`` when it has no letters."""
        sample = text[: self.sample_chars]
        letters = _LETTER.findall(sample)
        if not letters:
            return UNDETERMINED
        excluded: set[str] = set()
        if sum(1 for ch in letters if _CYRILLIC.match(ch)) * 2 > len(letters):
            uk = sum(1 for ch in letters if ch in _UK_ONLY)
            ru = sum(1 for ch in letters if ch in _RU_ONLY)
            hard = sum(1 for ch in letters if ch in _HARD_SIGN)
            ru += len(_RU_HARD_SIGN.findall(sample))
            if not uk and not ru and not hard:
                words = [w.lower() for w in _WORD.findall(sample)]
                uk = sum(1 for w in words if w in _UK_WORDS)
                ru = sum(1 for w in words if w in _RU_WORDS)
                if uk and ru:
                    uk = ru = 0  # no verdict: let the model decide
            if uk and not ru and not hard and "uk" in self.languages and "ў" not in sample.lower():
                return "uk"
            if (ru or hard) and not uk:
                excluded.add("uk")
                if ru:
                    excluded.add("bg")
        for code, _prob in self.rank(sample):
            if code not in excluded:
                return code
        return self.rank(sample)[0][0]
