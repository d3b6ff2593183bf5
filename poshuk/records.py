"""One JSON object (a JSONL line, an HTTP write's body) -> checked ``Article`` fields.

``poshuk index`` and the write API check records here, with the same rules and messages: a
``ValueError`` says which field is wrong, and the file reader turns it into a bad record.
A page record (``doc_id`` + ``page``) is checked here too; ``poshuk.page_records`` joins them.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any, TypeGuard

from poshuk.documents import Article, Page, clean_line, clean_text, normalise_id
from poshuk.errors import BadRecordError
from poshuk.language import UNDETERMINED, LanguageDetector
from poshuk.page_records import MAX_PAGE_NUMBER, MAX_PAGES, JoinedDocument, PageRecord

_STR_FIELDS = ("url", "source", "section")
_LANG = re.compile(r"[a-z]{2,3}")
_SPACES = re.compile(r"[ \t\u00a0]+")


def finish_article(fields: dict[str, Any], detector: LanguageDetector) -> Article:
    """Detect a missing language, then build the article."""
    if not fields.get("lang"):
        lang = detector.detect(f"{fields['title']}\n{fields['text']}")
        fields["lang"] = None if lang == UNDETERMINED else lang
    return Article(**fields)


def paragraph_lines(text: str) -> list[str]:
    """Non-empty lines, normalised: each is a paragraph (news exports put one per line)."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return [line for line in (_SPACES.sub(" ", raw).strip() for raw in text.split("\n")) if line]


def article_from_record(obj: dict[str, Any], detector: LanguageDetector) -> Article:
    """One JSON object (a JSONL line, an HTTP write) -> ``Article``, exactly as ``poshuk index`` reads it.

    Raises ``ValueError`` saying which field is wrong.
    """
    return finish_article(record_fields(obj), detector)


def record_fields(obj: dict[str, Any]) -> dict[str, Any]:
    """Validate one JSON object into Article fields; unknown keys are ignored."""
    raw_id = obj.get("id")
    if raw_id is None or (isinstance(raw_id, str) and not raw_id.strip()):
        raise ValueError("missing id")
    doc_id = _id(raw_id, "id")
    pages = _pages(obj.get("pages"))
    text = obj.get("text")
    if pages and text is not None:
        raise ValueError("give 'text' or 'pages', not both")
    if pages:
        body = "\n\n".join(page.text for page in pages)
    else:
        if text is None:
            raise ValueError("missing text (or pages)")
        if not isinstance(text, str):
            raise ValueError("'text' must be a string")
        body = "\n\n".join(paragraph_lines(clean_text(text)))
    if not body:
        raise ValueError("empty text")
    return {"id": doc_id, "text": body, **_document_fields(obj, given_only=False), "pages": pages}


def _id(raw_id: object, name: str) -> str:
    if isinstance(raw_id, int) and not isinstance(raw_id, bool):
        raw_id = str(raw_id)
    if not isinstance(raw_id, str):
        raise ValueError(f"'{name}' must be a string or an integer")
    doc_id = normalise_id(raw_id)
    if not doc_id:
        raise ValueError(f"the {name} is empty once control and invisible characters are removed")
    return doc_id


_DOCUMENT_FIELDS = ("title", *_STR_FIELDS, "lang", "published_at", "tags")


def _document_fields(obj: dict[str, Any], *, given_only: bool) -> dict[str, Any]:
    """The document's own fields (title, url, source, section, lang, published_at, tags), checked and
    normalised; with ``given_only``, only those the object gives (not null)."""
    fields: dict[str, Any] = {}
    for name in _DOCUMENT_FIELDS:
        value = obj.get(name)
        if given_only and value is None:
            continue
        if name == "title":
            if value is not None and not isinstance(value, str):
                raise ValueError("'title' must be a string")
            fields[name] = clean_line(value or "")
        elif name == "lang":
            fields[name] = _lang(value)
        elif name == "published_at":
            fields[name] = parse_date(value)
        elif name == "tags":
            fields[name] = _tags(value)
        else:
            if value is not None and not isinstance(value, str):
                raise ValueError(f"'{name}' must be a string")
            fields[name] = (clean_line(value) or None) if value else None
    return fields


def page_record(obj: dict[str, Any]) -> PageRecord:
    """One page of a document given line by line: ``doc_id``, ``page``, ``text`` and any document fields."""
    if obj.get("id") is not None:
        raise ValueError(
            "a page record ('doc_id' + 'page') takes no 'id': 'doc_id' names its document "
            "(a whole document has 'id' and 'text' or 'pages')"
        )
    if obj.get("pages") is not None:
        raise ValueError("a page record ('doc_id' + 'page') gives its page's 'text', not 'pages'")
    doc_id = _id(obj["doc_id"], "doc_id")
    number, text = obj.get("page"), obj.get("text")
    if not _page_number(number):
        raise ValueError(f"'page' must be a whole number from 1 to {MAX_PAGE_NUMBER:,}")
    if not isinstance(text, str):
        raise ValueError("a page record needs its page's 'text' as a string")
    return PageRecord(
        doc_id=doc_id,
        number=number,
        text="\n".join(paragraph_lines(clean_text(text))),
        fields=_document_fields(obj, given_only=True),
    )


def joined_article(joined: JoinedDocument, source: str, detector: LanguageDetector) -> Article | BadRecordError:
    """The article of one document's page records; empty pages are left out, as in a ``pages`` array."""
    pages = tuple(Page(number=n, text=text) for n, text in joined.ordered_pages() if text)
    if not pages:
        reason = f"document {joined.doc_id!r}: every page is empty"
        return BadRecordError(reason, source=source, line=joined.first_line)
    fields = {
        **_document_fields({}, given_only=False),
        **joined.fields,
        "id": joined.doc_id,
        "text": "\n\n".join(page.text for page in pages),
        "pages": pages,
    }
    return finish_article(fields, detector)


def _page_number(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_PAGE_NUMBER


def _pages(value: object) -> tuple[Page, ...]:
    """``pages: [{"number": 1, "text": "..."}, ...]``: numbered pages, each its lines as paragraphs; pages
    without text are left out (they hold no passage), and a document of only such pages is empty."""
    if value is None:
        return ()
    if not isinstance(value, list):
        raise ValueError('\'pages\' must be a list of {"number", "text"} objects')
    if len(value) > MAX_PAGES:
        raise ValueError(f"'pages' lists {len(value)} pages; at most {MAX_PAGES} are allowed")
    pages: list[Page] = []
    seen: set[int] = set()
    for n, item in enumerate(value):
        if not isinstance(item, dict) or set(item) - {"number", "text"}:
            raise ValueError(f"page {n}: expected an object with 'number' and 'text'")
        number, text = item.get("number"), item.get("text")
        if not _page_number(number):
            raise ValueError(f"page {n}: 'number' must be a whole number from 1 to {MAX_PAGE_NUMBER:,}")
        if number in seen:
            raise ValueError(f"page {n}: page number {number} appears twice")
        if not isinstance(text, str):
            raise ValueError(f"page {n}: 'text' must be a string")
        seen.add(number)
        lines = paragraph_lines(clean_text(text))
        if lines:
            pages.append(Page(number=number, text="\n".join(lines)))
    if value and not pages:
        raise ValueError("every page is empty")
    return tuple(pages)


def _lang(value: object) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ValueError("'lang' must be a string")
    code = value.strip().lower().replace("_", "-").split("-")[0]
    if not _LANG.fullmatch(code):
        raise ValueError(f"'lang' is not a language code: {value!r}")
    return code


def _tags(value: object) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(tag, str) for tag in value):
        raise ValueError("'tags' must be a list of strings")
    return tuple(dict.fromkeys(t for t in (clean_line(tag) for tag in value) if t))


def parse_date(value: object) -> datetime | None:
    """ISO 8601 date or date-time (``Z``, offsets, date-only) -> aware UTC datetime.

    Naive values are taken as UTC. Anything else raises ``ValueError``.
    """
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ValueError(f"unknown date format: {value!r}")
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise ValueError(f"unknown date format: {value!r}") from None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00+14:00 is in year 0 in UTC, 9999-12-31T23:59-14:00 in year 10000
        raise ValueError(f"'published_at' {value!r} is out of range: in UTC it must fall in years 1 to 9999") from None
