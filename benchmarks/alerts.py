"""``python -m benchmarks alerts``: do English saved searches fire for the Ukrainian story, and what do they cost?

NTREX-128 holds 123 English news documents and their Ukrainian translations. The English
documents are the archive (indexed first); each English headline is then saved as an alert;
then the 123 Ukrainian documents are written one by one through the live write path
(``Index.write``, what an HTTP write runs) and the matcher runs, as the service's thread does.
An alert is right when it fires for its own document's translation, wrong for any other.

- Precision and recall at the shipped default (``alerts.threshold``, mode ``hybrid``), on the
  even pairs (dev), the odd pairs (test) and all; the threshold sweep (meaning only) shows
  the trade-off, read on dev, checked on test.
- Write latency and matching cost with 0, 1,000 and 10,000 saved searches: one-article
  writes timed while a matcher thread runs beside them (as in the service), and the
  matcher's own time per written article. The extra alerts are random unit vectors (their
  cost does not depend on their text).
"""

from __future__ import annotations

import json
import statistics
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

from benchmarks.machine import Machine
from poshuk.alerts import Alerts
from poshuk.documents import Article, passage_id
from poshuk.encoder import Encoder
from poshuk.index import Index, IndexWriter, Upsert, last_change, live_version
from poshuk.ingest import prepare
from poshuk.language import LanguageDetector
from poshuk.query import QueryTerms
from poshuk.search import Searcher
from poshuk.settings import Settings, load_settings
from poshuk.wire import Alert

SWEEP = (0.78, 0.8, 0.81, 0.82, 0.83, 0.84, 0.85, 0.86, 0.87, 0.88, 0.9)
ALERT_COUNTS = (0, 1_000, 10_000)
CONFIGURATIONS: dict[str, dict[str, Any]] = {  # mode hybrid, as saved by default
    "threshold (default)": {},
    "top_k 3": {"top_k": 3},
    "top_k 5": {"top_k": 5},
}
TIMED_WRITES = 40


def _read(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _pr(fired: set[tuple[int, int]], pairs: list[int]) -> dict[str, float]:
    """Precision and recall over the alerts in ``pairs`` (alert n is right for document n)."""
    wanted = set(pairs)
    own = {(a, d) for a, d in fired if a in wanted}
    right = sum(1 for a, d in own if a == d)
    return {
        "fired": len(own),
        "precision": round(right / len(own), 4) if own else 1.0,
        "recall": round(right / len(wanted), 4),
    }


def _halves(fired: set[tuple[int, int]], n: int) -> dict[str, dict[str, float]]:
    return {
        "dev": _pr(fired, list(range(0, n, 2))),
        "test": _pr(fired, list(range(1, n, 2))),
        "all": _pr(fired, list(range(n))),
    }


def _quality(
    index_dir: Path, encoder: Encoder, settings: Settings, en: list[Article], uk: list[Upsert]
) -> dict[str, Any]:
    searcher = Searcher(Index.open(index_dir), encoder)  # the archive, for `top_k`'s own searches
    alerts = Alerts(index_dir, encoder, settings.alerts, searcher=lambda: searcher)
    try:
        shipped = {name: [alerts.create(a.title, **how) for a in en] for name, how in CONFIGURATIONS.items()}
        scored = [alerts.create(a.title, mode="dense", threshold=0.0) for a in en]  # every score, for the sweep
        index = Index.open(index_dir)
        try:
            for upsert in uk:
                index.write([upsert])
        finally:
            index.close()
        started = time.perf_counter()
        alerts.match_new_writes()
        match_s = time.perf_counter() - started
        doc_of = {u.article.id: n for n, u in enumerate(uk)}

        def fired(saved: list[Alert]) -> tuple[set[tuple[int, int]], dict[tuple[int, int], float]]:
            pairs: set[tuple[int, int]] = set()
            scores: dict[tuple[int, int], float] = {}
            for n, alert in enumerate(saved):
                for m in alerts.store.matches(alert.id, limit=10_000):
                    pairs.add((n, doc_of[m.doc_id]))
                    scores[(n, doc_of[m.doc_id])] = m.score
            return pairs, scores

        _, scores = fired(scored)
        sweep = []
        for t in SWEEP:
            sweep.append({"threshold": t, **_halves({p for p, s in scores.items() if s >= t}, len(en))})
        own = [scores[(n, n)] for n in range(len(en))]
        wrong = [s for (a, d), s in scores.items() if a != d]
        return {
            "threshold": settings.alerts.threshold,
            "shipped": {name: _halves(fired(saved)[0], len(en)) for name, saved in shipped.items()},
            "sweep": sweep,
            "own_pair_cosine": {"min": round(min(own), 4), "p10": round(float(np.percentile(own, 10)), 4)},
            "best_wrong_cosine": {"max": round(max(wrong), 4), "p99": round(float(np.percentile(wrong, 99)), 4)},
            "match_pass_s": round(match_s, 3),
            "alerts": len(alerts.alerts()),
        }
    finally:
        alerts.close()
        searcher.close()


def _match_until(alerts: Alerts, stop: threading.Event) -> None:
    """The service's matcher thread, for the benchmark: a pass every 50 ms until ``stop``."""
    while not stop.wait(0.05):
        alerts.match_new_writes()


def _latency(index_dir: Path, encoder: Encoder, settings: Settings, uk: list[Upsert]) -> list[dict[str, Any]]:
    """Write latency with a matcher thread running, and the matcher's time per article, per alert count."""
    alerts = Alerts(index_dir, encoder, settings.alerts)
    rng = np.random.default_rng(7)
    dim = encoder.identity.dimension
    counter = iter(range(10**9))

    def fresh(k: int) -> Upsert:
        source = uk[k % len(uk)]
        doc_id = f"latency-{next(counter)}"
        article = msgspec.structs.replace(source.article, id=doc_id)
        passages = [
            msgspec.structs.replace(p, id=passage_id(doc_id, p.ordinal), doc_id=doc_id) for p in source.passages
        ]
        return Upsert(article, passages, source.vectors, source.terms, source.signature)

    rows: list[dict[str, Any]] = []
    try:
        for count in ALERT_COUNTS:
            for alert in alerts.alerts():  # each count starts from no alerts
                alerts.delete(alert.id)
            version, seq = live_version(index_dir).name, last_change(index_dir) or 0
            for n in range(count):
                vector = rng.standard_normal(dim).astype(np.float32)
                vector /= np.linalg.norm(vector)
                synthetic = Alert(
                    id=f"synthetic-{count}-{n}",
                    query=f"q{n}",
                    mode="dense",
                    threshold=0.99,
                    created_at=datetime.now(UTC),
                )
                alerts.store.add(
                    synthetic,
                    owner="bench",
                    vector=vector,
                    terms=QueryTerms(units=()),
                    version=version,
                    seq=seq,
                    max_alerts=count + 1,
                )
            alerts.match_new_writes()  # loads the alerts once, as the service's matcher does after a change
            stop = threading.Event()

            thread = threading.Thread(target=_match_until, args=(alerts, stop), daemon=True)
            thread.start()
            times = []
            index = Index.open(index_dir)
            try:
                for k in range(TIMED_WRITES):
                    upsert = fresh(k)
                    started = time.perf_counter()
                    index.write([upsert])
                    times.append((time.perf_counter() - started) * 1000)
                    time.sleep(0.02)
                stop.set()
                thread.join()
                alerts.match_new_writes()
                for k in range(TIMED_WRITES):  # the matcher's own cost, alone, over freshly written articles
                    index.write([fresh(k)])
            finally:
                stop.set()
                index.close()
            started = time.perf_counter()
            alerts.match_new_writes()
            rows.append(
                {
                    "alerts": count,
                    "write_p50_ms": round(statistics.median(times), 2),
                    "write_p95_ms": round(float(np.percentile(times, 95)), 2),
                    "match_ms_per_article": round((time.perf_counter() - started) * 1000 / TIMED_WRITES, 2),
                }
            )
    finally:
        alerts.close()
    return rows


def _describe(m: Machine) -> str:
    return f"{m.cpu_model}, {m.usable_cores} usable cores, {m.ram_gib} GiB, Python {m.python}"


def render(result: dict[str, Any]) -> str:
    q = result["quality"]
    lines = [
        "# Alerts: English saved searches, Ukrainian articles (`python -m benchmarks alerts`)",
        "",
        f"Command: `{result['command']}`. Machine: {result['machine']}. Model: `{result['model']}`.",
        "",
        "NTREX-128: the 123 English documents are the archive; each English headline is saved as an alert; the 123 "
        "Ukrainian translations are then written one by one through the live write path. An alert is right when it "
        "fires for its own document's translation (dev: even pairs, test: odd pairs).",
        "",
        f"## As saved (mode `hybrid`; default threshold `alerts.threshold` = {q['threshold']})",
        "",
        "`top_k K`: the threshold is the cosine of the K-th best article of the alert's own search over the "
        "archive when it is saved (here the 123 English documents, one of them the story's original).",
        "",
        "| alert | half | alerts fired (matches) | precision | recall |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, halves in q["shipped"].items():
        for half in ("dev", "test", "all"):
            r = halves[half]
            lines.append(f"| {name} | {half} | {r['fired']} | {r['precision']} | {r['recall']} |")
    lines += ["", "## Threshold sweep (meaning only)", "", "| threshold | dev P | dev R | test P | test R |"]
    lines.append("| --- | --- | --- | --- | --- |")
    for s in q["sweep"]:
        lines.append(
            f"| {s['threshold']} | {s['dev']['precision']} | {s['dev']['recall']} | {s['test']['precision']} "
            f"| {s['test']['recall']} |"
        )
    lines += [
        "",
        f"Cosine of an alert with its own translation: min {q['own_pair_cosine']['min']}, 10th percentile "
        f"{q['own_pair_cosine']['p10']}; with any other document: max {q['best_wrong_cosine']['max']}, 99th "
        f"percentile {q['best_wrong_cosine']['p99']}. Matching all 123 articles against {q['alerts']} alerts: "
        f"{q['match_pass_s']} s.",
        "",
        "## Cost per write",
        "",
        "| saved searches | write p50 ms | write p95 ms | matching ms per article (off the write path) |",
        "| --- | --- | --- | --- |",
    ]
    for r in result["latency"]:
        lines.append(f"| {r['alerts']} | {r['write_p50_ms']} | {r['write_p95_ms']} | {r['match_ms_per_article']} |")
    lines += [
        "",
        "Writes are timed with the matcher thread running beside them, as in the service; matching runs after a "
        "write commits, from the change log, so its cost is the last column, not the write's.",
    ]
    return "\n".join(lines) + "\n"


def run(data: Path, out: Path, command: list[str]) -> int:
    folder = data / "ntrex128-eng-ukr-news"
    if not (folder / "docs_en.jsonl").is_file():
        print(f"NTREX data not found under {data}; skipping")
        return 0
    from benchmarks.machine import machine
    from poshuk.models import load_encoder

    settings = load_settings()
    encoder = load_encoder(settings)
    detector = LanguageDetector()
    uk_by_doc = {r["doc_id"]: r for r in _read(folder / "docs_uk.jsonl")}
    en_records = [r for r in _read(folder / "docs_en.jsonl") if r["doc_id"] in uk_by_doc]
    en = [Article(id=r["id"], title=r["title"], text=r["text"], lang="en") for r in en_records]
    uk_records = [uk_by_doc[r["doc_id"]] for r in en_records]
    uk = [Article(id=r["id"], title=r["title"], text=r["text"], lang="uk") for r in uk_records]
    started = time.perf_counter()
    en_upserts = prepare(en, encoder, settings.chunking, detector)
    uk_upserts = list(prepare(uk, encoder, settings.chunking, detector))
    encode_s = time.perf_counter() - started
    result: dict[str, Any] = {
        "command": " ".join(command),
        "machine": _describe(machine()),
        "model": encoder.identity.name,
        "encode_s": round(encode_s, 1),
    }
    with tempfile.TemporaryDirectory(prefix="poshuk-alerts-") as tmp:
        index_dir = Path(tmp) / "index"
        with IndexWriter(index_dir, encoder.identity, settings.chunking) as writer:
            writer.upsert_many(en_upserts)
        result["quality"] = _quality(index_dir, encoder, settings, en, uk_upserts)
        result["latency"] = _latency(index_dir, encoder, settings, uk_upserts)
    out.mkdir(parents=True, exist_ok=True)
    (out / "alerts.json").write_text(json.dumps(result, ensure_ascii=False, indent=1), encoding="utf-8")
    (out / "alerts.md").write_text(render(result), encoding="utf-8")
    print(render(result))
    return 0
