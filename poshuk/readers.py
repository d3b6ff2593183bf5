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
from pathlib import Path
from typing import Any

import msgspec

from poshuk.documents import Article, clean_line, clean_text, normalise_id
from poshuk.errors import BadRecordError, ConfigError
from poshuk.feed_reader import FEED_SUFFIXES, read_feed
from poshuk.language import LanguageDetector
from poshuk.page_records import PageJoiner, PageRecord
from poshuk.pdf_reader import PageProgress, read_pdf
from poshuk.records import article_from_record as article_from_record  # re-exported: the write API's
from poshuk.records import finish_article, joined_article, page_record, paragraph_lines, record_fields
from poshuk.records import parse_date as parse_date

MAX_FILE_BYTES = 5 * 1024 * 1024
"""Larger .txt/.md/.html files (and JSONL lines) are bad records, not memory spikes."""

SUPPORTED_SUFFIXES = frozenset({".jsonl", ".txt", ".md", ".html", ".htm", ".pdf"}) | FEED_SUFFIXES

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
        yield found if isinstance(found, BadRecordError) else finish_article(msgspec.structs.asdict(found), detector)
        return
    if suffix in FEED_SUFFIXES:
        data = _small_file(path, source)
        if isinstance(data, BadRecordError):
            yield data
            return
        for item in read_feed(data, source):
            yield item if isinstance(item, BadRecordError) else finish_article(msgspec.structs.asdict(item), detector)
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
        yield joined_article(joined, source, detector)
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
        if obj.get("doc_id") is not None and obj.get("page") is not None:
            return page_record(obj)
        return finish_article(record_fields(obj), detector)
    except ValueError as exc:
        return BadRecordError(str(exc), source=source, line=lineno)


# --- plain text and Markdown --------------------------------------------------------


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
        paragraphs = paragraph_lines(rest)
    if not title and not paragraphs:
        return BadRecordError("empty file", source=source)
    fields: dict[str, Any] = {"id": doc_id, "title": title, "text": "\n\n".join(paragraphs)}
    return finish_article(fields, detector)


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
    return finish_article(fields, detector)
