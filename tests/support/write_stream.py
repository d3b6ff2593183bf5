"""A stream of PUTs and batches of four (over several shards) to a server a test kills mid-way, and the
check afterwards that every acknowledged write is there whole and searchable (the sharded archive's
kill -9 tests: its server in one process, and its Writer on Ray Serve)."""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field

import httpx


@dataclass
class WriteLog:
    sent: dict[str, dict[str, object]] = field(default_factory=dict)
    acked: dict[str, int | None] = field(default_factory=dict)  # id -> passages acknowledged (a PUT's)
    failures: list[str] = field(default_factory=list)


def _article(rng: random.Random, n: int) -> dict[str, object]:
    words = ["бюджет", "дороги", "школи", "тролейбуси", "Одеса", "порт", "зерно", "енергетика"]
    paragraphs = [
        f"Абзац {p} новини {n}: міська рада обговорила {rng.choice(words)} і ухвалила рішення {rng.randint(1, 9999)}."
        for p in range(rng.randint(1, 4))
    ]
    return {"title": f"Новина {n}", "text": "\n\n".join(paragraphs), "lang": "uk"}


def stream_writes(
    base_url: str, log: WriteLog, stop: threading.Event, rng: random.Random, headers: dict[str, str]
) -> None:
    """PUTs and batches of four (over several shards) one after another, until the server dies."""
    with httpx.Client(base_url=base_url, timeout=30.0, headers=headers) as client:
        while not stop.is_set():
            n = len(log.sent)
            batch = rng.random() < 0.4
            ids = [f"w-{n + i:05d}" for i in range(4 if batch else 1)]
            bodies = {doc_id: _article(rng, n + i) for i, doc_id in enumerate(ids)}
            log.sent.update(bodies)
            try:
                if batch:
                    response = client.post("/v1/documents", json=[{"id": d, **b} for d, b in bodies.items()])
                else:
                    response = client.put(f"/v1/documents/{ids[0]}", json=bodies[ids[0]])
            except httpx.TransportError:
                return  # killed: never acknowledged
            if response.status_code not in (200, 201):
                log.failures.append(f"{ids}: {response.status_code} {response.text}")
                continue
            answer = response.json()
            for doc_id in answer["ids"]:
                log.acked[doc_id] = None if batch else answer["passages"]


def check_writes(base_url: str, log: WriteLog) -> int:
    """Every acknowledged write whole and searchable; unacknowledged ones absent or whole. Unacked present."""
    present = 0
    with httpx.Client(base_url=base_url, timeout=30.0) as client:
        for doc_id, body in log.sent.items():
            response = client.get(f"/v1/documents/{doc_id}")
            if doc_id in log.acked:
                assert response.status_code == 200, f"acknowledged write {doc_id} was lost"
            elif response.status_code == 404:
                continue
            else:
                present += 1
            stored = response.json()
            assert stored["title"] == body["title"]
            assert [line for line in stored["text"].splitlines() if line] == [
                line for line in str(body["text"]).splitlines() if line
            ]
            passages = stored["passages"]
            assert passages and [p["ordinal"] for p in passages] == list(range(len(passages)))
            if log.acked.get(doc_id) is not None:
                assert len(passages) == log.acked[doc_id]
        for doc_id in list(log.acked)[-5:]:
            found = client.get("/v1/search", params={"q": str(log.sent[doc_id]["text"]), "k": 3, "mode": "lexical"})
            assert doc_id in {h["doc_id"] for h in found.json()["hits"]}, f"{doc_id} is not searchable"
    return present
