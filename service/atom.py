"""A search as an Atom feed (RFC 4287): what a feed reader subscribes to (issue 16).

One entry per article (the search is collapsed), identified by its article id so a reader
sees an article once however often it polls. Indexed text is data, never markup: ElementTree
escapes it, and characters XML 1.0 cannot carry at all (C0 controls, U+FFFE/U+FFFF, lone
surrogates) are dropped, so a hostile title cannot make the feed unreadable.
"""

from __future__ import annotations

import re
from datetime import datetime
from urllib.parse import quote
from xml.etree import ElementTree as ET

from poshuk.wire import SearchResult

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


def search_feed(result: SearchResult, *, self_url: str, base_url: str, now: datetime) -> bytes:
    """The Atom document for ``result``: the feed's id is its own URL; ``updated`` is the newest
    entry's date (or ``now`` without dated entries); an entry links to the article's URL when it
    has a web one, else to the article in this service's API."""
    ET.register_namespace("", ATOM_NS)

    def sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
        node = ET.SubElement(parent, f"{{{ATOM_NS}}}{tag}", attrs)
        if text is not None:
            node.text = _text(text)
        return node

    feed = ET.Element(f"{{{ATOM_NS}}}feed")
    sub(feed, "id", self_url)
    sub(feed, "title", f"Poshuk: {result.query}")
    dates = [hit.published_at for hit in result.hits if hit.published_at is not None]
    sub(feed, "updated", _stamp(max(dates, default=now)))
    sub(feed, "link", rel="self", type="application/atom+xml", href=self_url)
    sub(sub(feed, "author"), "name", "Poshuk")
    sub(feed, "generator", "Poshuk")
    for hit in result.hits:
        entry = sub(feed, "entry")
        sub(entry, "id", entry_id(hit.doc_id))
        sub(entry, "title", hit.title or hit.doc_id)
        sub(entry, "updated", _stamp(hit.published_at or max(dates, default=now)))
        if hit.published_at is not None:
            sub(entry, "published", _stamp(hit.published_at))
        web = hit.url if hit.url and hit.url.startswith(("https://", "http://")) else None
        href = web or f"{base_url}/v1/documents/{quote(hit.doc_id, safe='')}"
        sub(entry, "link", rel="alternate", href=_text(href))
        if hit.source:
            sub(sub(entry, "author"), "name", hit.source)
        sub(entry, "summary", hit.text, type="text")
    body: bytes = ET.tostring(feed, encoding="utf-8", xml_declaration=True)
    return body
