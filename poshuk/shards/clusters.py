"""Story clusters across shards: the answer ``find_cluster`` gives on one index, over all shards.

On one index a write decides each article's cluster inside its transaction, so it sees the
committed articles less those the write has removed or replaced so far, plus those it has
staged before this one. ``ClusterView`` is that view over every shard: the band lookups and the
nearest passages are asked of each shard and merged (the global top ``CANDIDATE_PASSAGES``
in the canonical order ``(-score, row)``), an article's own facts are read from its owner
shard, and the request's removals and staged articles are laid on top. Rows and clusters are
therefore those one node would have given, whichever shard the story's articles live on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from poshuk import dedupe
from poshuk.documents import Article
from poshuk.index.clusters import Staged
from poshuk.shards.layout import ShardSet
from poshuk.shards.shard import WritableShard


@dataclass(frozen=True)
class _Facts:
    """What the cluster decision reads of a candidate article."""

    cluster: str | None
    minhash: NDArray[np.uint64] | None
    centroid: NDArray[np.float32] | None
    lang: str | None


@dataclass(frozen=True)
class _Pending:
    facts: _Facts
    bands: frozenset[tuple[int, int]]


class ClusterView:
    """The archive as one index's open write transaction would see it (see the module's docstring)."""

    def __init__(self, shards: Sequence[WritableShard], shard_set: ShardSet, staged: Staged) -> None:
        self.shards = shards
        self.shard_set = shard_set
        self.staged = staged  # staged mean vectors (a batch run keeps them across its transactions)
        self.dimension = shards[0].manifest.model.dimension
        self._pending: dict[str, _Pending] = {}  # staged by this request, in order
        self._removed: set[str] = set()  # deleted or replaced by this request: their committed state is gone

    def remove(self, doc_id: str) -> None:
        self._removed.add(doc_id)
        self._pending.pop(doc_id, None)

    def add(
        self,
        article: Article,
        cluster: str,
        sig: NDArray[np.uint64],
        bands: Sequence[tuple[int, int]],
        mean: NDArray[np.float32] | None,
    ) -> None:
        self._pending[article.id] = _Pending(_Facts(cluster, sig, mean, article.lang), frozenset(bands))
        if mean is not None:
            self.staged.add(article.id, mean)

    def _facts(self, doc_id: str) -> _Facts | None:
        pending = self._pending.get(doc_id)
        if pending is not None:
            return pending.facts
        if doc_id in self._removed:
            return None
        found = self.shards[self.shard_set.shard_of(doc_id)].cluster_facts(doc_id)
        if found is None:
            return None
        return _Facts(
            found.cluster,
            None if found.minhash is None else np.frombuffer(found.minhash, dtype=np.uint64),
            None if found.centroid is None else np.frombuffer(found.centroid, dtype=np.float32, count=self.dimension),
            found.lang,
        )

    def find_cluster(
        self,
        article: Article,
        sig: NDArray[np.uint64],
        bands: Sequence[tuple[int, int]],
        mean: NDArray[np.float32] | None,
    ) -> str:
        """``poshuk.index.clusters.find_cluster`` over every shard: a copy by MinHash bands, else a
        translation among the nearest passages; the best match's cluster, or the article's own id."""
        wanted = set(bands)
        seen: set[str] = set()
        hashes = sorted({h for _, h in bands})
        for shard in self.shards:
            found = shard.band_hits(hashes)
            seen.update(doc for doc, band, h in found if (band, h) in wanted and doc not in self._removed)
        seen.update(doc for doc, pending in self._pending.items() if pending.bands & wanted)
        seen.discard(article.id)
        best: tuple[float, str] | None = None
        for doc in sorted(seen):
            facts = self._facts(doc)
            if facts is None or facts.minhash is None:
                continue
            score = dedupe.jaccard(sig, facts.minhash)
            if score >= dedupe.COPY_THRESHOLD and (best is None or score > best[0]):
                best = (score, facts.cluster or doc)
        if best is None and mean is not None and article.lang:
            best = self._find_translation(article, mean)
        return article.id if best is None else best[1]

    def _find_translation(self, article: Article, mean: NDArray[np.float32]) -> tuple[float, str] | None:
        candidates = set(self.staged.nearest(mean, dedupe.CANDIDATE_PASSAGES))
        hits: list[tuple[float, int, int]] = []  # (score, row, shard)
        for number, shard in enumerate(self.shards):
            near = shard.nearest(mean, dedupe.CANDIDATE_PASSAGES)
            hits.extend((score, row, number) for row, score in near)
        top = sorted(hits, key=lambda hit: (-hit[0], hit[1]))[: dedupe.CANDIDATE_PASSAGES]
        for number, shard in enumerate(self.shards):
            rows = [row for _, row, owner in top if owner == number]
            if rows:
                candidates.update(doc for doc in shard.docs_of_rows(rows) if doc not in self._removed)
        candidates.discard(article.id)
        best: tuple[float, str] | None = None
        for doc in sorted(candidates):
            facts = self._facts(doc)
            if facts is None or facts.centroid is None or facts.lang is None or facts.lang == article.lang:
                continue
            score = float(facts.centroid @ mean)
            if score >= dedupe.TRANSLATION_THRESHOLD and (best is None or score > best[0]):
                best = (score, facts.cluster or doc)
        return best
