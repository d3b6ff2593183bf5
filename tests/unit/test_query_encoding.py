"""Query cache and micro-batching around an encoder (fake encoder, real threads)."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np
import pytest

from poshuk.encoder import HashEncoder, Vectors
from poshuk.query_encoding import BatchingEncoder, CachingEncoder, for_serving


class CountingEncoder(HashEncoder):
    """A HashEncoder that records each ``encode_queries`` call; ``gate`` holds calls until set."""

    def __init__(self, gate: threading.Event | None = None) -> None:
        super().__init__(dimension=16)
        self.calls: list[list[str]] = []
        self.gate = gate
        self.entered = threading.Event()

    def encode_queries(self, texts: Sequence[str]) -> Vectors:
        self.calls.append(list(texts))
        self.entered.set()
        if self.gate is not None:
            assert self.gate.wait(10)
        return super().encode_queries(texts)


def test_cache_returns_the_same_vectors_without_calling_the_model_again() -> None:
    inner = CountingEncoder()
    cached = CachingEncoder(inner, size=2)
    first = cached.encode_queries(["Шойгу", "Kirby"])
    again = cached.encode_queries(["Kirby", "Шойгу"])
    assert np.array_equal(first, again[::-1])
    assert np.array_equal(first, inner.encode_queries(["Шойгу", "Kirby"]))
    assert inner.calls[:1] == [["Шойгу", "Kirby"]] and len(inner.calls) == 2  # the second was ours, above
    assert (cached.hits, cached.misses) == (2, 2)


def test_cache_evicts_the_least_recently_used_query() -> None:
    inner = CountingEncoder()
    cached = CachingEncoder(inner, size=2)
    cached.encode_queries(["a"])
    cached.encode_queries(["b"])
    cached.encode_queries(["a"])  # a is now the most recent
    cached.encode_queries(["c"])  # evicts b
    cached.encode_queries(["a"])
    cached.encode_queries(["b"])
    assert inner.calls == [["a"], ["b"], ["c"], ["b"]]


def test_cached_vectors_cannot_be_changed_through_a_result() -> None:
    cached = CachingEncoder(CountingEncoder(), size=4)
    cached.encode_queries(["a"])[0] += 1.0
    assert np.array_equal(cached.encode_queries(["a"]), HashEncoder(dimension=16).encode_queries(["a"]))


def test_queries_waiting_behind_a_running_call_go_together_in_the_next_one() -> None:
    gate = threading.Event()
    inner = CountingEncoder(gate)
    batching = BatchingEncoder(inner)
    results: dict[str, Vectors] = {}

    def search(text: str) -> None:
        results[text] = batching.encode_queries([text])

    first = threading.Thread(target=search, args=("перший",))
    first.start()
    assert inner.entered.wait(10)  # the first call is running and holds the model
    waiting = [threading.Thread(target=search, args=(f"запит {n}",)) for n in range(5)]
    for t in waiting:
        t.start()
    while sum(len(r.texts) for r in batching._queue) < 5:  # all five queued behind the running call
        threading.Event().wait(0.01)
    gate.set()
    for t in [first, *waiting]:
        t.join(10)
    assert inner.calls[0] == ["перший"]
    assert sorted(inner.calls[1]) == sorted(f"запит {n}" for n in range(5))
    assert len(inner.calls) == 2 and batching.calls == 2
    expected = HashEncoder(dimension=16)
    for text, vector in results.items():
        assert np.array_equal(vector, expected.encode_queries([text]))


def test_a_failing_call_raises_in_every_waiting_caller_and_the_next_call_works() -> None:
    class Failing(HashEncoder):
        fail = True

        def encode_queries(self, texts: Sequence[str]) -> Vectors:
            if self.fail:
                raise RuntimeError("model crashed")
            return super().encode_queries(texts)

    inner = Failing(dimension=16)
    batching = BatchingEncoder(inner)
    with pytest.raises(RuntimeError, match="model crashed"):
        batching.encode_queries(["a"])
    inner.fail = False
    assert batching.encode_queries(["a"]).shape == (1, 16)


def test_for_serving_stacks_cache_over_batching_and_passes_passages_through() -> None:
    inner = CountingEncoder()
    served = for_serving(inner, cache_size=8, batching=True)
    assert isinstance(served, CachingEncoder) and isinstance(served.inner, BatchingEncoder)
    assert served.identity == inner.identity
    assert np.array_equal(served.encode_passages(["текст"]), inner.encode_passages(["текст"]))
    assert for_serving(inner, cache_size=0, batching=False) is inner
