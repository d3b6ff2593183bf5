"""Articles and passages: the two records everything else passes around.

Text is NFC-normalised on the way in (``clean_text``): the model's tokenizer lacks
multi-codepoint rules, so a decomposed «й» would otherwise embed differently.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import datetime

import msgspec

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u200b\ufeff]")


def clean_text(text: str) -> str:
    """NFC-normalise and drop control characters, zero-width spaces and BOMs."""
    return _CONTROL.sub("", unicodedata.normalize("NFC", text))


class Article(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One news article as read from a source; ``text`` keeps paragraphs split by blank lines."""

    id: str
    title: str
    text: str
    url: str | None = None
    source: str | None = None
    published_at: datetime | None = None
    lang: str | None = None
    section: str | None = None
    tags: tuple[str, ...] = ()


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


def passage_id(doc_id: str, ordinal: int) -> str:
    """The stable id of passage number ``ordinal`` of a document."""
    return f"{doc_id}#{ordinal}"
