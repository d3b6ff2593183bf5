"""``python -m benchmarks recall [--data PATH] [--sets a,b] [--systems x,y] [--work DIR] [--limit N]``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DATA = REPO.parent / "shared" / "data"
DEFAULT_WORK = REPO / "benchmarks" / ".work"
DEFAULT_OUT = REPO / "benchmarks" / "results"


def _csv(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    sub = parser.add_subparsers(dest="benchmark", required=True, metavar="BENCHMARK")
    recall = sub.add_parser("recall", help="Recall, MRR and nDCG of every system on the evaluation sets.")
    recall.add_argument("--data", type=Path, default=DEFAULT_DATA, help="evaluation data folder (default: %(default)s)")
    recall.add_argument("--sets", type=_csv, help="comma-separated sets (default: all)")
    recall.add_argument("--systems", type=_csv, help="comma-separated systems (default: all)")
    recall.add_argument("--work", type=Path, default=DEFAULT_WORK, help="cache folder (default: %(default)s)")
    recall.add_argument("--out", type=Path, default=DEFAULT_OUT, help="results folder (default: %(default)s)")
    recall.add_argument("--limit", type=int, help="at most N queries per set (the corpus stays whole)")
    recall.add_argument("--depth", type=int, default=200, help="passages retrieved per query (default: %(default)s)")
    reliability = sub.add_parser(
        "reliability", help="Mixed searches and writes with periodic kill -9 of the server; lost writes must be 0."
    )
    reliability.add_argument(
        "--minutes", type=float, help="load duration (default: 5; with --hostile: both phases together)"
    )
    reliability.add_argument(
        "--hostile",
        action="store_true",
        help="normal users' latency without, then with, attackers (filter bombs, half-open connections, "
        "slow bodies, a write storm); results to reliability-hostile.{json,md}",
    )
    reliability.add_argument(
        "--phase-seconds", type=float, help="with --hostile: seconds of each phase, quiet and attacked (default: 45)"
    )
    reliability.add_argument(
        "--clients", type=int, help="client processes (default: 4; with --hostile: normal users, default 8)"
    )
    reliability.add_argument(
        "--attackers",
        help="with --hostile: comma-separated attackers to run, of filter-bombs, half-open, slow-bodies, "
        "write-storm (default: all; issue 13's target names filter-bombs,half-open)",
    )
    reliability.add_argument(
        "--think-seconds",
        metavar="MIN,MAX",
        help="with --hostile: a normal user's pause between requests, uniform in [MIN, MAX] seconds "
        "(default: 0.5,2.5: people reading results; 0.05,0.15 is a tool at ~7 new-query searches/s, past "
        "the default client_time_share)",
    )
    reliability.add_argument(
        "--service-setting",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="with --hostile: a [service] setting the server runs with instead of the shipped default "
        "(e.g. search_slots=1; repeatable); the report lists it",
    )
    reliability.add_argument(
        "--kill-every", type=float, default=30.0, help="mean seconds between kills (default: %(default)s)"
    )
    reliability.add_argument("--seed", type=int, default=20230831, help="seed of the load and the kills")
    reliability.add_argument("--out", type=Path, default=DEFAULT_OUT, help="results folder (default: %(default)s)")
    reliability.add_argument("--work", type=Path, help="keep the index, settings and logs here")
    alerts = sub.add_parser(
        "alerts", help="English saved searches vs Ukrainian articles (NTREX): precision, recall, write cost."
    )
    alerts.add_argument("--data", type=Path, default=DEFAULT_DATA, help="data folder (default: %(default)s)")
    alerts.add_argument("--out", type=Path, default=DEFAULT_OUT, help="results folder (default: %(default)s)")
    dedupe = sub.add_parser("dedupe", help="Precision/recall of near-duplicate grouping (NTREX, edited BRUK copies).")
    dedupe.add_argument("--data", type=Path, default=DEFAULT_DATA, help="data folder (default: %(default)s)")
    dedupe.add_argument("--out", type=Path, default=DEFAULT_OUT, help="results folder (default: %(default)s)")
    latency = sub.add_parser(
        "latency",
        help="QPS, p50/p99, server CPU per request and RSS of poshuk serve and txtai's API under wrk.",
    )
    latency.add_argument("--data", type=Path, default=DEFAULT_DATA, help="evaluation data (default: %(default)s)")
    latency.add_argument("--work", type=Path, default=DEFAULT_WORK, help="cache folder (default: %(default)s)")
    latency.add_argument("--passages", type=int, default=100_000, help="size of the scaled index (default: 100000)")
    latency.add_argument("--seconds", type=float, default=15.0, help="seconds of load per cell (default: 15)")
    latency.add_argument("--rounds", type=int, default=2, help="rounds, systems alternating (default: 2)")
    latency.add_argument("--concurrency", type=_csv, default=["1", "8", "32"], help="levels (default: 1,8,32)")
    latency.add_argument("--systems", type=_csv, default=["poshuk", "txtai"], help="default: poshuk,txtai")
    latency.add_argument(
        "--kinds", type=_csv, default=["default", "dense", "semantic"], help="poshuk requests (default: all three)"
    )
    latency.add_argument("--cache", type=_csv, default=["off", "on"], help="query cache modes (default: off,on)")
    latency.add_argument("--corpora", type=_csv, default=["unlp2026", "scaled"], help="default: unlp2026,scaled")
    latency.add_argument("--repeated", type=int, default=20, help="queries repeated with the cache on (default: 20)")
    latency.add_argument(
        "--max-query-chars", type=int, default=200, help="longest recall-set query sent (default: %(default)s)"
    )
    latency.add_argument("--wrk-threads", type=int, default=1, help="wrk threads (default: 1)")
    latency.add_argument("--encoder", help="POSHUK_ENCODER for poshuk (default: the setting's default)")
    latency.add_argument("--out", type=Path, default=DEFAULT_OUT, help="results folder (default: %(default)s)")
    indexing = sub.add_parser("indexing", help="Passages/s of torch fp32, ONNX fp32, ONNX int8 and txtai; FLOPs.")
    indexing.add_argument("--data", type=Path, default=DEFAULT_DATA, help="evaluation data (default: %(default)s)")
    indexing.add_argument("--work", type=Path, default=DEFAULT_WORK, help="cache folder (default: %(default)s)")
    indexing.add_argument("--passages", type=int, default=512, help="passages encoded by each (default: 512)")
    indexing.add_argument("--systems", type=_csv, default=["torch", "onnx-fp32", "onnx-int8", "txtai"])
    indexing.add_argument("--out", type=Path, default=DEFAULT_OUT, help="results folder (default: %(default)s)")
    sharded = sub.add_parser(
        "sharded", help="A sharded archive against one index: identical answers, router overhead (in process)."
    )
    sharded.add_argument("--data", type=Path, default=DEFAULT_DATA, help="evaluation data (default: %(default)s)")
    sharded.add_argument("--work", type=Path, default=DEFAULT_WORK, help="cache folder (default: %(default)s)")
    sharded.add_argument("--shards", type=_csv, help="shard counts (default: 3,5; with --served: 3)")
    sharded.add_argument("--queries", type=int, default=300, help="distinct queries per set (default: 300)")
    sharded.add_argument(
        "--sets", type=_csv, default=["unlp2026", "bruk-press"], help="sets (default: unlp2026,bruk-press)"
    )
    sharded.add_argument("--out", type=Path, default=DEFAULT_OUT, help="results folder (default: %(default)s)")
    sharded.add_argument(
        "--served",
        action="store_true",
        help="instead: the single index, the archive in process and the archive on Ray Serve (--ray local), each "
        "served over HTTP in turn and loaded by wrk; results to sharded-served.{json,md}",
    )
    sharded.add_argument("--seconds", type=float, default=10.0, help="with --served: seconds per cell (default: 10)")
    sharded.add_argument("--rounds", type=int, default=2, help="with --served: rounds, order reversed (default: 2)")
    sharded.add_argument("--concurrency", type=_csv, default=["1", "8"], help="with --served: levels (default: 1,8)")
    sharded.add_argument(
        "--servers", type=_csv, default=["single", "archive", "ray"], help="with --served: default single,archive,ray"
    )
    sharded.add_argument(
        "--check-queries", type=int, default=30, help="with --served: answers compared per server (default: 30)"
    )
    sharded.add_argument(
        "--max-query-chars", type=int, default=200, help="with --served: longest query sent (default: %(default)s)"
    )
    sharded.add_argument("--wrk-threads", type=int, default=1, help="with --served: wrk threads (default: 1)")
    sharded.add_argument(
        "--approximate-above",
        type=int,
        metavar="N",
        help="instead: the single index and every shard with IVF-SQ8 vectors above N passages, against the exact "
        "index, dense and hybrid (default shards: 3); results to sharded-ivf.{json,md}",
    )
    ranking = sub.add_parser(
        "ranking", help="Issue 15's ranking experiments (weighted sum, stop words, RM3) beside the fusion, every set."
    )
    ranking.add_argument("--data", type=Path, default=DEFAULT_DATA, help="evaluation data (default: %(default)s)")
    ranking.add_argument("--sets", type=_csv, help="comma-separated sets (default: all)")
    ranking.add_argument("--work", type=Path, default=DEFAULT_WORK, help="cache folder (default: %(default)s)")
    ranking.add_argument("--out", type=Path, default=DEFAULT_OUT, help="results folder (default: %(default)s)")
    ray_indexing = sub.add_parser(
        "ray-indexing", help="poshuk index locally against --ray local with 1, 2 and 4 encoder actors."
    )
    ray_indexing.add_argument("--data", type=Path, default=DEFAULT_DATA, help="evaluation data (default: %(default)s)")
    ray_indexing.add_argument("--work", type=Path, default=DEFAULT_WORK, help="scratch folder (default: %(default)s)")
    ray_indexing.add_argument(
        "--set", default="bruk-press", help="set whose articles are indexed (default: bruk-press)"
    )
    ray_indexing.add_argument("--articles", type=int, default=200, help="articles indexed (default: 200)")
    ray_indexing.add_argument(
        "--pools",
        type=_csv,
        default=["1x1", "2x1", "4x0.5"],
        help="encoder pools as ACTORSxCPUS (default: 1x1,2x1,4x0.5: two cores' worth at most)",
    )
    ray_indexing.add_argument("--out", type=Path, default=DEFAULT_OUT, help="results folder (default: %(default)s)")
    scale = sub.add_parser("scale", help="Exact flat vs approximate FAISS index at 100k and 1M passage vectors.")
    scale.add_argument(
        "--sizes", type=_csv, default=["100000", "1000000"], help="passage counts (default: 100000,1000000)"
    )
    scale.add_argument(
        "--work",
        type=Path,
        default=DEFAULT_WORK,
        help="folder holding the recall run's vector cache (default: %(default)s)",
    )
    scale.add_argument("--scratch", type=Path, help="where the generated vectors and indexes go (default: WORK/scale)")
    scale.add_argument("--out", type=Path, default=DEFAULT_OUT, help="results folder (default: %(default)s)")
    return parser


def _scale(args: argparse.Namespace, argv: Sequence[str]) -> int:
    from benchmarks.scale import find_cache, render, run

    if find_cache(args.work) is None:
        print(
            f"no passage vector cache (vectors-*.sqlite) in {args.work}; skipping "
            "(python -m benchmarks recall fills it)"
        )
        return 0
    result = run(
        sizes=[int(s) for s in args.sizes],
        work=args.work,
        scratch=args.scratch or args.work / "scale",
        command=" ".join(("python", "-m", "benchmarks", *argv)),
    )
    if result is not None:
        _save(args.out, "scale", result, render(result))
    return 0


def _save(out: Path, stem: str, report: object, table: str) -> None:
    """``out/stem.json`` (every number) and ``out/stem.md`` (the table, also printed)."""
    import msgspec

    out.mkdir(parents=True, exist_ok=True)
    (out / f"{stem}.json").write_bytes(msgspec.json.format(msgspec.json.encode(report)))
    (out / f"{stem}.md").write_text(table, encoding="utf-8")
    print(table)


def _latency(args: argparse.Namespace, argv: Sequence[str]) -> int:
    from benchmarks.latency import Options, run
    from benchmarks.latency_report import render
    from benchmarks.wrk import WrkMissing

    try:
        report = run(
            Options(
                data=args.data,
                work=args.work,
                out=args.out,
                passages=args.passages,
                seconds=args.seconds,
                rounds=args.rounds,
                levels=tuple(int(c) for c in args.concurrency),
                systems=tuple(args.systems),
                kinds=tuple(args.kinds),
                cache=tuple(args.cache),
                corpora=tuple(args.corpora),
                repeated=args.repeated,
                max_query_chars=args.max_query_chars,
                wrk_threads=args.wrk_threads,
                encoder=args.encoder,
                command=("python", "-m", "benchmarks", *argv),
            )
        )
    except WrkMissing as exc:
        print(exc, file=sys.stderr)
        return 1
    if report is not None:
        _save(args.out, "latency", report, render(report))
    return 0


def _indexing(args: argparse.Namespace, argv: Sequence[str]) -> int:
    from benchmarks.indexing import Options, render, run

    report = run(
        Options(
            data=args.data,
            work=args.work,
            passages=args.passages,
            systems=tuple(args.systems),
            command=("python", "-m", "benchmarks", *argv),
        )
    )
    if report is not None:
        _save(args.out, "indexing", report, render(report))
    return 0


def _hostile(args: argparse.Namespace, argv: Sequence[str]) -> int:
    from benchmarks.hostile import ATTACKERS, HostileOptions, render, run

    phase = args.phase_seconds or (args.minutes * 30 if args.minutes else 45.0)
    chosen = tuple(a.strip() for a in args.attackers.split(",") if a.strip()) if args.attackers else ATTACKERS
    unknown = sorted(set(chosen) - set(ATTACKERS))
    if unknown or not chosen:
        print(f"benchmarks: error: --attackers takes {', '.join(ATTACKERS)}; got {args.attackers!r}", file=sys.stderr)
        return 2
    service: dict[str, str] = {}
    for item in args.service_setting:
        name, sep, value = item.partition("=")
        if not sep or not name.strip().isidentifier() or not value.strip():
            print(f"benchmarks: error: --service-setting takes NAME=VALUE; got {item!r}", file=sys.stderr)
            return 2
        service[name.strip()] = value.strip()
    think = (0.5, 2.5)
    if args.think_seconds:
        try:
            low, high = (float(x) for x in args.think_seconds.split(","))
        except ValueError:
            low = high = -1.0
        if not 0 <= low <= high:
            print(f"benchmarks: error: --think-seconds takes MIN,MAX; got {args.think_seconds!r}", file=sys.stderr)
            return 2
        think = (low, high)
    result = run(
        HostileOptions(
            think_s=think,
            service=service,
            phase_seconds=phase,
            users=args.clients or 8,
            seed=args.seed,
            attackers=chosen,
            out=args.out,
            work=args.work,
            command=("python", "-m", "benchmarks", *argv),
        )
    )
    print(render(result))
    return 0 if result.lost_writes == 0 and result.index_consistent else 1


def _reliability(args: argparse.Namespace, argv: Sequence[str]) -> int:
    from benchmarks.reliability import Options, render, run

    if args.hostile:
        return _hostile(args, argv)
    result = run(
        Options(
            minutes=5.0 if args.minutes is None else args.minutes,
            clients=args.clients or 4,
            kill_every_s=args.kill_every,
            seed=args.seed,
            out=args.out,
            work=args.work,
            command=("python", "-m", "benchmarks", *argv),
        )
    )
    print(render(result))
    return 0 if result.lost_writes == 0 and result.index_consistent else 1


def _sharded(args: argparse.Namespace, argv: Sequence[str]) -> int:
    from benchmarks.datasets import SETS
    from benchmarks.sharded import render, run

    try:
        counts = tuple(int(n) for n in args.shards or (["3"] if args.served else ["3", "5"]))
    except ValueError:
        counts = ()
    unknown = [name for name in args.sets if name not in SETS]
    if not counts or not all(1 <= n <= 256 for n in counts) or unknown or args.queries < 1:
        print(
            f"benchmarks: error: --shards takes counts 1..256, --sets {', '.join(SETS)}, --queries at least 1",
            file=sys.stderr,
        )
        return 2
    if args.served and args.approximate_above is not None:
        print("benchmarks: error: --served and --approximate-above are separate runs", file=sys.stderr)
        return 2
    if args.served:
        return _sharded_served(args, argv, counts)
    if args.approximate_above is not None:
        return _sharded_ivf(args, argv, tuple(int(n) for n in args.shards or ["3"]))
    report = run(
        args.data,
        args.work,
        args.out,
        shards=counts,
        queries=args.queries,
        sets=tuple(args.sets),
        command=["python", "-m", "benchmarks", *argv],
    )
    if report is None:
        return 0
    print(render(report))
    return 0 if all(c.identical == c.searches for c in report.cells) else 1


def _sharded_ivf(args: argparse.Namespace, argv: Sequence[str], counts: tuple[int, ...]) -> int:
    from benchmarks.sharded_ivf import render, run

    if args.approximate_above < 1:
        print("benchmarks: error: --approximate-above takes a passage count of at least 1", file=sys.stderr)
        return 2
    report = run(
        args.data,
        args.work,
        shards=counts,
        queries=args.queries,
        sets=tuple(args.sets),
        approximate_above=args.approximate_above,
        command=["python", "-m", "benchmarks", *argv],
    )
    if report is None:
        return 0
    _save(args.out, "sharded-ivf", report, render(report))
    return 0  # IVF answers are expected to differ: the report says by how much


def _sharded_served(args: argparse.Namespace, argv: Sequence[str], counts: tuple[int, ...]) -> int:
    from benchmarks.sharded_served import SERVERS, ServedOptions, run
    from benchmarks.sharded_served_report import render
    from benchmarks.wrk import WrkMissing

    try:
        levels = tuple(int(c) for c in args.concurrency)
    except ValueError:
        levels = ()
    unknown = [s for s in args.servers if s not in SERVERS]
    if unknown or not args.servers or not levels or min(levels) < 1 or args.seconds <= 0 or args.rounds < 1:
        print(
            f"benchmarks: error: --servers takes {', '.join(SERVERS)}; --concurrency positive counts; "
            "--seconds and --rounds positive",
            file=sys.stderr,
        )
        return 2
    try:
        report = run(
            ServedOptions(
                data=args.data,
                work=args.work,
                sets=tuple(args.sets),
                shards=counts,
                servers=tuple(args.servers),
                seconds=args.seconds,
                rounds=args.rounds,
                levels=levels,
                check_queries=args.check_queries,
                max_query_chars=args.max_query_chars,
                wrk_threads=args.wrk_threads,
                command=("python", "-m", "benchmarks", *argv),
            )
        )
    except WrkMissing as exc:
        print(exc, file=sys.stderr)
        return 1
    if report is None:
        return 0
    _save(args.out, "sharded-served", report, render(report))
    same = all(s.identical == s.checked for s in report.servers)
    return 0 if same and not any(c.errors for c in report.cells) else 1


def _ray_indexing(args: argparse.Namespace, argv: Sequence[str]) -> int:
    from benchmarks.datasets import SETS
    from benchmarks.ray_indexing import render, run

    try:
        pools = [(int(a), float(c)) for a, c in (p.split("x") for p in args.pools)]
    except ValueError:
        pools = []
    if args.set not in SETS or not pools or args.articles < 1 or any(a < 1 or c <= 0 for a, c in pools):
        print(
            f"benchmarks: error: --set one of {', '.join(SETS)}, --pools like 2x1 (actors x CPUs), --articles >= 1",
            file=sys.stderr,
        )
        return 2
    report = run(
        args.data,
        args.work,
        set_name=args.set,
        articles=args.articles,
        pools=pools,
        command=["python", "-m", "benchmarks", *argv],
    )
    if report is None:
        return 0
    _save(args.out, "ray-indexing", report, render(report))
    return 0 if all(r.identical_rows == r.passages for r in report.runs) else 1


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.benchmark == "reliability":
        return _reliability(args, argv)
    if args.benchmark == "latency":
        return _latency(args, argv)
    if args.benchmark == "indexing":
        return _indexing(args, argv)
    if args.benchmark == "scale":
        return _scale(args, argv)
    if args.benchmark == "sharded":
        return _sharded(args, argv)
    if args.benchmark == "ray-indexing":
        return _ray_indexing(args, argv)
    if args.benchmark == "ranking":
        from benchmarks.datasets import SETS
        from benchmarks.ranking import run as run_ranking

        chosen = args.sets or list(SETS)
        if unknown := [s for s in chosen if s not in SETS]:
            print(
                f"benchmarks: error: unknown sets {', '.join(unknown)}; choose from {', '.join(SETS)}", file=sys.stderr
            )
            return 2
        return run_ranking(args.data, args.work, args.out, chosen, ["python", "-m", "benchmarks", *argv])
    if args.benchmark == "alerts":
        from benchmarks.alerts import run as run_alerts

        return run_alerts(args.data, args.out, ["python", "-m", "benchmarks", *argv])
    if args.benchmark == "dedupe":
        from benchmarks.dedupe import run as run_dedupe

        return run_dedupe(args.data, args.out, ["python", "-m", "benchmarks", *argv])
    if not args.data.is_dir():
        print(f"data not found at {args.data}; skipping")
        return 0

    from benchmarks.datasets import SETS
    from benchmarks.recall import Options, run
    from benchmarks.systems import system_names
    from poshuk.errors import PoshukError

    sets = args.sets or list(SETS)
    systems = args.systems or system_names()
    for kind, chosen, known in (("set", sets, list(SETS)), ("system", systems, system_names())):
        unknown = [c for c in chosen if c not in known]
        if unknown:
            parser.error(f"unknown {kind} {', '.join(unknown)}; choose from {', '.join(known)}")
    if args.limit is not None and args.limit < 1:
        parser.error("--limit must be at least 1")
    opts = Options(
        data=args.data,
        sets=sets,
        systems=systems,
        work=args.work,
        out=args.out,
        limit=args.limit,
        depth=args.depth,
        command=["python", "-m", "benchmarks", *argv],
    )
    try:
        return run(opts)
    except PoshukError as exc:
        hint = getattr(exc, "hint", None)
        print(f"error: {exc}" + (f"\nhint: {hint}" if hint else ""), file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
