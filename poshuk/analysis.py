"""Lexical analysis for BM25: words -> index terms, for Ukrainian and English.

Ukrainian words are reduced to their dictionary form with pymorphy3's Ukrainian
dictionaries («Північної Кореї» -> «північний корея»), English words to Snowball
stems. Apostrophe variants (’ ʼ ' `) are one character, case is folded, text is NFC.
Terms never contain apostrophes, so SQLite's FTS5 tokenizer keeps them whole.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from typing import Any, Literal

import msgspec

from poshuk.documents import clean_text

Strategy = Literal["lemma", "prefix"]

_APOSTROPHES = str.maketrans({"’": "'", "ʼ": "'", "`": "'", "ʹ": "'", "‘": "'"})
_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)*")
_CYRILLIC = re.compile(r"[\u0400-\u04ff]")
_LATIN = re.compile(r"[a-z]")

UK_STOPWORDS = frozenset(
    """а але б би бо був була були було бути в вам вас весь від він вона вони воно все всі втім
    де для до же з за зі і із й його її їй їм їх їхній к коли крім ледве лише між мене мені ми
    мій мною мов на навіть над нам нас наш не нею ним них ні ніж ну о об од однак он от па по
    поки при про проте с свій себе сей та так також там твій те теж тим тих то тобі тож той
    ту тут у хоч хоча це цей ці цим цих цього цю ця чи чий чим що щоб щодо я як який яка які
    якщо""".split()
)
EN_STOPWORDS = frozenset(
    """a about above after again against all am an and any are as at be because been before being
    below between both but by can could did do does doing down during each few for from further
    had has have having he her here hers herself him himself his how i if in into is it its itself
    just me more most my myself no nor not now of off on once only or other our ours ourselves out
    over own same she should so some such than that the their theirs them themselves then there
    these they this those through to too under until up very was we were what when where which
    while who whom why will with would you your yours yourself yourselves""".split()
)


class Token(msgspec.Struct, frozen=True):
    """One index term and where its word stands in the analysed text."""

    term: str
    start: int
    end: int


class LexicalSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """How words become terms; recorded in the index manifest (queries must match)."""

    strategy: Strategy = "lemma"
    prefix_chars: int = 6


class Analyzer:
    """Turns text into BM25 terms. Thread-safe; dictionaries load on first use."""

    def __init__(self, settings: LexicalSettings | None = None) -> None:
        self.settings = settings or LexicalSettings()
        self._lock = threading.Lock()
        self._morph: Any = None
        self._stemmer: Any = None
        self._lemmas: dict[str, str] = {}

    def _load(self) -> None:
        with self._lock:
            if self._morph is None:
                import pymorphy3
                import snowballstemmer

                self._stemmer = snowballstemmer.stemmer("english")
                self._morph = pymorphy3.MorphAnalyzer(lang="uk")

    def _lemma(self, word: str) -> str:
        cached = self._lemmas.get(word)
        if cached is None:
            if _CYRILLIC.search(word):
                cached = str(self._morph.parse(word)[0].normal_form)
            elif _LATIN.search(word):
                cached = str(self._stemmer.stemWord(word))
            else:
                cached = word
            cached = cached.replace("'", "").replace("ʼ", "")
            if len(self._lemmas) < 500_000:
                self._lemmas[word] = cached
        return cached

    def is_stopword(self, word: str) -> bool:
        return word in UK_STOPWORDS or word in EN_STOPWORDS

    def tokens(self, text: str) -> Iterator[Token]:
        """Index terms with their character offsets in ``clean_text(text)``."""
        if self._morph is None:
            self._load()
        text = clean_text(text).translate(_APOSTROPHES)
        strategy = self.settings.strategy
        for match in _WORD.finditer(text):
            word = match.group().casefold()
            plain = word.replace("'", "")
            if self.is_stopword(plain):
                continue
            term = self._lemma(word) if strategy == "lemma" else plain[: self.settings.prefix_chars]
            yield Token(term, match.start(), match.end())

    def terms(self, text: str) -> list[str]:
        """Index terms of ``text``, in order, stopwords removed."""
        return [token.term for token in self.tokens(text)]
