"""Wire schemas of the write API: an article in, what a reload did out (a write answers ``poshuk.wire.WriteResult``).

``ArticleIn`` has the fields of a JSONL line that ``poshuk index`` reads; an article
written over HTTP goes through the same reader checks (``article_from_record``) and the
same chunk-and-encode path (``poshuk.ingest.prepare``) as one indexed from a file.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

from poshuk.page_records import MAX_PAGE_NUMBER

MAX_ID_CHARS = 512


def _doc(text: str, **extra: Any) -> msgspec.Meta:
    return msgspec.Meta(description=text, **extra)


class PageIn(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """One page of a long document."""

    number: Annotated[int, _doc(f"The page's number, from 1 to {MAX_PAGE_NUMBER:,}.", ge=1, le=MAX_PAGE_NUMBER)]
    text: Annotated[str, _doc("The page's text; each line is a paragraph.")]


class ArticleIn(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """One news article, or a long document with `pages`. Paragraphs in `text` are separated by line breaks."""

    text: Annotated[str | None, _doc("The article body; each line is a paragraph. Required unless `pages`.")] = None
    pages: Annotated[
        list[PageIn] | None,
        _doc("A long document's pages, instead of `text`: passages never cross a page, and hits name it."),
    ] = None
    id: Annotated[
        Annotated[str, msgspec.Meta(max_length=MAX_ID_CHARS)] | None,
        _doc("Article id; required in a batch; in a `PUT` it may be left out, and must match the path if given."),
    ] = None
    title: Annotated[str, _doc("Headline.")] = ""
    url: Annotated[str | None, _doc("Where the article is published.")] = None
    source: Annotated[str | None, _doc("Publisher, e.g. `Укрінформ`.")] = None
    published_at: Annotated[
        str | None, _doc("ISO 8601 date or date-time (`2023-08-31T09:15:00+03:00`); no zone means UTC.")
    ] = None
    lang: Annotated[str | None, _doc("Language code (`uk`, `en`); detected when absent.")] = None
    section: Annotated[str | None, _doc("Section, e.g. `світ`.")] = None
    tags: Annotated[list[str], _doc("Tags.")] = []

    def record(self, doc_id: str | None = None) -> dict[str, Any]:
        """The fields as the JSONL reader takes them, with ``doc_id`` as the id if given."""
        fields: dict[str, Any] = msgspec.to_builtins(self)
        if doc_id is not None:
            fields["id"] = doc_id
        return {name: value for name, value in fields.items() if value is not None or name == "id"}


class ReloadResponse(msgspec.Struct, kw_only=True, frozen=True):
    """The index version served after a reload."""

    version: Annotated[str, _doc("Version now served, e.g. `v000002`.")]
    previous: Annotated[str, _doc("Version served before.")]
    changed: Annotated[bool, _doc("Whether the service switched versions.")]
