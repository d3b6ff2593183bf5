"""``python -m benchmarks scale``: exact flat vs approximate IVF-SQ8 FAISS search at 100k and 1M passages.

A vector-only test, as the performance issue allows: the real passage vectors the recall
benchmark cached (``<work>/vectors-*.sqlite``, multilingual-e5-small)
are held out (``QUERIES`` of them become queries) or reused with Gaussian noise and
renormalised until each size is reached. ``NOISE`` per dimension puts a copy at cosine ≈ 0.9
of its source, the median cosine of a real passage to its 10th nearest neighbour, so copies
are as far apart as real neighbours, not near-duplicates that any index finds.

Each variant runs in its own processes: one builds (timed: training + adding) and saves the
index, a fresh one loads it and is measured: RSS after loading (the service's FAISS share),
recall against the flat index's exact answers, and one-query-at-a-time search times at k=10
and at the searcher's candidate depth (k=200), unfiltered and with random id filters.

The IVF index is measured the way ``Index.retrieve`` uses it: ``RESCORE_FACTOR`` times
k candidates from FAISS, re-ranked by ``poshuk.index.mirror.rescore`` (the store's own function: one
``SELECT row_id, vector FROM passages WHERE row_id IN (...)``, one matrix product) against a
SQLite file holding the same float32 vectors in a ``passages(row_id, vector)`` table. The
real passages table also holds each passage's ids and text, so its rows are wider than these.
The flat index's exact answers come from batched searches; its times from the first
``TIMED_FLAT`` queries one at a time.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
from numpy.typing import NDArray

from benchmarks.machine import Machine, machine, versions

DIM = 384
QUERIES = 500
NOISE = 0.01  # per-dimension std: |noise| ≈ 0.2, so a copy sits at cosine ≈ 0.98 of its source
SEED = 20240501
DEPTH = 200  # poshuk.search.CANDIDATES
FILTER_SHARES = (0.1, 0.01, 0.001)
FILTERED_QUERIES = 200
NPROBE_SWEEP = (64, 128, 256)
TIMED_FLAT = 200  # flat search times from this many queries (its answers are exact by definition)
THREADS = 2  # FAISS threads while building (training and adding)
SEARCH_THREADS = 1  # one query at a time, as a service thread asks; 2 OpenMP threads were 5x slower here
REPO = Path(__file__).resolve().parent.parent
NOTES = (
    "The copies are the real vectors plus N(0, 0.01²) noise per dimension (cosine ≈ 0.98 to their source): "
    "each real vector has ~60 close copies at 1M, so the neighbourhoods are denser than a real 1M archive's. "
    "The previous run's tries with σ = 0.025 (copies at cosine ≈ 0.9, as far apart as real neighbours) gave "
    "lower IVF recall at the same nprobe; those numbers are not in this file.",
    "Recall and times of the IVF rows are those of the re-scored path (FAISS candidates, then exact inner "
    "product with the float32 vectors read from SQLite); 'raw' is the IVF-SQ8 ranking alone.",
    "The machine is shared: 2 cores and a load average well above 2 during the run, so times are noisy "
    "(compare rows of one run, not runs).",
)


class Timing(msgspec.Struct, frozen=True, kw_only=True):
    k: int
    recall: float  # |approximate top-k ∩ exact top-k| / k, mean over queries (1.0 for the exact index)
    p50_ms: float
    p99_ms: float


class Probe(msgspec.Struct, frozen=True, kw_only=True):
    nprobe: int
    recall_at_10: float
    recall_at_200: float
    p50_ms_k10: float
    p50_ms_k200: float


class Filtered(msgspec.Struct, frozen=True, kw_only=True):
    share: float  # fraction of the vectors the filter allows
    allowed: int
    recall_at_10: float
    p50_ms: float
    p99_ms: float


class Variant(msgspec.Struct, frozen=True, kw_only=True):
    size: int
    kind: str  # VectorIndex.kind
    parameters: dict[str, int | str]
    train_s: float
    add_s: float
    build_s: float
    index_bytes: int
    rss_mb_base: float  # python + numpy + faiss + poshuk imported, nothing loaded
    rss_mb_loaded: float  # after VectorIndex.load
    load_s: float
    searches: list[Timing]
    filtered: list[Filtered]
    sweep: list[Probe] = []
    raw_recall_at_10: float | None = None  # IVF without re-scoring (the 8-bit codes' own ranking)
    raw_p50_ms_k10: float | None = None
    mmap_rss_mb_loaded: float | None = None  # read with faiss.IO_FLAG_MMAP (read-only), IVF only
    mmap_p50_ms_k10: float | None = None


class ScaleResult(msgspec.Struct, frozen=True, kw_only=True):
    benchmark: str = "scale"
    command: str
    source: str
    real_vectors: int
    queries: int
    noise: float
    threads: int
    search_threads: int
    rescore_factor: int = 1
    variants: list[Variant]
    machine: Machine
    versions: dict[str, str | None]
    notes: list[str] = []


def find_cache(work: Path) -> Path | None:
    # any encoder backend's cache: the vectors of one model differ between backends only by rounding
    found = sorted(work.glob("vectors-*.sqlite"), key=lambda p: p.stat().st_size)
    return found[-1] if found else None


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _unit(x: NDArray[np.float32]) -> NDArray[np.float32]:
    out: NDArray[np.float32] = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    return out


def prepare(cache: Path, sizes: list[int], scratch: Path) -> tuple[int, list[str]]:
    """Write queries.npy and base-<n>.npy (float32, memory-mappable) to ``scratch``."""
    with contextlib.closing(sqlite3.connect(cache)) as db:
        blobs = [v for (v,) in db.execute("SELECT vector FROM vectors ORDER BY key")]
    real = np.frombuffer(b"".join(blobs), dtype=np.float32).reshape(len(blobs), DIM)
    rng = np.random.default_rng(SEED)
    order = rng.permutation(len(real))
    held, base = real[order[:QUERIES]], real[order[QUERIES:]]
    scratch.mkdir(parents=True, exist_ok=True)
    np.save(scratch / "queries.npy", _unit(held + rng.normal(0, NOISE, held.shape).astype(np.float32)))
    for size in sizes:
        path = scratch / f"base-{size}.npy"
        if path.exists():
            continue
        out = np.lib.format.open_memmap(path.with_suffix(".tmp.npy"), mode="w+", dtype=np.float32, shape=(size, DIM))
        chunk_rng = np.random.default_rng(SEED + size)
        for start in range(0, size, 50_000):
            stop = min(size, start + 50_000)
            source = base[np.arange(start, stop) % len(base)]
            out[start:stop] = _unit(source + chunk_rng.normal(0, NOISE, source.shape).astype(np.float32))
        out.flush()
        del out
        path.with_suffix(".tmp.npy").rename(path)
    return len(real), []


def _filters(size: int) -> list[tuple[float, NDArray[np.int64]]]:
    rng = np.random.default_rng(SEED + 7)
    return [(s, np.sort(rng.choice(size, size=max(1, int(size * s)), replace=False))) for s in FILTER_SHARES]


def _percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def _timed(fn: Any, queries: NDArray[np.float32]) -> tuple[NDArray[np.int64], list[float]]:
    ids, times = [], []
    for row in range(len(queries)):
        t0 = time.perf_counter()
        _, found = fn(queries[row : row + 1])
        times.append((time.perf_counter() - t0) * 1000)
        ids.append(found[0])
    width = max(len(r) for r in ids)
    out = np.full((len(ids), width), -1, dtype=np.int64)
    for i, r in enumerate(ids):
        out[i, : len(r)] = r
    return out, times


def _recall(found: NDArray[np.int64], truth: NDArray[np.int64], k: int) -> float:
    hits = [len(set(f[:k].tolist()) & set(t[:k].tolist()) - {-1}) for f, t in zip(found, truth, strict=True)]
    return float(np.mean(hits) / k)


def build(kind: str, size: int, scratch: Path) -> dict[str, Any]:
    """Child process: build one index from base-<size>.npy, save it, report timings and size."""
    import faiss

    from poshuk.vectors import TRAIN_SAMPLE, VectorIndex, nlist_for

    faiss.omp_set_num_threads(THREADS)
    data = np.load(scratch / f"base-{size}.npy", mmap_mode="r")
    t0 = time.perf_counter()
    if kind == "flat":
        index = VectorIndex(DIM)
    else:
        rng = np.random.default_rng(SEED + 1)
        sample = np.sort(rng.choice(size, size=min(size, TRAIN_SAMPLE), replace=False))
        index = VectorIndex.approximate(DIM, np.asarray(data[sample]), nlist=nlist_for(size))
    train_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    for start in range(0, size, 50_000):
        stop = min(size, start + 50_000)
        index.add(np.arange(start, stop, dtype=np.int64), np.asarray(data[start:stop]))
    add_s = time.perf_counter() - t1
    path = scratch / f"{kind}-{size}.faiss"
    index.save(path)
    if kind != "flat":
        _passages_table(data, scratch / f"passages-{size}.sqlite")
    return {"train_s": train_s, "add_s": add_s, "bytes": path.stat().st_size, "parameters": index.parameters()}


def _passages_table(data: NDArray[np.float32], path: Path) -> None:
    """The float32 vectors re-scoring reads, keyed by row id as in the store (kept between runs)."""
    if path.exists():
        return
    tmp = path.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)
    with contextlib.closing(sqlite3.connect(tmp)) as db:
        db.execute("CREATE TABLE passages (row_id INTEGER PRIMARY KEY, vector BLOB NOT NULL)")
        for start in range(0, len(data), 50_000):
            block = np.asarray(data[start : start + 50_000], dtype=np.float32)
            db.executemany(
                "INSERT INTO passages VALUES (?, ?)", ((start + i, v.tobytes()) for i, v in enumerate(block))
            )
        db.commit()
    tmp.rename(path)


def _exact(index: Any, queries: NDArray[np.float32], k: int, allowed: NDArray[np.int64] | None = None) -> Any:
    """Exact answers in batches of 50 queries (the flat index's truth, not its timing)."""
    out = [index.search(queries[s : s + 50], k, allowed=allowed)[1] for s in range(0, len(queries), 50)]
    return np.concatenate(out)


def serve(kind: str, size: int, scratch: Path) -> dict[str, Any]:
    """Child process: load a saved index fresh and measure memory, recall and search times."""
    import faiss

    from poshuk.index.mirror import RESCORE_FACTOR, rescore
    from poshuk.vectors import VectorIndex

    faiss.omp_set_num_threads(SEARCH_THREADS)
    gc.collect()
    base_rss = _rss_mb()
    t0 = time.perf_counter()
    index = VectorIndex.load(scratch / f"{kind}-{size}.faiss", DIM)
    load_s = time.perf_counter() - t0
    loaded_rss = _rss_mb()
    queries = np.load(scratch / "queries.npy")
    out: dict[str, Any] = {"rss_base": base_rss, "rss_loaded": loaded_rss, "load_s": load_s}
    truth_path = scratch / f"truth-{size}.npz"
    truth = dict(np.load(truth_path)) if truth_path.exists() else {}
    found: dict[str, NDArray[np.int64]] = {}
    flat = kind == "flat"
    conn = None if flat else sqlite3.connect(scratch / f"passages-{size}.sqlite", check_same_thread=False)

    def search(q: NDArray[np.float32], k: int, allowed: NDArray[np.int64] | None = None) -> Any:
        if conn is None:
            return index.search(q, k, allowed=allowed)
        _, ids = index.search(q, k * RESCORE_FACTOR, allowed=allowed)  # as Index.retrieve does
        return None, [np.asarray([r for r, _ in rescore(conn, q[0], ids[0], k)], dtype=np.int64)]

    timed = queries[:TIMED_FLAT] if flat else queries
    searches = []
    for k in (10, DEPTH):
        ids, times = _timed(lambda q, k=k: search(q, k), timed)
        if flat:
            ids = _exact(index, queries, k)
        found[f"k{k}"] = ids
        ref = truth.get(f"k{k}", ids)
        searches.append(
            {"k": k, "recall": _recall(ids, ref, k), "p50_ms": _percentile(times, 50), "p99_ms": _percentile(times, 99)}
        )
    out["searches"] = searches
    if not flat:
        ids, times = _timed(lambda q: index.search(q, 10), queries)
        out["raw_recall_at_10"] = _recall(ids, truth["k10"], 10)
        out["raw_p50_ms_k10"] = _percentile(times, 50)
    filtered = []
    for share, allowed in _filters(size):
        sub = queries[:FILTERED_QUERIES]
        ids, times = _timed(lambda q, a=allowed: search(q, 10, a), sub)
        if flat:
            ids = _exact(index, sub, 10, allowed)
        key = f"f{share}"
        found[key] = ids
        ref = truth.get(key, ids)
        filtered.append(
            {
                "share": share,
                "allowed": len(allowed),
                "recall_at_10": _recall(ids, ref, 10),
                "p50_ms": _percentile(times, 50),
                "p99_ms": _percentile(times, 99),
            }
        )
    out["filtered"] = filtered
    if flat:
        np.savez(truth_path, **found)
    else:
        ivf: Any = index._ivf  # the benchmark sweeps the search parameter
        chosen = int(ivf.nprobe)
        sweep = []
        for nprobe in sorted({*NPROBE_SWEEP, chosen}):
            if nprobe > int(ivf.nlist):
                continue
            ivf.nprobe = nprobe
            sub = queries[:FILTERED_QUERIES]
            ids10, t10 = _timed(lambda q: search(q, 10), sub)
            ids200, t200 = _timed(lambda q: search(q, DEPTH), sub)
            sweep.append(
                {
                    "nprobe": nprobe,
                    "recall_at_10": _recall(ids10, truth["k10"][: len(sub)], 10),
                    "recall_at_200": _recall(ids200, truth[f"k{DEPTH}"][: len(sub)], DEPTH),
                    "p50_ms_k10": _percentile(t10, 50),
                    "p50_ms_k200": _percentile(t200, 50),
                }
            )
        ivf.nprobe = chosen
        out["sweep"] = sweep
        del index, ivf
        gc.collect()
        before = _rss_mb()
        index = VectorIndex(DIM, faiss.read_index(str(scratch / f"{kind}-{size}.faiss"), faiss.IO_FLAG_MMAP))
        _, times = _timed(lambda q: search(q, 10), queries[:FILTERED_QUERIES])
        out["mmap_rss_loaded"] = base_rss + (_rss_mb() - before)  # after its searches touched their lists
        out["mmap_p50_ms_k10"] = _percentile(times, 50)
    if conn is not None:
        conn.close()
    return out


def _child(step: str, kind: str, size: int, scratch: Path) -> dict[str, Any]:
    env = {**os.environ, "OMP_NUM_THREADS": str(THREADS)}
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.scale", step, kind, str(size), str(scratch)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{step} {kind} {size} failed:\n{proc.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def run(*, sizes: list[int], work: Path, scratch: Path, command: str) -> ScaleResult | None:
    cache = find_cache(work)
    if cache is None:
        return None
    from poshuk.index.mirror import RESCORE_FACTOR

    real, notes = prepare(cache, sizes, scratch)
    notes = [*notes, *NOTES]
    variants = []
    for size in sizes:
        (scratch / f"truth-{size}.npz").unlink(missing_ok=True)
        for kind in ("flat", "ivf"):  # flat first: its answers are the exact truth
            print(f"scale: {kind} at {size:,}: building", file=sys.stderr, flush=True)
            built = _child("build", kind, size, scratch)
            print(f"scale: {kind} at {size:,}: measuring", file=sys.stderr, flush=True)
            served = _child("serve", kind, size, scratch)
            (scratch / f"{kind}-{size}.faiss").unlink(missing_ok=True)
            variants.append(
                Variant(
                    size=size,
                    kind=str(built["parameters"]["kind"]),
                    parameters=built["parameters"],
                    train_s=round(built["train_s"], 2),
                    add_s=round(built["add_s"], 2),
                    build_s=round(built["train_s"] + built["add_s"], 2),
                    index_bytes=built["bytes"],
                    rss_mb_base=round(served["rss_base"], 1),
                    rss_mb_loaded=round(served["rss_loaded"], 1),
                    load_s=round(served["load_s"], 3),
                    searches=[Timing(**_rounded(t)) for t in served["searches"]],
                    filtered=[Filtered(**_rounded(f)) for f in served["filtered"]],
                    sweep=[Probe(**_rounded(p)) for p in served.get("sweep", [])],
                    mmap_rss_mb_loaded=_maybe(served.get("mmap_rss_loaded")),
                    mmap_p50_ms_k10=_maybe(served.get("mmap_p50_ms_k10")),
                    raw_recall_at_10=_maybe(served.get("raw_recall_at_10")),
                    raw_p50_ms_k10=_maybe(served.get("raw_p50_ms_k10")),
                )
            )
    return ScaleResult(
        command=command,
        source=str(cache.name),
        real_vectors=real,
        queries=QUERIES,
        noise=NOISE,
        threads=THREADS,
        search_threads=SEARCH_THREADS,
        rescore_factor=RESCORE_FACTOR,
        variants=variants,
        machine=machine(),
        versions=versions(),
        notes=notes,
    )


def _rounded(row: dict[str, Any]) -> dict[str, Any]:
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}


def _maybe(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def render(result: ScaleResult) -> str:
    m = result.machine
    lines = [
        "# Scale: exact flat vs approximate FAISS index",
        "",
        f"`{result.command}` — {result.real_vectors:,} real multilingual-e5-small passage vectors "
        f"({result.source}), {result.queries} held out as queries; the rest reused with N(0, {result.noise}²) "
        f"noise per dimension and renormalised to reach each size. Built with {result.threads} FAISS "
        f"threads; searched one query at a time with {result.search_threads}. "
        "Recall is against the flat index's exact answers. IVF rows: "
        f"{result.rescore_factor}·k candidates from FAISS re-scored exactly with the float32 vectors from "
        "SQLite (`poshuk.index.mirror.rescore`, as `Index.retrieve` does).",
        "",
        f"Machine: {m.cpu_model}, {m.usable_cores} usable cores, {m.ram_gib} GiB, {m.os}, Python {m.python}, "
        f"load average {m.load_avg[0]:.2f} at the end, {m.date:%Y-%m-%d}, "
        f"faiss-cpu {result.versions.get('faiss-cpu')}.",
        "",
        "| passages | index | build s (train + add) | index MB | RSS MB after load (base) | "
        "recall@10 | p50 / p99 ms k=10 | recall@200 | p50 / p99 ms k=200 | raw IVF recall@10 (p50 ms) |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for v in result.variants:
        t10, t200 = v.searches[0], v.searches[1]
        params = ", ".join(f"{k}={val}" for k, val in v.parameters.items() if k in ("nlist", "nprobe"))
        lines.append(
            f"| {v.size:,} | {v.kind}{f' ({params})' if params else ''} | {v.build_s:.1f} ({v.train_s:.1f} + "
            f"{v.add_s:.1f}) | {v.index_bytes / 1e6:.0f} | {v.rss_mb_loaded:.0f} ({v.rss_mb_base:.0f}) | "
            f"{t10.recall:.3f} | {t10.p50_ms:.2f} / {t10.p99_ms:.2f} | {t200.recall:.3f} | "
            f"{t200.p50_ms:.2f} / {t200.p99_ms:.2f} | "
            + (f"{v.raw_recall_at_10:.3f} ({v.raw_p50_ms_k10:.2f}) |" if v.raw_recall_at_10 is not None else "– |")
        )
    lines += [
        "",
        "## Filtered search (random id filters, k=10)",
        "",
        "| passages | index | allowed share | allowed | recall@10 | p50 / p99 ms |",
        "|---:|---|---:|---:|---:|---:|",
    ]
    for v in result.variants:
        for f in v.filtered:
            lines.append(
                f"| {v.size:,} | {v.kind} | {f.share:g} | {f.allowed:,} | {f.recall_at_10:.3f} | "
                f"{f.p50_ms:.2f} / {f.p99_ms:.2f} |"
            )
    lines += [
        "",
        "## IVF nprobe sweep (first 200 queries, re-scored)",
        "",
        "| passages | index | nprobe | recall@10 | p50 ms k=10 | recall@200 | p50 ms k=200 |",
        "|---:|---|---:|---:|---:|---:|---:|",
    ]
    for v in result.variants:
        for p in v.sweep:
            lines.append(
                f"| {v.size:,} | {v.kind} | {p.nprobe} | {p.recall_at_10:.3f} | {p.p50_ms_k10:.2f} | "
                f"{p.recall_at_200:.3f} | {p.p50_ms_k200:.2f} |"
            )
    mapped = [v for v in result.variants if v.mmap_rss_mb_loaded is not None]
    if mapped:
        lines += ["", "## Memory-mapped loading (faiss.IO_FLAG_MMAP, read-only; re-scored)", ""]
        for v in mapped:
            lines.append(
                f"- {v.size:,} {v.kind}: RSS {v.mmap_rss_mb_loaded:.0f} MB after load and 200 searches (in memory: "
                f"{v.rss_mb_loaded:.0f}), p50 k=10 {v.mmap_p50_ms_k10:.2f} ms."
            )
    if result.notes:
        lines += ["", "## Notes", "", *[f"- {n}" for n in result.notes]]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":  # child processes: build|serve KIND SIZE SCRATCH
    step, kind_arg, size_arg, scratch_arg = sys.argv[1:5]
    fn = build if step == "build" else serve
    print(json.dumps(fn(kind_arg, int(size_arg), Path(scratch_arg))))
