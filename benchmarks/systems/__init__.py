"""One adapter per retrieval system; each ranks passages and reports their document ids.

A ``System`` is prepared once per set (index building, loading) and then asked for the
``depth`` best passages of every query. The runner collapses those to documents by
their best passage (``metrics.collapse_to_docs``), so all systems are scored alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from benchmarks.datasets import BenchSet, Query
from benchmarks.workspace import Workspace


class SystemUnavailable(Exception):
    """The system cannot run here (a missing package, say); reported, never faked."""


class System(Protocol):
    name: str

    def prepare(self, bench: BenchSet, ws: Workspace) -> dict[str, str]:
        """Index or load ``bench``; returns configuration notes for the report."""
        ...

    def rank(self, queries: Sequence[Query], depth: int) -> list[list[str]]:
        """Per query, the document ids of its ``depth`` best passages, best first."""
        ...

    def close(self) -> None: ...


def system_names() -> list[str]:
    """Every system this run can compare: each poshuk search mode, then the peers."""
    from poshuk.search import MODES

    return [f"poshuk-{mode}" for mode in MODES] + ["bm25s", "txtai"]


def make_system(name: str) -> System:
    if name.startswith("poshuk-"):
        from benchmarks.systems.poshuk_modes import PoshukSystem

        return PoshukSystem(name.removeprefix("poshuk-"))
    if name == "bm25s":
        from benchmarks.systems.bm25 import Bm25System

        return Bm25System()
    if name == "txtai":
        from benchmarks.systems.txtai_system import TxtaiSystem

        return TxtaiSystem()
    raise ValueError(f"unknown system {name!r}; choose from {', '.join(system_names())}")
