"""The FAISS wrapper: exact flat below the threshold, IVF-SQ8 above, with deletes, filters and snapshots."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray

from poshuk.documents import Article, Passage, passage_id
from poshuk.encoder import HashEncoder
from poshuk.index import Index, IndexWriter, live_version
from poshuk.settings import ChunkingSettings, Settings
from poshuk.vectors import FLAT_IP, VectorIndex, nlist_for, nprobe_for
from tests.support import index_queries as q

DIM = 32


def _clustered(n: int, *, clusters: int = 40, seed: int = 0) -> NDArray[np.float32]:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, DIM)).astype(np.float32)
    points = centres[rng.integers(0, clusters, n)] + 0.35 * rng.standard_normal((n, DIM)).astype(np.float32)
    unit: NDArray[np.float32] = (points / np.linalg.norm(points, axis=1, keepdims=True)).astype(np.float32)
    return unit


def _indexes(n: int = 4000) -> tuple[VectorIndex, VectorIndex, NDArray[np.int64], NDArray[np.float32]]:
    vectors = _clustered(n)
    ids = np.arange(n, dtype=np.int64) * 7 + 3  # ids are row ids, not positions
    flat = VectorIndex(DIM)
    flat.add(ids, vectors)
    return flat, flat.fitted(approximate_above=1000), ids, vectors


def _recall(found: NDArray[np.int64], truth: NDArray[np.int64]) -> float:
    return float(np.mean([len(set(f) & set(t)) / len(t) for f, t in zip(found, truth, strict=True)]))


def test_flat_at_or_below_the_threshold_ivf_above() -> None:
    flat, ivf, _, _ = _indexes()
    assert flat.fitted(approximate_above=len(flat)) is flat
    assert flat.kind == FLAT_IP and not flat.approximate_kind
    assert ivf.approximate_kind and len(ivf) == len(flat)
    nlist = nlist_for(len(flat))
    assert ivf.kind == f"IVF{nlist},SQ8,IP"
    assert ivf.parameters() == {"kind": ivf.kind, "vectors": len(flat), "nlist": nlist, "nprobe": nprobe_for(nlist)}
    assert ivf.fitted(approximate_above=0) is ivf  # already approximate


def test_nlist_grows_with_the_archive_within_the_training_sample() -> None:
    assert nlist_for(200) == 4  # never more lists than the sample can train
    assert nlist_for(100_000) == 512
    assert nlist_for(1_000_000) == 2048 == nlist_for(10_000_000)
    assert nprobe_for(2048) == 256 and nprobe_for(4) == 4


def test_ivf_recall_against_exact_search_on_clustered_data() -> None:
    flat, ivf, _, _ = _indexes()
    queries = _clustered(200, seed=1)
    _, truth = flat.search(queries, 10)
    scores, found = ivf.search(queries, 10)
    assert _recall(found, truth) >= 0.9
    same = found[:, 0] == truth[:, 0]
    exact, _ = flat.search(queries, 1)
    assert np.allclose(scores[same, 0], exact[same, 0], atol=0.01)  # 8-bit codes: scores stay close to cosine


def test_ivf_add_and_remove() -> None:
    _, ivf, ids, vectors = _indexes()
    _, top = ivf.search(vectors[:5], 1)
    assert top[:, 0].tolist() == ids[:5].tolist()
    assert ivf.remove(ids[:5]) == 5 and ivf.remove(ids[:5]) == 0
    _, top = ivf.search(vectors[:5], 10)
    assert not set(top.ravel().tolist()) & set(ids[:5].tolist())
    ivf.add(np.array([10**9], dtype=np.int64), vectors[:1])  # goes into the trained lists
    _, top = ivf.search(vectors[:1], 1)
    assert top[0, 0] == 10**9 and len(ivf) == len(ids) - 4


@pytest.mark.parametrize("share", [0.5, 0.05, 0.002])
def test_ivf_filtered_search_finds_the_top_k_among_allowed_ids(share: float) -> None:
    flat, ivf, ids, _ = _indexes()
    rng = np.random.default_rng(2)
    allowed = np.sort(rng.choice(ids, size=max(1, int(len(ids) * share)), replace=False))
    queries = _clustered(50, seed=3)
    k = min(10, len(allowed))
    _, truth = flat.search(queries, k, allowed=allowed)
    _, found = ivf.search(queries, k, allowed=allowed)
    assert set(found.ravel().tolist()) <= set(allowed.tolist())
    assert (found >= 0).all()  # a selective filter still fills k slots: the scan widens to every list
    assert _recall(found, truth) >= 0.9


def test_ivf_returns_k_hits_when_few_vectors_are_left() -> None:
    _, ivf, ids, vectors = _indexes()
    ivf.remove(ids[20:])
    scores, found = ivf.search(vectors[:2], 10)
    assert found.shape == (2, 10) and (found >= 0).all() and set(found.ravel().tolist()) <= set(ids[:20].tolist())
    assert ivf.search(vectors[:1], 50)[1].shape == (1, 20)
    assert scores.dtype == np.float32


def test_ivf_save_and_load_round_trip(tmp_path: Path) -> None:
    _, ivf, ids, vectors = _indexes()
    ivf.remove(ids[:3])
    path = tmp_path / "vectors.faiss"
    ivf.save(path)
    loaded = VectorIndex.load(path, DIM)
    assert loaded.parameters() == ivf.parameters()
    queries = _clustered(20, seed=4)
    assert np.array_equal(loaded.search(queries, 10)[1], ivf.search(queries, 10)[1])
    assert loaded.remove(ids[3:6]) == 3  # the id map survives the file: deletes still work after loading
    loaded.add(ids[:1], vectors[:1])
    assert loaded.search(vectors[:1], 1)[1][0, 0] == ids[0]


def _article(n: int) -> tuple[Article, list[Passage]]:
    doc_id = f"d{n}"
    texts = [f"article {n} paragraph {p} about topic {n % 7}" for p in range(3)]
    article = Article(id=doc_id, title=f"Title {n}", text="\n\n".join(texts), lang="en")
    passages = [
        Passage(id=passage_id(doc_id, p), doc_id=doc_id, ordinal=p, text=t, embed_text=t) for p, t in enumerate(texts)
    ]
    return article, passages


def test_store_snapshot_turns_ivf_past_the_threshold_and_rebuild_builds_ivf(
    tmp_path: Path, hash_encoder: HashEncoder
) -> None:
    with IndexWriter(tmp_path, hash_encoder.identity, ChunkingSettings(), approximate_above=200) as writer:
        for n in range(100):  # 300 passages
            article, passages = _article(n)
            writer.upsert(article, passages, hash_encoder.encode_passages([p.embed_text for p in passages]))
    index = Index.open(tmp_path, approximate_above=200)
    assert index.vectors.approximate_kind and len(index.vectors) == 300  # the writer's snapshot converted it
    query = hash_encoder.encode_passages(["article 42 paragraph 1 about topic 0"])
    best = q.dense(index, query, 1)[0][0]
    assert index.passages([best])[best].passage_id == "d42#1"
    index.write(deletes=["d42"])
    assert all(index.passages([r])[r].doc_id != "d42" for r, _ in q.dense(index, query, 10))
    index.close()
    for snapshot in live_version(tmp_path).glob("vectors-*.faiss"):
        snapshot.unlink()
    rebuilt = Index.open(tmp_path, approximate_above=200)  # from SQLite: IVF trained on the stored vectors
    assert rebuilt.vectors.approximate_kind and len(rebuilt.vectors) == 297
    rebuilt.close()
    exact = Index.open(tmp_path)  # the default threshold: rebuilt from SQLite, it is exact again
    assert not exact.vectors.approximate_kind and len(exact.vectors) == 297
    exact.close()


def test_the_default_threshold_is_a_setting() -> None:
    assert Settings().approximate_above == 200_000


def test_the_setting_reaches_the_index_through_index_paths_and_searcher_open(
    tmp_path: Path, hash_encoder: HashEncoder
) -> None:
    from indexer.pipeline import index_paths
    from poshuk.search import Searcher
    from poshuk.settings import load_settings
    from tests.support.repo import EXAMPLES

    env = {"POSHUK_HOME": str(tmp_path / "home")}
    tiny = load_settings(env={**env, "POSHUK_APPROXIMATE_ABOVE": "10"})
    index_dir = tmp_path / "index"
    report = index_paths([EXAMPLES], index_dir, encoder=hash_encoder, settings=tiny, progress=False)
    assert report.passages > 10
    searcher = Searcher.open(index_dir, tiny, encoder=hash_encoder)
    assert searcher.index.vectors.approximate_kind  # the writer's snapshot turned IVF at the tiny threshold
    assert searcher.index.approximate_above == 10
    hits = q.dense(searcher.index, hash_encoder.encode_queries(["anything"]), 5)
    assert len(hits) == 5 and hits == sorted(hits, key=lambda h: -h[1])  # re-scored, best first
    searcher.close()
    for snapshot in live_version(index_dir).glob("vectors-*.faiss"):
        snapshot.unlink()
    exact = Searcher.open(index_dir, load_settings(env=env), encoder=hash_encoder)  # rebuilt at the default
    assert not exact.index.vectors.approximate_kind
    exact.close()
    rebuilt = Searcher.open(index_dir, tiny, encoder=hash_encoder)  # rebuilt at the setting: IVF again
    assert rebuilt.index.vectors.approximate_kind
    rebuilt.close()


def test_rescoring_ranks_approximate_candidates_by_exact_inner_product(tmp_path: Path) -> None:
    import contextlib
    import sqlite3

    from poshuk.index.mirror import rescore

    vectors = _clustered(50)
    with contextlib.closing(sqlite3.connect(tmp_path / "p.sqlite")) as conn:
        conn.execute("CREATE TABLE passages (row_id INTEGER PRIMARY KEY, vector BLOB NOT NULL)")
        conn.executemany("INSERT INTO passages VALUES (?, ?)", [(i, v.tobytes()) for i, v in enumerate(vectors)])
        query = vectors[7]
        candidates = np.array([3, 7, -1, 12, 99, 40], dtype=np.int64)  # -1: an empty slot; 99: not in SQLite
        ranked = rescore(conn, query, candidates, 3)
    exact = {i: float(vectors[i] @ query) for i in (3, 7, 12, 40)}
    best = sorted(exact, key=lambda i: -exact[i])[:3]
    assert [r for r, _ in ranked] == best and ranked[0][0] == 7
    assert np.allclose([s for _, s in ranked], [exact[i] for i in best], atol=1e-6)


def test_search_threads_reach_the_threads_that_search() -> None:
    import threading

    import faiss

    from poshuk import vectors as vectors_module

    flat, _, _, vectors = _indexes(200)
    seen: list[int] = []

    def search_in_a_worker() -> None:
        flat.search(vectors[:1], 5)
        seen.append(faiss.omp_get_max_threads())

    assert Settings().service.faiss_threads == 1
    try:
        vectors_module.set_search_threads(1)
        worker = threading.Thread(target=search_in_a_worker)  # OpenMP's count is per thread
        worker.start()
        worker.join()
        assert seen == [1]
    finally:
        vectors_module.set_search_threads(None)
