"""``ShardedIndex``: every shard of an archive read as one index, for ``Searcher``.

Dense candidates merge by ``(-score, row)``, exactly (each shard's top is already in that
order). BM25 candidates are scored again with the statistics of all shards (``bm25``); a
shard is asked for more whenever a row it has not returned could still beat the last of the
merged top (its local score bounds the global one: see ``_bound``). Passages, story groups
and articles are read from the shard that holds them. Writes are not routed here yet.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from poshuk.candidates import Candidate, Candidates
from poshuk.encoder import ModelIdentity
from poshuk.errors import IndexStoreError
from poshuk.index import Counts, Index, Manifest, RetrievalQuery, StoredDocument, StoredPassage
from poshuk.index.db import select_in
from poshuk.settings import DEFAULT_APPROXIMATE_ABOVE
from poshuk.shards import bm25
from poshuk.shards.layout import ShardSet, read_set

_AGAIN = 4  # a shard asked again returns this many times as many candidates


def _canonical(candidates: list[Candidate], limit: int) -> list[Candidate]:
    return sorted(candidates, key=lambda c: (-c.score, c.row))[:limit]


class ShardedIndex:
    """The shards of ``index_dir`` (``DIR/SET``), each a normal index, read together."""

    def __init__(
        self, index_dir: Path, shard_set: ShardSet, shards: Sequence[Index], *, first_fetch: int | None = None
    ) -> None:
        """``first_fetch``: BM25 candidates asked of each shard at first (None: the query's limit;
        tests make it small to exercise the second rounds)."""
        if len(shards) != len(shard_set.shards):
            raise IndexStoreError(f"{index_dir} lists {len(shard_set.shards)} shards, {len(shards)} are open")
        self.index_dir = index_dir
        self.shard_set = shard_set
        self.shards = list(shards)
        self.read_only = True
        self.first_fetch = first_fetch
        self.second_rounds = 0  # shards asked again for more BM25 candidates, since opening

    @classmethod
    def open(
        cls,
        index_dir: Path,
        *,
        approximate_above: int = DEFAULT_APPROXIMATE_ABOVE,
        read_only: bool = True,
        first_fetch: int | None = None,
    ) -> ShardedIndex:
        shard_set = read_set(index_dir)
        shards: list[Index] = []
        try:
            for name in shard_set.shards:
                shards.append(Index.open(index_dir / name, approximate_above=approximate_above, read_only=read_only))
        except BaseException:
            for shard in shards:
                shard.close()
            raise
        models = {(s.manifest.model.name, s.manifest.model.weights_sha256) for s in shards}
        if len(models) > 1:
            for shard in shards:
                shard.close()
            raise IndexStoreError(f"the shards of {index_dir} were built with different models")
        return cls(index_dir, shard_set, shards, first_fetch=first_fetch)

    @property
    def manifest(self) -> Manifest:
        return self.shards[0].manifest

    def check_model(self, identity: ModelIdentity, *, allow_backend_mismatch: bool = False) -> None:
        for shard in self.shards:
            shard.check_model(identity, allow_backend_mismatch=allow_backend_mismatch)

    def counts(self) -> Counts:
        each = [shard.counts() for shard in self.shards]
        return Counts(
            documents=sum(c.documents for c in each),
            passages=sum(c.passages for c in each),
            seq=sum(c.seq for c in each),
        )

    # -- retrieval -----------------------------------------------------------------------

    def retrieve(self, query: RetrievalQuery) -> Candidates:
        """Each retriever's candidates over all shards, ranked as one index ranks them."""
        dense: list[Candidate] = []
        if query.vector is not None:
            only = RetrievalQuery(
                terms=query.terms,
                vector=query.vector,
                filters=query.filters,
                limit=query.limit,
                evidence=query.evidence,
            )
            dense = _canonical([c for shard in self.shards for c in shard.retrieve(only).dense], query.limit)
        passages = self._lexical(query, "lexical") if query.lexical else []
        articles = self._lexical(query, "article_lexical") if query.articles else []
        return Candidates(dense=dense, passages=passages, articles=articles)

    def _lexical(self, query: RetrievalQuery, table: str) -> list[Candidate]:
        if query.terms.empty:
            return []
        phrases = bm25.phrases_of(query.terms)
        stats = [bm25.table_stats(shard.read(), table, phrases) for shard in self.shards]
        whole = bm25.total(stats)
        if whole.rows == 0:
            return []
        idfs = whole.idf()
        first = min(self.first_fetch or query.limit, query.limit)
        asked = [first] * len(self.shards)
        local = [self._local(shard, query, table, first) for shard in self.shards]
        while True:
            merged = _canonical(
                [
                    c
                    for shard, found in zip(self.shards, local, strict=True)
                    for c in self._rescored(shard, table, found, phrases, idfs, whole.avgdl)
                ],
                query.limit,
            )
            cut = merged[-1].score if len(merged) == query.limit else float("-inf")
            again = [
                n
                for n, found in enumerate(local)
                if len(found) == asked[n] and _bound(stats[n], whole, found[-1].score) >= cut
            ]
            if not again:
                return merged
            self.second_rounds += len(again)
            for n in again:
                asked[n] *= _AGAIN
                local[n] = self._local(self.shards[n], query, table, asked[n])

    @staticmethod
    def _local(shard: Index, query: RetrievalQuery, table: str, limit: int) -> list[Candidate]:
        """The shard's own top ``limit`` by its own BM25 (with the evidence fusion reads)."""
        passages = table == "lexical"
        asked = RetrievalQuery(
            terms=query.terms, filters=query.filters, limit=limit, lexical=passages, articles=not passages
        )
        found = shard.retrieve(asked)
        return found.passages if passages else found.articles

    @staticmethod
    def _rescored(
        shard: Index, table: str, found: list[Candidate], phrases: list[bm25.Phrase], idfs: list[float], avgdl: float
    ) -> list[Candidate]:
        if not found:
            return []
        rows = [c.row for c in found]
        conn = shard.read()
        indexed = dict(select_in(conn, f"SELECT rowid, terms FROM {table} WHERE rowid IN ({{}})", rows))
        length = bm25.lengths(conn, table, rows)
        wanted = bm25.needles(phrases)
        out = []
        for c in found:
            freqs = bm25.frequencies(str(indexed.get(c.row, "")), wanted)
            out.append(c._replace(score=bm25.score(idfs, freqs, length.get(c.row, 0), avgdl)))
        return out

    # -- reads by row or by article ------------------------------------------------------------

    def passages(self, rows: list[int]) -> dict[int, StoredPassage]:
        found: dict[int, StoredPassage] = {}
        for shard in self.shards:
            found.update(shard.passages(rows))
        return found

    def groups(self, rows: list[int]) -> dict[int, tuple[str, str | None]]:
        found: dict[int, tuple[str, str | None]] = {}
        for shard in self.shards:
            found.update(shard.groups(rows))
        return found

    def _owner(self, doc_id: str) -> Index:
        return self.shards[self.shard_set.shard_of(doc_id)]

    def document(self, doc_id: str) -> StoredDocument:
        return self._owner(doc_id).document(doc_id)

    def document_vectors(self, doc_id: str) -> NDArray[np.float32]:
        return self._owner(doc_id).document_vectors(doc_id)

    def close(self) -> None:
        for shard in self.shards:
            shard.close()


def _bound(shard: bm25.TableStats, whole: bm25.TableStats, last_local: float) -> float:
    """The highest global score a row the shard has not returned can have: its local score is
    at most ``last_local``, and per phrase the global score is at most IDF_global / IDF_local
    times the local one, times max(1, avgdl_global / avgdl_local) for the length part."""
    if shard.rows == 0:
        return float("-inf")
    ratio = max((g / s for g, s in zip(whole.idf(), shard.idf(), strict=True)), default=1.0)
    return ratio * max(1.0, whole.avgdl / shard.avgdl) * last_local * (1 + 1e-9)
