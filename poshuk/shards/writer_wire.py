"""The archive's one writer in another process (``poshuk serve --ray``'s ``Writer`` deployment).

``answer_write(writer, payload)`` runs where the ``ShardedWriter`` is open; ``RemoteWriter`` is the
ingress's side, an ``IndexWrites`` like one index or an in-process writer, so the write routes are
the same code. Questions and answers are plain msgspec JSON, as ``poshuk.shards.wire``'s: vectors
and MinHash signatures travel as raw bytes, never pickled. After the writer has made a write
durable, ``RemoteWriter`` has each owner shard take it in before it answers, so a write is
searchable when its request returns, as on one node.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import msgspec
import numpy as np

from poshuk.analysis import Analyzer
from poshuk.documents import Article, Passage
from poshuk.errors import ShardUnavailableError
from poshuk.index import Manifest, Upsert, WriteOutcome
from poshuk.shards.layout import ShardSet
from poshuk.shards.wire import RemoteShard, ask, reply
from poshuk.shards.writer import ShardedWriter

logger = logging.getLogger("poshuk.shards")


class _WireUpsert(msgspec.Struct, frozen=True, kw_only=True):
    """One prepared upsert (``poshuk.ingest.prepare``'s), as plain values."""

    article: Article
    passages: list[Passage]
    vectors: bytes  # float32, one row per passage
    terms: list[str] | None = None
    signature: bytes | None = None  # uint64 MinHash

    @classmethod
    def of(cls, upsert: Upsert) -> _WireUpsert:
        return cls(
            article=upsert.article,
            passages=list(upsert.passages),
            vectors=np.ascontiguousarray(upsert.vectors, dtype=np.float32).tobytes(),
            terms=None if upsert.terms is None else list(upsert.terms),
            signature=None if upsert.signature is None else np.asarray(upsert.signature, dtype=np.uint64).tobytes(),
        )

    def upsert(self, dimension: int) -> Upsert:
        vectors = np.frombuffer(self.vectors, dtype=np.float32).reshape(len(self.passages), dimension).copy()
        signature = None if self.signature is None else np.frombuffer(self.signature, dtype=np.uint64).copy()
        return Upsert(self.article, self.passages, vectors, terms=self.terms, signature=signature)


class AskWrite(msgspec.Struct, frozen=True, kw_only=True, tag="write"):
    upserts: list[_WireUpsert]
    deletes: list[str]


_ASK = msgspec.json.Decoder(AskWrite)


def answer_write(writer: ShardedWriter, payload: bytes) -> bytes:
    """The encoded ``Reply`` of ``writer`` to one encoded write."""

    def compute() -> WriteOutcome:
        asked = _ASK.decode(payload)
        dimension = writer.manifest.model.dimension
        return writer.write([u.upsert(dimension) for u in asked.upserts], asked.deletes)

    return reply(compute)


class RemoteWriter:
    """An archive's ``ShardedWriter`` reached through ``call``, with the shards that serve its writes."""

    def __init__(self, call: Callable[[bytes], bytes], shard_set: ShardSet, shards: Sequence[RemoteShard]) -> None:
        self._call = call
        self.shard_set = shard_set
        self.shards = list(shards)
        self._analyzer = Analyzer(self.manifest.lexical)

    @property
    def manifest(self) -> Manifest:
        return self.shards[0].manifest

    @property
    def analyzer(self) -> Analyzer:
        return self._analyzer

    def write(self, upserts: list[Upsert], deletes: list[str]) -> WriteOutcome:
        """One durable write by the writer; then its owner shards take it in. A shard that cannot
        (it is restarting) catches up at the service's next upkeep: the write is durable either way,
        so it is answered as done."""
        question = AskWrite(upserts=[_WireUpsert.of(u) for u in upserts], deletes=list(deletes))
        outcome = ask(self._call, question, WriteOutcome)
        written = [u.article.id for u in upserts] + list(deletes)
        owners = sorted({self.shard_set.shard_of(doc_id) for doc_id in written})
        for number in owners:
            try:
                self.shards[number].refresh()
            except ShardUnavailableError as exc:
                logger.warning("write %d is durable; shard %d takes it in later: %s", outcome.seq, number, exc.message)
        return outcome

    def refresh(self) -> int:
        """Every shard takes in what was written since (also by other processes: ``poshuk index``);
        a shard that does not answer now is asked again at the next upkeep."""
        applied = 0
        for shard in self.shards:
            try:
                applied += shard.refresh()
            except ShardUnavailableError:
                continue
        return applied

    def snapshot(self) -> None:
        """Nothing here: the writer writes its shards' FAISS snapshots when its replica stops."""

    def close(self) -> None:
        """Nothing to close here: the writer's own process owns the files."""
