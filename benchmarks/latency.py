"""``python -m benchmarks latency``: QPS, latency, server CPU and memory of real servers under wrk.

For each corpus, round by round (the systems' order alternating), each system's server is
started on a free 127.0.0.1 port, once per query cache mode, and loaded by ``wrk``
(``wrk.py``) at each concurrency level for each request kind:

- corpora: the unlp2026 passages, and the *scaled* index (every passage of the recall sets,
  real text, repeated under new ids up to ``--passages``; ``scaled.py``); txtai serves its
  saved unlp2026 index from the recall benchmark and, on the scaled corpus, an index built
  from the vector cache through its ``external`` method (``txtai_external.py``);
- request kinds: poshuk ``default`` (``GET /v1/search?q=…&k=10``, nothing more), ``dense``
  (``mode=dense&highlight=false``) and ``semantic`` (``semantic_highlights=true``); txtai's
  ``GET /search?query=…&limit=10``;
- query cache ``off`` (poshuk started with ``POSHUK_QUERY_CACHE_SIZE=0``, requests cycling
  through every distinct real query) and ``on`` (a few queries repeated after a warm-up pass).

Each cell records wrk's counts and percentiles, the server's CPU per request and its RSS.
"""

from __future__ import annotations

import os
import random
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import httpx
import msgspec

from benchmarks.datasets import SETS, BenchSet
from benchmarks.latency_report import Cell, Corpus, LatencyReport, ServerStart
from benchmarks.machine import machine, versions
from benchmarks.serverproc import Server, rss_mb, serve, settled_cpu_seconds, torch_loaded
from benchmarks.workspace import Workspace
from benchmarks.wrk import find_wrk, request_path, run_wrk, write_paths, wrk_version

REPO = Path(__file__).resolve().parent.parent
POSHUK_KINDS: dict[str, dict[str, str | int]] = {
    "default": {},
    "dense": {"mode": "dense", "highlight": "false"},
    "semantic": {"semantic_highlights": "true"},
}
TXTAI_KIND = "search"
CACHE_MODES = ("off", "on")


class Options(msgspec.Struct, frozen=True, kw_only=True):
    data: Path
    work: Path
    out: Path
    passages: int = 100_000
    seconds: float = 15.0
    rounds: int = 2
    levels: tuple[int, ...] = (1, 8, 32)
    systems: tuple[str, ...] = ("poshuk", "txtai")
    kinds: tuple[str, ...] = tuple(POSHUK_KINDS)
    cache: tuple[str, ...] = CACHE_MODES
    corpora: tuple[str, ...] = ("unlp2026", "scaled")
    repeated: int = 20  # distinct queries of the cache-on workload
    # Search-box queries: the recall sets' questions, headlines and sentences. ntrex-passages' "queries"
    # are 4-sentence passages (median 479 characters); their encoding, not the search, would be measured.
    max_query_chars: int = 200
    wrk_threads: int = 1
    encoder: str | None = None  # POSHUK_ENCODER for poshuk (None: the default setting)
    command: tuple[str, ...] = ()


class Target(msgspec.Struct, frozen=True, kw_only=True):
    """One system on one corpus: how to start it and what its requests are."""

    system: str
    argv: list[str]
    env: dict[str, str]
    probe: str  # a path that answers 200 once the server can search
    ready_field: str | None = None  # a field of the probe's JSON that must also be true (poshuk's postings)
    passages: int
    kinds: dict[str, Callable[[str], str]]  # request kind -> query text -> request path


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def real_queries(sets: dict[str, BenchSet]) -> list[str]:
    """Every distinct query text of the recall sets, in a fixed shuffled order."""
    seen: dict[str, None] = {}
    for bench in sets.values():
        for q in bench.queries:
            seen.setdefault(" ".join(q.text.split())[:900], None)
    texts = [t for t in seen if t]
    random.Random(0).shuffle(texts)
    return texts


def _poshuk_path(params: dict[str, str | int]) -> Callable[[str], str]:
    return lambda query: request_path("/v1/search", {"q": query, "k": 10, **params})


def _txtai_path(query: str) -> str:
    return request_path("/search", {"query": query, "limit": 10})


def measure_cell(
    server: Server, paths: Path, conc: int, opts: Options, *, background_per_s: float = 0.0
) -> dict[str, object]:
    """One wrk run against ``server``: wrk's counts and percentiles, the server tree's CPU per request sent
    (``background_per_s``: CPU seconds per second the idle tree spends anyway, so that in-flight work is
    told from it when waiting for the server to settle) and its RSS after."""
    before = settled_cpu_seconds(server.pid, background_per_s=background_per_s)
    result = run_wrk(server.base, paths, connections=conc, seconds=opts.seconds, threads=opts.wrk_threads)
    cpu = settled_cpu_seconds(server.pid, background_per_s=background_per_s) - before
    numbers: dict[str, object] = {
        "requests": result.requests,
        "sent": result.sent,
        "seconds": round(result.duration_s, 2),
        "qps": round(result.qps, 1),
        "p50_ms": round(result.p50_ms, 2),
        "p90_ms": round(result.p90_ms, 2),
        "p99_ms": round(result.p99_ms, 2),
        "mean_ms": round(result.mean_ms, 2),
        "max_ms": round(result.max_ms, 2),
        "errors": result.errors,
        "error_detail": {
            k: v
            for k, v in (
                ("connect", result.connect),
                ("read", result.read),
                ("write", result.write),
                ("timeout", result.timeout),
                ("non2xx", result.non2xx),
            )
            if v
        },
        "cpu_ms_per_request": round(1000 * cpu / max(1, result.sent), 2),
        "rss_mb": round(rss_mb(server.pid), 1),
    }
    return numbers


def load_cells(
    server: Server,
    target: Target,
    corpus: str,
    cache: str,
    rnd: int,
    pool: list[str],
    opts: Options,
    tmp: Path,
    *,
    background_per_s: float = 0.0,
) -> list[Cell]:
    """Every (request kind, concurrency) cell of ``target`` on a started ``server``, after a warm-up."""
    cells: list[Cell] = []
    with httpx.Client(base_url=server.base, timeout=120) as client:
        for n, (kind, path_of) in enumerate(target.kinds.items()):
            # warm-up: the repeated queries once (fills the cache); with the cache off as many from the
            # pool's end (lazy model loading, first allocations), which no cell starts with
            for query in pool if cache == "on" else pool[-opts.repeated :]:
                client.get(path_of(query)).raise_for_status()
            for m, conc in enumerate(opts.levels):
                shift = 0 if cache == "on" else (997 * (n * len(opts.levels) + m)) % len(pool)
                paths = tmp / f"{target.system}-{kind}-{cache}-{conc}.txt"
                write_paths(paths, [path_of(q) for q in pool[shift:] + pool[:shift]])
                numbers = measure_cell(server, paths, conc, opts, background_per_s=background_per_s)
                cell = msgspec.convert(
                    {
                        "corpus": corpus,
                        "system": target.system,
                        "kind": kind,
                        "cache": cache,
                        "concurrency": conc,
                        "round": rnd,
                        **numbers,
                    },
                    Cell,
                )
                _log(
                    f"[{corpus} r{rnd} {target.system} {kind} cache {cache}] c={conc}: {cell.qps} QPS, "
                    f"p50 {cell.p50_ms} ms, p99 {cell.p99_ms} ms, {cell.errors} errors, "
                    f"{cell.cpu_ms_per_request} CPU ms/request, RSS {cell.rss_mb:.0f} MB"
                )
                cells.append(cell)
    return cells


def _run_server(
    target: Target, corpus: str, cache: str, rnd: int, queries: list[str], opts: Options, tmp: Path
) -> tuple[ServerStart, list[Cell]]:
    env = dict(target.env)
    if target.system == "poshuk" and cache == "off":
        env["POSHUK_QUERY_CACHE_SIZE"] = "0"
    pool = queries[: opts.repeated] if cache == "on" else queries
    with serve(target.argv, env, lambda client: is_ready(client, target)) as server:
        start = ServerStart(
            corpus=corpus,
            system=target.system,
            cache=cache,
            round=rnd,
            ready_s=round(server.ready_s, 2),
            rss_mb_ready=round(rss_mb(server.pid), 1),
            torch_loaded=torch_loaded(server.pid),
        )
        cells = load_cells(server, target, corpus, cache, rnd, pool, opts, tmp)
    return start, cells


def is_ready(client: httpx.Client, target: Target) -> bool:
    """Whether the server answers its probe (and, for poshuk, holds its BM25 postings in memory: they
    are built just after ``/readyz`` turns 200, and a cell measured meanwhile would time FTS5)."""
    answer = client.get(target.probe)
    if answer.status_code != 200:
        return False
    return target.ready_field is None or answer.json().get(target.ready_field) is True


def poshuk_target(index: Path, passages: int, env: dict[str, str], kinds: tuple[str, ...]) -> Target:
    """``poshuk serve`` over ``index``; ready once its postings are in memory (one index; a sharded
    archive answers BM25 from its shards' FTS5)."""
    from poshuk import load_settings
    from poshuk.shards import is_sharded

    poshuk = str(Path(sys.executable).with_name("poshuk"))
    postings = load_settings(env=env).lexical_in_memory  # as the server will read its environment
    return Target(
        system="poshuk",
        argv=[poshuk, "serve", "--index", str(index), "--port", "{port}"],
        env=env,
        probe="/readyz",
        ready_field="lexical_in_memory" if postings and not is_sharded(index) else None,
        passages=passages,
        kinds={kind: _poshuk_path(POSHUK_KINDS[kind]) for kind in kinds},
    )


def _txtai_target(folder: Path, passages: int, env: dict[str, str], tmp: Path) -> Target:
    config = tmp / f"txtai-{folder.name}.yml"
    config.write_text(f"path: {folder}\nembeddings: {{}}\n", encoding="utf-8")  # the key mounts /search
    return Target(
        system="txtai",
        argv=[sys.executable, "-m", "uvicorn", "txtai.api:app", "--port", "{port}", "--log-level", "warning"],
        env={**env, "CONFIG": str(config), "PYTHONPATH": str(REPO)},
        probe="/search?query=warm-up&limit=1",
        passages=passages,
        kinds={TXTAI_KIND: _txtai_path},
    )


def _txtai_unlp(ws: Workspace, unlp: BenchSet) -> tuple[Path, str] | str:
    """txtai's saved unlp2026 index (built by the recall benchmark's adapter if absent) and the FAISS
    index it chose, or why not."""
    from benchmarks.systems import SystemUnavailable
    from benchmarks.systems.txtai_system import TxtaiSystem

    system = TxtaiSystem()
    try:
        notes = system.prepare(unlp, ws)
    except SystemUnavailable as exc:
        return f"txtai not measured on unlp2026: {exc}"
    folder = system.folder
    system.close()
    if folder is None:
        return "txtai not measured on unlp2026: no saved index"
    return folder, notes.get("faiss_components", "?")


def _txtai_missing() -> str | None:
    try:
        import txtai.api  # noqa: F401  (its API extra: fastapi)
    except ImportError as exc:
        return f"txtai not measured: its API is not installed ({exc}); pip install 'txtai[api]'"
    return None


def server_env(encoder: str) -> dict[str, str]:
    """The environment of a benchmarked ``poshuk serve``: this one's, the encoder, quiet logs, no limits."""
    env = {**os.environ, "POSHUK_ENCODER": encoder, "POSHUK_SERVICE_LOG_LEVEL": "warning"}
    env["POSHUK_SERVICE_RATE_LIMIT_PER_SECOND"] = "0"  # the load comes from one client address
    env["POSHUK_SERVICE_CLIENT_TIME_SHARE"] = "0"  # ... which may use the whole server
    return env


def run(opts: Options) -> LatencyReport | None:
    """The report, or None (with a message) when the evaluation data is absent; ``WrkMissing`` without wrk."""
    from benchmarks.scaled import build_scaled_index
    from benchmarks.txtai_external import build_scaled_txtai, environment
    from poshuk import load_settings

    missing = [folder for folder, _ in SETS.values() if not (opts.data / folder).is_dir()]
    if missing:
        print(f"skipped: evaluation data not found under {opts.data} ({', '.join(sorted(set(missing)))})")
        return None
    wrk = find_wrk()
    host = machine()
    settings = load_settings(overrides={} if opts.encoder is None else {"encoder": opts.encoder})
    ws = Workspace(opts.work, settings, max_k=100)
    sets = {name: loader(opts.data) for name, (_, loader) in SETS.items()}
    queries = [q for q in real_queries(sets) if len(q) <= opts.max_query_chars]
    if len(queries) < opts.repeated:
        raise ValueError(f"only {len(queries)} queries of at most {opts.max_query_chars} characters")
    env = server_env(settings.encoder)
    if settings.query_cache_size < opts.repeated:
        env["POSHUK_QUERY_CACHE_SIZE"] = str(opts.repeated)
    notes = [f"poshuk's vector search is exact (flat) at or below {settings.approximate_above:,} passages"]
    txtai_absent = _txtai_missing() if "txtai" in opts.systems else None
    if txtai_absent:
        notes.append(txtai_absent)
    plans: list[tuple[str, list[Target]]] = []
    tmp_dir = tempfile.TemporaryDirectory(prefix="poshuk-latency-")
    tmp = Path(tmp_dir.name)
    for corpus_key in opts.corpora:
        targets: list[Target] = []
        if corpus_key == "unlp2026":
            corpus, unlp = "unlp2026", sets["unlp2026"]
            passages = len(ws.passages(unlp))
            if "poshuk" in opts.systems:
                ws.searcher(unlp).close()  # built from the vector cache if absent
                targets.append(poshuk_target(ws.folder(unlp) / "index", passages, env, opts.kinds))
            if "txtai" in opts.systems and not txtai_absent:
                found = _txtai_unlp(ws, unlp)
                if isinstance(found, str):
                    notes.append(found)
                else:
                    notes.append(f"txtai's FAISS index on {corpus}: {found[1]} (its default)")
                    targets.append(_txtai_target(found[0], passages, env, tmp))
        elif corpus_key == "scaled":
            corpus = f"scaled {opts.passages:,}"
            if "poshuk" in opts.systems:
                index = build_scaled_index(ws, sets, opts.passages)
                targets.append(poshuk_target(index, _passages_of(index), env, opts.kinds))
            if "txtai" in opts.systems and not txtai_absent:
                try:
                    folder, rows, components = build_scaled_txtai(ws, sets, opts.passages)
                except Exception as exc:  # reported, never presented as measured
                    notes.append(f"txtai not measured on {corpus}: its external-vectors index failed ({exc!r})")
                else:
                    notes.append(
                        f"txtai on {corpus}: `method: external`, passage vectors from the vector cache, queries "
                        f"by sentence-transformers' encode_query; FAISS index {components} (its default)"
                    )
                    targets.append(_txtai_target(folder, rows, {**env, **environment(ws)}, tmp))
        else:
            raise ValueError(f"unknown corpus {corpus_key!r}; choose from unlp2026, scaled")
        plans.append((corpus, targets))
    servers: list[ServerStart] = []
    cells: list[Cell] = []
    with tmp_dir:
        for corpus, targets in plans:
            for rnd in range(1, opts.rounds + 1):
                for target in targets if rnd % 2 else targets[::-1]:
                    for cache in opts.cache:
                        start, done = _run_server(target, corpus, cache, rnd, queries, opts, tmp)
                        servers.append(start)
                        cells += done
    return LatencyReport(
        command=" ".join(opts.command),
        encoder=settings.encoder,
        load_generator=wrk_version(wrk),
        wrk_threads=opts.wrk_threads,
        seconds=opts.seconds,
        rounds=opts.rounds,
        queries={"off": len(queries), "on": opts.repeated},
        max_query_chars=opts.max_query_chars,
        corpora=[Corpus(name=c, passages={t.system: t.passages for t in ts}) for c, ts in plans],
        servers=servers,
        cells=cells,
        machine=host,
        versions=versions(),
        notes=notes,
    )


def _passages_of(index: Path) -> int:
    from poshuk.index import Index

    opened = Index.open(index)
    try:
        return opened.counts().passages
    finally:
        opened.close()
