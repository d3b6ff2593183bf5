"""FAISS behind a small interface: add, remove, search, save, load; the index type chosen by size.

Vectors are L2-normalised, so inner product is cosine similarity. Ids are the
passages' integer row ids in SQLite, which lets one id name a passage everywhere.

Two kinds, both supporting ``remove_ids`` and filtered search through an
``IDSelector``:

- ``IDMap2,Flat,IP`` (``IndexIDMap2`` over ``IndexFlatIP``): exact; 4 bytes a dimension. From
  ``SCREEN_ABOVE`` vectors on it also keeps a float16 copy in memory (2 bytes a dimension more;
  ``poshuk.vector_screen``): a search scans the copy and the flat index scores only the vectors
  a proven bound cannot rule out, so answers and scores stay the flat scan's bit for bit
  (2,090 real queries, top 250, over 107,560 passages: all equal; 6.8 -> 4.5 ms a query).
- ``IVF<nlist>,SQ8,IP`` (``IndexIVFScalarQuantizer``): approximate; ``nlist`` k-means
  lists trained on a sample of at most ``TRAIN_SAMPLE`` vectors, 8-bit scalar-quantised
  residuals (1 byte a dimension), ``nprobe`` lists scanned per query, a hashtable
  direct map so ids can be removed and reconstructed. Later adds go into the trained
  lists. HNSW was not chosen: FAISS cannot remove ids from it.

``fitted(approximate_above)`` turns a flat index above the threshold into an IVF one
(the store calls it before writing a snapshot, and builds IVF directly when it rebuilds
from SQLite); an IVF index stays IVF when deletes take it below the threshold, until
the vectors are rebuilt. The FAISS file records the kind and its parameters (``nlist``,
``nprobe``, the direct map), so ``load`` returns what was saved. The numbers behind the
parameters are in ``benchmarks/results/scale.md``.
"""

from __future__ import annotations

import math
import threading
from pathlib import Path
from typing import Any

import faiss
import numpy as np
from numpy.typing import NDArray

from poshuk.errors import IndexCorruptError
from poshuk.vector_screen import SCREEN_ABOVE, HalfScreen

FLAT_IP = "IDMap2,Flat,IP"
IVF_SQ8_IP = "IVF,SQ8,IP"
TRAIN_SAMPLE = 100_000  # vectors the IVF lists and the quantiser are trained on, at most
MIN_NLIST = 64
MAX_NLIST = 2048  # k-means wants >= 39 training points a list: 100k / 2048 = 48
TRAIN_POINTS_PER_LIST = 39
NPROBE_FRACTION = 1 / 8  # share of the lists scanned per query; recall stops rising beyond it (scale.md)
MIN_NPROBE = 16
# A filter allowing a share f of the vectors widens the scan to nprobe / f lists, but to no more
# than this share of them: scanning every list with an id selector cost more than the flat index's
# filtered scan (277 vs 156 ms at 1M, 10% allowed; scale.md). A row left short of k still scans all.
FILTERED_PROBE_CAP = 1 / 4

_HASHTABLE = faiss.DirectMap.Hashtable  # type: ignore[attr-defined]  # missing from faiss's stubs

Ids = NDArray[np.int64]
Scores = NDArray[np.float32]

_search_threads: int | None = None  # FAISS's OpenMP threads per search; None: OpenMP's default
_applied = threading.local()  # the value this thread last gave OpenMP


def set_search_threads(threads: int | None) -> None:
    """Use ``threads`` OpenMP threads in every later search of this process (0 or None: OpenMP's default).

    OpenMP keeps the thread count per calling thread: ``faiss.omp_set_num_threads`` in the
    main thread does not reach the worker threads a server searches in. So this records
    the number and each search applies it to its own thread, once per thread.
    """
    global _search_threads
    _search_threads = threads or None


def _apply_search_threads() -> None:
    threads = _search_threads
    if threads is not None and getattr(_applied, "threads", None) != threads:
        faiss.omp_set_num_threads(threads)
        _applied.threads = threads


def nlist_for(passages: int) -> int:
    """Lists for an IVF index over ``passages`` vectors: the power of two nearest 2·√n, within bounds."""
    nlist = max(MIN_NLIST, 2 ** round(math.log2(2 * math.sqrt(max(passages, 1)))))
    by_sample = 2 ** int(math.log2(max(min(passages, TRAIN_SAMPLE) // TRAIN_POINTS_PER_LIST, 1)))
    return int(min(nlist, MAX_NLIST, by_sample))


def nprobe_for(nlist: int) -> int:
    return int(min(nlist, max(MIN_NPROBE, round(nlist * NPROBE_FRACTION))))


def _f32(array: NDArray[Any]) -> NDArray[np.float32]:
    return np.ascontiguousarray(array, dtype=np.float32)


def _i64(array: NDArray[Any]) -> Ids:
    return np.ascontiguousarray(array, dtype=np.int64)


class VectorIndex:
    """Inner-product search over normalised vectors addressed by int64 ids: exact, or IVF-SQ8 when large."""

    KIND = f"{FLAT_IP}|{IVF_SQ8_IP}"  # recorded in the manifest: flat up to the threshold, IVF above

    def __init__(self, dimension: int, index: faiss.Index | None = None) -> None:
        self.dimension = dimension
        self._index = index if index is not None else faiss.IndexIDMap2(faiss.IndexFlatIP(dimension))
        self._ivf: Any = index if isinstance(index, faiss.IndexIVF) else None
        self._screen: HalfScreen | None = None  # a flat index's float16 screen, once it holds SCREEN_ABOVE vectors
        self.prepare_for(0)

    @classmethod
    def approximate(
        cls, dimension: int, training: NDArray[np.float32], *, nlist: int | None = None, nprobe: int | None = None
    ) -> VectorIndex:
        """An empty IVF-SQ8 index trained on ``training`` (a sample of the vectors it will hold)."""
        nlist = nlist if nlist is not None else nlist_for(len(training))
        nlist = max(1, min(nlist, len(training)))
        quantizer: Any = faiss.IndexFlatIP(dimension)
        index: Any = faiss.IndexIVFScalarQuantizer(
            quantizer, dimension, nlist, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT
        )
        index.own_fields = True
        quantizer.this.disown()  # the IVF index frees its quantizer
        index.train(_f32(training))
        index.set_direct_map_type(_HASHTABLE)  # remove_ids and reconstruct by id
        index.nprobe = nprobe if nprobe is not None else nprobe_for(nlist)
        return cls(dimension, index)

    @property
    def approximate_kind(self) -> bool:
        return self._ivf is not None

    @property
    def kind(self) -> str:
        if self._ivf is None:
            return FLAT_IP
        return f"IVF{self._ivf.nlist},SQ8,IP"

    def parameters(self) -> dict[str, int | str]:
        """The kind and its search parameters, as the FAISS file records them."""
        out: dict[str, int | str] = {"kind": self.kind, "vectors": len(self)}
        if self._ivf is not None:
            out |= {"nlist": int(self._ivf.nlist), "nprobe": int(self._ivf.nprobe)}
        return out

    def __len__(self) -> int:
        return int(self._index.ntotal)

    def ids(self) -> Ids:
        """The ids an exact index holds, in insertion order (checks and tools; not for IVF-SQ8)."""
        if self._ivf is not None:
            raise ValueError("an IVF-SQ8 index keeps its ids in its inverted lists")
        id_map: Any = self._index
        return faiss.vector_to_array(id_map.id_map).astype(np.int64)

    def add(self, ids: Ids, vectors: NDArray[np.float32]) -> None:
        if len(ids) == 0:
            return
        if vectors.shape != (len(ids), self.dimension):
            raise ValueError(f"expected {len(ids)} vectors of dimension {self.dimension}, got {vectors.shape}")
        self._index.add_with_ids(_f32(vectors), _i64(ids))
        if self._screen is not None:
            self._screen.add(_i64(ids), _f32(vectors))
        else:
            self.prepare_for(0)

    def prepare_for(self, adding: int) -> None:
        """Build the float16 screen now if a flat index with ``adding`` more vectors is large enough
        to gain from it (it is kept after deletes take the index back below: no rebuild churn around
        the threshold). It copies what the index holds and changes nothing a search reads until it
        is complete, so a writer calls this under a shared lock, beside running searches, and keeps
        its exclusive one for the add (the build took ~0.3 s at 32,768 vectors on 2 busy cores)."""
        if self._ivf is None and self._screen is None and len(self) + adding >= SCREEN_ABOVE:
            self._screen = HalfScreen.of(self._index, self.dimension)

    def remove(self, ids: Ids) -> int:
        """Remove ids; returns how many were present."""
        if len(ids) == 0:
            return 0
        if self._screen is not None:
            self._screen.remove(_i64(ids))
        # faiss's Python wrapper accepts an id array here; its stubs only declare IDSelector.
        return int(self._index.remove_ids(_i64(ids)))  # type: ignore[arg-type]

    def search(self, queries: NDArray[np.float32], k: int, *, allowed: Ids | None = None) -> tuple[Scores, Ids]:
        """Top-k (scores, ids) per query row, among ``allowed`` ids if given; missing slots have id -1.

        On an IVF index a filter widens the scan: with a share ``f`` of the vectors allowed,
        ``nprobe / f`` lists are scanned, at most ``FILTERED_PROBE_CAP`` of them; a query that
        finds fewer than k allowed vectors there scans every list, so a selective filter still
        finds its top-k.
        """
        limit = len(self) if allowed is None else min(len(self), len(allowed))
        if limit == 0:
            rows = queries.shape[0]
            return np.zeros((rows, 0), dtype=np.float32), np.zeros((rows, 0), dtype=np.int64)
        k = max(1, min(k, limit))
        queries = _f32(queries)
        _apply_search_threads()
        # keep ``selector`` referenced until the search returns: params only holds a C++ pointer
        selector = faiss.IDSelectorBatch(_i64(allowed)) if allowed is not None else None
        if self._screen is not None and limit >= SCREEN_ABOVE and k * 8 <= limit:  # a flat index only
            scores, ids = self._screened_search(queries, k, selector)
        elif self._ivf is None:
            params = None
            if selector is not None:
                params = faiss.SearchParameters()
                params.sel = selector
            scores, ids = self._index.search(queries, k, params=params)
        else:
            nlist, nprobe = int(self._ivf.nlist), int(self._ivf.nprobe)
            if allowed is not None:
                widened = math.ceil(nprobe * len(self) / max(len(allowed), 1))
                nprobe = min(nlist, max(nprobe, min(widened, math.ceil(nlist * FILTERED_PROBE_CAP))))
            scores, ids = self._ivf_search(queries, k, nprobe, selector)
            short = np.flatnonzero((ids < 0).any(axis=1))
            if len(short) and nprobe < nlist:  # fewer than k in the scanned lists: scan them all
                scores[short], ids[short] = self._ivf_search(queries[short], k, nlist, selector)
        del selector
        return scores.astype(np.float32), ids.astype(np.int64)

    def _screened_search(
        self, queries: NDArray[np.float32], k: int, selector: Any
    ) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
        """The flat scan's answer, scored by the flat index over the screen's candidates only
        (``poshuk.vector_screen``: same scores bit for bit, half the memory read)."""
        assert self._screen is not None
        scores = np.empty((len(queries), k), dtype=np.float32)
        ids = np.empty((len(queries), k), dtype=np.int64)
        for row in range(len(queries)):
            query = queries[row : row + 1]
            candidates = faiss.IDSelectorBatch(self._screen.candidates(query, k, selector))
            params = faiss.SearchParameters()
            params.sel = candidates
            found_scores, found_ids = self._index.search(query, k, params=params)
            scores[row], ids[row] = found_scores[0], found_ids[0]
            del candidates  # referenced until the search returned: params holds only a C++ pointer
        return scores, ids

    def _ivf_search(
        self, queries: NDArray[np.float32], k: int, nprobe: int, selector: Any
    ) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
        params = faiss.SearchParametersIVF()
        params.nprobe = nprobe
        if selector is not None:
            params.sel = selector
        scores, ids = self._index.search(queries, k, params=params)
        return scores, ids

    def fitted(self, approximate_above: int, *, seed: int = 0) -> VectorIndex:
        """This index, or (flat and above ``approximate_above`` vectors) an IVF-SQ8 copy of it."""
        n = len(self)
        if self._ivf is not None or n <= approximate_above:
            return self
        id_map: Any = self._index
        flat = faiss.downcast_index(id_map.index)
        ids = faiss.vector_to_array(id_map.id_map).astype(np.int64)
        rng = np.random.default_rng(seed)
        sample = np.sort(rng.choice(n, size=min(n, TRAIN_SAMPLE), replace=False))
        training = flat.reconstruct_batch(sample.astype(np.int64))
        out = VectorIndex.approximate(self.dimension, training, nlist=nlist_for(n))
        for start in range(0, n, 50_000):
            stop = min(n, start + 50_000)
            out.add(ids[start:stop], flat.reconstruct_n(start, stop - start))
        return out

    def save(self, path: Path) -> None:
        faiss.write_index(self._index, str(path))

    @classmethod
    def load(cls, path: Path, dimension: int) -> VectorIndex:
        """Read a saved index into memory (memory-mapped loading would leave it read-only; see scale.md)."""
        try:
            index = faiss.read_index(str(path))
        except RuntimeError as exc:
            raise IndexCorruptError(f"cannot read vectors from {path}: {exc}") from None
        if int(index.d) != dimension:
            raise IndexCorruptError(f"{path} holds vectors of dimension {index.d}, manifest says {dimension}")
        if not isinstance(index, faiss.IndexIDMap2 | faiss.IndexIVFScalarQuantizer):
            raise IndexCorruptError(f"{path} holds a {type(index).__name__}, not a kind poshuk writes")
        return cls(dimension, index)
