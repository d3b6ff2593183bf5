"""PDF files -> one ``Article`` with ``pages`` (issue 15): text per page, read with pypdf (BSD).

Each page's text layer becomes that page's paragraphs (one per line, as the other readers
make them); the PDF's own title metadata is the title when it has one, else the title is
left empty and ``poshuk.chunking.document_context`` gives every page the document's first heading.
Pages without text are skipped, and a PDF with no text on any page (a scan) is a bad
record saying so: indexing it would only add empty pages. Encrypted PDFs are read when they
open with an empty password (many "protected" PDFs do), and refused otherwise.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from poshuk.documents import Article, Page, clean_line, clean_text
from poshuk.errors import BadRecordError

MAX_PDF_BYTES = 200 * 1024 * 1024
"""Larger PDFs are bad records, not memory spikes (a 300-page report is a few MB)."""

PageProgress = Callable[[int, int], None]
"""Told ``(pages read, pages in the PDF)``: ``(0, n)`` when a PDF opens, then after each page, so a
progress bar moves through one long PDF (a 300-page report takes seconds to read)."""

_SPACES = re.compile(r"[ \t\u00a0]+")
_GENERIC_TITLES = re.compile(r"^(untitled|microsoft word - .*|document\d*|\.?\w+\.(docx?|pdf|odt))$", re.IGNORECASE)


def read_pdf(path: Path, doc_id: str, source: str, on_page: PageProgress | None = None) -> Article | BadRecordError:
    """The document of one PDF file (its language is left for the reader's detector)."""
    import pypdf
    from pypdf.errors import PyPdfError

    try:
        if path.stat().st_size > MAX_PDF_BYTES:
            return BadRecordError(f"PDF larger than {MAX_PDF_BYTES} bytes", source=source)
        reader = pypdf.PdfReader(path)
        if reader.is_encrypted and not reader.decrypt(""):
            return BadRecordError("the PDF is encrypted with a password", source=source)
        pages: list[Page] = []
        total = len(reader.pages)
        if on_page is not None:
            on_page(0, total)
        for number, page in enumerate(reader.pages, start=1):
            lines = [_SPACES.sub(" ", line).strip() for line in clean_text(page.extract_text() or "").splitlines()]
            lines = [line for line in lines if line]
            if lines:
                pages.append(Page(number=number, text="\n".join(lines)))
            if on_page is not None:
                on_page(number, total)
        metadata = reader.metadata
        title = clean_line(str(metadata.title or "")) if metadata is not None else ""
    except (OSError, PyPdfError, ValueError, KeyError, TypeError) as exc:  # pypdf raises assorted types on damage
        return BadRecordError(f"not a readable PDF: {type(exc).__name__}: {exc}", source=source)
    if not pages:
        return BadRecordError(
            f"no text layer on any of its {total} page(s) (a scanned PDF?); run OCR first and index the text",
            source=source,
        )
    if _GENERIC_TITLES.match(title):
        title = ""
    return Article(id=doc_id, title=title, text="\n\n".join(p.text for p in pages), pages=tuple(pages))
