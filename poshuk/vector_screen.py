"""A float16 screen in front of the exact flat scan: the same answers, read from half the memory.

An exact search over 107,560 passages reads 165 MB of float32 vectors per query, 6-8 ms on the
2-core EPYC (AVX-512) of issue 14, bound by memory rather than arithmetic. The screen keeps the
vectors a second time as float16 (2 bytes a dimension, FAISS's ``QT_fp16`` scalar quantiser) and
scans those. Each vector's rounding error is known when it is added, so a bound says which
vectors can still be in the exact top k; the flat index then scores only those (median 272 of
107,560 for k = 250, real queries) with its own arithmetic. A search takes 6.8 -> 4.5 ms there,
and its ids and float32 scores are the flat scan's bit for bit (2,090 of 2,090 real queries, top
250, at one FAISS thread, the default; ``tests/unit/test_vector_screen.py`` checks it each run).

The bound. For a query q, a stored vector x and its float16 copy x', |q.x - q.x'| <= |q| |x - x'|
<= |q| E, with E the largest rounding error of any vector added; each computed dot product is
also off its real value by at most d 2^-24 |q| |x| (float32, d terms), twice that for the
pair. Call the sum delta, and tau the k-th best screened score: k vectors score exactly at
least tau - delta, so the k-th exact score is at least that, and any vector that scores at
least that exactly screens at least tau - 2 delta. So every vector of the exact top k, ties at
the k-th score included, is among those screened at tau - 2 delta or more.
"""

from __future__ import annotations

from typing import Any

import faiss
import numpy as np
from numpy.typing import NDArray

Ids = NDArray[np.int64]

# Below it no second copy is kept. Measured (top 250, real queries and vectors, one thread): at 32,768
# vectors flat and screened are level (1.95 / 2.05 and 1.87 / 1.59 ms in two runs), at 40,000 2.47 -> 2.04,
# 65,536 4.19 -> 2.90, 107,560 7.18 -> 4.33 ms; at 8,192 the screen is slower (0.31 -> 0.55 ms).
SCREEN_ABOVE = 32_768
FLOAT32_ROUNDING = 2.0**-24
SAFETY = 1.01  # on top of the bound, for the norms' own rounding
BUILD_CHUNK = 50_000  # vectors copied at a time when a screen is built from a flat index


class HalfScreen:
    """Float16 copies of a flat index's vectors, by the same ids, and the largest rounding error."""

    def __init__(self, dimension: int) -> None:
        self.dimension = dimension
        self._codes: Any = faiss.IndexIDMap2(
            faiss.IndexScalarQuantizer(dimension, faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT)
        )
        self._quantiser: Any = faiss.downcast_index(self._codes.index)
        self._error = 0.0  # the largest |x - x'| of any vector added
        self._norm = 0.0  # the largest |x|

    @classmethod
    def of(cls, id_map: Any, dimension: int) -> HalfScreen:
        """A screen over everything an ``IndexIDMap2`` of a flat index holds, copied in chunks."""
        screen = cls(dimension)
        flat: Any = faiss.downcast_index(id_map.index)
        ids = faiss.vector_to_array(id_map.id_map).astype(np.int64)
        for start in range(0, len(ids), BUILD_CHUNK):
            stop = min(len(ids), start + BUILD_CHUNK)
            screen.add(ids[start:stop], flat.reconstruct_n(start, stop - start))
        return screen

    def __len__(self) -> int:
        return int(self._codes.ntotal)

    def add(self, ids: Ids, vectors: NDArray[np.float32]) -> None:
        if len(ids) == 0:
            return
        rounded = self._quantiser.sa_decode(self._quantiser.sa_encode(vectors))
        self._error = max(self._error, float(np.linalg.norm(vectors - rounded, axis=1).max()))
        self._norm = max(self._norm, float(np.linalg.norm(vectors, axis=1).max()))
        self._codes.add_with_ids(vectors, ids)

    def remove(self, ids: Ids) -> None:
        if len(ids):
            self._codes.remove_ids(ids)

    def slack(self, query: NDArray[np.float32]) -> float:
        """delta of the module's bound for ``query``: how far a screened score may be from the exact one."""
        rounding = 2 * self.dimension * FLOAT32_ROUNDING * (self._norm + self._error)
        return SAFETY * float(np.linalg.norm(query)) * (self._error + rounding)

    def candidates(self, query: NDArray[np.float32], k: int, selector: Any | None) -> Ids:
        """Ids (among ``selector``'s, if given) that can be in the exact top ``k`` for one ``query`` row."""
        floor_gap = 2 * self.slack(query)
        total = len(self)
        want = min(total, 2 * k)
        params = None
        if selector is not None:
            params = faiss.SearchParameters()
            params.sel = selector
        while True:
            scores, ids = self._codes.search(query, want, params=params)
            found = ids[0] >= 0
            screened: NDArray[np.float32] = scores[0][found]
            named: Ids = ids[0][found].astype(np.int64)
            if len(named) < k:  # fewer than k vectors allowed at all: every one of them
                return named
            floor = screened[k - 1] - floor_gap
            if len(named) < want or want >= total or screened[-1] < floor:
                kept: Ids = named[screened >= floor]
                return kept
            want = min(total, want * 2)
