"""The query side of an encoder, made cheap under load: an LRU cache and micro-batching.

Encoding the query is most of a search's cost on a CPU. Newsrooms repeat queries (the
same name searched by many people during a story), so ``CachingEncoder`` keeps recent
query vectors. Concurrent searches arrive together, and one model call over eight
queries costs far less than eight calls, so ``BatchingEncoder`` gathers the queries
that wait while a call runs into the next call. It needs no timer and no thread of its
own: the first waiting caller runs the batch for everyone queued behind it, so a lone
query never waits. Passages (indexing, highlights) pass straight through both.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence

import numpy as np

from poshuk.encoder import Encoder, ModelIdentity, Vectors


class CachingEncoder:
    """``encode_queries`` through an LRU cache of ``size`` query vectors (thread-safe)."""

    def __init__(self, inner: Encoder, size: int) -> None:
        self.inner = inner
        self.size = size
        self._cache: OrderedDict[str, Vectors] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    @property
    def identity(self) -> ModelIdentity:
        return self.inner.identity

    def encode_queries(self, texts: Sequence[str]) -> Vectors:
        out = np.zeros((len(texts), self.identity.dimension), dtype=np.float32)
        missing: list[int] = []
        with self._lock:
            for i, text in enumerate(texts):
                found = self._cache.get(text)
                if found is None:
                    missing.append(i)
                else:
                    self._cache.move_to_end(text)
                    out[i] = found
            self.hits += len(texts) - len(missing)
            self.misses += len(missing)
        if missing:
            fresh = self.inner.encode_queries([texts[i] for i in missing])
            out[missing] = fresh
            with self._lock:
                for n, i in enumerate(missing):
                    self._cache[texts[i]] = fresh[n].copy()
                    self._cache.move_to_end(texts[i])
                while len(self._cache) > self.size:
                    self._cache.popitem(last=False)
        return out

    def encode_passages(self, texts: Sequence[str]) -> Vectors:
        return self.inner.encode_passages(texts)

    def count_tokens(self, text: str) -> int:
        return self.inner.count_tokens(text)


class _Request:
    __slots__ = ("done", "error", "texts", "vectors")

    def __init__(self, texts: Sequence[str]) -> None:
        self.texts = list(texts)
        self.vectors: Vectors | None = None
        self.error: BaseException | None = None
        self.done = False


class BatchingEncoder:
    """``encode_queries`` from many threads, merged into one model call per wave.

    A caller that finds no call running runs one at once for everything queued (at most
    ``max_batch`` texts); callers arriving meanwhile wait and go in the next call.
    """

    def __init__(self, inner: Encoder, max_batch: int = 32) -> None:
        self.inner = inner
        self.max_batch = max_batch
        self._queue: list[_Request] = []
        self._running = False
        self._changed = threading.Condition()
        self.calls = 0  # model calls made (tests and metrics read it)

    @property
    def identity(self) -> ModelIdentity:
        return self.inner.identity

    def encode_queries(self, texts: Sequence[str]) -> Vectors:
        request = _Request(texts)
        if not request.texts:
            return np.zeros((0, self.identity.dimension), dtype=np.float32)
        with self._changed:
            self._queue.append(request)
        while True:
            with self._changed:
                while self._running and not request.done:
                    self._changed.wait()
                if request.done:
                    break
                self._running = True
                batch = self._take()
            self._run(batch)
        if request.error is not None:
            raise request.error
        assert request.vectors is not None
        return request.vectors

    def _take(self) -> list[_Request]:
        """Queued requests up to ``max_batch`` texts (always at least one); call under the lock."""
        batch: list[_Request] = []
        count = 0
        while self._queue and (not batch or count + len(self._queue[0].texts) <= self.max_batch):
            request = self._queue.pop(0)
            batch.append(request)
            count += len(request.texts)
        return batch

    def _run(self, batch: list[_Request]) -> None:
        vectors: Vectors | None = None
        error: BaseException | None = None
        try:
            vectors = self.inner.encode_queries([t for r in batch for t in r.texts])
        except BaseException as exc:  # handed to every caller in the batch, raised in each thread
            error = exc
        with self._changed:
            start = 0
            for request in batch:
                if vectors is not None:
                    request.vectors = vectors[start : start + len(request.texts)].copy()
                start += len(request.texts)
                request.error = error
                request.done = True
            self.calls += 1
            self._running = False
            self._changed.notify_all()

    def encode_passages(self, texts: Sequence[str]) -> Vectors:
        return self.inner.encode_passages(texts)

    def count_tokens(self, text: str) -> int:
        return self.inner.count_tokens(text)


def for_serving(encoder: Encoder, *, cache_size: int, batching: bool) -> Encoder:
    """``encoder`` behind the query cache (unless ``cache_size`` is 0) and micro-batching."""
    wrapped: Encoder = BatchingEncoder(encoder) if batching else encoder
    return CachingEncoder(wrapped, cache_size) if cache_size > 0 else wrapped
