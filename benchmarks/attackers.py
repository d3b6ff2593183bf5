"""The attackers of ``python -m benchmarks reliability --hostile``, each run in its own process.

Every attacker talks only to 127.0.0.1, stops at its deadline and writes one JSON summary
(what it sent, what came back) to the path it is given. The request builders are pure so
a unit test can check they sit exactly at, or just past, the service's bounds.
"""

from __future__ import annotations

import json
import random
import selectors
import socket
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

from benchmarks.reliability import POSHUK, _article, _env, _error_kind
from poshuk.filters import MAX_FILTER_VALUE_CHARS, MAX_FILTER_VALUES

FILTER_FIELDS = ("tags", "source", "section", "lang")


def _values(rng: random.Random, count: int, chars: int) -> list[str]:
    """``count`` distinct ASCII values of ``chars`` characters (ASCII: a byte each, so the body stays in bounds)."""
    return [
        f"{n:03d}" + "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(chars - 3)) for n in range(count)
    ]


def worst_filter_body(rng: random.Random, query: str) -> dict[str, Any]:
    """The costliest search body accepted: every list at ``MAX_FILTER_VALUES`` values of the longest length."""
    filters = {name: _values(rng, MAX_FILTER_VALUES, MAX_FILTER_VALUE_CHARS) for name in FILTER_FIELDS}
    return {"query": query, "k": 100, "mode": "hybrid", "filters": filters}


def over_limit_body(rng: random.Random, query: str) -> dict[str, Any]:
    """A body just past a bound (one value too many, or one character too long): must get 400 at once."""
    if rng.random() < 0.5:
        filters = {"tags": _values(rng, MAX_FILTER_VALUES + 1, 8)}
    else:
        filters = {"source": _values(rng, 1, MAX_FILTER_VALUE_CHARS + 1)}
    return {"query": query, "k": 10, "filters": filters}


def partial_head(port: int, n: int) -> bytes:
    """A request head that never ends: the request line and one header, no blank line."""
    return f"GET /v1/search?q=half-open-{n} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: half".encode()


def slow_body_head(port: int, key: str, doc_id: str, length: int) -> bytes:
    """A complete ``PUT`` head announcing ``length`` body bytes, which then come one at a time."""
    return (
        f"PUT /v1/documents/{doc_id} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {key}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
    ).encode()


def _write_summary(path: Path, summary: dict[str, Any]) -> None:
    path.write_text(json.dumps(summary, sort_keys=True), encoding="utf-8")


def _status_of(reply: bytes) -> str:
    """``"503"`` from ``b"HTTP/1.1 503 ..."``; ``"closed"`` when the server closed without a word."""
    if not reply:
        return "closed"
    parts = reply.split(b" ", 2)
    return parts[1].decode(errors="replace") if len(parts) > 1 else "garbled"


# --- filter bombs ---------------------------------------------------------------------------------


def filter_bomb_main(number: int, base_url: str, key: str, deadline: float, seed: int, summary_path: Path) -> None:
    """Worst accepted filter bodies back to back, one in ten over a bound (which must be refused with 400)."""
    from benchmarks.reliability import QUERIES

    rng = random.Random(seed * 1000 + number)
    statuses: Counter[str] = Counter()
    over_ms: list[float] = []
    worst_ms: list[float] = []
    headers = {"Authorization": f"Bearer {key}"}
    sent = 0
    with httpx.Client(base_url=base_url, timeout=60.0) as client:
        while time.time() < deadline:
            over = rng.random() < 0.1
            query = f"{rng.choice(QUERIES)} bomb-{number}-{sent}"  # a new text each time: the encoder always runs
            sent += 1
            body = (over_limit_body if over else worst_filter_body)(rng, query)
            kind = "over-limit" if over else "worst"
            started = time.perf_counter()
            try:
                response = client.post("/v1/search", json=body, headers=headers)
            except Exception as exc:
                statuses[f"{kind} {_error_kind(exc)}"] += 1
                time.sleep(0.1)
                continue
            (over_ms if over else worst_ms).append((time.perf_counter() - started) * 1000)
            statuses[f"{kind} {response.status_code}"] += 1
            if response.status_code == 429:
                time.sleep(float(response.headers.get("retry-after", "1")))
    _write_summary(
        summary_path,
        {"attacker": f"filter-bomb-{number}", "statuses": dict(statuses), "worst_ms": worst_ms, "over_ms": over_ms},
    )


# --- half-open connections -----------------------------------------------------------------------


def half_open_main(port: int, count: int, deadline: float, summary_path: Path) -> None:
    """Keep ``count`` connections open, each with a partial request head; reopen whatever the server closes."""
    sel = selectors.DefaultSelector()
    opened = refused = closed_by_server = answered = 0
    replies: Counter[str] = Counter()
    lifetimes: list[float] = []
    live: dict[socket.socket, float] = {}
    serial = 0

    def open_one() -> None:
        nonlocal opened, refused, serial
        sock = socket.socket()
        sock.settimeout(2.0)
        try:
            sock.connect(("127.0.0.1", port))
            sock.sendall(partial_head(port, serial))
        except OSError:
            refused += 1
            sock.close()
            return
        serial += 1
        opened += 1
        sock.setblocking(False)
        sel.register(sock, selectors.EVENT_READ)
        live[sock] = time.monotonic()

    peak = 0
    while time.time() < deadline:
        while len(live) < count and time.time() < deadline:
            before = refused
            open_one()
            if refused > before:
                time.sleep(0.05)
                break
        peak = max(peak, len(live))
        for selected, _ in sel.select(timeout=0.2):
            sock = selected.fileobj
            assert isinstance(sock, socket.socket)
            try:
                reply = sock.recv(4096)
            except OSError:
                reply = b""
            status = _status_of(reply)
            replies[status] += 1
            if status == "closed":
                closed_by_server += 1
            else:
                answered += 1
            lifetimes.append(time.monotonic() - live.pop(sock))
            sel.unregister(sock)
            sock.close()
    still_open = len(live)
    for sock in list(live):
        sock.close()
    lifetimes.sort()
    _write_summary(
        summary_path,
        {
            "attacker": "half-open",
            "target": count,
            "opened": opened,
            "peak_open": peak,
            "refused": refused,
            "closed_by_server": closed_by_server,
            "answered": answered,
            "replies": dict(replies),
            "median_seconds_held": round(lifetimes[len(lifetimes) // 2], 1) if lifetimes else None,
            "still_open_at_end": still_open,
        },
    )


# --- slow bodies ---------------------------------------------------------------------------------


def slow_body_main(port: int, key: str, count: int, deadline: float, summary_path: Path) -> None:
    """``count`` connections each sending a ``PUT`` head, then its body one byte every ~0.5 s; reopened when done."""
    body = json.dumps(_article(random.Random(7), "slow")).encode() + b" " * 2000  # longer than any phase's trickle
    opened = refused = 0
    replies: Counter[str] = Counter()
    lifetimes: list[float] = []
    live: dict[socket.socket, tuple[float, int]] = {}  # socket -> (opened at, body bytes sent)
    serial = 0
    while time.time() < deadline:
        while len(live) < count:
            sock = socket.socket()
            sock.settimeout(2.0)
            try:
                sock.connect(("127.0.0.1", port))
                sock.sendall(slow_body_head(port, key, f"slow-{serial}", len(body)))
            except OSError:
                refused += 1
                sock.close()
                break
            serial += 1
            opened += 1
            sock.setblocking(False)
            live[sock] = (time.monotonic(), 0)
        for sock, (since, sent) in list(live.items()):
            try:
                reply = sock.recv(4096)
            except BlockingIOError:
                reply = None
            except OSError:
                reply = b""
            if reply is None and sent < len(body):
                try:
                    sock.send(body[sent : sent + 1])
                    live[sock] = (since, sent + 1)
                    continue
                except OSError:
                    reply = b""
            if reply is None:
                continue
            replies[_status_of(reply)] += 1
            lifetimes.append(time.monotonic() - since)
            del live[sock]
            sock.close()
        time.sleep(0.5)
    still_open = len(live)
    oldest = max((time.monotonic() - since for since, _ in live.values()), default=0.0)
    for sock in list(live):
        sock.close()
    lifetimes.sort()
    _write_summary(
        summary_path,
        {
            "attacker": "slow-body",
            "oldest_open_seconds": round(oldest, 1),
            "connections": count,
            "opened": opened,
            "refused": refused,
            "replies": dict(replies),
            "median_seconds_held": round(lifetimes[len(lifetimes) // 2], 1) if lifetimes else None,
            "still_open_at_end": still_open,
        },
    )


# --- write storm ---------------------------------------------------------------------------------


def storm_articles(count: int) -> list[dict[str, Any]]:
    """The articles the concurrent ``poshuk index`` run adds (ids ``storm-NNNN``)."""
    rng = random.Random(count)
    return [{"id": f"storm-{n:04d}", **_article(rng, f"storm-{n:04d}")} for n in range(count)]


def write_storm_main(
    base_url: str, key: str, index_dir: Path, config: Path, articles: int, deadline: float, log_path: Path
) -> None:
    """``PUT`` back to back while a ``poshuk index`` run of ``articles`` articles writes into the same index.

    Every ``PUT`` is logged as the reliability clients log theirs, so its acknowledged
    writes are checked with theirs at the end.
    """
    source = log_path.with_suffix(".articles.jsonl")
    source.write_text("".join(json.dumps(a, ensure_ascii=False) + "\n" for a in storm_articles(articles)), "utf-8")
    started = time.time()
    indexer = subprocess.Popen(
        [POSHUK, "index", str(source), "--index", str(index_dir), "--no-progress"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=_env(config),
    )
    rng = random.Random(articles)
    headers = {"Authorization": f"Bearer {key}"}
    n = 0
    with httpx.Client(base_url=base_url, timeout=60.0) as client, log_path.open("w", encoding="utf-8") as log:
        while time.time() < deadline:
            doc_id = f"w-{n:06d}"
            n += 1
            record: dict[str, Any] = {"op": "upsert", "id": doc_id}
            started_request = time.perf_counter()
            try:
                response = client.put(f"/v1/documents/{doc_id}", json=_article(rng, doc_id), headers=headers)
            except Exception as exc:
                record.update(error=_error_kind(exc), ms=(time.perf_counter() - started_request) * 1000)
            else:
                record.update(status=response.status_code, ms=(time.perf_counter() - started_request) * 1000)
                if response.status_code >= 400:
                    record["problem"] = _problem(response)
                    if response.status_code in (429, 503):
                        time.sleep(float(response.headers.get("retry-after", "1")))
                else:
                    record["passages"] = response.json()["passages"]
            log.write(json.dumps(record) + "\n")
            log.flush()
    try:
        _, stderr = indexer.communicate(timeout=max(1.0, deadline - time.time() + 120))
        exit_code: int | None = indexer.returncode
    except subprocess.TimeoutExpired:
        indexer.kill()
        _, stderr = indexer.communicate()
        exit_code = None
    outcome = {
        "articles": articles,
        "exit": exit_code,
        "seconds": round(time.time() - started, 1),
        "stderr": stderr.decode(errors="replace").strip()[-300:],
    }
    log_path.with_suffix(".index.json").write_text(json.dumps(outcome), encoding="utf-8")


def _problem(response: httpx.Response) -> str:
    try:
        return str(response.json().get("type", "")).rsplit("/", 1)[-1]
    except ValueError:
        return "not json"
