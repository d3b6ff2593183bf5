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

    def found_in(self, passage_terms: set[str]) -> bool:
        if self.term in passage_terms:
            return True
        return any(t.startswith(p) for p in self.prefixes for t in passage_terms)


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

    def coverage(self, passage_terms: set[str]) -> float:
        """Share (0..1) of the query's units that a passage's terms contain."""
        if not self.units:
            return 0.0
        return sum(1 for u in self.units if u.found_in(passage_terms)) / len(self.units)

    def text_coverage(self, terms: str) -> float:
        """``coverage`` of space-separated indexed terms, found by substring search: an
        article's terms are long, and splitting them into a set costs more than the search."""
        if not self.units:
            return 0.0
        padded = f" {terms} "
        found = sum(1 for u in self.units if f" {u.term} " in padded or any(f" {p}" in padded for p in u.prefixes))
        return found / len(self.units)


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
