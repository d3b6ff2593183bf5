"""RSS and Atom files and news sitemaps -> ``Article``s, one per entry (issue 16's "feeds in").

feedparser reads every RSS and Atom dialect and sanitises entry HTML; this module maps an
entry to an article: its guid (or link) as the id, title, link, date (published, else
updated), the feed's title as the source, its language, the entry's categories as tags,
and the full content when the feed carries it, else the summary, as paragraphs of text. An
entry without text or id is a bad record naming the file and the entry's position.

Sitemaps (``read_sitemap``): a news sitemap's entries carry a headline, a date and a source,
so each becomes an article of its headline (enough for alerts, feeds and date-sorted search);
a plain sitemap lists links without their text, and Poshuk does not fetch the web while
indexing, so its links are reported (fetch the pages and index the HTML).
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from poshuk.documents import Article, clean_line, clean_text, normalise_id
from poshuk.errors import BadRecordError

FEED_SUFFIXES = frozenset({".rss", ".atom", ".xml"})
_BLOCK_TAGS = ("p", "div", "br", "li", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "tr", "pre")
_SPACES = re.compile(r"[ \t\u00a0]+")
_LANG = re.compile(r"^([a-z]{2,3})(?:[-_]|$)")


def html_paragraphs(markup: str) -> list[str]:
    """The text of an HTML fragment, one item per block (paragraph, list item, heading, line break)."""
    import lxml.html

    if "<" not in markup:
        text = markup
    else:
        try:
            root = lxml.html.fragment_fromstring(markup, create_parent="div")
        except Exception:  # lxml raises assorted types on broken markup; fall back to the raw text
            text = markup
        else:
            for node in root.iter(*_BLOCK_TAGS):
                node.tail = "\n" + (node.tail or "")
            text = root.text_content()
    lines = (_SPACES.sub(" ", line).strip() for line in clean_text(text).splitlines())
    return [line for line in lines if line]


def _date(entry: Any) -> datetime | None:
    for key in ("published_parsed", "updated_parsed"):
        parsed = entry.get(key)
        if parsed:
            return datetime.fromtimestamp(calendar.timegm(parsed), UTC)
    return None


def _lang(feed: Any) -> str | None:
    found = _LANG.match(str(feed.get("language") or "").strip().lower())
    return found.group(1) if found else None


def read_feed(data: bytes, source: str) -> Iterator[Article | BadRecordError]:
    """Every entry of an RSS or Atom document, in the document's order."""
    import feedparser

    head = data[:4096]
    if b"<urlset" in head or b"<sitemapindex" in head:
        yield from read_sitemap(data, source)
        return
    parsed = feedparser.parse(data)
    version = str(parsed.get("version") or "")
    if not parsed.entries:
        if not version:
            yield BadRecordError("not an RSS or Atom feed", source=source)
        else:
            yield BadRecordError("the feed has no entries", source=source)
        return
    feed_title = clean_line(str(parsed.feed.get("title") or "")) or None
    lang = _lang(parsed.feed)
    for n, entry in enumerate(parsed.entries, start=1):
        where = f"{source} (entry {n})"
        doc_id = normalise_id(str(entry.get("id") or entry.get("link") or ""))
        if not doc_id:
            yield BadRecordError("entry has neither an id (guid) nor a link", source=where)
            continue
        content = entry.get("content") or []
        body = str(content[0].get("value") or "") if content else ""
        paragraphs = html_paragraphs(body or str(entry.get("summary") or ""))
        title = clean_line(str(entry.get("title") or ""))
        if not paragraphs:
            yield BadRecordError(f"entry {doc_id!r} has no text (neither content nor summary)", source=where)
            continue
        tags = tuple(dict.fromkeys(clean_line(str(t.get("term") or "")) for t in entry.get("tags") or []))
        yield Article(
            id=doc_id,
            title=title,
            text="\n\n".join(paragraphs),
            url=str(entry.get("link") or "") or None,
            source=feed_title,
            published_at=_date(entry),
            lang=lang,
            tags=tuple(t for t in tags if t),
        )


NEWS_NS = "http://www.google.com/schemas/sitemap-news/0.9"
SITEMAP_NS = "http://www.sitemaps.org/schemas/sitemap/0.9"


def read_sitemap(data: bytes, source: str) -> Iterator[Article | BadRecordError]:
    """A news sitemap's articles: each ``<url>`` with a ``<news:title>`` becomes an article of its
    headline alone (its ``loc`` the id and link; publication name, language, date and keywords).
    A plain sitemap lists links without text, and Poshuk does not fetch the web while indexing:
    its links are reported once, as is a sitemap index. Parsed without entities, DTDs or network."""
    from lxml import etree

    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)
    try:
        root = etree.fromstring(data, parser=parser)
    except etree.XMLSyntaxError as exc:
        yield BadRecordError(f"not a readable sitemap: {exc}", source=source)
        return
    if etree.QName(root).localname == "sitemapindex":
        yield BadRecordError("a sitemap index lists other sitemaps; index those files", source=source)
        return
    untitled = 0
    for n, url in enumerate(root.iter(f"{{{SITEMAP_NS}}}url", "url"), start=1):
        loc = clean_line(url.findtext(f"{{{SITEMAP_NS}}}loc") or url.findtext("loc") or "")
        news = url.find(f"{{{NEWS_NS}}}news")
        title = "" if news is None else clean_line(news.findtext(f"{{{NEWS_NS}}}title") or "")
        if not title:
            untitled += 1
            continue
        doc_id = normalise_id(loc)
        if not doc_id:
            yield BadRecordError("a news entry has no <loc>", source=f"{source} (url {n})")
            continue
        assert news is not None
        publication = news.find(f"{{{NEWS_NS}}}publication")
        name = None if publication is None else clean_line(publication.findtext(f"{{{NEWS_NS}}}name") or "")
        language = None if publication is None else publication.findtext(f"{{{NEWS_NS}}}language")
        keywords = clean_line(news.findtext(f"{{{NEWS_NS}}}keywords") or "")
        lang = _LANG.match(str(language or "").strip().lower())
        yield Article(
            id=doc_id,
            title=title,
            text=title,
            url=loc,
            source=name or None,
            published_at=_sitemap_date(news.findtext(f"{{{NEWS_NS}}}publication_date")),
            lang=lang.group(1) if lang else None,
            tags=tuple(dict.fromkeys(k.strip() for k in keywords.split(",") if k.strip())),
        )
    if untitled:
        yield BadRecordError(
            f"{untitled} link(s) without a news title: a sitemap lists links without their text; "
            "fetch the pages and index the HTML",
            source=source,
        )


def _sitemap_date(value: str | None) -> datetime | None:
    """A W3C date (``2023-08-31`` or ``2023-08-31T09:15:00+03:00``); None when absent or unreadable."""
    if not value:
        return None
    try:
        when = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)
