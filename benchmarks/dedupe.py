"""``python -m benchmarks dedupe``: precision and recall of near-duplicate grouping on real data.

Two sets, each written through the real write path (``Index._stage_upsert``) with the default model:

* ``ntrex``: the 123 NTREX-128 English news articles and their human Ukrainian translations. The
  English ones are written in one transaction, the Ukrainian ones in a second (so translations are
  found through FAISS). A true pair is (English article, its translation).
* ``bruk``: BRUK press articles (cut to their first paragraphs, about ``WORDS`` words, to keep CPU
  encoding short) and one edited copy of each, made here with a seeded random edit: a sentence
  dropped, a sentence replaced, two paragraphs swapped, a byline added, ~5% of words changed, or two
  of these at once. A true pair is (original, its copy).

Precision = true pairs among the pairs the index put in one cluster; recall = true pairs grouped.
Sweeps over the thresholds come from the stored signatures and mean vectors of the same articles.
"""

from __future__ import annotations

import json
import random
import re
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from poshuk import dedupe
from poshuk.documents import Article
from poshuk.encoder import Encoder
from poshuk.index import Index, IndexWriter, Upsert
from poshuk.ingest import prepare
from poshuk.language import LanguageDetector
from poshuk.settings import Settings, load_settings

WORDS = 300
BRUK_ARTICLES = 150
SEED = 20240611
EDITS = ("drop_sentence", "replace_sentence", "swap_paragraphs", "byline", "change_words", "two_edits")
_SENTENCE = re.compile(r"(?<=[.!?…])\s+")


def _read(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _cut(text: str, words: int = WORDS) -> str:
    out: list[str] = []
    count = 0
    for para in text.split("\n"):
        if not para.strip():
            continue
        out.append(para.strip())
        count += len(para.split())
        if count >= words:
            break
    return "\n\n".join(out)


def _sentences(text: str) -> list[str]:
    return [s for s in _SENTENCE.split(text) if s.strip()]


def edit(text: str, kind: str, rng: random.Random, donor: str) -> str:
    """One edited copy of ``text``; ``donor`` (another article) supplies replacement words and sentences."""
    paras = text.split("\n\n")
    if kind == "two_edits":
        first, second = rng.sample(EDITS[:-1], 2)
        return edit(edit(text, first, rng, donor), second, rng, donor)
    if kind == "swap_paragraphs" and len(paras) >= 2:
        i = rng.randrange(len(paras) - 1)
        paras[i], paras[i + 1] = paras[i + 1], paras[i]
        return "\n\n".join(paras)
    if kind == "byline":
        return f"{text}\n\nАвтор: Олена Коваленко, «Вечірні новини». Передрук дозволено з посиланням."
    if kind == "change_words":
        tokens = text.split(" ")
        spare = donor.split() or ["так"]
        for i in rng.sample(range(len(tokens)), max(1, len(tokens) // 20)):
            tokens[i] = rng.choice(spare)
        return " ".join(tokens)
    sentences = _sentences(text)
    if len(sentences) < 2:
        return f"{text}\n\nОновлено."
    i = rng.randrange(len(sentences))
    if kind == "replace_sentence":
        sentences[i] = rng.choice(_sentences(donor) or ["Оновлено."])
    else:  # drop_sentence (and swap_paragraphs on a one-paragraph text)
        del sentences[i]
    return " ".join(sentences)


def _pairs_of(clusters: dict[str, str]) -> set[frozenset[str]]:
    groups: dict[str, list[str]] = {}
    for doc, cluster in clusters.items():
        groups.setdefault(cluster, []).append(doc)
    return {frozenset((a, b)) for docs in groups.values() for i, a in enumerate(docs) for b in docs[i + 1 :]}


def _score(clusters: dict[str, str], truth: set[frozenset[str]]) -> dict[str, Any]:
    predicted = _pairs_of(clusters)
    right = len(predicted & truth)
    return {
        "true_pairs": len(truth),
        "grouped_pairs": len(predicted),
        "correct_pairs": right,
        "false_groupings": len(predicted - truth),
        "precision": round(right / len(predicted), 4) if predicted else 1.0,
        "recall": round(right / len(truth), 4) if truth else 1.0,
    }


def _index(
    work: Path, encoder: Encoder, settings: Settings, batches: Iterable[list[Upsert]]
) -> tuple[dict[str, str], dict[str, np.ndarray]]:
    """Write each batch as one transaction; the cluster and mean vector of every stored article."""
    batches = list(batches)
    with IndexWriter(work, encoder.identity, settings.chunking) as writer:
        writer.upsert_many(batches[0])
    index = Index.open(work)
    try:
        for batch in batches[1:]:
            index.write(batch)
        rows = index.read().execute("SELECT doc_id, cluster, centroid FROM documents").fetchall()
    finally:
        index.close()
    clusters = {str(d): str(c) for d, c, _ in rows}
    return clusters, {str(d): np.frombuffer(v, dtype=np.float32) for d, _, v in rows if v is not None}


def run_ntrex(folder: Path, encoder: Encoder, settings: Settings, work: Path) -> dict[str, Any]:
    en = _read(folder / "docs_en.jsonl")
    uk = {r["doc_id"]: r for r in _read(folder / "docs_uk.jsonl")}
    detector = LanguageDetector()

    def article(r: dict[str, Any], lang: str) -> Article:
        return Article(id=r["id"], title=r["title"], text=r["text"], source=r.get("source"), lang=lang)

    en_articles = [article(r, "en") for r in en]
    uk_articles = [article(uk[r["doc_id"]], "uk") for r in en if r["doc_id"] in uk]
    started = time.perf_counter()
    batches = [prepare(en_articles, encoder, settings.chunking, detector)]
    batches.append(prepare(uk_articles, encoder, settings.chunking, detector))
    encode_s = time.perf_counter() - started
    clusters, cents = _index(work, encoder, settings, batches)
    truth = {frozenset((r["id"], uk[r["doc_id"]]["id"])) for r in en if r["doc_id"] in uk}
    result = _score(clusters, truth)
    # Sweep: a Ukrainian article joins the English one with the highest cosine, when above t.
    en_ids = [a.id for a in en_articles]
    uk_ids = [a.id for a in uk_articles]
    sims = np.vstack([cents[i] for i in uk_ids]) @ np.vstack([cents[i] for i in en_ids]).T
    best = sims.argmax(axis=1)
    sweep = []
    for t in (0.75, 0.8, 0.82, 0.85, 0.88, 0.9, 0.92, 0.95):
        predicted = {frozenset((uk_ids[u], en_ids[int(best[u])])) for u in range(len(uk_ids)) if sims[u, best[u]] >= t}
        right = len(predicted & truth)
        sweep.append(
            {
                "threshold": t,
                "precision": round(right / len(predicted), 4) if predicted else 1.0,
                "recall": round(right / len(truth), 4),
            }
        )
    true_cos = np.asarray(
        [sims[n, en_ids.index(next(iter(p - {u})))] for n, u in enumerate(uk_ids) for p in truth if u in p]
    )
    off = sims.copy()
    for n, u in enumerate(uk_ids):
        for p in truth:
            if u in p:
                off[n, en_ids.index(next(iter(p - {u})))] = -1
    result.update(
        articles=len(clusters),
        encode_s=round(encode_s, 1),
        threshold=dedupe.TRANSLATION_THRESHOLD,
        true_pair_cosine={
            "min": round(float(true_cos.min()), 4),
            "p5": round(float(np.percentile(true_cos, 5)), 4),
            "median": round(float(np.median(true_cos)), 4),
        },
        best_wrong_pair_cosine={
            "max": round(float(off.max()), 4),
            "p95": round(float(np.percentile(off.max(axis=1), 95)), 4),
        },
        sweep=sweep,
    )
    return result


def run_bruk(folder: Path, encoder: Encoder, settings: Settings, work: Path, n: int = BRUK_ARTICLES) -> dict[str, Any]:
    rng = random.Random(SEED)
    records = [r for r in _read(folder / "press_A.jsonl") if len(r["text"].split()) >= 80]
    chosen = rng.sample(records, min(n, len(records)))
    originals = [
        Article(id=r["id"], title=r["title"], text=_cut(r["text"]), source=r.get("source"), lang="uk") for r in chosen
    ]
    copies = []
    kinds: dict[str, str] = {}
    for i, a in enumerate(originals):
        kind = EDITS[i % len(EDITS)]
        donor = originals[(i + 1) % len(originals)].text
        copy = Article(
            id=f"{a.id}-copy", title=a.title, text=edit(a.text, kind, rng, donor), source="reprint", lang="uk"
        )
        copies.append(copy)
        kinds[copy.id] = kind
    detector = LanguageDetector()
    started = time.perf_counter()
    batches = [
        prepare(originals, encoder, settings.chunking, detector),
        prepare(copies, encoder, settings.chunking, detector),
    ]
    encode_s = time.perf_counter() - started
    clusters, _ = _index(work, encoder, settings, batches)
    truth = {frozenset((a.id, c.id)) for a, c in zip(originals, copies, strict=True)}
    result = _score(clusters, truth)
    sigs = {a.id: dedupe.signature(f"{a.title}\n{a.text}") for a in [*originals, *copies]}
    pair_j = {c.id: dedupe.jaccard(sigs[a.id], sigs[c.id]) for a, c in zip(originals, copies, strict=True)}
    ids = list(sigs)
    wrong = [
        dedupe.jaccard(sigs[a], sigs[b])
        for i, a in enumerate(ids)
        for b in ids[i + 1 :]
        if frozenset((a, b)) not in truth
    ]
    by_kind = {}
    for kind in EDITS:
        values = [j for c, j in pair_j.items() if kinds[c] == kind]
        grouped = sum(1 for c in pair_j if kinds[c] == kind and clusters[c] == clusters[c.removesuffix("-copy")])
        by_kind[kind] = {"pairs": len(values), "grouped": grouped, "min_jaccard": round(min(values), 3)}
    sweep = []
    for t in (0.3, 0.4, 0.5, 0.6, 0.7, 0.8):
        right = sum(1 for j in pair_j.values() if j >= t)
        false = sum(1 for j in wrong if j >= t)
        sweep.append(
            {
                "threshold": t,
                "precision": round(right / (right + false), 4) if right + false else 1.0,
                "recall": round(right / len(truth), 4),
            }
        )
    result.update(
        articles=len(clusters),
        encode_s=round(encode_s, 1),
        threshold=dedupe.COPY_THRESHOLD,
        by_edit=by_kind,
        max_wrong_pair_jaccard=round(max(wrong), 4),
        sweep=sweep,
    )
    return result


def render(result: dict[str, Any]) -> str:
    lines = ["# Near-duplicate grouping (`python -m benchmarks dedupe`)", ""]
    lines.append(
        f"Model: `{result['model']}`; MinHash {dedupe.NUM_PERM} permutations, {dedupe.BANDS} bands of {dedupe.ROWS}."
    )
    lines += ["", "| set | articles | true pairs | grouped pairs | false groupings | precision | recall | threshold |"]
    lines.append("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for name, r in result["sets"].items():
        lines.append(
            f"| {name} | {r['articles']} | {r['true_pairs']} | {r['grouped_pairs']} | {r['false_groupings']} "
            f"| {r['precision']} | {r['recall']} | {r['threshold']} |"
        )
    for name, r in result["sets"].items():
        lines += ["", f"## {name}: threshold sweep", "", "| threshold | precision | recall |", "| --- | --- | --- |"]
        lines += [f"| {s['threshold']} | {s['precision']} | {s['recall']} |" for s in r["sweep"]]
        extra = {
            k: v
            for k, v in r.items()
            if k in ("by_edit", "true_pair_cosine", "best_wrong_pair_cosine", "max_wrong_pair_jaccard")
        }
        lines += ["", "```", json.dumps(extra, ensure_ascii=False, indent=1), "```"]
    return "\n".join(lines) + "\n"


def run(data: Path, out: Path, command: list[str]) -> int:
    ntrex = data / "ntrex128-eng-ukr-news"
    bruk = data / "bruk-ukr-corpus"
    if not (ntrex / "docs_en.jsonl").is_file() and not (bruk / "press_A.jsonl").is_file():
        print(f"dedupe data not found under {data}; skipping")
        return 0
    from poshuk.models import load_encoder

    settings = load_settings()
    encoder = load_encoder(settings)
    result: dict[str, Any] = {"model": encoder.identity.name, "command": " ".join(command), "sets": {}}
    with tempfile.TemporaryDirectory(prefix="poshuk-dedupe-") as tmp:
        if (ntrex / "docs_en.jsonl").is_file():
            result["sets"]["ntrex"] = run_ntrex(ntrex, encoder, settings, Path(tmp) / "ntrex")
        else:
            print("NTREX data not found; skipping that set")
        if (bruk / "press_A.jsonl").is_file():
            result["sets"]["bruk"] = run_bruk(bruk, encoder, settings, Path(tmp) / "bruk")
        else:
            print("BRUK data not found; skipping that set")
    out.mkdir(parents=True, exist_ok=True)
    (out / "dedupe.json").write_text(json.dumps(result, ensure_ascii=False, indent=1), encoding="utf-8")
    (out / "dedupe.md").write_text(render(result), encoding="utf-8")
    print(render(result))
    return 0
