"""``python -m benchmarks ranking``: issue 15's ranking experiments, each a row beside the product's fusion.

Every retriever runs once per query through the product's own code (``Index.retrieve``,
200 candidates each); the variants re-rank those lists, so rows differ only by the idea
tried:

- ``fusion``: the product (coverage-weighted RRF with the article-unit vote, ``poshuk.fusion``);
- ``fusion re-tuned``: the same fusion with the constants that do best on unlp2026-docs' dev half
  (a grid over rrf_k x lexical_weight x coverage_power x article_weight x article_coverage_power);
- ``weighted-sum``: a convex combination of min-max normalised scores (Bruch et al. 2023),
  ``alpha * dense + (1 - alpha) * coverage * BM25`` plus ``beta * coverage^2 * article BM25``
  for the passages of that article unit; ``alpha`` and ``beta`` chosen on unlp2026-docs' dev half;
- ``stopwords``: spaCy's Ukrainian stop-word list (lemmatised by the index's analyser) removed
  from the query's units before passage and article BM25; coverage counts the remaining units
  (query side only: the index keeps its terms);
- ``rm3``: pseudo-relevance feedback on passage BM25: the 10 best-weighted new terms of the 10
  best passages (term share x exp(BM25/10) x IDF) searched as a second BM25 query, mixed
  ``0.7 * original + 0.3 * expansion``.

A variant is adopted only if it is not worse on any set. spaCy's list is read from an installed
``spacy`` package's source (``pip install --no-deps spacy``; nothing of spaCy is imported); without
it that row is reported as unavailable.
"""

from __future__ import annotations

import ast
import collections
import importlib.util
import math
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import msgspec

from benchmarks.datasets import SETS, BenchSet, unit_id
from benchmarks.machine import machine
from benchmarks.recall import score_set
from benchmarks.workspace import Workspace
from poshuk.analysis import Analyzer
from poshuk.candidates import Candidate, Candidates
from poshuk.fusion import FusionSettings, fuse
from poshuk.index import Index, RetrievalQuery
from poshuk.index.db import select_in
from poshuk.query import QueryTerms, Unit, analyse_query

DEPTH = 200
WEIGHTED_SUM_GRID = [(a, b) for a in (0.3, 0.5, 0.7) for b in (0.0, 0.25, 0.5)]
FUSION_GRID = [
    FusionSettings(rrf_k=k, lexical_weight=w, coverage_power=c, article_weight=aw, article_coverage_power=ac)
    for k in (5.0, 10.0, 30.0)
    for w in (0.5, 1.0, 2.0)
    for c in (1.0, 2.0)
    for aw in (0.5, 1.0, 2.0)
    for ac in (1.0, 2.0)
]
TUNE_SET = "unlp2026-docs"
RM3_DOCS, RM3_TERMS, RM3_KEEP = 10, 10, 0.7


class Retrieved(msgspec.Struct, frozen=True):
    """One query's lists, as the product and each variant need them."""

    units: int
    found: Candidates
    stopwords: Candidates | None
    stopword_units: int
    rm3_passages: list[Candidate]


class Row(msgspec.Struct, frozen=True):
    set: str
    variant: str
    scoring: str
    split: str
    recall_at_10: float
    mrr_at_10: float


class Report(msgspec.Struct, frozen=True):
    command: str
    machine: str
    chosen_weighted_sum: tuple[float, float]
    retuned_fusion: FusionSettings
    stopword_list: str
    rows: list[Row]


def spacy_stopwords() -> frozenset[str] | None:
    """spaCy's Ukrainian stop words, read (not imported) from an installed spaCy; None without it."""
    spec = importlib.util.find_spec("spacy")
    if spec is None or spec.origin is None:
        return None
    source = Path(spec.origin).parent / "lang" / "uk" / "stop_words.py"
    if not source.is_file():
        return None
    for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and len(node.value) > 1000:
            return frozenset(node.value.split())
    return None


def _lemmas(words: frozenset[str], analyzer: Analyzer) -> frozenset[str]:
    out = set(words)
    for word in words:
        out.update(analyzer.terms(word))
    return frozenset(out)


def _rm3(index: Index, terms: QueryTerms, passages: list[Candidate]) -> list[Candidate]:
    """Passage BM25 mixed with a second BM25 over the feedback terms of its best passages."""
    top = passages[:RM3_DOCS]
    if not top:
        return passages
    conn = index.read()
    texts = dict(select_in(conn, "SELECT rowid, terms FROM lexical WHERE rowid IN ({})", [c.row for c in top]))
    total = conn.execute("SELECT count(*) FROM lexical").fetchone()[0]
    weights: dict[str, float] = collections.defaultdict(float)
    for c in top:
        words = str(texts.get(c.row, "")).split()
        for word, n in collections.Counter(words).items():
            if len(word) >= 3 and not word.isdigit():
                weights[word] += n / len(words) * math.exp(c.score / 10)
    own = set(terms.terms)
    for word in list(weights):
        df = conn.execute("SELECT count(*) FROM lexical WHERE lexical MATCH ?", [f'"{word}"']).fetchone()[0]
        weights[word] *= math.log(total / (1 + df))
    best = sorted(weights, key=lambda w: (-weights[w], w))
    expansion = [w for w in best if w not in own][:RM3_TERMS]
    if not expansion:
        return passages
    extra = index.retrieve(
        RetrievalQuery(terms=QueryTerms(tuple(Unit(w) for w in expansion)), limit=DEPTH, lexical=True)
    ).passages
    mixed = {c.row: RM3_KEEP * c.score for c in passages}
    for c in extra:
        mixed[c.row] = mixed.get(c.row, 0.0) + (1 - RM3_KEEP) * c.score
    ranked = sorted(mixed.items(), key=lambda item: (-item[1], item[0]))[:DEPTH]
    known = {c.row: c for c in [*extra, *passages]}
    finder = terms.finder()
    indexed = dict(select_in(conn, "SELECT rowid, terms FROM lexical WHERE rowid IN ({})", [r for r, _ in ranked]))
    return [
        Candidate(row, known[row].doc_id, score, finder(str(indexed.get(row, ""))), known[row].page)
        for row, score in ranked
    ]


def retrieve_all(bench: BenchSet, ws: Workspace, stopwords: frozenset[str] | None) -> list[Retrieved]:
    index = ws.searcher(bench).index
    stop = None if stopwords is None else _lemmas(stopwords, index.analyzer)
    out = []
    for q in bench.queries:
        terms = analyse_query(q.text, index.analyzer)
        vector = ws.encoder.encode_queries([q.text])
        found = index.retrieve(RetrievalQuery(terms=terms, vector=vector, limit=DEPTH, lexical=True, articles=True))
        kept, lexical = terms, None
        if stop is not None:
            kept = QueryTerms(tuple(u for u in terms.units if u.prefixes or u.term not in stop))
            lexical = index.retrieve(RetrievalQuery(terms=kept, limit=DEPTH, lexical=True, articles=True))
        out.append(Retrieved(len(terms.units), found, lexical, len(kept.units), _rm3(index, terms, found.passages)))
    return out


def _normalised(candidates: Sequence[Candidate]) -> dict[int, float]:
    if not candidates:
        return {}
    hi, lo = max(c.score for c in candidates), min(c.score for c in candidates)
    return {c.row: (c.score - lo) / (hi - lo) if hi > lo else 1.0 for c in candidates}


def weighted_sum(found: Candidates, units: int, alpha: float, beta: float) -> list[tuple[int, float]]:
    """Bruch et al.'s convex combination, with the same coverage weighting and article units as the fusion."""

    def coverage(c: Candidate, power: float) -> float:
        return (len(c.matched) / units) ** power if units else 0.0

    scores = {row: alpha * s for row, s in _normalised(found.dense).items()}
    lexical = _normalised(found.passages)
    for c in found.passages:
        scores[c.row] = scores.get(c.row, 0.0) + (1 - alpha) * lexical[c.row] * coverage(c, 1.0)
    if beta > 0.0 and found.articles:
        unit_of = {c.row: c.unit for c in (*found.dense, *found.passages)}
        rows_of: dict[tuple[str, int | None], list[int]] = {}
        for row in scores:
            rows_of.setdefault(unit_of[row], []).append(row)
        articles = _normalised(found.articles)
        for c in found.articles:
            vote = beta * articles[c.row] * coverage(c, 2.0)
            for row in rows_of.get(c.unit) or [c.row]:
                scores[row] = scores.get(row, 0.0) + vote
    return sorted(scores.items(), key=lambda item: (-item[1], item[0]))


def _rankings(
    lists: list[Retrieved], unit_of: dict[int, str], rank: Callable[[Retrieved], list[tuple[int, float]]]
) -> list[list[str]]:
    return [[unit_of[row] for row, _ in rank(r) if row in unit_of] for r in lists]


def _units(index: Index) -> dict[int, str]:
    page = "page" if index.pages else "NULL"
    found = index.read().execute(f"SELECT row_id, doc_id, {page} FROM passages").fetchall()
    return {int(r): unit_id(str(d), p) for r, d, p in found}


def _tuned(
    bench: BenchSet, lists: list[Retrieved], unit_of: dict[int, str]
) -> tuple[tuple[float, float], FusionSettings]:
    """The weighted sum's (alpha, beta) and the fusion's constants with the best R@10, then MRR@10,
    on the set's dev half."""
    dev = msgspec.structs.replace(bench, queries=[q for q in bench.queries if q.split == "dev"])
    dev_lists = [r for r, q in zip(lists, bench.queries, strict=True) if q.split == "dev"]

    def dev_score(rank: Callable[[Retrieved], list[tuple[int, float]]]) -> tuple[float, float]:
        first = score_set(dev, "dev", _rankings(dev_lists, unit_of, rank))[0]
        return (first.recall_at_10, first.mrr_at_10)

    alpha_beta = max(WEIGHTED_SUM_GRID, key=lambda ab: dev_score(lambda r: weighted_sum(r.found, r.units, *ab)))
    fusion = max(FUSION_GRID, key=lambda f: dev_score(lambda r: fuse(r.found, r.units, f)))
    return alpha_beta, fusion


def _variants(
    chosen: tuple[float, float], retuned: FusionSettings, stopwords: bool, fusion: FusionSettings
) -> dict[str, Callable[[Retrieved], list[tuple[int, float]]]]:
    def without_stopwords(r: Retrieved) -> list[tuple[int, float]]:
        assert r.stopwords is not None
        lexical = msgspec.structs.replace(r.found, passages=r.stopwords.passages, articles=r.stopwords.articles)
        return fuse(lexical, r.stopword_units, fusion)

    variants: dict[str, Callable[[Retrieved], list[tuple[int, float]]]] = {
        "fusion": lambda r: fuse(r.found, r.units, fusion),
        "fusion re-tuned": lambda r: fuse(r.found, r.units, retuned),
        f"weighted-sum a={chosen[0]} b={chosen[1]}": lambda r: weighted_sum(r.found, r.units, *chosen),
        "rm3": lambda r: fuse(msgspec.structs.replace(r.found, passages=r.rm3_passages), r.units, fusion),
    }
    if stopwords:
        variants["stopwords"] = without_stopwords
    return variants


def run(data: Path, work: Path, out: Path, sets: list[str], command: list[str]) -> int:
    from poshuk import load_settings

    host = machine()
    settings = load_settings()
    ws = Workspace(work, settings, max_k=100)
    stopwords = spacy_stopwords()
    fusion = FusionSettings()
    rows: list[Row] = []
    chosen, retuned = WEIGHTED_SUM_GRID[0], fusion
    for name in sorted(sets, key=lambda s: s != TUNE_SET):  # the tuning set first
        folder, loader = SETS[name]
        if not (data / folder).is_dir():
            print(f"[{name}] {data / folder} not found; skipping", file=sys.stderr)
            continue
        bench = loader(data)
        ws.passages(bench)
        lists = retrieve_all(bench, ws, stopwords)
        unit_of = _units(ws.searcher(bench).index)
        if name == TUNE_SET:
            chosen, retuned = _tuned(bench, lists, unit_of)
        for variant, rank in _variants(chosen, retuned, stopwords is not None, fusion).items():
            scored = score_set(bench, variant, _rankings(lists, unit_of, rank))
            rows += [
                Row(m.set, m.system, m.scoring, m.split, round(m.recall_at_10, 3), round(m.mrr_at_10, 3))
                for m in scored
            ]
            first = scored[0]
            print(f"[{name}] {variant} ({first.scoring}): R@10 {first.recall_at_10:.3f} MRR {first.mrr_at_10:.3f}")
        ws.release(bench)
    report = Report(
        command=" ".join(command),
        machine=f"{host.cpu_model}, {host.cores} cores",
        chosen_weighted_sum=chosen,
        retuned_fusion=retuned,
        stopword_list="spaCy uk" if stopwords is not None else "unavailable (spaCy not installed)",
        rows=rows,
    )
    out.mkdir(parents=True, exist_ok=True)
    (out / "ranking-experiments.json").write_bytes(msgspec.json.format(msgspec.json.encode(report)))
    (out / "ranking-experiments.md").write_text(render(report), encoding="utf-8")
    print(render(report))
    return 0


def render(report: Report) -> str:
    lines = [
        "# Ranking experiments (issue 15)",
        "",
        f"Command: `{report.command}`. Machine: {report.machine}. Weighted sum chosen on unlp2026-docs dev: "
        f"alpha={report.chosen_weighted_sum[0]}, beta={report.chosen_weighted_sum[1]}; fusion re-tuned there: "
        f"{msgspec.json.encode(report.retuned_fusion).decode()}. "
        f"Stop words: {report.stopword_list}. See `benchmarks/ranking.py` for each variant.",
        "",
        "| set | scoring | variant | R@10 all | MRR@10 all | R@10 test | MRR@10 test |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    by_key: dict[tuple[str, str, str], dict[str, Row]] = {}
    for r in report.rows:
        by_key.setdefault((r.set, r.scoring, r.variant), {})[r.split] = r
    for (set_name, scoring, variant), splits in by_key.items():
        whole, test = splits["all"], splits.get("test")
        tail = f"{test.recall_at_10:.3f} | {test.mrr_at_10:.3f}" if test else "- | -"
        lines.append(
            f"| {set_name} | {scoring} | {variant} | {whole.recall_at_10:.3f} | {whole.mrr_at_10:.3f} | {tail} |"
        )
    return "\n".join(lines) + "\n"
