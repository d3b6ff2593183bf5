"""``python -m benchmarks sharded --approximate-above N``: how approximate IVF shards are.

A sharded archive answers exactly as one index while vectors are searched exactly (flat FAISS).
Above ``approximate_above`` passages an index's vectors become IVF-SQ8 (re-scored by exact inner
products, ``poshuk.index.mirror``), and each shard trains its own IVF lists on its own passages:
the dense candidates of a sharded archive can then differ from one big IVF's.

For each set's cached index (the recall benchmark's; nothing is encoded again) this builds three
sides and searches every distinct query of the set on each, in dense and hybrid modes, k=10:

- *exact*: the cached single index as it is (flat: below the threshold a normal run keeps);
- *single IVF*: a copy of it opened with ``approximate_above=N`` and snapshotted, which is how
  the product turns a flat index into IVF-SQ8 (``VectorMirror.snapshot`` -> ``VectorIndex.fitted``);
- *sharded IVF*: the index split into shards (``split_index``), each shard snapshotted the same way.

Reported per set and mode: answers of the sharded IVF identical to the single IVF's (every field
but ``took_ms``), identical to the exact answer, the mean overlap@10 of the passage ids of each IVF
side with the exact answer (and of the two IVF sides), and the recall@10 of the set's gold (documents
of the ten passages, the set's first scoring) on each side. Every index's ``nlist``/``nprobe`` is
recorded as its FAISS file has it. Results go to ``sharded-ivf.{json,md}``.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from benchmarks.datasets import SETS, BenchSet
from benchmarks.machine import Machine, machine, versions
from benchmarks.metrics import collapse_to_docs, score_query
from benchmarks.workspace import Workspace
from poshuk import load_settings
from poshuk.index import Index
from poshuk.query_encoding import CachingEncoder
from poshuk.search import Searcher
from poshuk.shards import ShardedIndex, read_set, split_index
from poshuk.vectors import VectorIndex
from poshuk.wire import Mode

MODES: tuple[Mode, ...] = ("dense", "hybrid")
SIDES = ("exact", "single-ivf", "sharded-ivf")
K = 10


class IvfIndex(msgspec.Struct, frozen=True, kw_only=True):
    """One FAISS index of a side, as its snapshot file records it."""

    name: str  # "single" or the shard's folder name
    kind: str
    vectors: int
    nlist: int = 0
    nprobe: int = 0


class IvfRow(msgspec.Struct, frozen=True, kw_only=True):
    set: str
    mode: str
    shards: int
    searches: int
    identical_sharded_vs_single_ivf: int
    identical_single_ivf_vs_exact: int
    identical_sharded_ivf_vs_exact: int
    # the same ten passage ids in the same order, scores aside (an IVF side's scores come from the exact
    # re-scoring's matrix product, the exact index's from FAISS: equal vectors can differ in the last bit)
    same_order_sharded_vs_single_ivf: int
    same_order_single_ivf_vs_exact: int
    same_order_sharded_ivf_vs_exact: int
    overlap_single_ivf_vs_exact: float  # mean |top10 ∩ exact top10| / |exact top10|, passage ids
    overlap_sharded_ivf_vs_exact: float
    overlap_sharded_vs_single_ivf: float
    scoring: str  # the set's gold scoring the recall columns use
    gold_queries: int
    recall_exact: float  # mean recall@10 of the gold documents among the ten hits' documents
    recall_single_ivf: float
    recall_sharded_ivf: float
    differences: list[str]  # the first few queries whose sharded and single IVF answers differ


class IvfSet(msgspec.Struct, frozen=True, kw_only=True):
    set: str
    passages: int
    shards: int
    indexes: list[IvfIndex]  # the single IVF first, then each shard's


class IvfReport(msgspec.Struct, frozen=True, kw_only=True):
    command: list[str]
    machine: Machine
    versions: dict[str, str | None]
    approximate_above: int
    queries_per_set: int
    sets: list[IvfSet]
    rows: list[IvfRow]


def overlap(found: Sequence[str], reference: Sequence[str], k: int = K) -> float:
    """Share of ``reference``'s top ``k`` ids that ``found``'s top ``k`` also holds (1.0 when both are empty)."""
    want = set(reference[:k])
    if not want:
        return 1.0 if not found[:k] else 0.0
    return len(want.intersection(found[:k])) / len(want)


def distinct_texts(bench: BenchSet, limit: int) -> list[str]:
    """The set's distinct query texts (whitespace normalised), first ``limit`` in the set's order."""
    return list(dict.fromkeys(" ".join(q.text.split()) for q in bench.queries if q.text.strip()))[:limit]


@dataclass
class Tally:
    """One (set, mode)'s answers of the three sides, folded into an ``IvfRow``."""

    answers: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: {side: [] for side in SIDES})
    texts: list[str] = field(default_factory=list)

    def add(self, text: str, answers: dict[str, dict[str, Any]]) -> None:
        """The three sides' answers to ``text`` (each without ``took_ms``)."""
        self.texts.append(text)
        for side in SIDES:
            self.answers[side].append(answers[side])

    def row(self, bench: BenchSet, mode: str, shards: int) -> IvfRow:
        exact, single, sharded = (self.answers[side] for side in SIDES)
        ids = {side: [[hit["passage_id"] for hit in a["hits"]] for a in self.answers[side]] for side in SIDES}
        n = len(self.texts)

        def mean_overlap(found: str, reference: str) -> float:
            pairs = zip(ids[found], ids[reference], strict=True)
            return round(sum(overlap(f, r) for f, r in pairs) / n, 4) if n else 0.0

        def same_order(found: str, reference: str) -> int:
            return sum(f == r for f, r in zip(ids[found], ids[reference], strict=True))

        scoring = bench.scorings[0]
        recall = {side: 0.0 for side in SIDES}
        gold = 0
        position = {text: i for i, text in enumerate(self.texts)}
        for query in bench.queries:
            at = position.get(" ".join(query.text.split()))
            if at is None:
                continue
            gold += 1
            for side in SIDES:
                docs = collapse_to_docs(hit["doc_id"] for hit in self.answers[side][at]["hits"])
                relevant = query.relevant.get(scoring.name, ())
                recall[side] += score_query(docs, relevant, any_relevant=scoring.any_relevant)["recall_at_10"]
        return IvfRow(
            set=bench.name,
            mode=mode,
            shards=shards,
            searches=n,
            identical_sharded_vs_single_ivf=sum(a == b for a, b in zip(sharded, single, strict=True)),
            identical_single_ivf_vs_exact=sum(a == b for a, b in zip(single, exact, strict=True)),
            identical_sharded_ivf_vs_exact=sum(a == b for a, b in zip(sharded, exact, strict=True)),
            same_order_sharded_vs_single_ivf=same_order("sharded-ivf", "single-ivf"),
            same_order_single_ivf_vs_exact=same_order("single-ivf", "exact"),
            same_order_sharded_ivf_vs_exact=same_order("sharded-ivf", "exact"),
            overlap_single_ivf_vs_exact=mean_overlap("single-ivf", "exact"),
            overlap_sharded_ivf_vs_exact=mean_overlap("sharded-ivf", "exact"),
            overlap_sharded_vs_single_ivf=mean_overlap("sharded-ivf", "single-ivf"),
            scoring=scoring.name,
            gold_queries=gold,
            recall_exact=round(recall["exact"] / gold, 4) if gold else 0.0,
            recall_single_ivf=round(recall["single-ivf"] / gold, 4) if gold else 0.0,
            recall_sharded_ivf=round(recall["sharded-ivf"] / gold, 4) if gold else 0.0,
            differences=[t[:80] for t, a, b in zip(self.texts, sharded, single, strict=True) if a != b][:3],
        )


def _fitted(folder: Path, approximate_above: int, name: str) -> IvfIndex:
    """Open the index in ``folder`` writable with ``approximate_above`` and write its FAISS snapshot:
    above the threshold the snapshot turns its vectors into IVF-SQ8, as a growing index's does."""
    index = Index.open(folder, approximate_above=approximate_above)
    try:
        path = index.snapshot()
        assert path is not None  # opened writable
        params = VectorIndex.load(path, index.manifest.model.dimension).parameters()
    finally:
        index.close()
    return IvfIndex(
        name=name,
        kind=str(params["kind"]),
        vectors=int(params["vectors"]),
        nlist=int(params.get("nlist", 0)),
        nprobe=int(params.get("nprobe", 0)),
    )


def ivf_copy(index_dir: Path, dest: Path, approximate_above: int) -> IvfIndex:
    """A copy of the index at ``index_dir`` whose vectors are IVF-SQ8 above ``approximate_above``."""
    shutil.copytree(index_dir, dest, ignore=shutil.ignore_patterns("*-shm"))
    return _fitted(dest, approximate_above, "single")


def ivf_shards(archive: Path, approximate_above: int) -> list[IvfIndex]:
    """Each shard of ``archive`` snapshotted with ``approximate_above`` (its own IVF lists above it)."""
    return [_fitted(archive / name, approximate_above, name) for name in read_set(archive).shards]


def _answer(result: Any) -> dict[str, Any]:
    found: dict[str, Any] = msgspec.to_builtins(result)
    found.pop("took_ms")
    return found


def compare(
    bench: BenchSet, texts: list[str], shards: int, searchers: tuple[Searcher, ...], log: Callable[[str], None]
) -> list[IvfRow]:
    """Every text searched on each side (``SIDES``' order) in each mode: one row per mode."""
    rows = []
    for mode in MODES:
        tally = Tally()
        for text in texts:
            tally.add(
                text, {side: _answer(s.search(text, k=K, mode=mode)) for side, s in zip(SIDES, searchers, strict=True)}
            )
        row = tally.row(bench, mode, shards)
        log(
            f"[{bench.name}] {shards} shards, {mode}: {row.identical_sharded_vs_single_ivf}/{row.searches} sharded = "
            f"single IVF; overlap@10 vs exact: single IVF {row.overlap_single_ivf_vs_exact}, sharded IVF "
            f"{row.overlap_sharded_ivf_vs_exact}"
        )
        rows.append(row)
    return rows


def run(
    data: Path,
    work: Path,
    *,
    shards: tuple[int, ...],
    queries: int,
    sets: tuple[str, ...],
    approximate_above: int,
    command: list[str],
    log: Callable[[str], None] = print,
) -> IvfReport | None:
    chosen = [name for name in sets if (data / SETS[name][0]).is_dir()]
    if not chosen:
        log(f"skipped: evaluation data not found under {data}")
        return None
    ws = Workspace(work, load_settings(), max_k=100)
    found_sets: list[IvfSet] = []
    rows: list[IvfRow] = []
    for name in chosen:
        bench = SETS[name][1](data)
        cached = ws.searcher(bench)
        texts = distinct_texts(bench, queries)
        encoder = CachingEncoder(cached.encoder, len(texts) + 1)
        for text in texts:  # every side searches with the same vectors, computed once
            encoder.encode_queries([text])
        exact = Searcher(cached.index, encoder, max_k=100)
        passages = exact.stats().passages
        source = ws.folder(bench) / "index"
        with tempfile.TemporaryDirectory(prefix="poshuk-sharded-ivf-", dir=work) as tmp:
            single_info = ivf_copy(source, Path(tmp) / "single", approximate_above)
            single = Searcher(
                Index.open(Path(tmp) / "single", approximate_above=approximate_above, read_only=True),
                encoder,
                max_k=100,
            )
            try:
                for count in shards:
                    archive = Path(tmp) / f"archive-{count}"
                    split_index(source, archive, count)
                    shard_info = ivf_shards(archive, approximate_above)
                    found_sets.append(
                        IvfSet(set=name, passages=passages, shards=count, indexes=[single_info, *shard_info])
                    )
                    log(f"[{name}] single {single_info}; {count} shards {shard_info}")
                    sharded = Searcher(
                        ShardedIndex.open(archive, approximate_above=approximate_above), encoder, max_k=100
                    )
                    try:
                        rows += compare(bench, texts, count, (exact, single, sharded), log)
                    finally:
                        sharded.close()
            finally:
                single.close()
        ws.release(bench)
    return IvfReport(
        command=command,
        machine=machine(),
        versions=versions(),
        approximate_above=approximate_above,
        queries_per_set=queries,
        sets=found_sets,
        rows=rows,
    )


def _lists(indexes: Sequence[IvfIndex]) -> str:
    """``nlist/nprobe`` of each index, or its kind when it stayed flat."""
    return ", ".join(f"{i.nlist}/{i.nprobe}" if i.nlist else i.kind for i in indexes)


def render(report: IvfReport) -> str:
    m = report.machine
    lines = [
        "# IVF-SQ8 shards against one IVF-SQ8 index and the exact index (in process)",
        "",
        f"`{' '.join(report.command)}` — {m.date:%Y-%m-%d}, {m.cpu_model}, {m.usable_cores} usable cores, "
        f"Python {m.python}, poshuk {report.versions.get('poshuk')}.",
        "",
        f"Each set's cached poshuk index (flat vectors: exact) against a copy of it and its shards opened with "
        f"`approximate_above={report.approximate_above:,}` and snapshotted, which turns their vectors into IVF-SQ8 "
        f"(each shard trains its own lists; candidates re-scored by exact inner products, `RESCORE_FACTOR` 4). "
        f"Every distinct query of the set (at most {report.queries_per_set:,}; the rows' denominators) x "
        f"{', '.join(MODES)}, k={K}, query vectors computed once. "
        "*Identical*: every field but `took_ms`. *Same order*: the same ten passage ids in the same "
        "order, scores aside (an IVF side scores by the re-scoring's matrix product, the exact index by FAISS: the "
        "same passage can differ in the last bit, so *identical* to exact undercounts). "
        "*Overlap@10*: mean share of the reference's ten "
        "passage ids also in the other's ten. *Recall@10*: the set's gold documents among the documents of the ten "
        "hits (its first scoring; lower than recall.md's, which ranks 100 passages).",
        "",
        "These are small IVF indexes (nlist/nprobe below, chosen by `poshuk.vectors.nlist_for`/`nprobe_for` for "
        "the size). `nprobe` has a floor of 16 (`MIN_NPROBE`), so here a shard scans a larger share of its lists "
        "than the single index does (nprobe/nlist); at 1M passages in 3 shards both would scan 1/8 "
        "(nlist 2048 single, 1024 a shard; `scale.md`). Dense retrieval asks an index for 200 candidates "
        "(`CANDIDATES`; the page is cut from them), so FAISS returns 800 for exact re-scoring: one IVF index 800 in "
        "all, a sharded archive 800 from each shard.",
        "",
        "| set | passages | shards | nlist/nprobe single | nlist/nprobe shards |",
        "| --- | --- | --- | --- | --- |",
    ]
    for s in report.sets:
        lines.append(f"| {s.set} | {s.passages:,} | {s.shards} | {_lists(s.indexes[:1])} | {_lists(s.indexes[1:])} |")
    lines += [
        "",
        "| set | mode | shards | sharded = single IVF | single IVF = exact | sharded IVF = exact | "
        "same order: sharded / single IVF | same order: single IVF / exact | same order: sharded IVF / exact | "
        "overlap@10 single IVF vs exact | overlap@10 sharded IVF vs exact | overlap@10 sharded vs single IVF | "
        "gold recall@10 exact / single IVF / sharded IVF |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in report.rows:
        n = r.searches
        lines.append(
            f"| {r.set} | {r.mode} | {r.shards} | {r.identical_sharded_vs_single_ivf}/{n} "
            f"| {r.identical_single_ivf_vs_exact}/{n} | {r.identical_sharded_ivf_vs_exact}/{n} "
            f"| {r.same_order_sharded_vs_single_ivf}/{n} | {r.same_order_single_ivf_vs_exact}/{n} "
            f"| {r.same_order_sharded_ivf_vs_exact}/{n} "
            f"| {r.overlap_single_ivf_vs_exact:.4f} | {r.overlap_sharded_ivf_vs_exact:.4f} "
            f"| {r.overlap_sharded_vs_single_ivf:.4f} | {r.recall_exact:.4f} / {r.recall_single_ivf:.4f} / "
            f"{r.recall_sharded_ivf:.4f} ({r.scoring}, {r.gold_queries} queries) |"
        )
    differing = [f"- {r.set}, {r.mode}, {r.shards} shards: {d}" for r in report.rows for d in r.differences]
    if differing:
        lines += ["", "First queries where the sharded and the single IVF answer differ:", "", *differing]
    return "\n".join(lines) + "\n"
