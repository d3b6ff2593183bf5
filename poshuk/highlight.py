"""Highlights: where a passage matches the query, as character offsets into its text.

Words match when their analysed term equals a query term (so «Кореї» lights up for
«Корея») or starts with a transliterated name prefix (Kirby -> «Кірбі»). A passage
found only by meaning has no such words; its best sentence is marked instead
(chosen by the caller, who holds the encoder).
"""

from __future__ import annotations

from poshuk.analysis import Analyzer
from poshuk.query import QueryTerms
from poshuk.wire import HighlightKind as HighlightKind
from poshuk.wire import Span as Span


def term_spans(text: str, query: QueryTerms, analyzer: Analyzer) -> list[Span]:
    """Spans of the words in ``text`` that match the query's terms or name prefixes."""
    wanted = set(query.terms)
    prefixes = query.prefixes  # a property: built once here, not per word
    spans: list[Span] = []
    for token in analyzer.tokens(text):
        if token.term in wanted or (prefixes and token.term.startswith(prefixes)):
            if spans and spans[-1].end >= token.start - 1 and text[spans[-1].end : token.start].strip() == "":
                spans[-1] = Span(spans[-1].start, token.end)  # merge adjacent words into one span
            else:
                spans.append(Span(token.start, token.end))
    return spans


def sentence_span(text: str, sentence: str) -> Span | None:
    """The span of ``sentence`` inside ``text`` (None if it is not there verbatim)."""
    start = text.find(sentence)
    return None if start < 0 else Span(start, start + len(sentence))
