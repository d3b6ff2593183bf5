"""A query's lexical side: its terms, transliterated name prefixes, and the FTS5 match.

English queries name people and places in Latin script; the Ukrainian text spells
them in Cyrillic. Capitalised Latin words (names, acronyms) therefore also search as
prefixes of their likely Ukrainian spellings (Kirby -> кірб*, Shoigu -> шойг*).
A name and its spellings form one *unit* of evidence: a passage matches the unit if
it has any of them, so coverage is not diluted by spelling variants.
"""

from __future__ import annotations

import re

import msgspec

from poshuk.analysis import Analyzer
from poshuk.documents import clean_text
from poshuk.translit import transliterate

_LATIN_NAME = re.compile(r"\b[A-Z][A-Za-z]{3,}\b")
PREFIX_CHARS = 4


class Unit(msgspec.Struct, frozen=True):
    """One piece of query evidence: a term, or a name with its Cyrillic prefixes."""

    term: str
    prefixes: tuple[str, ...] = ()


class QueryTerms(msgspec.Struct, frozen=True):
    """The lexical evidence a query offers."""

    units: tuple[Unit, ...]

    @property
    def terms(self) -> tuple[str, ...]:
        return tuple(u.term for u in self.units)

    @property
    def prefixes(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(p for u in self.units for p in u.prefixes))

    @property
    def empty(self) -> bool:
        return not self.units

    def match_expression(self) -> str:
        """An FTS5 query matching any term or prefix (terms hold word characters only)."""
        return " OR ".join([f'"{t}"' for t in self.terms] + [f'"{p}"*' for p in self.prefixes])

    def finder(self) -> UnitFinder:
        """What finds this query's units in a candidate's indexed terms (build once per query)."""
        return UnitFinder(self.units)


class UnitFinder:
    """Which of a query's units a space-separated string of indexed terms contains: a whole
    term, or a word starting with one of a name's prefixes. Found by substring search over the
    string: splitting it into a set costs more than the search (3x for a passage's 200
    candidates), and the needles are built once per query, not once per candidate (a sixth of
    the evidence's cost at 100k passages, issue 14's profile)."""

    __slots__ = ("_needles",)

    def __init__(self, units: tuple[Unit, ...]) -> None:
        self._needles = [(u.term, f" {u.term} ", tuple(f" {p}" for p in u.prefixes)) for u in units]

    def __call__(self, indexed: str) -> tuple[str, ...]:
        padded = f" {indexed} "
        return tuple(
            term for term, whole, starts in self._needles if whole in padded or any(s in padded for s in starts)
        )


def analyse_query(text: str, analyzer: Analyzer) -> QueryTerms:
    """Terms for BM25, with Cyrillic prefixes attached to Latin-script names."""
    text = clean_text(text)
    names: dict[str, tuple[str, ...]] = {}
    for name in _LATIN_NAME.findall(text):
        terms = analyzer.terms(name)
        if len(terms) != 1:  # a stopword, or not one word
            continue
        spellings = [c[:PREFIX_CHARS] for c in transliterate(name, limit=3) if len(c) > PREFIX_CHARS]
        names[terms[0]] = tuple(dict.fromkeys(spellings))
    units = [Unit(term, names.get(term, ())) for term in dict.fromkeys(analyzer.terms(text))]
    return QueryTerms(units=tuple(units))
