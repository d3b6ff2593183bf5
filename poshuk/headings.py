"""What a title-less document is called: the heading a reader sees first on its first page.

Every page of a document with pages is embedded with its document's context, so a page on
its own still says which document it belongs to (issue 15). Without a title, that context
is read from the first page by the shape of its lines, never by what a collection says:

- approval stamps above the heading are skipped: from a line opening with «ЗАТВЕРДЖУЮ»,
  «ЗАТВЕРДЖЕНО», «ПОГОДЖЕНО», "APPROVED" and the like (the signature block Ukrainian official
  documents carry above their title) to a blank line or the heading in capitals under it;
- the heading is the run of lines from there up to the first line that starts a section
  («1.», «I.», «Розділ …»), ends a label or a sentence («Склад:», «Загальні положення.»), is
  body text (over 90 characters) or holds no letter (a page number).

Measured on unlp2026 as 41 documents with pages (461 questions -> page, R@10 / MRR@10 of
the hybrid search; ``python -m benchmarks recall --sets unlp2026-docs``): the opening 300
characters 0.937 / 0.739; the same with stamps skipped 0.944 / 0.747; the heading
0.954 / 0.780 (dev half 0.957, test half 0.952). A context shared by every page should name
the document and nothing more: an opening that reaches into the first page's body (a
leaflet's composition, a rule book's approval) lends that page's answer to every page and
hides the page that holds it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

HEADING_CHARS = 200
"""At most this much of a heading is kept (cut at a word): a long one is a sentence, not a name."""
OPENING_CHARS = 300
"""When no heading is found, this much of the opening (stamps skipped) is the context."""
MIN_HEADING_CHARS = 10
STAMP_LINES = 8
"""An approval stamp (its word, position, signature, date) is never longer than this."""
BODY_LINE_CHARS = 90

_STAMP = re.compile(
    r"^\s*(?:ЗАТВЕРДЖУЮ|ЗАТВЕРДЖЕНО|ЗАТВЕРДЖЕНИЙ|ПОГОДЖЕНО|ПОГОДЖУЮ|СХВАЛЕНО|APPROVED|AGREED|ENDORSED)\b",
    re.IGNORECASE,
)
_SECTION = re.compile(
    r"^\s*(?:\d+(?:\.\d+)*[.)]|[IVXLCІ]+[.)]|(?:розділ|глава|стаття|пункт|section|chapter|article|part)\b)",
    re.IGNORECASE,
)


def _capitals(line: str) -> bool:
    """A line in capitals (at least 3 letters): a heading, such as «ПРАВИЛА» or «НАКАЗ»."""
    letters = [ch for ch in line if ch.isalpha()]
    return len(letters) >= 3 and all(ch.isupper() for ch in letters)


def _without_stamps(text: str) -> list[str]:
    """The non-blank lines of ``text`` (spaces squeezed) after any approval stamps at its top.

    A stamp runs from its word to a blank line or to the first line in capitals (the heading
    under it), whichever comes first within ``STAMP_LINES`` lines: PDF text layers often have no
    blank lines. Without either, only the stamp's own line is dropped."""
    lines = [" ".join(line.split()) for line in text.splitlines()]
    start = 0  # an index, not a slice per stamp: a page of stamp lines stays linear
    while True:
        first = next((i for i in range(start, len(lines)) if lines[i]), None)
        if first is None or not _STAMP.match(lines[first]):
            return [line for line in lines[start:] if line]
        window = range(first + 1, min(len(lines), first + 1 + STAMP_LINES))
        start = next((i for i in window if not lines[i] or _capitals(lines[i])), first + 1)


def cut_at_word(text: str, limit: int) -> str:
    """``text`` (spaces squeezed) cut to at most ``limit`` characters at a word boundary."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[: limit + 1]
    return cut[: cut.rfind(" ")] if " " in cut else cut[:limit]


def first_heading(text: str) -> str:
    """The heading at the top of ``text`` (a first page), approval stamps skipped; "" if none."""
    taken: list[str] = []
    for line in _without_stamps(text):
        if not any(ch.isalpha() for ch in line):
            if taken:
                break
            continue  # a page number or a signature line before the heading
        if taken and (_SECTION.match(line) or len(line) > BODY_LINE_CHARS or line[-1] in ".:;"):
            break
        if not taken and _SECTION.match(line):
            break  # the text opens with its first section: it has no heading
        taken.append(line)
    return cut_at_word(" ".join(taken), HEADING_CHARS)


def untitled_context(pages: Sequence[str]) -> str:
    """A title-less document's context: the first heading of its first page (a heading never runs
    on to the next page), else its opening without stamps, read on over the next pages while the
    first is shorter than an opening."""
    if not pages:
        return ""
    heading = first_heading(pages[0])
    if len(heading) >= MIN_HEADING_CHARS:
        return heading
    opening: list[str] = []
    for text in pages:
        opening.append(text)
        if sum(map(len, opening)) >= OPENING_CHARS:
            break
    return cut_at_word(" ".join(_without_stamps("\n\n".join(opening))), OPENING_CHARS)
