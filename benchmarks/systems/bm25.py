"""``bm25s``: an independent BM25 (the ``bm25s`` package) over the same passages poshuk indexes.

Analysis per language: bm25s's regex tokenizer (lower-cased; the pattern is widened so
Ukrainian apostrophe words such as «пам’ять» stay whole), then for English NLTK stopwords
and PyStemmer's Snowball ``english`` stemmer; PyStemmer has no Ukrainian stemmer, so
Ukrainian words are cut to their first 6 characters (the crude stemmer of the data
folders' own BM25 baselines) and no stopwords are removed. Passages are indexed as the
dense model reads them (title context + text); bm25s's defaults (Lucene, k1=1.5, b=0.75).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from benchmarks.datasets import BenchSet, Query, unit_id
from benchmarks.systems import SystemUnavailable
from benchmarks.workspace import Workspace

TOKEN_PATTERN = r"(?u)\b\w[\w'’ʼ]*\w\b"
PREFIX_CHARS = 6


def _prefix_stem(words: list[str]) -> list[str]:
    return [w[:PREFIX_CHARS] for w in words]


class Bm25System:
    name = "bm25s"

    def __init__(self) -> None:
        self._retriever: Any = None
        self._doc_ids: list[str] = []
        self._lang = "uk"

    def _analyzer(self, lang: str | None) -> tuple[Callable[[list[str]], list[str]], str | None, str]:
        """(stemmer, bm25s stopwords name, description) for a language."""
        import Stemmer

        if lang == "en":
            return Stemmer.Stemmer("english").stemWords, "en", "snowball english + en stopwords"
        return _prefix_stem, None, f"{PREFIX_CHARS}-char prefix, no stopwords"

    def _tokenize(self, texts: list[str], lang: str | None) -> list[list[str]]:
        import bm25s

        stem, stopwords, _ = self._analyzer(lang)
        tokens: list[list[str]] = bm25s.tokenize(
            texts,
            token_pattern=TOKEN_PATTERN,
            stopwords=stopwords,
            stemmer=stem,
            return_ids=False,
            show_progress=False,
        )
        return tokens

    def prepare(self, bench: BenchSet, ws: Workspace) -> dict[str, str]:
        try:
            import bm25s
            import Stemmer  # noqa: F401
        except ImportError as exc:
            raise SystemUnavailable(
                f"not available: {exc.name} is not installed (pip install bm25s PyStemmer)"
            ) from exc
        passages = ws.passages(bench)
        langs = [a.lang for a in bench.corpus if a.lang]
        self._lang = max(set(langs), key=langs.count) if langs else "uk"
        self._doc_ids = [unit_id(p.doc_id, p.page) for p in passages]
        self._retriever = bm25s.BM25()
        self._retriever.index(self._tokenize([p.embed_text for p in passages], self._lang), show_progress=False)
        query_langs = sorted({q.lang or self._lang for q in bench.queries})
        return {
            "corpus_analysis": f"{self._lang}: {self._analyzer(self._lang)[2]}",
            "query_analysis": "; ".join(f"{lang}: {self._analyzer(lang)[2]}" for lang in query_langs),
            "indexed_text": "passage embed_text (title context + text)",
        }

    def rank(self, queries: Sequence[Query], depth: int) -> list[list[str]]:
        if self._retriever is None:
            raise RuntimeError("prepare() first")
        tokens = [self._tokenize([q.text], q.lang or self._lang)[0] for q in queries]
        k = min(depth, len(self._doc_ids))
        rows, scores = self._retriever.retrieve(tokens, k=k, show_progress=False)
        return [
            [self._doc_ids[int(i)] for i, s in zip(row, score, strict=True) if s > 0]  # no shared term: no hit
            for row, score in zip(rows, scores, strict=True)
        ]

    def close(self) -> None:
        self._retriever = None
