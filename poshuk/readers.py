"""Source files -> ``Article``s: JSONL, plain text, Markdown, HTML, PDF, and RSS/Atom feeds.

JSONL records of one page each (``doc_id`` + ``page``) are joined into documents with pages by
``poshuk.page_records``, which says what is joined and what is refused.

Readers yield ``BadRecordError`` objects instead of raising them, so one bad line in a
million-line export costs one record, and the caller decides between skipping and
``--strict``. Every text is NFC-cleaned (``clean_text``) and keeps its paragraphs
separated by blank lines, which is what the chunker cuts along.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec

from poshuk.documents import Article, Page, clean_line, clean_text, normalise_id
from poshuk.errors import BadRecordError, ConfigError
from poshuk.feed_reader import FEED_SUFFIXES, read_feed
from poshuk.language import UNDETERMINED, LanguageDetector
from poshuk.page_records import MAX_PAGES, JoinedDocument, PageJoiner, PageRecord
from poshuk.pdf_reader import PageProgress, read_pdf

MAX_FILE_BYTES = 5 * 1024 * 1024
"""Larger .txt/.md/.html files (and JSONL lines) are bad records, not memory spikes."""

SUPPORTED_SUFFIXES = frozenset({".jsonl", ".txt", ".md", ".html", ".htm", ".pdf"}) | FEED_SUFFIXES

_STR_FIELDS = ("url", "source", "section")
_LANG = re.compile(r"[a-z]{2,3}")
_BLANKS = re.compile(r"\n[ \t]*(?:\n[ \t]*)+")
_SPACES = re.compile(r"[ \t\u00a0]+")
_MD_HEADING = re.compile(r"^\s{0,3}#{1,6}\s*(.*?)\s*#*\s*$")
_MD_IMAGE = re.compile(r"!\[([^\]]*)\]\([^)]*\)")
_MD_LINK = re.compile(r"\[([^\]]+)\]\([^)]*\)")
_MD_EMPHASIS = re.compile(r"(\*\*|__)(.+?)\1")
_MD_LIST = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+")
_FRONT_MATTER = re.compile(r"\A---\n.*?\n---[ \t]*(?:\n|\Z)", re.DOTALL)

Record = Article | BadRecordError


def iter_sources(paths: Sequence[Path]) -> Iterator[Path]:
    """Every readable source under ``paths``: files as given, directories recursively.

    Directory entries come sorted by name (stable ids and order run to run); hidden
    entries and unsupported extensions inside directories are skipped, but a file
    named explicitly must exist and have a supported extension. Inside a directory, a
    symbolic link to a folder outside it is not followed (a link to ``/`` would index the
    machine); a link to a *file* outside it is listed, and ``read_articles`` reports it as a
    bad record, so the person indexing sees that it was left out and why.
    """
    seen: set[Path] = set()
    for path in paths:
        if not path.exists():
            raise ConfigError(f"source not found: {path}")
        if path.is_dir():
            yield from _walk(path, seen, path.resolve())
        elif path.suffix.lower() not in SUPPORTED_SUFFIXES:
            raise ConfigError(
                f"unsupported source file: {path}",
                hint="supported extensions: " + ", ".join(sorted(SUPPORTED_SUFFIXES)),
            )
        elif path.resolve() not in seen:
            seen.add(path.resolve())
            yield path


def _walk(folder: Path, seen: set[Path], top: Path) -> Iterator[Path]:
    real = folder.resolve()
    if real in seen or not real.is_relative_to(top):  # symlink loops, a folder given twice, or a way out
        return
    seen.add(real)
    for child in sorted(folder.iterdir(), key=lambda p: p.name):
        if child.name.startswith("."):
            continue
        if child.is_dir():
            yield from _walk(child, seen, top)
        elif child.is_file() and child.suffix.lower() in SUPPORTED_SUFFIXES and child.resolve() not in seen:
            seen.add(child.resolve())
            yield child


def read_articles(
    path: Path, *, detector: LanguageDetector, root: Path | None = None, on_page: PageProgress | None = None
) -> Iterator[Record]:
    """Articles of one source file, with a ``BadRecordError`` in place of each bad record.

    ``on_page`` is told how far reading a PDF's pages has come (``poshuk.pdf_reader.PageProgress``).

    For .txt/.md/.html the id is the file stem, or the path relative to ``root``
    without its suffix (``world/2023/kirby``) when ``root`` is given, so files with the
    same name in different folders keep distinct ids.
    """
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise ConfigError(f"unsupported source file: {path}")
    if root is not None and not path.resolve().is_relative_to(root.resolve()):
        yield BadRecordError(f"a symbolic link to a file outside {root} ({path.resolve()}); not read", source=str(path))
        return
    if suffix == ".jsonl":
        yield from _read_jsonl(path, detector)
        return
    source = str(path)
    if suffix == ".pdf":
        doc_id = _file_id(path, root)
        found = (
            read_pdf(path, doc_id, source, on_page) if doc_id else BadRecordError("cannot derive an id", source=source)
        )
        yield found if isinstance(found, BadRecordError) else _finish(msgspec.structs.asdict(found), detector)
        return
    if suffix in FEED_SUFFIXES:
        data = _small_file(path, source)
        if isinstance(data, BadRecordError):
            yield data
            return
        for item in read_feed(data, source):
            yield item if isinstance(item, BadRecordError) else _finish(msgspec.structs.asdict(item), detector)
        return
    doc_id = _file_id(path, root)
    if not doc_id:
        yield BadRecordError("cannot derive an id from the file name", source=source)
        return
    data = _small_file(path, source)
    if isinstance(data, BadRecordError):
        yield data
    elif suffix in (".html", ".htm"):
        yield _from_html(data, doc_id, source, detector)
    else:
        text = _decode(data, source)
        if isinstance(text, BadRecordError):
            yield text
        else:
            yield _from_lines(text, doc_id, source, detector, markdown=suffix == ".md")


def _small_file(path: Path, source: str) -> bytes | BadRecordError:
    """The file's bytes, or a bad record when it cannot be read or is over ``MAX_FILE_BYTES``."""
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            return BadRecordError(f"file larger than {MAX_FILE_BYTES} bytes", source=source)
        data = path.read_bytes()
    except OSError as exc:
        return BadRecordError(f"cannot read file: {exc.strerror or exc}", source=source)
    return data if data.strip() else BadRecordError("empty file", source=source)


def _file_id(path: Path, root: Path | None) -> str:
    if root is not None:
        try:
            return normalise_id(path.relative_to(root).with_suffix("").as_posix())
        except ValueError:
            pass
    return normalise_id(path.stem)


def _decode(data: bytes, source: str, line: int | None = None) -> str | BadRecordError:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        where = line if line is not None else data[: exc.start].count(b"\n") + 1
        return BadRecordError(f"invalid UTF-8 at byte {exc.start}", source=source, line=where)
    return clean_text(text.removeprefix("\ufeff"))


def _finish(fields: dict[str, Any], detector: LanguageDetector) -> Article:
    """Detect a missing language, then build the article."""
    if not fields.get("lang"):
        lang = detector.detect(f"{fields['title']}\n{fields['text']}")
        fields["lang"] = None if lang == UNDETERMINED else lang
    return Article(**fields)


# --- JSONL ------------------------------------------------------------------------


def _read_jsonl(path: Path, detector: LanguageDetector) -> Iterator[Record]:
    """Whole records as they come; page records (``poshuk.page_records``) joined, at the end of the file."""
    source = str(path)
    records = 0
    joiner = PageJoiner()
    try:
        with path.open("rb") as handle:
            for lineno, raw in enumerate(handle, start=1):
                if not raw.strip():
                    continue
                records += 1
                found = _jsonl_record(raw, lineno, source, detector)
                if isinstance(found, PageRecord):
                    reason = joiner.add(found, lineno)
                elif isinstance(found, Article):
                    reason = joiner.whole(found.id, lineno)
                else:
                    reason = None
                if reason is not None:
                    yield BadRecordError(reason, source=source, line=lineno)
                elif not isinstance(found, PageRecord):
                    yield found
    except OSError as exc:
        yield BadRecordError(f"cannot read file: {exc.strerror or exc}", source=source)
        return
    for joined in joiner.documents():
        yield _joined_article(joined, source, detector)
    if records == 0:
        yield BadRecordError("empty file", source=source)


def _jsonl_record(raw: bytes, lineno: int, source: str, detector: LanguageDetector) -> Record | PageRecord:
    if len(raw) > MAX_FILE_BYTES:
        return BadRecordError(f"record larger than {MAX_FILE_BYTES} bytes", source=source, line=lineno)
    text = _decode(raw, source, lineno)
    if isinstance(text, BadRecordError):
        return text
    try:
        obj = msgspec.json.decode(text)
    except msgspec.DecodeError as exc:
        return BadRecordError(f"invalid JSON: {exc}", source=source, line=lineno)
    if not isinstance(obj, dict):
        return BadRecordError("expected a JSON object", source=source, line=lineno)
    try:
        if obj.get("doc_id") is not None and "page" in obj:
            return _page_record(obj)
        return _finish(_fields(obj), detector)
    except ValueError as exc:
        return BadRecordError(str(exc), source=source, line=lineno)


def article_from_record(obj: dict[str, Any], detector: LanguageDetector) -> Article:
    """One JSON object (a JSONL line, an HTTP write) -> ``Article``, exactly as ``poshuk index`` reads it.

    Raises ``ValueError`` saying which field is wrong.
    """
    return _finish(_fields(obj), detector)


def _fields(obj: dict[str, Any]) -> dict[str, Any]:
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
        body = "\n\n".join(_lines(clean_text(text)))
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


def _page_record(obj: dict[str, Any]) -> PageRecord:
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
    if not isinstance(number, int) or isinstance(number, bool) or number < 1:
        raise ValueError("'page' must be a whole number from 1")
    if not isinstance(text, str):
        raise ValueError("a page record needs its page's 'text' as a string")
    return PageRecord(
        doc_id=doc_id,
        number=number,
        text="\n".join(_lines(clean_text(text))),
        fields=_document_fields(obj, given_only=True),
    )


def _joined_article(joined: JoinedDocument, source: str, detector: LanguageDetector) -> Record:
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
    return _finish(fields, detector)


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
        if not isinstance(number, int) or isinstance(number, bool) or number < 1:
            raise ValueError(f"page {n}: 'number' must be a whole number from 1")
        if number in seen:
            raise ValueError(f"page {n}: page number {number} appears twice")
        if not isinstance(text, str):
            raise ValueError(f"page {n}: 'text' must be a string")
        seen.add(number)
        lines = _lines(clean_text(text))
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


# --- plain text and Markdown --------------------------------------------------------


def _lines(text: str) -> list[str]:
    """Non-empty lines, normalised: each is a paragraph (news exports put one per line)."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return [line for line in (_SPACES.sub(" ", raw).strip() for raw in text.split("\n")) if line]


def _from_lines(text: str, doc_id: str, source: str, detector: LanguageDetector, *, markdown: bool) -> Record:
    """First non-empty line is the title; further lines (txt) or Markdown blocks are paragraphs."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if markdown:
        text = _FRONT_MATTER.sub("", text, count=1)
    head, _, rest = text.lstrip().partition("\n")
    title = clean_line(head)
    if markdown:
        heading = _MD_HEADING.match(title)
        title = _md_inline(heading.group(1) if heading else title)
        paragraphs = _markdown_paragraphs(rest)
    else:
        paragraphs = _lines(rest)
    if not title and not paragraphs:
        return BadRecordError("empty file", source=source)
    fields: dict[str, Any] = {"id": doc_id, "title": title, "text": "\n\n".join(paragraphs)}
    return _finish(fields, detector)


def _markdown_paragraphs(text: str) -> list[str]:
    """Blocks become paragraphs: headings stand alone, list items keep their line, other lines join."""
    out: list[str] = []
    for block in _BLANKS.split(text):
        current: list[str] = []
        for raw in block.split("\n"):
            line = _SPACES.sub(" ", raw).strip()
            if not line:
                continue
            heading = _MD_HEADING.match(line)
            if heading:
                out.extend(_flush(current))
                current = []
                out.append(_md_inline(heading.group(1)))
            elif _MD_LIST.match(line) and current:
                out.extend(_flush(current))
                current = [line]
            else:
                current.append(line)
        out.extend(_flush(current))
    return [p for p in out if p]


def _flush(lines: list[str]) -> list[str]:
    return [_md_inline(" ".join(lines))] if lines else []


def _md_inline(text: str) -> str:
    text = _MD_IMAGE.sub("", text)
    text = _MD_LINK.sub(r"\1", text)
    return _SPACES.sub(" ", _MD_EMPHASIS.sub(r"\2", text)).strip()


# --- HTML ------------------------------------------------------------------------------


def _from_html(data: bytes, doc_id: str, source: str, detector: LanguageDetector) -> Record:
    """Main text via trafilatura (nav, footer and comments dropped).

    trafilatura takes the title from og:title, then ``<title>`` (site name cut off), then ``<h1>``.
    """
    import trafilatura

    try:
        doc = trafilatura.bare_extraction(
            data,
            with_metadata=True,
            include_comments=False,
            date_extraction_params={"extensive_search": False, "original_date": True},
        )
    except Exception as exc:  # lxml and trafilatura raise assorted types on broken markup
        return BadRecordError(f"cannot parse HTML: {exc}", source=source)
    raw_text = getattr(doc, "text", None) or ""
    title = clean_line(getattr(doc, "title", None) or "")
    lines = [_SPACES.sub(" ", line).strip() for line in clean_text(raw_text).splitlines()]
    lines = [line for line in lines if line]
    if lines and title and lines[0] == title:
        lines = lines[1:]  # trafilatura repeats the <h1> as the first line
    if not lines:
        return BadRecordError("no article text found in HTML", source=source)
    try:
        published = parse_date(getattr(doc, "date", None))
    except ValueError:
        published = None  # trafilatura's own guess; a bad one is not worth the record
    fields: dict[str, Any] = {
        "id": doc_id,
        "title": title,
        "text": "\n\n".join(lines),
        "url": getattr(doc, "url", None) or None,
        "source": getattr(doc, "sitename", None) or None,
        "published_at": published,
    }
    return _finish(fields, detector)
