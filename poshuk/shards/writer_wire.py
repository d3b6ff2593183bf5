"""The archive's one writer in another process (``poshuk serve --ray``'s ``Writer`` deployment).

``answer_write(open_writer, payload)`` runs where the ``ShardedWriter`` is (over ``RemoteShard``s:
each shard writes its own files in its own process); ``RemoteWriter`` is the ingress's side, an
``IndexWrites`` like one index or an in-process writer, so the write routes are the same code.
Questions and answers are plain msgspec JSON, as ``poshuk.shards.wire``'s (an upsert travels as
its ``WireUpsert``: vectors and MinHash as raw bytes, never pickled).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import msgspec

from poshuk.analysis import Analyzer
from poshuk.errors import ShardUnavailableError
from poshuk.index import Manifest, Upsert, WriteOutcome
from poshuk.shards.layout import ShardSet
from poshuk.shards.wire import AskWrite, RemoteShard, WireUpsert, ask, reply
from poshuk.shards.writer import ShardedWriter

logger = logging.getLogger("poshuk.shards")


class AskOpen(msgspec.Struct, frozen=True, tag="open"):
    """Open the writer now (reaching every shard, finishing any write a crash cut), not at the first write."""


_ASK = msgspec.json.Decoder(AskWrite | AskOpen)


def answer_write(open_writer: Callable[[], ShardedWriter], payload: bytes) -> bytes:
    """The encoded ``Reply`` of the writer ``open_writer`` gives (opened once) to one encoded question."""

    def compute() -> WriteOutcome | None:
        match _ASK.decode(payload):
            case AskWrite() as asked:
                writer = open_writer()
                dimension = writer.manifest.model.dimension
                return writer.write([u.upsert(dimension) for u in asked.upserts], asked.deletes)
            case AskOpen():
                open_writer()
                return None
        raise AssertionError("unhandled question")  # pragma: no cover - the union is matched whole

    return reply(compute)


class RemoteWriter:
    """An archive's ``ShardedWriter`` reached through ``call``, beside the shards the router reads."""

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

    def open(self) -> None:
        """Have the writer open now (the service's loading): a write a crash cut is finished at start."""
        ask(self._call, AskOpen(), type(None))

    def write(self, upserts: list[Upsert], deletes: list[str]) -> WriteOutcome:
        """One durable write, which the writer has each owner shard make in its own process; then the
        owners' counts here are read again. A shard that cannot answer that now is read at the
        service's next upkeep: the write is made either way, so it is answered as done."""
        question = AskWrite(upserts=[WireUpsert.of(u) for u in upserts], deletes=list(deletes))
        outcome = ask(self._call, question, WriteOutcome)
        written = [u.article.id for u in upserts] + list(deletes)
        for number in sorted({self.shard_set.shard_of(doc_id) for doc_id in written}):
            try:
                self.shards[number].refresh()
            except ShardUnavailableError as exc:
                logger.warning(
                    "write %d is made; shard %d's counts are read later: %s", outcome.seq, number, exc.message
                )
        return outcome

    def refresh(self) -> int:
        """Every shard takes in what other processes committed (``poshuk index`` on the same files);
        a shard that does not answer now is asked again at the next upkeep."""
        applied = 0
        for shard in self.shards:
            try:
                applied += shard.refresh()
            except ShardUnavailableError:
                continue
        return applied

    def snapshot(self) -> None:
        """Nothing here: each shard writes its FAISS snapshot when its replica stops."""

    def close(self) -> None:
        """Nothing to close here: the writer's own process owns the journal."""
