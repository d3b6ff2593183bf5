"""A ``Shard`` in another process: its questions and answers as plain msgspec JSON.

``answer(shard, payload)`` runs where the shard is open (a Ray Serve deployment); ``RemoteShard``
is the router's side, over any ``call`` that carries bytes there and back. Only plain values
travel -- structs, lists, numbers, strings, vectors as raw float32 bytes -- never a pickle of
our own objects, so nothing that can run code is ever loaded (``tests/unit/test_properties.py``).
JSON, not msgpack: it keeps a date's UTC offset as written (msgpack's timestamps turn every
date into UTC, and the answer's ``published_at`` would change), and msgspec writes a float as
the shortest text that reads back to the same bits.

A shard's failure travels as its error class's name and message: a missing article is the
same ``NotFoundError`` (the same 404 body) as on one node. A failure of ``call`` itself (the
shard is gone or slow) is the transport's to report: ``ShardUnavailableError``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import msgspec
import numpy as np
from numpy.typing import NDArray

from poshuk import errors
from poshuk.candidates import ArticleFacts, Candidate, Candidates, RowGroup
from poshuk.documents import Article, Passage
from poshuk.encoder import ModelIdentity
from poshuk.filters import Filters
from poshuk.index import Counts, Manifest, RetrievalQuery, StoredDocument, StoredPassage, Upsert, WriteOutcome
from poshuk.index.postings import Weights
from poshuk.query import QueryTerms
from poshuk.shards import bm25
from poshuk.shards.shard import ClusterFacts, Evidence, FirstRound, WritableShard

T = TypeVar("T")


class _Matrix(msgspec.Struct, frozen=True):
    """float32 vectors as their bytes."""

    data: bytes
    rows: int
    dimension: int

    @classmethod
    def of(cls, vectors: NDArray[np.float32]) -> _Matrix:
        rows, dimension = vectors.shape
        return cls(np.ascontiguousarray(vectors, dtype=np.float32).tobytes(), rows, dimension)

    def array(self) -> NDArray[np.float32]:
        return np.frombuffer(self.data, dtype=np.float32).reshape(self.rows, self.dimension).copy()


class WireUpsert(msgspec.Struct, frozen=True, kw_only=True):
    """One upsert as plain values: vectors and MinHash as raw bytes; rows and cluster once the
    archive's writer has decided them."""

    article: Article
    passages: list[Passage]
    vectors: bytes  # float32, one row per passage
    terms: list[str] | None = None
    signature: bytes | None = None  # uint64 MinHash
    rows: list[int] | None = None
    cluster: str | None = None

    @classmethod
    def of(cls, upsert: Upsert) -> WireUpsert:
        return cls(
            article=upsert.article,
            passages=list(upsert.passages),
            vectors=np.ascontiguousarray(upsert.vectors, dtype=np.float32).tobytes(),
            terms=None if upsert.terms is None else list(upsert.terms),
            signature=None if upsert.signature is None else np.asarray(upsert.signature, dtype=np.uint64).tobytes(),
            rows=None if upsert.rows is None else list(upsert.rows),
            cluster=upsert.cluster,
        )

    def upsert(self, dimension: int) -> Upsert:
        vectors = np.frombuffer(self.vectors, dtype=np.float32).reshape(len(self.passages), dimension).copy()
        signature = None if self.signature is None else np.frombuffer(self.signature, dtype=np.uint64).copy()
        return Upsert(
            self.article,
            self.passages,
            vectors,
            terms=self.terms,
            signature=signature,
            rows=self.rows,
            cluster=self.cluster,
        )


class AskManifest(msgspec.Struct, frozen=True, tag="manifest"):
    pass


class AskCheckModel(msgspec.Struct, frozen=True, tag="check-model"):
    identity: ModelIdentity
    allow_backend_mismatch: bool


class AskCounts(msgspec.Struct, frozen=True, tag="counts"):
    pass


class AskRetrieve(msgspec.Struct, frozen=True, kw_only=True, tag="retrieve"):
    terms: QueryTerms
    vector: _Matrix | None
    filters: Filters | None
    limit: int
    lexical: bool
    articles: bool
    evidence: bool


class AskFirstRound(msgspec.Struct, frozen=True, kw_only=True, tag="first-round"):
    query: AskRetrieve
    first: int


class AskStats(msgspec.Struct, frozen=True, tag="stats"):
    table: str
    phrases: list[tuple[str, bool]]  # (text, prefix)


class AskEvidence(msgspec.Struct, frozen=True, tag="evidence"):
    table: str
    rows: list[int]


class AskPassages(msgspec.Struct, frozen=True, tag="passages"):
    rows: list[int]


class AskGroups(msgspec.Struct, frozen=True, tag="groups"):
    rows: list[int]


class AskFacts(msgspec.Struct, frozen=True, tag="facts"):
    rows: list[int]


class AskDocument(msgspec.Struct, frozen=True, tag="document"):
    doc_id: str


class AskDocumentVectors(msgspec.Struct, frozen=True, tag="document-vectors"):
    doc_id: str


class AskRefresh(msgspec.Struct, frozen=True, tag="refresh"):
    pass


class AskLastRow(msgspec.Struct, frozen=True, tag="last-row"):
    pass


class AskBandHits(msgspec.Struct, frozen=True, tag="band-hits"):
    hashes: list[int]


class AskClusterFacts(msgspec.Struct, frozen=True, tag="cluster-facts"):
    doc_id: str


class AskNearest(msgspec.Struct, frozen=True, tag="nearest"):
    vector: _Matrix
    k: int


class AskDocsOfRows(msgspec.Struct, frozen=True, tag="docs-of-rows"):
    rows: list[int]


class AskWrite(msgspec.Struct, frozen=True, kw_only=True, tag="write"):
    upserts: list[WireUpsert]
    deletes: list[str]


class AskSnapshot(msgspec.Struct, frozen=True, tag="snapshot"):
    pass


class Refreshed(msgspec.Struct, frozen=True, kw_only=True):
    """A shard after taking in the writer's changes: how many, and its counts now."""

    applied: int
    counts: Counts


Ask = (
    AskManifest
    | AskCheckModel
    | AskCounts
    | AskRetrieve
    | AskFirstRound
    | AskStats
    | AskEvidence
    | AskPassages
    | AskGroups
    | AskFacts
    | AskDocument
    | AskDocumentVectors
    | AskRefresh
    | AskLastRow
    | AskBandHits
    | AskClusterFacts
    | AskNearest
    | AskDocsOfRows
    | AskWrite
    | AskSnapshot
)


class Failure(msgspec.Struct, frozen=True, kw_only=True):
    """A shard's error: its class in ``poshuk.errors`` (or ``internal``), message and hint."""

    kind: str
    message: str
    hint: str | None = None


class Reply(msgspec.Struct, frozen=True, kw_only=True):
    """One answer: the value (decoded by the asker, who knows its type) or the failure."""

    value: msgspec.Raw = msgspec.Raw(b"null")
    failure: Failure | None = None


_ASK = msgspec.json.Decoder(Ask)
_REPLY = msgspec.json.Decoder(Reply)
_PASSED_ON: dict[str, type[errors.PoshukError]] = {  # shard errors the router raises again as they were
    cls.__name__: cls
    for cls in (
        errors.PoshukError,
        errors.ConfigError,
        errors.ModelError,
        errors.ModelMismatchError,
        errors.InputError,
        errors.InvalidQueryError,
        errors.NotFoundError,
        errors.IndexStoreError,
        errors.IndexNotFoundError,
        errors.IndexCorruptError,
        errors.IndexBusyError,
        errors.IndexReadOnlyError,
        errors.IndexRetiredError,
        errors.ShardUnavailableError,  # the writer could not reach a shard: 503, as the router's own
    )
}


def _value(shard: WritableShard, ask: Ask) -> Any:
    """What ``shard`` answers to ``ask``, as a value msgspec can encode."""
    match ask:
        case AskManifest():
            return shard.manifest
        case AskCheckModel(identity, allow):
            shard.check_model(identity, allow_backend_mismatch=allow)
            return None
        case AskCounts():
            return shard.counts()
        case AskRetrieve():
            return shard.retrieve(_query(ask))
        case AskFirstRound():
            return shard.first_round(_query(ask.query), ask.first)
        case AskStats(table, phrases):
            return shard.table_stats(table, [bm25.Phrase(text, prefix) for text, prefix in phrases])
        case AskEvidence(table, rows):
            return shard.evidence(table, rows)
        case AskPassages(rows):
            return shard.passages(rows)
        case AskGroups(rows):
            return shard.groups(rows)
        case AskFacts(rows):
            return shard.facts(rows)
        case AskDocument(doc_id):
            return shard.document(doc_id)
        case AskDocumentVectors(doc_id):
            return _Matrix.of(shard.document_vectors(doc_id))
        case AskRefresh():
            applied = shard.refresh()
            return Refreshed(applied=applied, counts=shard.counts())
        case AskLastRow():
            return shard.last_row()
        case AskBandHits(hashes):
            return shard.band_hits(hashes)
        case AskClusterFacts(doc_id):
            return shard.cluster_facts(doc_id)
        case AskNearest(vector, k):
            return shard.nearest(vector.array()[0], k)
        case AskDocsOfRows(rows):
            return shard.docs_of_rows(rows)
        case AskWrite() as asked:
            dimension = shard.manifest.model.dimension
            return shard.write([u.upsert(dimension) for u in asked.upserts], asked.deletes)
        case AskSnapshot():
            shard.snapshot()
            return None
    raise AssertionError(f"unhandled question {ask!r}")  # pragma: no cover - the union is matched whole


def _query(ask: AskRetrieve) -> RetrievalQuery:
    return RetrievalQuery(
        terms=ask.terms,
        vector=None if ask.vector is None else ask.vector.array(),
        filters=ask.filters,
        limit=ask.limit,
        lexical=ask.lexical,
        articles=ask.articles,
        evidence=ask.evidence,
    )


def _asked(query: RetrievalQuery) -> AskRetrieve:
    return AskRetrieve(
        terms=query.terms,
        vector=None if query.vector is None else _Matrix.of(query.vector),
        filters=query.filters,
        limit=query.limit,
        lexical=query.lexical,
        articles=query.articles,
        evidence=query.evidence,
    )


def answer(shard: WritableShard, payload: bytes) -> bytes:
    """The encoded ``Reply`` of ``shard`` to one encoded question."""
    return reply(lambda: _value(shard, _ASK.decode(payload)))


def reply(compute: Callable[[], Any]) -> bytes:
    """The encoded ``Reply`` carrying what ``compute`` returns, or the error it raised."""
    try:
        value = compute()
    except errors.PoshukError as exc:
        kind = type(exc).__name__ if type(exc).__name__ in _PASSED_ON else "PoshukError"
        return msgspec.json.encode(Reply(failure=Failure(kind=kind, message=exc.message, hint=exc.hint)))
    except Exception as exc:  # a bug or a broken file: the router answers 500, the shard logs nothing twice
        return msgspec.json.encode(Reply(failure=Failure(kind="internal", message=f"{type(exc).__name__}: {exc}")))
    return msgspec.json.encode(Reply(value=msgspec.Raw(msgspec.json.encode(value))))


class ShardError(RuntimeError):
    """A shard failed with an error that is not one of Poshuk's (a bug there): HTTP 500."""


def ask(call: Callable[[bytes], bytes], question: msgspec.Struct, into: type[T]) -> T:
    """``question`` through ``call``; its answer decoded as ``into``, or the error it carried raised
    again (a Poshuk error as itself; any other as ``ShardError``)."""
    answered = _REPLY.decode(call(msgspec.json.encode(question)))
    if answered.failure is not None:
        failure = answered.failure
        known = _PASSED_ON.get(failure.kind)
        if known is None:
            raise ShardError(failure.message)
        raise known(failure.message, hint=failure.hint)
    return msgspec.json.decode(answered.value, type=into)


class RemoteShard:
    """A ``Shard`` reached through ``call`` (bytes to its ``answer`` and back).

    Its manifest is read once, when it connects, and its counts then and at each ``refresh`` (after
    a write, and at the service's upkeep): they are free to read (``/readyz`` and ``/metrics`` ask
    from the event loop, where no blocking call may run).
    """

    def __init__(self, call: Callable[[bytes], bytes]) -> None:
        self._call = call
        self._manifest = self._ask(AskManifest(), Manifest)
        self._counts = self._ask(AskCounts(), Counts)

    def _ask(self, question: Ask, into: type[T]) -> T:
        return ask(self._call, question, into)

    @property
    def manifest(self) -> Manifest:
        return self._manifest

    def check_model(self, identity: ModelIdentity, *, allow_backend_mismatch: bool = False) -> None:
        self._ask(AskCheckModel(identity, allow_backend_mismatch), type(None))

    def counts(self) -> Counts:
        return self._counts

    def retrieve(self, query: RetrievalQuery) -> Candidates:
        return self._ask(_asked(query), Candidates)

    def first_round(self, query: RetrievalQuery, first: int) -> FirstRound:
        return self._ask(AskFirstRound(query=_asked(query), first=first), FirstRound)

    def table_stats(self, table: str, phrases: Sequence[bm25.Phrase]) -> bm25.TableStats:
        return self._ask(AskStats(table, [(p.text, p.prefix) for p in phrases]), bm25.TableStats)

    def evidence(self, table: str, rows: Sequence[int]) -> Evidence:
        return self._ask(AskEvidence(table, list(rows)), Evidence)

    def passages(self, rows: list[int]) -> dict[int, StoredPassage]:
        return self._ask(AskPassages(rows), dict[int, StoredPassage])

    def groups(self, rows: list[int]) -> dict[int, RowGroup]:
        return self._ask(AskGroups(rows), dict[int, RowGroup])

    def facts(self, rows: list[int]) -> dict[str, ArticleFacts]:
        return self._ask(AskFacts(rows), dict[str, ArticleFacts])

    def document(self, doc_id: str) -> StoredDocument:
        return self._ask(AskDocument(doc_id), StoredDocument)

    def document_vectors(self, doc_id: str) -> NDArray[np.float32]:
        return self._ask(AskDocumentVectors(doc_id), _Matrix).array()

    def refresh(self) -> int:
        """Have the shard take in the changes another process committed; how many."""
        refreshed = self._ask(AskRefresh(), Refreshed)
        self._counts = refreshed.counts
        return refreshed.applied

    def load_lexical(self) -> bool:
        """False: a shard in another process builds its own postings (``ShardServer`` does)."""
        return False

    def weighted_top(self, query: RetrievalQuery, table: str, stats: Weights) -> list[Candidate] | None:
        """None: the router scores the rows of a shard elsewhere again itself (``first_round`` brings
        them in the same trip as the rest)."""
        return None

    def last_row(self) -> int:
        return self._ask(AskLastRow(), int)

    def band_hits(self, hashes: list[int]) -> list[tuple[str, int, int]]:
        return self._ask(AskBandHits(hashes), list[tuple[str, int, int]])

    def cluster_facts(self, doc_id: str) -> ClusterFacts | None:
        return self._ask(AskClusterFacts(doc_id), ClusterFacts | None)  # type: ignore[arg-type]

    def nearest(self, vector: NDArray[np.float32], k: int) -> list[tuple[int, float]]:
        return self._ask(AskNearest(_Matrix.of(vector[None, :]), k), list[tuple[int, float]])

    def docs_of_rows(self, rows: list[int]) -> list[str]:
        return self._ask(AskDocsOfRows(rows), list[str])

    def write(self, upserts: list[Upsert], deletes: list[str]) -> WriteOutcome:
        """The shard writes its part in its own process (its counts here are read at the next ``refresh``)."""
        return self._ask(AskWrite(upserts=[WireUpsert.of(u) for u in upserts], deletes=list(deletes)), WriteOutcome)

    def snapshot(self) -> None:
        self._ask(AskSnapshot(), type(None))

    def close(self) -> None:
        """Nothing to close here: the shard's own process owns its files."""
