"""FAISS behind a small interface: add, remove, search, save, load.

Vectors are L2-normalised, so inner product is cosine similarity. Ids are the
passages' integer row ids in SQLite, which lets one id name a passage everywhere.
``IndexIDMap2`` over ``IndexFlatIP`` is exact and supports removal; the index type
is recorded so later, approximate types can be chosen by size.
"""

from __future__ import annotations

from pathlib import Path

import faiss
import numpy as np
from numpy.typing import NDArray

from poshuk.errors import IndexCorruptError

FLAT_IP = "IDMap2,Flat,IP"

Ids = NDArray[np.int64]
Scores = NDArray[np.float32]


class VectorIndex:
    """Exact inner-product search over normalised vectors, addressed by int64 ids."""

    KIND = FLAT_IP

    def __init__(self, dimension: int, index: faiss.Index | None = None) -> None:
        self.dimension = dimension
        self._index = index if index is not None else faiss.IndexIDMap2(faiss.IndexFlatIP(dimension))

    @property
    def kind(self) -> str:
        return FLAT_IP

    def __len__(self) -> int:
        return int(self._index.ntotal)

    def add(self, ids: Ids, vectors: NDArray[np.float32]) -> None:
        if len(ids) == 0:
            return
        if vectors.shape != (len(ids), self.dimension):
            raise ValueError(f"expected {len(ids)} vectors of dimension {self.dimension}, got {vectors.shape}")
        self._index.add_with_ids(
            np.ascontiguousarray(vectors, dtype=np.float32), np.ascontiguousarray(ids, dtype=np.int64)
        )

    def remove(self, ids: Ids) -> int:
        """Remove ids; returns how many were present."""
        if len(ids) == 0:
            return 0
        # faiss's Python wrapper accepts an id array here; its stubs only declare IDSelector.
        return int(self._index.remove_ids(np.ascontiguousarray(ids, dtype=np.int64)))  # type: ignore[arg-type]

    def search(self, queries: NDArray[np.float32], k: int, *, allowed: Ids | None = None) -> tuple[Scores, Ids]:
        """Top-k (scores, ids) per query row, among ``allowed`` ids if given; missing slots have id -1."""
        limit = len(self) if allowed is None else min(len(self), len(allowed))
        if limit == 0:
            rows = queries.shape[0]
            return np.zeros((rows, 0), dtype=np.float32), np.zeros((rows, 0), dtype=np.int64)
        k = max(1, min(k, limit))
        params = selector = None
        if allowed is not None:
            # keep ``selector`` referenced until the search returns: params only holds a C++ pointer
            selector = faiss.IDSelectorBatch(np.ascontiguousarray(allowed, dtype=np.int64))
            params = faiss.SearchParameters()
            params.sel = selector
        scores, ids = self._index.search(np.ascontiguousarray(queries, dtype=np.float32), k, params=params)
        del selector
        return scores.astype(np.float32), ids.astype(np.int64)

    def save(self, path: Path) -> None:
        faiss.write_index(self._index, str(path))

    @classmethod
    def load(cls, path: Path, dimension: int) -> VectorIndex:
        try:
            index = faiss.read_index(str(path))
        except RuntimeError as exc:
            raise IndexCorruptError(f"cannot read vectors from {path}: {exc}") from None
        if int(index.d) != dimension:
            raise IndexCorruptError(f"{path} holds vectors of dimension {index.d}, manifest says {dimension}")
        return cls(dimension, index)
