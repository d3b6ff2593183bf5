"""Articles and passages: the two records everything else passes around.

Text is NFC-normalised on the way in (``clean_text``): the model's tokenizer lacks
multi-codepoint rules, so a decomposed «й» would otherwise embed differently. Control
characters (C0 but tab and line breaks, C1 such as U+009B, the terminal's CSI) and the
bidirectional overrides and isolates (U+202A..U+202E, U+2066..U+2069: "Trojan Source")
are dropped there too. Single-line metadata (title, source, section, tags, url) goes
through ``clean_line``, which also turns line breaks and tabs into one space, and ids
through ``normalise_id``. ``printable`` is for terminals: whatever reaches one is shown,
never obeyed.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import datetime

import msgspec

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x84\x86-\x9f\u200b\u202a-\u202e\u2066-\u2069\ufeff]")
_LINE_SPACE = re.compile(r"[\s\x85\u2028\u2029]+")
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028-\u202e\u2066-\u2069]")  # what a terminal would obey


def clean_text(text: str) -> str:
    """NFC-normalise and drop control characters, bidi overrides, zero-width spaces and BOMs (line breaks stay)."""
    return _CONTROL.sub("", unicodedata.normalize("NFC", text))


def clean_line(text: str) -> str:
    """``clean_text`` for one-line fields: every run of whitespace or line breaks becomes one space; trimmed."""
    return _LINE_SPACE.sub(" ", clean_text(text)).strip()


def normalise_id(raw: str) -> str:
    """An article id as stored and looked up: ``clean_line`` (NFC, no controls or zero-width characters,
    whitespace runs as one space, trimmed). Every reader and every HTTP route passes ids through it, so
    ``e\u0301`` and ``é``, or ``id\u200b`` and ``id``, name the same article everywhere."""
    return clean_line(raw)


def printable(text: str) -> str:
    """``text`` safe to write to a terminal: each control character, line separator or bidi override/isolate
    becomes U+FFFD.

    One character for one, so highlight offsets into ``text`` still hold.
    """
    return _UNPRINTABLE.sub("\ufffd", text)


class Page(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One page of a long document (a PDF, a report): its number and its text (paragraphs split by lines)."""

    number: int
    text: str


class Article(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One news article (or document) as read from a source; ``text`` keeps paragraphs split by blank
    lines. A document with ``pages`` has their texts, in order, as its ``text``, and its passages
    never cross a page."""

    id: str
    title: str
    text: str
    url: str | None = None
    source: str | None = None
    published_at: datetime | None = None
    lang: str | None = None
    section: str | None = None
    tags: tuple[str, ...] = ()
    pages: tuple[Page, ...] = ()


class Passage(msgspec.Struct, frozen=True, kw_only=True):
    """A piece of an article small enough for the model.

    ``text`` is what users see (the paragraph itself); ``embed_text`` is what the model
    reads (title context + text). ``id`` is stable: ``"{doc_id}#{ordinal}"``.
    """

    id: str
    doc_id: str
    ordinal: int
    text: str
    embed_text: str
    page: int | None = None  # the page it is on, for a document with pages


def passage_id(doc_id: str, ordinal: int) -> str:
    """The stable id of passage number ``ordinal`` of a document."""
    return f"{doc_id}#{ordinal}"
