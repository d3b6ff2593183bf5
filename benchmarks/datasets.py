"""Evaluation sets read from ``../shared/data`` (never copied into the repo).

Each loader turns one folder's JSONL files into a ``BenchSet``: the corpus as poshuk
``Article``s, the queries with their relevant document ids, and how to score them.
What each folder holds is described in its ``PROVENANCE.md``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgspec

from poshuk import Article
from poshuk.documents import Page, clean_text

LOADER_VERSION = 1
"""Bump when a loader changes what it yields (part of the index cache key)."""


class Scoring(msgspec.Struct, frozen=True, kw_only=True):
    """One way to score a set: which relevance list of each query, and how to read it."""

    name: str
    any_relevant: bool = False  # any one of the relevant ids answers the query (see metrics)


class Query(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    text: str
    lang: str | None
    relevant: dict[str, tuple[str, ...]]  # scoring name -> relevant document ids
    split: str | None = None  # "dev" / "test" where the set defines halves


class BenchSet(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    description: str
    granularity: str  # what one corpus document is: page, passage, document, sentence
    corpus: list[Article]
    queries: list[Query]
    scorings: tuple[Scoring, ...]

    def limited(self, limit: int | None) -> BenchSet:
        """The same set with at most ``limit`` queries (the corpus stays whole)."""
        if limit is None or limit >= len(self.queries):
            return self
        return msgspec.structs.replace(self, queries=self.queries[:limit])


def read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                yield json.loads(line)


def _article(rec: dict[str, Any], *, title: str = "", text: str | None = None) -> Article:
    return Article(
        id=rec["id"],
        title=clean_text(title),
        text=clean_text(rec["text"] if text is None else text),
        lang=rec.get("lang"),
        source=rec.get("source"),
    )


def _bitext_queries(path: Path, text: Callable[[dict[str, Any]], str] | None = None) -> list[Query]:
    return [
        Query(
            id=r["id"],
            text=clean_text(text(r) if text else r["text"]),
            lang=r.get("lang"),
            relevant={"exact": tuple(r["relevant_ids"])},
        )
        for r in read_jsonl(path)
    ]


def load_unlp2026(root: Path) -> BenchSet:
    """461 Ukrainian questions -> 1,121 PDF pages; first half of the file is "dev", the rest "test"."""
    folder = root / "unlp2026-dev-uk-docqa"
    corpus = [_article(r) for r in read_jsonl(folder / "corpus.jsonl")]
    rows = list(read_jsonl(folder / "queries.jsonl"))
    half = len(rows) // 2
    queries = [
        Query(
            id=r["id"],
            text=clean_text(r["text"]),
            lang=r.get("lang"),
            relevant={"page": tuple(r["relevant_ids"]), "page±1": tuple(r["relevant_ids_pm1"])},
            split="dev" if i < half else "test",
        )
        for i, r in enumerate(rows)
    ]
    return BenchSet(
        name="unlp2026",
        description="uk question -> PDF page (sports rules, medicine leaflets)",
        granularity="page",
        corpus=corpus,
        queries=queries,
        scorings=(Scoring(name="page"), Scoring(name="page±1", any_relevant=True)),
    )


def load_unlp2026_documents(root: Path) -> BenchSet:
    """The same questions over the 41 PDFs as documents with pages (their real structure): every page is
    embedded with its document's context, and a hit's (document, page) is the unit scored."""
    folder = root / "unlp2026-dev-uk-docqa"
    pages: dict[str, list[dict[str, Any]]] = {}
    for r in read_jsonl(folder / "corpus.jsonl"):
        pages.setdefault(str(r["doc_id"]).removesuffix(".pdf"), []).append(r)
    corpus = []
    for doc_id, rows in pages.items():
        rows.sort(key=lambda r: int(r["page"]))
        langs = [r.get("lang") for r in rows if r.get("lang")]
        corpus.append(
            Article(
                id=doc_id,
                title="",
                text="\n\n".join(clean_text(r["text"]) for r in rows),
                lang=max(set(langs), key=langs.count) if langs else None,
                source=rows[0].get("source"),
                pages=tuple(Page(int(r["page"]), clean_text(r["text"])) for r in rows if r["text"].strip()),
            )
        )
    bench = load_unlp2026(root)
    return msgspec.structs.replace(
        bench,
        name="unlp2026-docs",
        description="uk question -> page of 41 PDF documents with pages",
        corpus=corpus,
    )


def unit_id(doc_id: str, page: int | None) -> str:
    """What a hit is scored as: its page (``{document}#p{n}``, unlp2026's page ids), else its document."""
    return doc_id if page is None else f"{doc_id}#p{page}"


def load_ntrex_passages(root: Path) -> BenchSet:
    """516 English 4-sentence passages -> their 516 Ukrainian translations (no headline context)."""
    folder = root / "ntrex128-eng-ukr-news"
    return BenchSet(
        name="ntrex-passages",
        description="en news passage -> uk translation among 516 passages",
        granularity="passage",
        corpus=[_article(r) for r in read_jsonl(folder / "passages_uk.jsonl")],
        queries=_bitext_queries(folder / "passages_en.jsonl"),
        scorings=(Scoring(name="exact"),),
    )


def headline_and_lead(rec: dict[str, Any]) -> str:
    """An NTREX document's headline and first body sentence (the first line of ``text``)."""
    lead = rec["text"].split("\n", 1)[0].strip()
    return f"{rec['title'].strip()}\n{lead}" if lead else rec["title"].strip()


def load_ntrex_docs(root: Path) -> BenchSet:
    """123 English headline + lead sentence -> 123 Ukrainian articles (headline as title)."""
    folder = root / "ntrex128-eng-ukr-news"
    return BenchSet(
        name="ntrex-docs",
        description="en headline + lead -> uk article among 123",
        granularity="document",
        corpus=[_article(r, title=r["title"]) for r in read_jsonl(folder / "docs_uk.jsonl")],
        queries=_bitext_queries(folder / "docs_en.jsonl", headline_and_lead),
        scorings=(Scoring(name="exact"),),
    )


def strip_headline(title: str, text: str) -> str:
    """``text`` without a first line that repeats the headline (7 of 580 BRUK press texts)."""
    first, sep, rest = text.partition("\n")
    if " ".join(first.split()).casefold() == " ".join(title.split()).casefold():
        return rest.lstrip("\n") if sep else ""
    return text


def load_bruk_press(root: Path) -> BenchSet:
    """580 Ukrainian headlines -> 580 press articles indexed without their headline."""
    folder = root / "bruk-ukr-corpus"
    corpus = [
        _article(r, text=strip_headline(r["title"] or "", r["text"])) for r in read_jsonl(folder / "press_A.jsonl")
    ]
    queries = [
        Query(
            id=r["id"],
            text=clean_text(r["text"]).strip(),
            lang=r.get("lang"),
            relevant={"exact": tuple(r["relevant_ids"])},
        )
        for r in read_jsonl(folder / "press_title_queries.jsonl")
    ]
    return BenchSet(
        name="bruk-press",
        description="uk headline -> uk press article (headline removed) among 580",
        granularity="document",
        corpus=corpus,
        queries=queries,
        scorings=(Scoring(name="exact"),),
    )


def load_flores200(root: Path) -> BenchSet:
    """1,012 English sentences -> 1,012 Ukrainian translations."""
    folder = root / "flores200-devtest-eng-ukr"
    return BenchSet(
        name="flores200",
        description="en sentence -> uk translation among 1,012",
        granularity="sentence",
        corpus=[_article(r) for r in read_jsonl(folder / "uk.jsonl")],
        queries=_bitext_queries(folder / "en.jsonl"),
        scorings=(Scoring(name="exact"),),
    )


SETS: dict[str, tuple[str, Callable[[Path], BenchSet]]] = {
    "unlp2026": ("unlp2026-dev-uk-docqa", load_unlp2026),
    "unlp2026-docs": ("unlp2026-dev-uk-docqa", load_unlp2026_documents),
    "ntrex-passages": ("ntrex128-eng-ukr-news", load_ntrex_passages),
    "ntrex-docs": ("ntrex128-eng-ukr-news", load_ntrex_docs),
    "bruk-press": ("bruk-ukr-corpus", load_bruk_press),
    "flores200": ("flores200-devtest-eng-ukr", load_flores200),
}
"""Set name -> (data folder it needs, loader)."""
