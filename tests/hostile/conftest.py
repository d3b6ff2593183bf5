"""The attack suite: real ``poshuk serve`` processes on 127.0.0.1, sent what an outsider could send.

Each module starts its own server (over its own copy of the example index) with the
settings its attack needs, passed as ``POSHUK_SERVICE_*`` variables.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.conftest import copy_index
from tests.serving import Server, start_server, stop_server


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
