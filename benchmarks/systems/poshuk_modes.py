"""``poshuk-<mode>``: the library's own ``Searcher`` over a real index of the set."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from benchmarks.datasets import BenchSet, Query, unit_id
from benchmarks.workspace import Workspace
from poshuk import Searcher


class PoshukSystem:
    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.name = f"poshuk-{mode}"
        self._searcher: Searcher | None = None

    def prepare(self, bench: BenchSet, ws: Workspace) -> dict[str, str]:
        self._searcher = ws.searcher(bench)  # shared by all modes; the workspace closes it
        manifest = self._searcher.manifest
        return {"mode": self.mode, "vector_index": manifest.vector_index, "index_version": manifest.version}

    def rank(self, queries: Sequence[Query], depth: int) -> list[list[str]]:
        if self._searcher is None:
            raise RuntimeError("prepare() first")
        k = min(depth, self._searcher.max_k)
        mode: Any = self.mode  # a member of poshuk.search.MODES
        search = self._searcher.search
        return [
            [unit_id(hit.doc_id, hit.page) for hit in search(q.text, k=k, mode=mode, highlight=False).hits]
            for q in queries
        ]

    def close(self) -> None:
        self._searcher = None
