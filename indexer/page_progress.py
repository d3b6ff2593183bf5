"""A "reading pages" bar for ``poshuk index``: a long PDF is one article, so the article bar alone
would stand still at 0 until its last page is read; this one moves page by page."""

from __future__ import annotations

from types import TracebackType

from tqdm import tqdm


class PageBar:
    """Pages read of every PDF so far, out of the pages of the PDFs opened so far.

    Opened at the first PDF, so a run without PDFs shows no empty bar; a ``PageProgress``
    (``poshuk.pdf_reader``) for ``read_articles``.
    """

    def __init__(self, *, enabled: bool) -> None:
        self._enabled = enabled
        self._bar: tqdm[None] | None = None
        self._done = 0  # pages read of the PDF being read

    def __call__(self, done: int, total: int) -> None:
        if not self._enabled:
            return
        if done == 0:  # a PDF opens: its pages join the total
            self._done = 0
            if self._bar is None:
                self._bar = tqdm(total=total, desc="reading pages", unit=" pages")
            else:
                self._bar.total += total
                self._bar.refresh()
            return
        if self._bar is not None:
            self._bar.update(done - self._done)
        self._done = done

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> PageBar:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()
