"""``Searcher``: the API other newsroom tools use to query an index in-process.

Three modes: ``dense`` (the embedding, FAISS), ``lexical`` (BM25 over analysed
terms, SQLite FTS5) and ``hybrid`` (both, fused by ``poshuk.fusion`` with BM25 over
whole articles as a third vote; the default).
Filters apply inside both retrievers, so the answer is the top-k among matching
passages. ``collapse`` returns each article once, ``dedupe`` each story once (one hit
per near-duplicate cluster: copies, edited copies, translations; see ``poshuk.dedupe``);
``offset`` pages through a fixed candidate pool, so pages never overlap or skip.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Protocol

import msgspec
import numpy as np
from numpy.typing import NDArray

from poshuk.analysis import Analyzer
from poshuk.candidates import ArticleFacts, Candidates, RowGroup
from poshuk.chunking import split_sentences
from poshuk.documents import clean_text
from poshuk.encoder import Encoder, ModelIdentity, Vectors
from poshuk.errors import IndexReadOnlyError, InvalidQueryError
from poshuk.facets import checked as checked_facets
from poshuk.facets import count_facets
from poshuk.filters import Filters
from poshuk.fusion import FusionSettings, fuse
from poshuk.highlight import sentence_span, term_spans
from poshuk.index import Counts, Index, Manifest, RetrievalQuery, StoredDocument, StoredPassage
from poshuk.index import IndexWrites as IndexWrites
from poshuk.ordering import Ordering, reorder
from poshuk.page_hits import other_pages
from poshuk.query import QueryTerms, analyse_query
from poshuk.settings import Settings
from poshuk.shards import ShardedIndex, is_sharded
from poshuk.vectors import set_search_threads
from poshuk.wire import CANDIDATES as CANDIDATES
from poshuk.wire import MODES as MODES
from poshuk.wire import FacetBucket
from poshuk.wire import Hit as Hit
from poshuk.wire import IndexStats as IndexStats
from poshuk.wire import Mode as Mode
from poshuk.wire import SearchResult as SearchResult
from poshuk.wire import Sort as Sort

SENTENCE_HIGHLIGHT_HITS = 3  # hits per page whose best sentence is found by meaning


class IndexReader(Protocol):
    """What a search reads: one index version (``Index``), or every shard of one (``ShardedIndex``)."""

    @property
    def manifest(self) -> Manifest: ...

    @property
    def index_dir(self) -> Path: ...

    def check_model(self, identity: ModelIdentity, *, allow_backend_mismatch: bool = False) -> None: ...

    def counts(self) -> Counts: ...

    def retrieve(self, query: RetrievalQuery) -> Candidates: ...

    def passages(self, rows: list[int]) -> dict[int, StoredPassage]: ...

    def groups(self, rows: list[int]) -> dict[int, RowGroup]: ...

    def facts(self, rows: list[int]) -> dict[str, ArticleFacts]: ...

    def document(self, doc_id: str) -> StoredDocument: ...

    def document_vectors(self, doc_id: str) -> NDArray[np.float32]: ...

    def close(self) -> None: ...


class Searcher:
    """Ranked passage search over one index version (or a sharded archive) with a compatible encoder."""

    def __init__(
        self,
        reader: IndexReader,
        encoder: Encoder,
        *,
        max_k: int = 100,
        fusion: FusionSettings | None = None,
        semantic_highlights: bool = False,
        allow_backend_mismatch: bool = False,
    ) -> None:
        reader.check_model(encoder.identity, allow_backend_mismatch=allow_backend_mismatch)
        self._reader = reader
        self._encoder = encoder
        self._analyzer = Analyzer(reader.manifest.lexical)
        self.max_k = max_k
        self.fusion = fusion or FusionSettings()
        self.semantic_highlights = semantic_highlights

    @classmethod
    def open(cls, index_dir: Path, settings: Settings, *, encoder: Encoder | None = None) -> Searcher:
        """Open the live version of ``index_dir``; loads the model named in settings if no encoder is given.

        FAISS searches then use ``service.faiss_threads`` in this process, as ``poshuk serve`` does:
        how a flat scan is split between threads changes scores in the last bit, so the library,
        ``poshuk search`` and the server would otherwise rank near-ties differently (issue 12)."""
        set_search_threads(settings.service.faiss_threads)
        reader: IndexReader
        if is_sharded(index_dir):
            reader = ShardedIndex.open(
                index_dir,
                approximate_above=settings.approximate_above,
                writable=not settings.service.read_only,
                lexical_in_memory=settings.lexical_in_memory,
            )
        else:
            reader = Index.open(
                index_dir,
                approximate_above=settings.approximate_above,
                read_only=settings.service.read_only,
                lexical_in_memory=settings.lexical_in_memory,
            )
        try:
            if encoder is None:
                from poshuk.models import load_encoder
                from poshuk.query_encoding import CachingEncoder

                encoder = CachingEncoder(load_encoder(settings), settings.query_cache_size)
            return cls(
                reader,
                encoder,
                max_k=settings.service.max_k,
                allow_backend_mismatch=settings.allow_backend_mismatch,
            )
        except BaseException:
            reader.close()
            raise

    @property
    def index(self) -> Index:
        """The open index version; a sharded archive has none (its writes go through ``writer``)."""
        if not isinstance(self._reader, Index):
            raise IndexReadOnlyError(
                f"{self.index_dir} is sharded: it has no one index (its writes go through its writer)"
            )
        return self._reader

    @property
    def writer(self) -> IndexWrites:
        """Where writes go: the open index version, or a sharded archive's one writer
        (``poshuk.shards.writer``); ``IndexReadOnlyError`` for an archive opened read-only."""
        if isinstance(self._reader, Index):
            return self._reader
        if isinstance(self._reader, ShardedIndex) and self._reader.writer is not None:
            return self._reader.writer
        raise IndexReadOnlyError(
            f"{self.index_dir} is open read-only: it cannot be written",
            hint="write with a process that opens the index writable (not `poshuk serve --read-only`)",
        )

    @property
    def is_sharded(self) -> bool:
        """Whether this searcher reads a sharded archive (no single index to refresh, snapshot or write)."""
        return not isinstance(self._reader, Index)

    @property
    def lexical_in_memory(self) -> bool:
        """Whether BM25 is answered from postings in memory now (``load_lexical``); False while they
        are built and when the setting is off (FTS5 answers then, alike), and for an archive whose
        shards are not all in this process."""
        if isinstance(self._reader, Index):
            return self._reader.lexical.loaded
        return isinstance(self._reader, ShardedIndex) and self._reader.lexical_loaded

    def load_lexical(self) -> bool:
        """Build the BM25 postings in memory: of the index, or of each shard in this process (the
        service's upkeep calls it; a search never waits for it); whether any was built now."""
        if isinstance(self._reader, Index | ShardedIndex):
            return self._reader.load_lexical()
        return False

    @property
    def read_only(self) -> bool:
        """Whether writes are refused here: an index or archive opened read-only (also an archive served
        on Ray Serve with no Writer: ``--read-only``)."""
        if isinstance(self._reader, Index):
            return self._reader.read_only
        return not (isinstance(self._reader, ShardedIndex) and self._reader.writer is not None)

    @property
    def encoder(self) -> Encoder:
        return self._encoder

    @property
    def index_dir(self) -> Path:
        """The index folder this searcher reads (the parent of its version folder, or of its shards)."""
        return self._reader.index_dir

    @property
    def manifest(self) -> Manifest:
        return self._reader.manifest

    def stats(self) -> IndexStats:
        m = self._reader.manifest
        counts = self._reader.counts()  # no lock; recounted only after a change
        return IndexStats(documents=counts.documents, passages=counts.passages, model=m.model.name, version=m.version)

    def search(
        self,
        query: str,
        *,
        k: int = 10,
        mode: Mode = "hybrid",
        filters: Filters | None = None,
        collapse: bool = False,
        offset: int = 0,
        highlight: bool = True,
        dedupe: bool = False,
        semantic_highlights: bool | None = None,
        sort: Sort = "relevance",
        recency_half_life_days: float | None = None,
        now: datetime | None = None,
        facets: Sequence[str] = (),
    ) -> SearchResult:
        """The ``k`` best passages (or articles, with ``collapse``; or stories, with ``dedupe``) for
        ``query``, from ``offset``.

        ``sort`` ``newest``/``oldest`` orders the most relevant passages by their article's date;
        ``recency_half_life_days`` halves a relevance score per that many days of age, counted
        from ``now`` (default: the current time). ``poshuk.ordering`` says exactly how.
        ``facets`` (source, section, lang, tags, month) counts the articles of the candidate pool
        (``poshuk.facets`` says which and why).

        ``semantic_highlights`` (default: the searcher's setting, off) marks, for the top hits
        that match no query word, the sentence closest in meaning. It is opt-in because it is a
        model call over their sentences: ~50 ms of CPU against ~10 ms for the rest of a search
        (issue 14's measurements); storing sentence vectors at index time instead would double
        the encoding time of every `poshuk index`. The web page paints without it, then asks again
        with it.
        """
        started = time.perf_counter()
        text = clean_text(query).strip()
        self._validate(text, k, mode, offset)
        filters = None if filters is None else filters.checked()
        ordering = Ordering(sort=sort, recency_half_life_days=recency_half_life_days).checked()
        wanted_facets = checked_facets(facets)
        terms = analyse_query(text, self._analyzer)
        vector = None if mode == "lexical" else self._encoder.encode_queries([text])
        ranked = self._rank(vector, terms, mode, filters)
        # Dates (for an order) and articles (for facets) of every candidate, read once for both and the page.
        groups = None if ordering.is_relevance and not wanted_facets else self._reader.groups([r for r, _ in ranked])
        counted = {} if groups is None or not wanted_facets else self._facets(ranked, groups, wanted_facets)
        if groups is not None and not ordering.is_relevance:
            ranked = reorder(ranked, {row: g.published_ts for row, g in groups.items()}, ordering, now)
        chosen = self._page(ranked, k=k, offset=offset, collapse=collapse, dedupe=dedupe, groups=groups)
        pages = other_pages([(p.page, rows) for p, _, _, rows in chosen], self._reader.passages)
        hits = [
            self._hit(offset + n, passage, score, others, terms if highlight else None, more_pages)
            for n, ((passage, score, others, _), more_pages) in enumerate(zip(chosen, pages, strict=True), start=1)
        ]
        sentences = self.semantic_highlights if semantic_highlights is None else semantic_highlights
        if highlight and sentences and vector is not None:
            hits = self._add_sentence_highlights(vector[0], hits)
        took_ms = (time.perf_counter() - started) * 1000
        return SearchResult(
            query=text,
            took_ms=round(took_ms, 3),
            model=self._encoder.identity.name,
            hits=hits,
            mode=mode,
            offset=offset,
            sort=ordering.sort,
            facets=counted,
        )

    def _facets(
        self, ranked: list[tuple[int, float]], groups: dict[int, RowGroup], wanted: tuple[str, ...]
    ) -> dict[str, list[FacetBucket]]:
        """Facet counts over the candidates' articles, each read once (by its best row)."""
        first_rows: dict[str, int] = {}
        for row, _ in ranked:
            if row in groups:
                first_rows.setdefault(groups[row].doc_id, row)
        return count_facets(self._reader.facts(list(first_rows.values())).values(), wanted)

    def _validate(self, text: str, k: int, mode: str, offset: int) -> None:
        if not text:
            raise InvalidQueryError("query is empty")
        if not 1 <= k <= self.max_k:
            raise InvalidQueryError(f"k must be between 1 and {self.max_k}, got {k}")
        if mode not in MODES:
            raise InvalidQueryError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        if not 0 <= offset <= CANDIDATES - 1:
            raise InvalidQueryError(f"offset must be between 0 and {CANDIDATES - 1}, got {offset}")

    def _rank(
        self, vector: Vectors | None, terms: QueryTerms, mode: Mode, filters: Filters | None
    ) -> list[tuple[int, float]]:
        """(row id, score) best first: one retrieval call, then fusion for hybrid."""
        hybrid = mode == "hybrid"
        found = self._reader.retrieve(
            RetrievalQuery(
                terms=terms,
                vector=vector,
                filters=filters,
                limit=CANDIDATES,
                lexical=mode != "dense",
                articles=hybrid and self.fusion.article_weight > 0.0,
                evidence=hybrid,
            )
        )
        if not hybrid:
            return [(c.row, c.score) for c in (found.dense if mode == "dense" else found.passages)]
        return fuse(found, len(terms.units), self.fusion)

    def _page(
        self,
        ranked: list[tuple[int, float]],
        *,
        k: int,
        offset: int,
        collapse: bool,
        dedupe: bool = False,
        exclude: str | None = None,
        groups: dict[int, RowGroup] | None = None,
    ) -> list[tuple[StoredPassage, float, int, list[int]]]:
        """(passage, score, other matching passages of the article, or of the cluster with
        ``dedupe``; the rows of those in the same article, best first) for one page. Only the
        page's passages are read whole: reading all 200 candidates' text was a fifth of a hybrid
        search (issue 14's profile)."""
        if not collapse and not dedupe and exclude is None:
            wanted = offset + k
            present: list[tuple[StoredPassage, float]] = []
            start = 0
            while len(present) < wanted and start < len(ranked):  # again only if rows were deleted meanwhile
                window = ranked[start : start + wanted - len(present)]
                stored = self._reader.passages([row for row, _ in window])
                present += [(stored[row], score) for row, score in window if row in stored]
                start += len(window)
            return [(passage, score, 0, []) for passage, score in present[offset : offset + k]]
        if groups is None:
            groups = self._reader.groups([row for row, _ in ranked])
        best: dict[str, tuple[int, float]] = {}
        counts: dict[str, int] = {}
        same_article: dict[str, list[int]] = {}  # the best row's article's other rows, for their pages
        for row, score in ranked:
            if row not in groups or groups[row][0] == exclude:
                continue
            doc_id, cluster, _ = groups[row]
            key = (cluster or doc_id) if dedupe else doc_id
            counts[key] = counts.get(key, 0) + 1
            if key in best:
                if groups[best[key][0]][0] == doc_id:
                    same_article[key].append(row)
            else:
                best[key] = (row, score)
                same_article[key] = []
        page = list(best.items())[offset : offset + k]
        stored = self._reader.passages([row for _, (row, _) in page])
        return [(stored[row], score, counts[key] - 1, same_article[key]) for key, (row, score) in page if row in stored]

    def _hit(
        self,
        rank: int,
        p: StoredPassage,
        score: float,
        others: int,
        terms: QueryTerms | None,
        more_pages: list[int] | None = None,
    ) -> Hit:
        spans = [] if terms is None else term_spans(p.text, terms, self._analyzer)
        return Hit(
            rank=rank,
            score=round(score, 6),
            passage_id=p.passage_id,
            doc_id=p.doc_id,
            title=p.title,
            text=p.text,
            url=p.url,
            source=p.source,
            published_at=p.published_at,
            lang=p.lang,
            highlights=spans,
            highlight_kind="terms" if spans else None,
            other_matches=others,
            cluster=p.cluster,
            page=p.page,
            other_pages=more_pages or [],
        )

    def _add_sentence_highlights(self, query_vector: Vectors, hits: list[Hit]) -> list[Hit]:
        """Mark the sentence closest in meaning for top hits with no matching words.

        One encoder call over the sentences of at most ``SENTENCE_HIGHLIGHT_HITS`` hits keeps
        this cheap; a one-sentence passage is marked whole without encoding anything.
        """
        out = list(hits)
        pending: list[tuple[int, str]] = []
        for n, hit in enumerate(hits):
            if hit.highlights:
                continue
            sentences = split_sentences(hit.text)
            if len(sentences) == 1:
                span = sentence_span(hit.text, sentences[0])
                if span is not None:
                    out[n] = msgspec.structs.replace(hit, highlights=[span], highlight_kind="sentence")
            elif sentences and len({i for i, _ in pending}) < SENTENCE_HIGHLIGHT_HITS:
                pending.extend((n, s) for s in sentences)
        if not pending:
            return out
        vectors = self._encoder.encode_passages([s for _, s in pending])
        similarity = vectors @ query_vector
        best: dict[int, tuple[float, str]] = {}
        for (n, sentence), value in zip(pending, similarity.tolist(), strict=True):
            if n not in best or value > best[n][0]:
                best[n] = (value, sentence)
        for n, (_, sentence) in best.items():
            span = sentence_span(out[n].text, sentence)
            if span is not None:
                out[n] = msgspec.structs.replace(out[n], highlights=[span], highlight_kind="sentence")
        return out

    def similar(self, doc_id: str, *, k: int = 10, filters: Filters | None = None) -> SearchResult:
        """Articles closest in meaning to ``doc_id`` ("more like this"), one hit per article.

        The article is represented by the mean of its passage vectors; it never lists itself.
        """
        started = time.perf_counter()
        if not 1 <= k <= self.max_k:
            raise InvalidQueryError(f"k must be between 1 and {self.max_k}, got {k}")
        vectors = self._reader.document_vectors(doc_id)
        centre = vectors.mean(axis=0, keepdims=True)
        centre /= max(float(np.linalg.norm(centre)), 1e-12)
        query = RetrievalQuery(
            terms=QueryTerms(units=()),
            vector=centre.astype(np.float32),
            filters=None if filters is None else filters.checked(),
            limit=CANDIDATES,
            evidence=False,
        )
        ranked = [(c.row, c.score) for c in self._reader.retrieve(query).dense]
        chosen = self._page(ranked, k=k, offset=0, collapse=True, exclude=doc_id)
        hits = [self._hit(n, passage, score, more, None) for n, (passage, score, more, _) in enumerate(chosen, start=1)]
        took_ms = (time.perf_counter() - started) * 1000
        return SearchResult(
            query=f"similar:{doc_id}",
            took_ms=round(took_ms, 3),
            model=self._encoder.identity.name,
            hits=hits,
            mode="dense",
        )

    def document(self, doc_id: str) -> StoredDocument:
        """The stored article and its passages; ``NotFoundError`` if absent."""
        return self._reader.document(doc_id)

    def close(self) -> None:
        self._reader.close()
