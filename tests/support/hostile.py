"""Helpers of the attack suite (tests/hostile) and the integrity tests: servers over damaged or tuned copies."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.support.repo import copy_index
from tests.support.serving import Server, start_server, stop_server


def address(server: Server) -> tuple[str, int]:
    host, port = server.base_url.removeprefix("http://").rsplit(":", 1)
    return host, int(port)


def damage(database: Path, table_or_index: str) -> None:
    """Overwrite the root page of ``table_or_index`` with garbage (its header byte stays, as a bad sector might)."""
    conn = sqlite3.connect(database)
    (root,) = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = ?", (table_or_index,)).fetchone()
    (page_size,) = conn.execute("PRAGMA page_size").fetchone()
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    with database.open("r+b") as handle:
        handle.seek((root - 1) * page_size + 8)
        handle.write(b"\xa5" * (page_size - 8))


@contextmanager
def serving(
    source: Path,
    tmp_path_factory: pytest.TempPathFactory,
    settings: Mapping[str, str] | None = None,
    *,
    damage: Callable[[Path], None] | None = None,
) -> Iterator[Server]:
    """A server over a private copy of ``source``; ``settings`` maps setting names (``header_timeout_s`` for
    ``service.header_timeout_s``, or dotted: ``auth.keys``) to values.

    ``damage`` gets the copy before the server starts; the server is then awaited on ``/healthz``.
    """
    folder = tmp_path_factory.mktemp("hostile")
    index = copy_index(source, folder / "index")
    env = {_variable(name): value for name, value in (settings or {}).items()}
    if damage is not None:
        damage(index)
    server = start_server(index, folder / "server.log", env, wait_for="/readyz" if damage is None else "/healthz")
    try:
        yield server
    finally:
        stop_server(server)


def _variable(name: str) -> str:
    section, _, field = name.rpartition(".")
    return f"POSHUK_{(section or 'service').upper()}_{field.upper()}"
