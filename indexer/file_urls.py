"""``poshuk index --url-prefix``: where the indexed files are published, so hits from them link there.

A newsroom keeps a document dump in a folder and serves the same folder on the web; a PDF
read from ``dump/court/ruling-7.pdf`` under ``--url-prefix https://docs.example/dump/`` gets
``https://docs.example/dump/court/ruling-7.pdf``, and the web page opens its hits at their
page (``#page=N``). Records that carry their own url (JSONL, feeds, HTML with one) keep it.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from urllib.parse import quote, urlsplit

from poshuk.errors import ConfigError


def checked_prefix(prefix: str) -> str:
    """The prefix ending in ``/``; ``ConfigError`` unless it is an absolute http(s) URL without query or fragment."""
    parts = urlsplit(prefix)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise ConfigError(
            f"--url-prefix must be an http(s) URL of a folder, got {prefix!r}",
            hint="e.g. --url-prefix https://docs.example.org/dump/",
        )
    return prefix if prefix.endswith("/") else prefix + "/"


def file_url(prefix: str, path: Path, root: Path | None) -> str:
    """The published address of ``path``: its path under ``root`` (or its name), URL-quoted, after ``prefix``."""
    relative = path.name
    if root is not None:
        with contextlib.suppress(ValueError):
            relative = path.relative_to(root).as_posix()
    return prefix + quote(relative, safe="/")
