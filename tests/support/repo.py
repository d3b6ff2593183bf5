"""Where the repository and its example articles are, and private copies of index folders."""

from __future__ import annotations

import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples" / "articles"
EXAMPLE_NEWS = EXAMPLES / "news.jsonl"


def copy_index(source: Path, target: Path) -> Path:
    """A private copy of an index folder (SQLite, WAL and snapshot files included)."""
    return Path(shutil.copytree(source, target))
