"""``Shard``: what the router (``ShardedIndex``) asks of one shard, wherever the shard is; and
``WritableShard``: what the archive's one writer (``ShardedWriter``) asks of it besides.

The router merges; a shard answers plain questions about its own rows: candidates by its own
ranking, its BM25 statistics, the terms and lengths of rows the merge scores again, and reads
by row or by article. The writer decides row ids and story clusters for the whole archive from
each shard's answers (its last row id, MinHash band hits, an article's cluster facts, its
nearest passages), then has each owner shard write its part. ``LocalShard`` answers from an
``Index`` opened in this process; ``poshuk.shards.wire.RemoteShard`` sends the same questions
to a shard in another process (a Ray Serve deployment), which then writes its own files: the
merge and write code is one, whichever way the shards are reached.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import msgspec
import numpy as np
from numpy.typing import NDArray

from poshuk.candidates import ArticleFacts, Candidate, Candidates, RowGroup
from poshuk.encoder import ModelIdentity
from poshuk.index import Counts, Index, Manifest, RetrievalQuery, StoredDocument, StoredPassage, Upsert, WriteOutcome
from poshuk.index.db import last_row, page_column, select_in
from poshuk.index.postings import Weights, mirrorable
from poshuk.shards import bm25

TABLES = ("lexical", "article_lexical")
_EVIDENCE = {  # what the merge reads of a row it scores: its terms, article and page ({page}: page_column)
    "lexical": "SELECT l.rowid, l.terms, p.doc_id, {page} FROM lexical l JOIN passages p ON p.row_id = l.rowid "
    "WHERE l.rowid IN ({{}})",
    "article_lexical": "SELECT a.rowid, a.terms, p.doc_id, {page} FROM article_lexical a "
    "JOIN passages p ON p.row_id = a.rowid WHERE a.rowid IN ({{}})",
}


class Evidence(msgspec.Struct, frozen=True, kw_only=True):
    """What the merge reads of the rows it scores again: each row's indexed terms, article and page,
    and its length in tokens as FTS5 counted it. A row deleted meanwhile is absent."""

    texts: dict[int, tuple[str, str, int | None]]  # row -> (indexed terms, doc_id, page)
    lengths: dict[int, int]


class ClusterFacts(msgspec.Struct, frozen=True, kw_only=True):
    """What the story-cluster decision reads of an article: its cluster, MinHash (uint64 bytes),
    mean vector (float32 bytes) and language."""

    cluster: str | None
    minhash: bytes | None
    centroid: bytes | None
    lang: str | None


class FirstRound(msgspec.Struct, frozen=True, kw_only=True):
    """A shard's answers to a search's first questions, asked in one trip (``first_round``): its
    dense candidates, and for each BM25 table its statistics, its own top rows and their evidence."""

    dense: list[Candidate] = []
    stats: dict[str, bm25.TableStats] = {}
    local: dict[str, list[Candidate]] = {}
    evidence: dict[str, Evidence] = {}


class Shard(Protocol):
    """One shard of an archive, as the router reads it."""

    @property
    def manifest(self) -> Manifest: ...

    def check_model(self, identity: ModelIdentity, *, allow_backend_mismatch: bool = False) -> None: ...

    def counts(self) -> Counts: ...

    def retrieve(self, query: RetrievalQuery) -> Candidates: ...

    def table_stats(self, table: str, phrases: Sequence[bm25.Phrase]) -> bm25.TableStats: ...

    def evidence(self, table: str, rows: Sequence[int]) -> Evidence: ...

    def weighted_top(self, query: RetrievalQuery, table: str, stats: Weights) -> list[Candidate] | None: ...

    def passages(self, rows: list[int]) -> dict[int, StoredPassage]: ...

    def groups(self, rows: list[int]) -> dict[int, RowGroup]: ...

    def facts(self, rows: list[int]) -> dict[str, ArticleFacts]: ...

    def document(self, doc_id: str) -> StoredDocument: ...

    def document_vectors(self, doc_id: str) -> NDArray[np.float32]: ...

    def first_round(self, query: RetrievalQuery, first: int) -> FirstRound: ...

    def refresh(self) -> int: ...

    def load_lexical(self) -> bool: ...

    def close(self) -> None: ...


class WritableShard(Shard, Protocol):
    """A shard as the archive's one writer uses it (``poshuk.shards.writer``)."""

    def last_row(self) -> int: ...

    def band_hits(self, hashes: list[int]) -> list[tuple[str, int, int]]: ...

    def cluster_facts(self, doc_id: str) -> ClusterFacts | None: ...

    def nearest(self, vector: NDArray[np.float32], k: int) -> list[tuple[int, float]]: ...

    def docs_of_rows(self, rows: list[int]) -> list[str]: ...

    def write(self, upserts: list[Upsert], deletes: list[str]) -> WriteOutcome: ...

    def snapshot(self) -> object: ...


class LocalShard:
    """A shard opened in this process: ``Index``'s own reads, plus the two the merge adds."""

    def __init__(self, index: Index) -> None:
        self.index = index

    @property
    def manifest(self) -> Manifest:
        return self.index.manifest

    def check_model(self, identity: ModelIdentity, *, allow_backend_mismatch: bool = False) -> None:
        self.index.check_model(identity, allow_backend_mismatch=allow_backend_mismatch)

    def counts(self) -> Counts:
        return self.index.counts()

    def retrieve(self, query: RetrievalQuery) -> Candidates:
        return self.index.retrieve(query)

    def table_stats(self, table: str, phrases: Sequence[bm25.Phrase]) -> bm25.TableStats:
        """From the postings in memory when they answer as FTS5 would (one ``count(*) MATCH`` per
        phrase otherwise: a fifth of a 3-shard archive's search)."""
        postings = self.index.postings(articles=_table(table) == "article_lexical")
        if postings is not None and postings.exact and mirrorable(phrases):
            return bm25.TableStats(rows=postings.rows, tokens=postings.tokens, hits=postings.hits(phrases))
        return bm25.table_stats(self.index.read(), table, phrases)

    def weighted_top(self, query: RetrievalQuery, table: str, stats: Weights) -> list[Candidate] | None:
        """This shard's best ``query.limit`` rows of one BM25 table scored with the archive's
        statistics, with their evidence, from its postings; None when they cannot answer."""
        return self.index.weighted_bm25(query, articles=_table(table) == "article_lexical", stats=stats)

    def evidence(self, table: str, rows: Sequence[int]) -> Evidence:
        conn, table = self.index.read(), _table(table)
        sql = _EVIDENCE[table].format(page=page_column(self.index.pages))
        texts = {int(r): (str(t), str(d), page) for r, t, d, page in select_in(conn, sql, list(rows))}
        return Evidence(texts=texts, lengths=bm25.lengths(conn, table, rows))

    def passages(self, rows: list[int]) -> dict[int, StoredPassage]:
        return self.index.passages(rows)

    def groups(self, rows: list[int]) -> dict[int, RowGroup]:
        return self.index.groups(rows)

    def facts(self, rows: list[int]) -> dict[str, ArticleFacts]:
        return self.index.facts(rows)

    def document(self, doc_id: str) -> StoredDocument:
        return self.index.document(doc_id)

    def document_vectors(self, doc_id: str) -> NDArray[np.float32]:
        return self.index.document_vectors(doc_id)

    def first_round(self, query: RetrievalQuery, first: int) -> FirstRound:
        return first_round(self, query, first)

    def refresh(self) -> int:
        """Take in the changes another process (the archive's writer) committed; how many."""
        return self.index.refresh()

    def load_lexical(self) -> bool:
        """Build this shard's BM25 postings in memory (``Index.load_lexical``): its own top rows and
        its statistics then come from them."""
        return self.index.load_lexical()

    def last_row(self) -> int:
        """The highest passage row id this shard ever stored (``AUTOINCREMENT``'s, deleted rows included)."""
        return last_row(self.index.read())

    def band_hits(self, hashes: list[int]) -> list[tuple[str, int, int]]:
        """(doc_id, band, hash) of this shard's articles with a MinHash band hash among ``hashes``."""
        sql = "SELECT doc_id, band, hash FROM minhash_bands WHERE hash IN ({})"
        return [(str(doc), int(band), int(h)) for doc, band, h in select_in(self.index.read(), sql, hashes)]

    def cluster_facts(self, doc_id: str) -> ClusterFacts | None:
        sql = "SELECT cluster, minhash, centroid, lang FROM documents WHERE doc_id = ?"
        row = self.index.read().execute(sql, (doc_id,)).fetchone()
        if row is None:
            return None
        cluster, minhash, mean, lang = row
        return ClusterFacts(
            cluster=None if cluster is None else str(cluster),
            minhash=None if minhash is None else bytes(minhash),
            centroid=None if mean is None else bytes(mean),
            lang=None if lang is None else str(lang),
        )

    def nearest(self, vector: NDArray[np.float32], k: int) -> list[tuple[int, float]]:
        """(row, cosine) of this shard's ``k`` passages nearest ``vector``, in the canonical order."""
        if not len(self.index.vectors):
            return []
        return self.index.vectors.nearest(self.index.read(), vector[None, :], k, None)

    def docs_of_rows(self, rows: list[int]) -> list[str]:
        found = select_in(self.index.read(), "SELECT DISTINCT doc_id FROM passages WHERE row_id IN ({})", rows)
        return [str(doc) for (doc,) in found]

    def write(self, upserts: list[Upsert], deletes: list[str]) -> WriteOutcome:
        """The writer's part for this shard (rows and clusters decided): one durable transaction."""
        return self.index.write(upserts, deletes)

    def snapshot(self) -> object:
        return self.index.snapshot()

    def close(self) -> None:
        self.index.close()


def _table(name: str) -> str:
    """``name`` if it is one of the two BM25 tables: it is put into SQL, and a remote caller names it."""
    if name not in TABLES:
        raise ValueError(f"no BM25 table {name!r}")
    return name


def own_top(shard: Shard, query: RetrievalQuery, table: str, limit: int) -> list[Candidate]:
    """The shard's own top ``limit`` rows of one BM25 table by its own statistics (rows and local
    scores only: the router reads the evidence of the rows it scores again)."""
    passages = table == "lexical"
    asked = RetrievalQuery(
        terms=query.terms,
        filters=query.filters,
        limit=limit,
        lexical=passages,
        articles=not passages,
        evidence=False,
    )
    found = shard.retrieve(asked)
    return found.passages if passages else found.articles


def first_round(shard: Shard, query: RetrievalQuery, first: int) -> FirstRound:
    """What the router asks of every shard first for ``query``, answered here at once: for a shard
    in another process, one round trip instead of one per retriever and step. ``first``: how many
    BM25 rows of each table the shard ranks in this round."""
    dense: list[Candidate] = []
    if query.vector is not None:
        only = RetrievalQuery(
            terms=query.terms, vector=query.vector, filters=query.filters, limit=query.limit, evidence=query.evidence
        )
        dense = shard.retrieve(only).dense
    stats: dict[str, bm25.TableStats] = {}
    local: dict[str, list[Candidate]] = {}
    evidence: dict[str, Evidence] = {}
    if not query.terms.empty:
        phrases = bm25.phrases_of(query.terms)
        for table, wanted in (("lexical", query.lexical), ("article_lexical", query.articles)):
            if wanted:
                stats[table] = shard.table_stats(table, phrases)
                local[table] = own_top(shard, query, table, first) if stats[table].rows else []
                evidence[table] = shard.evidence(table, [c.row for c in local[table]])
    return FirstRound(dense=dense, stats=stats, local=local, evidence=evidence)
