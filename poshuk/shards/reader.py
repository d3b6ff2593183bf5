"""``ShardedIndex``: every shard of an archive read as one index, for ``Searcher``.

Dense candidates merge by ``(-score, row)``, exactly (each shard's top is already in that
order). BM25 candidates are scored with the statistics of all shards (``bm25``): by each shard
itself when every shard holds its postings in memory (``_weighted``: a merge of the shards' top
lists), else by the router from each row's stored terms, a shard asked for more whenever a row
it has not returned could still beat the last of the merged top (its local score bounds the
global one: see ``_factor``). Passages, story groups
and articles are read from the shard that holds them. Opened ``writable``, its ``writer``
(``poshuk.shards.writer``) writes the same shards in this process: a write is searchable when
it returns.

The shards are ``Shard``s: opened here (``LocalShard``, ``ShardedIndex.open``) or answering
from other processes (``wire.RemoteShard``, a Ray Serve deployment each); the merge is the
same. With ``parallel`` every question to all shards is asked of them at once (remote shards:
one round trip of waiting, not one per shard).
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import numpy as np
from numpy.typing import NDArray

from poshuk.candidates import ArticleFacts, Candidate, Candidates, RowGroup
from poshuk.encoder import ModelIdentity
from poshuk.errors import IndexStoreError
from poshuk.index import Counts, Index, IndexWrites, Manifest, RetrievalQuery, StoredDocument, StoredPassage
from poshuk.index.postings import Weights
from poshuk.query import QueryTerms
from poshuk.settings import DEFAULT_APPROXIMATE_ABOVE
from poshuk.shards import bm25
from poshuk.shards.layout import ShardSet, read_set
from poshuk.shards.shard import Evidence, FirstRound, LocalShard, Shard, own_top
from poshuk.shards.writer import ShardedWriter, open_shards

S = TypeVar("S")
T = TypeVar("T")
K = TypeVar("K")
V = TypeVar("V")

_AGAIN = 4  # a shard asked again returns this many times as many candidates
_CHUNK = 64  # candidates whose terms are read at once while merging
_SLACK = 1 + 1e-9  # bounds are compared with room for rounding


def _canonical(candidates: list[Candidate], limit: int) -> list[Candidate]:
    return sorted(candidates, key=lambda c: (-c.score, c.row))[:limit]


class ShardedIndex:
    """The shards of ``index_dir`` (``DIR/SET``), each a normal index, read together."""

    def __init__(
        self,
        index_dir: Path,
        shard_set: ShardSet,
        shards: Sequence[Shard],
        *,
        first_fetch: int | None = None,
        parallel: bool = False,
    ) -> None:
        """``first_fetch``: BM25 candidates asked of each shard at first (None: the query's limit;
        tests make it small to exercise the second rounds). ``parallel``: ask all shards at once,
        from a thread each (for shards in other processes)."""
        if len(shards) != len(shard_set.shards):
            raise IndexStoreError(f"{index_dir} lists {len(shard_set.shards)} shards, {len(shards)} are open")
        self.index_dir = index_dir
        self.shard_set = shard_set
        self.shards = list(shards)
        self.first_fetch = first_fetch
        self.second_rounds = 0  # shards asked again for more BM25 candidates, since opening
        self.writer: IndexWrites | None = None  # ``open(writable=True)``'s, or a writer elsewhere; None: read-only
        # Three retrievers may fan out at once, each to every shard; the retrievers run in a pool of their
        # own, so a task never waits for one queued behind it in the same pool.
        self._pool = ThreadPoolExecutor(3 * len(shards), thread_name_prefix="poshuk-shards") if parallel else None
        self._retrievers = ThreadPoolExecutor(3, thread_name_prefix="poshuk-retrievers") if parallel else None

    def _each(self, ask: Callable[[Shard], T]) -> list[T]:
        """``ask`` of every shard, in shard order."""
        return self._map(ask, self.shards)

    def _map(self, ask: Callable[[S], T], items: Sequence[S]) -> list[T]:
        """``ask`` of each item, in order; all at once with ``parallel``."""
        if self._pool is None or len(items) < 2:
            return [ask(item) for item in items]
        return list(self._pool.map(ask, items))

    @classmethod
    def open(
        cls,
        index_dir: Path,
        *,
        approximate_above: int = DEFAULT_APPROXIMATE_ABOVE,
        first_fetch: int | None = None,
        writable: bool = False,
        lexical_in_memory: bool = True,
    ) -> ShardedIndex:
        """Every shard opened in this process: read-only, or ``writable`` with a ``writer`` over
        the same shards (which first applies any write a crash left half done)."""
        writer: ShardedWriter | None = None
        if writable:
            shard_set, indexes = open_shards(
                index_dir, approximate_above=approximate_above, lexical_in_memory=lexical_in_memory
            )
            local = [LocalShard(index) for index in indexes]
            try:
                writer = ShardedWriter(index_dir, shard_set, local)
            except BaseException:
                for index in indexes:
                    index.close()
                raise
            shards: list[Shard] = list(local)
        else:
            shard_set = read_set(index_dir)
            shards = []
            try:
                for name in shard_set.shards:
                    index = Index.open(
                        index_dir / name,
                        approximate_above=approximate_above,
                        read_only=True,
                        lexical_in_memory=lexical_in_memory,
                    )
                    shards.append(LocalShard(index))
            except BaseException:
                for shard in shards:
                    shard.close()
                raise
        models = {(s.manifest.model.name, s.manifest.model.weights_sha256) for s in shards}
        if len(models) > 1:
            for shard in shards:
                shard.close()
            if writer is not None:
                writer.close()
            raise IndexStoreError(f"the shards of {index_dir} were built with different models")
        opened = cls(index_dir, shard_set, shards, first_fetch=first_fetch)
        opened.writer = writer
        return opened

    @property
    def manifest(self) -> Manifest:
        return self.shards[0].manifest

    def check_model(self, identity: ModelIdentity, *, allow_backend_mismatch: bool = False) -> None:
        for shard in self.shards:
            shard.check_model(identity, allow_backend_mismatch=allow_backend_mismatch)

    def counts(self) -> Counts:
        each = self._each(lambda shard: shard.counts())
        return Counts(
            documents=sum(c.documents for c in each),
            passages=sum(c.passages for c in each),
            seq=sum(c.seq for c in each),
        )

    # -- retrieval -----------------------------------------------------------------------

    def retrieve(self, query: RetrievalQuery) -> Candidates:
        """Each retriever's candidates over all shards, ranked as one index ranks them (with
        ``parallel``, every shard's first answers for all three retrievers in one trip: ``_first``)."""
        if self._pool is not None:
            return self._first(query)
        steps: list[Callable[[], list[Candidate]]] = [
            (lambda: self._dense(query)) if query.vector is not None else list,
            (lambda: self._lexical(query, "lexical")) if query.lexical else list,
            (lambda: self._lexical(query, "article_lexical")) if query.articles else list,
        ]
        if self._retrievers is None:
            dense, passages, articles = (step() for step in steps)
        else:
            dense, passages, articles = (f.result() for f in [self._retrievers.submit(step) for step in steps])
        return Candidates(dense=dense, passages=passages, articles=articles)

    def _first(self, query: RetrievalQuery) -> Candidates:
        """``retrieve`` for shards elsewhere: each shard answers the first questions of every
        retriever at once (``shard.first_round``); the merges then ask again only for the rows and
        second rounds they still need. The answers are those of the step-by-step path."""
        first = self._first_fetch(query)
        rounds = self._each(lambda shard: shard.first_round(query, first))
        dense = _canonical([c for r in rounds for c in r.dense], query.limit) if query.vector is not None else []
        passages = self._lexical(query, "lexical", rounds) if query.lexical else []
        articles = self._lexical(query, "article_lexical", rounds) if query.articles else []
        return Candidates(dense=dense, passages=passages, articles=articles)

    def _first_fetch(self, query: RetrievalQuery) -> int:
        """BM25 rows each shard ranks in its first round."""
        return min(self.first_fetch or query.limit, query.limit)

    def _dense(self, query: RetrievalQuery) -> list[Candidate]:
        only = RetrievalQuery(
            terms=query.terms,
            vector=query.vector,
            filters=query.filters,
            limit=query.limit,
            evidence=query.evidence,
        )
        found = self._each(lambda shard: shard.retrieve(only).dense)
        return _canonical([c for one in found for c in one], query.limit)

    def _lexical(
        self, query: RetrievalQuery, table: str, rounds: Sequence[FirstRound] | None = None
    ) -> list[Candidate]:
        """One BM25 table's candidates over all shards; ``rounds``: the shards' first answers, already here."""
        if query.terms.empty:
            return []
        phrases = bm25.phrases_of(query.terms)
        if rounds is None:
            stats = self._each(lambda shard: shard.table_stats(table, phrases))
        else:
            stats = [r.stats[table] for r in rounds]
        whole = bm25.total(stats)
        if whole.rows == 0:
            return []
        if rounds is None:  # shards in this process score their own rows with the archive's statistics
            weighted = self._weighted(query, table, Weights(tuple(whole.idf()), whole.avgdl))
            if weighted is not None:
                return weighted
        scoring = _Rescoring(self.shards, table, query.terms, phrases, stats, whole)
        asked = [self._first_fetch(query)] * len(self.shards)

        def fetch(n: int) -> list[Candidate]:
            found = own_top(self.shards[n], query, table, asked[n])
            if self._pool is not None:  # shards elsewhere: their rows' evidence in the same trip, not one per chunk
                scoring.prime(n, [c.row for c in found])
            return found

        if rounds is None:
            local = self._map(fetch, range(len(self.shards)))
        else:
            local = [r.local[table] for r in rounds]
            for n, r in enumerate(rounds):
                scoring.take(n, [c.row for c in local[n]], r.evidence[table])
        while True:
            merged = scoring.merged(local, query.limit)
            cut = merged[-1].score if len(merged) == query.limit else float("-inf")
            again = [
                n
                for n, found in enumerate(local)
                if len(found) == asked[n] and scoring.factors[n] * found[-1].score * _SLACK >= cut
            ]
            if not again:
                return merged
            self.second_rounds += len(again)
            for n in again:
                asked[n] *= _AGAIN
            more = self._map(fetch, again)
            for n, found in zip(again, more, strict=True):
                local[n] = found

    def _weighted(self, query: RetrievalQuery, table: str, stats: Weights) -> list[Candidate] | None:
        """The global top of one BM25 table when every shard can score its rows with the archive's
        statistics (its postings in memory): each shard's top ``limit`` by the global score holds
        every row of the global top, so merging them is exact, with no second round. None when a
        shard cannot (the merge below scores FTS5's rows again instead)."""
        asked = RetrievalQuery(terms=query.terms, filters=query.filters, limit=query.limit)
        merged: list[Candidate] = []
        for found in self._each(lambda shard: shard.weighted_top(asked, table, stats)):
            if found is None:
                return None
            merged.extend(found)
        return _canonical(merged, query.limit)

    # -- reads by row or by article ------------------------------------------------------------

    def passages(self, rows: list[int]) -> dict[int, StoredPassage]:
        return self._union(rows, lambda shard: shard.passages(rows))

    def groups(self, rows: list[int]) -> dict[int, RowGroup]:
        return self._union(rows, lambda shard: shard.groups(rows))

    def facts(self, rows: list[int]) -> dict[str, ArticleFacts]:
        return self._union(rows, lambda shard: shard.facts(rows))

    def _union(self, rows: list[int], ask: Callable[[Shard], dict[K, V]]) -> dict[K, V]:
        """Every shard's answer about ``rows``, in one dict; no question is sent for no rows."""
        found: dict[K, V] = {}
        if rows:
            for part in self._each(ask):
                found.update(part)
        return found

    def _owner(self, doc_id: str) -> Shard:
        return self.shards[self.shard_set.shard_of(doc_id)]

    def document(self, doc_id: str) -> StoredDocument:
        return self._owner(doc_id).document(doc_id)

    def document_vectors(self, doc_id: str) -> NDArray[np.float32]:
        return self._owner(doc_id).document_vectors(doc_id)

    @property
    def lexical_loaded(self) -> bool:
        """Whether every shard is in this process with its postings built."""
        return all(isinstance(shard, LocalShard) and shard.index.lexical.loaded for shard in self.shards)

    def load_lexical(self) -> bool:
        """Build the BM25 postings of the shards in this process (once each; the service's upkeep
        calls it); whether any was built now."""
        built = [shard.load_lexical() for shard in self.shards]
        return any(built)

    def close(self) -> None:
        for pool in (self._pool, self._retrievers):
            if pool is not None:
                pool.shutdown(wait=False)
        if self.writer is not None:
            self.writer.close()
        for shard in self.shards:
            shard.close()


class _Rescoring:
    """One query's BM25 over all shards of one table: what every round of the merge shares
    (global IDFs, each shard's bound factor, the terms and lengths already read)."""

    def __init__(
        self,
        shards: list[Shard],
        table: str,
        terms: QueryTerms,
        phrases: list[bm25.Phrase],
        stats: list[bm25.TableStats],
        whole: bm25.TableStats,
    ) -> None:
        self.shards, self.table, self.units_in = shards, table, terms.finder()
        self.idfs, self.wanted, self.avgdl = whole.idf(), bm25.needles(phrases), whole.avgdl
        self.factors = [_factor(s, whole) for s in stats]
        self.read: list[Evidence] = [Evidence(texts={}, lengths={}) for _ in shards]

    def merged(self, local: list[list[Candidate]], limit: int) -> list[Candidate]:
        """The global top ``limit`` of the shards' lists, scored again with the global statistics.

        The lists are walked side by side, best first; a shard's walk stops once even its next
        row's bound (``_factor`` x its local score) is below the ``limit``-th global score found:
        nothing after it can make the top. Rows are read in chunks as the walk reaches them,
        once per query (a second round reads only rows it had not seen).
        """
        scored: list[Candidate] = []
        top: list[tuple[float, int]] = []  # the best ``limit`` (score, -row) so far; the worst first
        position = [0] * len(local)
        walking = [n for n, found in enumerate(local) if found]
        while walking:
            going = []
            for n in walking:
                found, at = local[n], position[n]
                if at >= len(found):
                    continue
                c = found[at]
                if len(top) == limit and self.factors[n] * c.score * _SLACK < top[0][0]:
                    continue
                position[n] = at + 1
                going.append(n)
                g = self._scored(n, c, found[at : at + _CHUNK])
                if g is None:  # deleted since the shard ranked it
                    continue
                scored.append(g)
                if len(top) < limit:
                    heapq.heappush(top, (g.score, -g.row))
                elif (g.score, -g.row) > top[0]:
                    heapq.heapreplace(top, (g.score, -g.row))
            walking = going
        return _canonical(scored, limit)

    def prime(self, n: int, rows: list[int]) -> None:
        """Read the evidence of shard ``n``'s ``rows`` now (those not read yet)."""
        wanted = [r for r in rows if r not in self.read[n].lengths]
        if wanted:
            self.take(n, wanted, self.shards[n].evidence(self.table, wanted))

    def take(self, n: int, rows: list[int], found: Evidence) -> None:
        """Keep the evidence ``found`` of shard ``n``'s ``rows``."""
        lengths = self.read[n].lengths
        self.read[n].texts.update(found.texts)
        lengths.update(found.lengths)
        lengths.update({r: 0 for r in rows if r not in found.lengths})  # deleted meanwhile: not asked again

    def _scored(self, n: int, c: Candidate, ahead: list[Candidate]) -> Candidate | None:
        """``c`` of shard ``n`` with its global score, article and matched words (reading it and
        the rows ``ahead`` of it first, unless already read)."""
        texts, lengths = self.read[n].texts, self.read[n].lengths
        if c.row not in lengths:
            found = self.shards[n].evidence(self.table, [x.row for x in ahead])
            texts.update(found.texts)
            lengths.update(found.lengths)
        if c.row not in texts:
            return None
        indexed, doc, page = texts[c.row]
        score = bm25.score(self.idfs, bm25.frequencies(indexed, self.wanted), lengths.get(c.row, 0), self.avgdl)
        return Candidate(c.row, doc, score, self.units_in(indexed), page)


def _factor(shard: bm25.TableStats, whole: bm25.TableStats) -> float:
    """How far above its local score a row of ``shard`` can score globally: per phrase the global
    score is at most IDF_global / IDF_local times the local one, and the length part at most
    max(1, avgdl_global / avgdl_local) times."""
    if shard.rows == 0:
        return 0.0
    ratio = max((g / s for g, s in zip(whole.idf(), shard.idf(), strict=True)), default=1.0)
    return ratio * max(1.0, whole.avgdl / shard.avgdl)
