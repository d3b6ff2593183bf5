"""Publishing files and folders atomically: readers see the old one or the new one, never half.

Three writers need it (index versions and their ``CURRENT`` pointer, the built model, its
ONNX export), so the rename dance lives here once: write beside the target, fsync, rename
over it, fsync the folder so the rename itself survives a power cut.
"""

from __future__ import annotations

import os
import secrets
import shutil
from pathlib import Path


def fsync_dir(path: Path) -> None:
    """Make a rename or a new entry in ``path`` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_file(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data``, durably and atomically."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def publish_file(tmp: Path, path: Path) -> None:
    """Move an already written ``tmp`` (same folder) over ``path``, durably."""
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def publish_dir(tmp: Path, final: Path) -> None:
    """Put the built folder ``tmp`` at ``final``, replacing what was there.

    POSIX cannot rename a folder over a non-empty one, so the old folder is moved aside
    first and restored if the second rename fails; a reader may find ``final`` missing for
    that instant, never half-written. Raises ``OSError`` from the failed rename.
    """
    trash = final.with_name(f".{final.name}.old-{secrets.token_hex(4)}")
    if final.exists() or final.is_symlink():
        os.rename(final, trash)
    try:
        os.rename(tmp, final)
    except OSError:
        if (trash.exists() or trash.is_symlink()) and not final.exists():
            os.rename(trash, final)
        raise
    fsync_dir(final.parent)
    if trash.is_dir() and not trash.is_symlink():
        shutil.rmtree(trash, ignore_errors=True)
    elif trash.exists() or trash.is_symlink():
        trash.unlink()
