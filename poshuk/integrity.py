"""A quick integrity check of an index version's SQLite database, before anything serves it.

A damaged page does not stop SQLite from opening the file; the damage shows only when a
query reaches it, so a service over a corrupted index said "ready" and then answered
dense and hybrid searches with 500. ``check_integrity`` runs ``PRAGMA quick_check`` (every
page and b-tree, without comparing index contents: about a second per GB) on a connection
of its own, read-only (the URI ``connect(read_only=True)`` uses, so a read-only folder can be
checked too), and turns any finding into ``IndexCorruptError``.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from poshuk.errors import IndexCorruptError
from poshuk.index.db import read_only_uri

DATABASE = "meta.sqlite"
MAX_FINDINGS = 3


def check_integrity(version_dir: Path) -> None:
    """Raise ``IndexCorruptError`` if the database of the index version at ``version_dir`` is damaged."""
    path = version_dir / DATABASE
    hint = "restore the index folder from a backup, or rebuild it with `poshuk index --rebuild`"
    try:
        conn = sqlite3.connect(read_only_uri(path), uri=True, timeout=30.0)
    except sqlite3.Error as exc:
        raise IndexCorruptError(f"cannot open the index database {path}: {exc}", hint=hint) from None
    try:
        findings = [str(row[0]) for row in conn.execute(f"PRAGMA quick_check({MAX_FINDINGS})")]
    except sqlite3.DatabaseError as exc:  # "file is not a database", "database disk image is malformed"
        raise IndexCorruptError(f"the index database {path} is damaged: {exc}", hint=hint) from None
    finally:
        conn.close()
    if findings != ["ok"]:
        raise IndexCorruptError(f"the index database {path} is damaged: {'; '.join(findings)}", hint=hint)
