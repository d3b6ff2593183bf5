"""Folders made read-only (``chmod -R a-w``) and listed, to prove a read-only open changes nothing."""

from __future__ import annotations

import stat
from pathlib import Path

Listing = dict[str, tuple[int, int]]


def listing(folder: Path) -> Listing:
    """Every file and folder under ``folder`` with its size and mtime (ns)."""
    found: Listing = {}
    for path in [folder, *folder.rglob("*")]:
        info = path.stat()
        found[str(path.relative_to(folder))] = (info.st_size, info.st_mtime_ns)
    return found


def make_read_only(folder: Path) -> None:
    """``chmod -R a-w folder``."""
    for path in [folder, *folder.rglob("*")]:
        path.chmod(stat.S_IMODE(path.stat().st_mode) & ~0o222)


def make_writable(folder: Path) -> None:
    for path in [folder, *folder.rglob("*")]:
        path.chmod(stat.S_IMODE(path.stat().st_mode) | stat.S_IWUSR)
