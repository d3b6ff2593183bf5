"""One JSONL record per page (``{"doc_id": ..., "page": 3, "text": ...}``) joined into documents with pages.

Exports of document dumps often write a line per page. ``poshuk.readers`` validates each line;
this module only joins them, per file, and says which lines cannot join. A line is a page record
when it has both ``doc_id`` and ``page`` (not null); with either alone it is a whole record, as
before (a news export may carry a print ``page``).

- The pages of one ``doc_id`` are joined wherever they are in the file (they need not be
  adjacent); the document is read when the file ends, its pages in page order.
- A page number given twice for one document: the later line is a bad record (the first stays).
- A whole record (``id``) and page records for the same id in one file: whichever comes later
  is a bad record, because it is unclear which one is the document.
- Document fields (title, url, source, section, lang, published_at, tags) may be on any page
  record; the same field given again with another value is a bad record (the page is left out).
- At most ``MAX_PAGES`` pages per document (the bound of the ``pages`` array); further pages are
  bad records and the document keeps the first ones.

Across files nothing is joined: a document read again from a later file replaces the earlier
one whole, as any record with the same id does.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

MAX_PAGES = 10_000
"""Pages per document, the same bound in the ``pages`` array and across page records."""

MAX_PAGE_NUMBER = 1_000_000
"""The highest page number: numbers are the document's own (a volume may start at 1001), but one
past SQLite's 64-bit integers once failed a write with a server error."""


@dataclass(frozen=True)
class PageRecord:
    """One validated page line: its document's id, page number and text, and the document fields it gives."""

    doc_id: str
    number: int
    text: str  # the page's lines joined by newlines; empty when the page has no text
    fields: dict[str, Any]  # document fields given on this line, validated and normalised


@dataclass
class JoinedDocument:
    """The pages of one document gathered from a file, and the document fields its lines gave."""

    doc_id: str
    first_line: int
    pages: dict[int, str] = field(default_factory=dict)  # page number -> text
    page_lines: dict[int, int] = field(default_factory=dict)  # page number -> its line
    fields: dict[str, Any] = field(default_factory=dict)
    field_lines: dict[str, int] = field(default_factory=dict)

    def ordered_pages(self) -> list[tuple[int, str]]:
        return sorted(self.pages.items())


class PageJoiner:
    """Joins one file's page records by document; each method returns why a line cannot join, or None."""

    def __init__(self) -> None:
        self._documents: dict[str, JoinedDocument] = {}
        self._whole: dict[str, int] = {}  # ids read as whole records -> the first such line

    def whole(self, doc_id: str, line: int) -> str | None:
        """A whole record with this id was read at ``line``."""
        joined = self._documents.get(doc_id)
        if joined is not None:
            return (
                f"document {doc_id!r} is also given as page records (from line {joined.first_line}); "
                "give a document either whole ('id') or page by page ('doc_id' + 'page'), not both"
            )
        self._whole.setdefault(doc_id, line)
        return None

    def add(self, record: PageRecord, line: int) -> str | None:
        """A page record read at ``line``."""
        doc_id = record.doc_id
        if doc_id in self._whole:
            return (
                f"document {doc_id!r} is also given as a whole record (line {self._whole[doc_id]}); "
                "give a document either whole ('id') or page by page ('doc_id' + 'page'), not both"
            )
        joined = self._documents.get(doc_id)
        if joined is None:
            joined = self._documents[doc_id] = JoinedDocument(doc_id, line)
        if record.number in joined.pages:
            return (
                f"page {record.number} of document {doc_id!r} appears twice "
                f"(first at line {joined.page_lines[record.number]}); this line is left out"
            )
        if len(joined.pages) >= MAX_PAGES:
            return f"document {doc_id!r} has more than {MAX_PAGES} pages; this page is left out"
        for name, value in record.fields.items():
            if name in joined.fields and joined.fields[name] != value:
                return (
                    f"{name!r} of document {doc_id!r} differs from the one given at line {joined.field_lines[name]}; "
                    "this page is left out"
                )
        for name, value in record.fields.items():
            if name not in joined.fields:
                joined.fields[name] = value
                joined.field_lines[name] = line
        joined.pages[record.number] = record.text
        joined.page_lines[record.number] = line
        return None

    def documents(self) -> Iterator[JoinedDocument]:
        """The joined documents, in the order their first page record came."""
        yield from self._documents.values()
