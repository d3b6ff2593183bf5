"""A search, or an alert's matches, as an Atom feed (RFC 4287): what a feed reader subscribes to (issue 16).

One entry per article (the search is collapsed), identified by its article id so a reader
sees an article once however often it polls. Indexed text is data, never markup: ElementTree
escapes it, and characters XML 1.0 cannot carry at all (C0 controls, U+FFFE/U+FFFF, lone
surrogates) are dropped, so a hostile title cannot make the feed unreadable.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import quote
from xml.etree import ElementTree as ET

from poshuk.wire import AlertMatches, SearchResult

ATOM_NS = "http://www.w3.org/2005/Atom"
MEDIA_TYPE = "application/atom+xml; charset=utf-8"
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _text(value: str) -> str:
    return _NOT_XML.sub("", value)


def _stamp(when: datetime) -> str:
    return when.isoformat().replace("+00:00", "Z")


def entry_id(doc_id: str) -> str:
    """A stable entry id for an article: the same on every poll and in every feed."""
    return f"urn:poshuk:article:{quote(doc_id, safe='')}"


@dataclass(frozen=True)
class Entry:
    """One article of a feed."""

    doc_id: str
    title: str
    url: str | None
    source: str | None
    summary: str
    published_at: datetime | None
    updated: datetime | None = None  # default: its publication date, else the feed's


def search_feed(result: SearchResult, *, self_url: str, base_url: str, now: datetime) -> bytes:
    """The Atom document for ``result`` (see ``feed``)."""
    entries = [Entry(h.doc_id, h.title, h.url, h.source, h.text, h.published_at) for h in result.hits]
    return feed(f"Poshuk: {result.query}", entries, self_url=self_url, base_url=base_url, now=now)


def alert_feed(matches: AlertMatches, *, self_url: str, base_url: str, now: datetime) -> bytes:
    """An alert's matches as Atom, each entry updated when it matched (what a reader orders by)."""
    entries = [
        Entry(m.doc_id, m.title, m.url, m.source, m.text, m.published_at, updated=m.matched_at) for m in matches.matches
    ]
    return feed(f"Poshuk alert: {matches.alert.query}", entries, self_url=self_url, base_url=base_url, now=now)


def feed(title: str, entries: list[Entry], *, self_url: str, base_url: str, now: datetime) -> bytes:
    """The Atom document: the feed's id is its own URL; ``updated`` is the newest entry's date (or
    ``now`` without dated entries); an entry links to the article's URL when it has a web one,
    else to the article in this service's API."""
    ET.register_namespace("", ATOM_NS)

    def sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
        node = ET.SubElement(parent, f"{{{ATOM_NS}}}{tag}", attrs)
        if text is not None:
            node.text = _text(text)
        return node

    root = ET.Element(f"{{{ATOM_NS}}}feed")
    sub(root, "id", self_url)
    sub(root, "title", title)
    dates = [d for e in entries for d in (e.updated or e.published_at,) if d is not None]
    sub(root, "updated", _stamp(max(dates, default=now)))
    sub(root, "link", rel="self", type="application/atom+xml", href=self_url)
    sub(sub(root, "author"), "name", "Poshuk")
    sub(root, "generator", "Poshuk")
    for item in entries:
        entry = sub(root, "entry")
        sub(entry, "id", entry_id(item.doc_id))
        sub(entry, "title", item.title or item.doc_id)
        sub(entry, "updated", _stamp(item.updated or item.published_at or max(dates, default=now)))
        if item.published_at is not None:
            sub(entry, "published", _stamp(item.published_at))
        web = item.url if item.url and item.url.startswith(("https://", "http://")) else None
        href = web or f"{base_url}/v1/documents/{quote(item.doc_id, safe='')}"
        sub(entry, "link", rel="alternate", href=_text(href))
        if item.source:
            sub(sub(entry, "author"), "name", item.source)
        sub(entry, "summary", item.summary, type="text")
    body: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return body
