"""The float16 screen answers exactly as the flat scan: same ids, same float32 scores, ties included."""

from __future__ import annotations

from typing import Any

import faiss
import numpy as np
import pytest
from numpy.typing import NDArray

import poshuk.vectors
from poshuk.vector_screen import SCREEN_ABOVE, HalfScreen
from poshuk.vectors import VectorIndex

DIM = 48


def embeddings(rng: np.random.Generator, n: int, centres: int = 40) -> NDArray[np.float32]:
    """Normalised vectors in clusters, like a sentence encoder's: many near neighbours, crowded scores."""
    middle = rng.standard_normal((centres, DIM)).astype(np.float32)
    out = middle[rng.integers(0, centres, n)] + 0.45 * rng.standard_normal((n, DIM)).astype(np.float32)
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def plain_flat(ids: NDArray[np.int64], vectors: NDArray[np.float32]) -> Any:
    index = faiss.IndexIDMap2(faiss.IndexFlatIP(DIM))
    index.add_with_ids(vectors, ids)
    return index


def flat_answer(index: Any, query: NDArray[np.float32], k: int, allowed: NDArray[np.int64] | None = None) -> Any:
    params = None
    if allowed is not None:
        params = faiss.SearchParameters()
        params.sel = faiss.IDSelectorBatch(allowed)
    return index.search(query, k, params=params)


@pytest.fixture
def small_threshold(monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr(poshuk.vectors, "SCREEN_ABOVE", 2_000)
    return 2_000


def test_screened_answers_are_the_flat_scans_bit_for_bit(small_threshold: int) -> None:
    rng = np.random.default_rng(7)
    vectors = embeddings(rng, 6_000)
    ids = rng.permutation(10_000_000)[:6_000].astype(np.int64)
    index = VectorIndex(DIM)
    index.add(ids, vectors)
    reference = plain_flat(ids, vectors)
    assert index._screen is not None
    queries = embeddings(rng, 40)
    allowed = np.sort(rng.choice(ids, 3_000, replace=False))
    for k in (1, 10, 250):
        for row in range(len(queries)):
            query = queries[row : row + 1]
            for only in (None, allowed):
                got_scores, got_ids = index.search(query, k, allowed=only)
                want_scores, want_ids = flat_answer(reference, query, k, only)
                assert np.array_equal(got_ids, want_ids), (k, row)
                assert got_scores.tobytes() == want_scores.tobytes(), (k, row)


def test_the_screen_scores_few_vectors_exactly_and_keeps_every_tie() -> None:
    rng = np.random.default_rng(3)
    vectors = embeddings(rng, 5_000)
    vectors[100:140] = vectors[99]  # 41 equal vectors: one score shared across the k-th place
    ids = np.arange(5_000, dtype=np.int64)
    screen = HalfScreen(DIM)
    screen.add(ids, vectors)
    reference = plain_flat(ids, vectors)
    query = vectors[99:100] + 0.3 * embeddings(rng, 1)
    query /= np.linalg.norm(query)
    scores, order = reference.search(query, len(vectors))  # every vector, as FAISS scores it
    place = int(np.isin(order[0], np.arange(99, 140)).argmax()) + 20  # inside the group of 41 equals
    k = place + 1
    kth = scores[0][place]
    assert scores[0][place - 1] == kth == scores[0][place + 1]
    found = set(screen.candidates(query, k, None).tolist())
    assert set(order[0][scores[0] >= kth].tolist()) <= found  # the top k and every tie of the k-th score
    assert len(found) < len(vectors) // 10  # yet far fewer than a full scan


def test_writes_keep_the_screen_in_step(small_threshold: int) -> None:
    rng = np.random.default_rng(11)
    index = VectorIndex(DIM)
    reference = faiss.IndexIDMap2(faiss.IndexFlatIP(DIM))
    next_id = 0
    for step in range(6):
        batch = embeddings(rng, 900)
        new_ids = np.arange(next_id, next_id + 900, dtype=np.int64)
        next_id += 900
        index.add(new_ids, batch)
        reference.add_with_ids(batch, new_ids)
        gone = rng.choice(next_id, 300, replace=False).astype(np.int64)
        index.remove(gone)
        reference.remove_ids(gone)  # type: ignore[arg-type]  # faiss's wrapper takes ids; its stubs say IDSelector
        query = embeddings(rng, 1)
        got_scores, got_ids = index.search(query, 20)
        want_scores, want_ids = reference.search(query, 20)
        assert np.array_equal(got_ids, want_ids), step
        assert got_scores.tobytes() == want_scores.tobytes(), step
    assert index._screen is not None and len(index._screen) == len(index)


def test_a_small_index_keeps_no_screen_and_a_loaded_large_one_builds_it(tmp_path: Any) -> None:
    rng = np.random.default_rng(5)
    index = VectorIndex(DIM)
    index.add(np.arange(SCREEN_ABOVE - 1, dtype=np.int64), embeddings(rng, SCREEN_ABOVE - 1))
    assert index._screen is None  # no second copy of a small index's vectors
    index.add(np.asarray([SCREEN_ABOVE], dtype=np.int64), embeddings(rng, 1))
    assert index._screen is not None and len(index._screen) == SCREEN_ABOVE
    index.save(tmp_path / "v.faiss")
    loaded = VectorIndex.load(tmp_path / "v.faiss", DIM)
    assert loaded._screen is not None and len(loaded._screen) == SCREEN_ABOVE
    query = embeddings(rng, 1)
    assert np.array_equal(loaded.search(query, 10)[1], index.search(query, 10)[1])


def test_a_screen_made_due_by_coming_vectors_is_built_before_they_are_added(small_threshold: int) -> None:
    rng = np.random.default_rng(13)
    index = VectorIndex(DIM)
    first, coming = embeddings(rng, small_threshold - 10), embeddings(rng, 20)
    index.add(np.arange(len(first), dtype=np.int64), first)
    index.prepare_for(5)
    assert index._screen is None  # not yet due
    index.prepare_for(len(coming))  # what a writer does under the shared lock
    assert index._screen is not None and len(index._screen) == len(first)
    index.add(np.arange(len(first), len(first) + len(coming), dtype=np.int64), coming)
    assert len(index._screen) == len(index)
    reference = plain_flat(np.arange(len(index), dtype=np.int64), np.vstack([first, coming]))
    query = embeddings(rng, 1)
    got_scores, got_ids = index.search(query, 10)
    want_scores, want_ids = reference.search(query, 10)
    assert np.array_equal(got_ids, want_ids) and got_scores.tobytes() == want_scores.tobytes()
