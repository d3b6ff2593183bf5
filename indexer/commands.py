"""The indexer's ``poshuk`` commands: ``index``, ``delete`` and ``stats``.

``poshuk_cli`` puts them on the command line; failures are ``PoshukError``s, which it
turns into one ``poshuk: error: ...`` line and exit 1.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec

from poshuk import commands
from poshuk.commands import Command, settings_from
from poshuk.errors import BadRecordError, ConfigError, IndexStoreError, InputError
from poshuk.settings import DEFAULT_APPROXIMATE_ABOVE, Settings

if TYPE_CHECKING:
    from indexer.pipeline import GroupEncoding
    from indexer.ray_encoding import RayOptions


def _cmd_index(args: argparse.Namespace) -> int:
    from indexer.file_urls import checked_prefix
    from indexer.pipeline import find_sources, index_paths
    from poshuk.index.layout import refuse_sharded
    from poshuk.models import load_encoder
    from poshuk.shards.layout import MAX_SHARDS, STAGING, has_writes, is_sharded, refuse_written
    from poshuk.shards.split import split_index

    if args.shards is not None and not 1 <= args.shards <= MAX_SHARDS:
        raise IndexStoreError(f"--shards must be between 1 and {MAX_SHARDS}, got {args.shards}")

    ray_options = _ray_options(args)
    target = args.index
    archive = is_sharded(args.index)
    sharded = args.shards is None and archive  # written through its one writer (poshuk.shards.writer)
    if args.shards is None:
        if args.rebuild or not sharded:
            refuse_sharded(args.index)  # before the model loads: a sharded archive is rebuilt with --shards
    elif (args.index / "CURRENT").exists():
        raise IndexStoreError(f"{args.index} holds one index: shard into a new folder")
    elif archive and args.rebuild and args.paths:
        refuse_written(
            args.index,
            "--rebuild --shards builds its staging index from the sources only, and would lose them",
            f"re-shard without --rebuild: `poshuk index [PATH...] --index {args.index} --shards {args.shards}` "
            "carries the writes over; or rebuild into a new folder",
        )
        target = args.index / STAGING
    elif archive and (not args.paths or has_writes(args.index) or not (args.index / STAGING / "CURRENT").is_file()):
        sharded = True  # the paths through the shards' writer, then every write carried over into the split
    else:  # index into the archive's staging index, then split it (no encoding again)
        target = args.index / STAGING
    if not args.paths:  # _check_index allowed it: re-shard the archive as it is
        shard_set = split_index(args.index / STAGING, args.index, args.shards)
        print(f"re-sharded {args.index} into {len(shard_set.shards)} shard(s); nothing was encoded again")
        return 0
    settings = settings_from(args)
    if ray_options is not None:
        from indexer.ray_encoding import check_device, require_ray

        require_ray()
        check_device(ray_options, settings)
    find_sources(args.paths)  # a missing path fails now, not after the model has loaded
    if args.url_prefix is not None:
        checked_prefix(args.url_prefix)  # so does a bad --url-prefix
    commands.quiet_model_loading()
    # With --ray the actors encode; this encoder counts tokens for chunking and names the model.
    encoder = load_encoder(settings if ray_options is None else msgspec.structs.replace(settings, device="cpu"))

    def report_bad(err: BadRecordError) -> None:
        print(f"skipped {err.one_line()}", file=sys.stderr)

    with _ray_encoding(ray_options, settings) as encode_groups:
        report = index_paths(
            args.paths,
            target,
            encoder=encoder,
            settings=settings,
            strict=args.strict,
            rebuild=args.rebuild,
            progress=not args.no_progress,
            on_bad_record=report_bad,
            encode_groups=encode_groups,
            url_prefix=args.url_prefix,
        )
    counts = report.counts
    total = f"; index now holds {counts.documents} documents, {counts.passages} passages" if counts else ""
    if args.shards is not None:  # staging written just now (not sharded): a write meanwhile is refused, not dropped
        shard_set = split_index(args.index / STAGING, args.index, args.shards, carry_writes=sharded)
        total += f", in {len(shard_set.shards)} shard(s)"
    print(
        f"indexed {report.documents} documents ({report.passages} passages) in {report.seconds:.1f} s "
        f"({report.docs_per_second:.1f} docs/s, {report.passages_per_second:.1f} passages/s){total}"
    )
    if args.shards is None and not sharded:
        _match_alerts(args.index)
    if report.skipped:
        print(f"{len(report.skipped)} record(s) skipped; see the messages above", file=sys.stderr)
        return 1
    return 0


def _check_index(args: argparse.Namespace) -> None:
    """PATH may be left out only to re-shard an existing archive (``--shards M``, with or without
    ``--rebuild``: the issue's ``poshuk index --rebuild --shards M``; nothing is encoded again)."""
    from poshuk.shards.layout import is_sharded

    if args.paths:
        return
    if args.shards is None or not is_sharded(args.index):
        raise InputError("the following arguments are required: PATH (without one, --shards N re-shards an archive)")
    if args.ray is not None:
        raise InputError("--ray encodes on Ray, and re-sharding without PATH encodes nothing: leave it out")


def _match_alerts(index_dir: Path) -> None:
    """Match the index's saved searches against what this run wrote (a running service would within a
    second; without one, the matches are there for `poshuk alerts matches`)."""
    from poshuk.alerts import ALERTS_NAME, AlertStore, match_all_new_writes

    if not (index_dir / ALERTS_NAME).is_file():
        return
    store = AlertStore(index_dir)
    try:
        matched = match_all_new_writes(store, index_dir)
    finally:
        store.close()
    if matched:
        print(f"{matched} new match(es) for saved searches (poshuk alerts list)", file=sys.stderr)


def _ray_options(args: argparse.Namespace) -> RayOptions | None:
    """``--ray`` and its pool options, checked (before Ray or the model start)."""
    from indexer.ray_encoding import RayOptions

    given = {
        name: value
        for name, value in (
            ("encoder_actors", args.encoder_actors),
            ("cpus_per_actor", args.cpus_per_actor),
            ("gpus_per_actor", args.gpus_per_actor),
        )
        if value is not None
    }
    if args.ray is None:
        if given:
            raise ConfigError(f"--{next(iter(given)).replace('_', '-')} needs --ray")
        return None
    return RayOptions(address=args.ray, **given).checked()


@contextlib.contextmanager
def _ray_encoding(options: RayOptions | None, settings: Settings) -> Iterator[GroupEncoding | None]:
    """Encoding on Ray for the block (joined or started, then left), or None: encode here."""
    if options is None:
        yield None
        return
    from indexer.ray_encoding import connected, encode_on_ray

    with connected(options) as ray:
        yield lambda groups, lexical: encode_on_ray(ray, groups, settings, lexical, options)


def _cmd_delete(args: argparse.Namespace) -> int:
    """Delete articles through the same core path as the HTTP API (one durable transaction)."""
    from poshuk.index import Index, IndexWriter

    settings = settings_from(args)
    live = Index.open(args.index, approximate_above=settings.approximate_above)
    manifest = live.manifest
    live.close()
    missing: list[str] = []
    with IndexWriter(
        args.index,
        manifest.model,
        manifest.chunking,
        manifest.lexical,
        approximate_above=settings.approximate_above,
    ) as writer:
        for doc_id in dict.fromkeys(args.ids):
            if not writer.delete(doc_id):
                missing.append(doc_id)
        counts = writer.commit()
    deleted = len(dict.fromkeys(args.ids)) - len(missing)
    print(f"deleted {deleted} documents; index now holds {counts.documents} documents, {counts.passages} passages")
    if missing:
        print(f"not in the index: {', '.join(missing)}", file=sys.stderr)
        return 1
    return 0


class IndexSummary(msgspec.Struct, frozen=True, kw_only=True):
    """What ``poshuk stats`` reports about an index folder (``indexer.pipeline.IndexReport`` is one run's)."""

    version: str
    model: str
    backend: str
    dimension: int
    documents: int
    passages: int
    languages: dict[str, int]
    disk_bytes: int
    kept_versions: list[str]


def index_summary(index_dir: Path, *, approximate_above: int = DEFAULT_APPROXIMATE_ABOVE) -> IndexSummary:
    """Read an index folder's size and make-up (read-only)."""
    import sqlite3

    from poshuk.index import Index

    index = Index.open(index_dir, approximate_above=approximate_above)
    try:
        manifest, counts, folder = index.manifest, index.counts(), index.folder
    finally:
        index.close()
    uri = (folder / "meta.sqlite").resolve().as_uri() + "?mode=ro"
    with contextlib.closing(sqlite3.connect(uri, uri=True)) as conn:
        rows = conn.execute("SELECT coalesce(lang, '?'), count(*) FROM documents GROUP BY 1 ORDER BY 2 DESC").fetchall()
    versions = sorted(p.name for p in (index_dir / "versions").glob("v*") if p.is_dir())
    return IndexSummary(
        version=manifest.version,
        model=manifest.model.name,
        backend=manifest.model.backend,
        dimension=manifest.model.dimension,
        documents=counts.documents,
        passages=counts.passages,
        languages={str(lang): int(n) for lang, n in rows},
        disk_bytes=sum(p.stat().st_size for p in index_dir.rglob("*") if p.is_file()),
        kept_versions=versions,
    )


def _cmd_stats(args: argparse.Namespace) -> int:
    report = index_summary(args.index, approximate_above=settings_from(args).approximate_above)
    if args.json:
        sys.stdout.write(msgspec.json.format(msgspec.json.encode(report)).decode() + "\n")
        return 0
    langs = ", ".join(f"{lang} {n}" for lang, n in report.languages.items()) or "none"
    print(f"version     {report.version} (kept: {', '.join(report.kept_versions)})")
    print(f"model       {report.model} ({report.backend}, {report.dimension} dimensions)")
    print(f"documents   {report.documents}")
    print(f"passages    {report.passages}")
    print(f"languages   {len(report.languages)}: {langs}")
    print(f"disk        {report.disk_bytes / 1_048_576:.1f} MiB ({report.disk_bytes} bytes)")
    return 0


def _index_arguments(index: argparse.ArgumentParser) -> None:
    index.add_argument(
        "paths", nargs="*", type=Path, metavar="PATH", help="files or folders to read (none: re-shard an archive)"
    )
    index.add_argument("--index", type=Path, required=True, help="index folder (created if missing)")
    index.add_argument("--model", help="model name, sentence-transformers id or local folder")
    index.add_argument("--strict", action="store_true", help="stop at the first bad record, changing nothing")
    index.add_argument(
        "--rebuild",
        action="store_true",
        help="build a new version from these sources only (plus what is written to the live index meanwhile), "
        "then swap it in",
    )
    index.add_argument(
        "--shards",
        type=int,
        metavar="N",
        help="a sharded archive: index into DIR/staging, then split it into N shards that answer exactly as "
        "one index. Again over an archive (PATH optional): the new shards replace the old at once, nothing is "
        "encoded again, and every write the shards took is carried over (--rebuild --shards with PATH is refused "
        "then: it would lose them). Without --shards, an archive is written through its shards",
    )
    ray = index.add_argument_group("encoding on Ray (the ray extra)")
    ray.add_argument(
        "--ray",
        metavar="ADDRESS",
        help="encode on a Ray cluster: local (start Ray on this machine), auto (inside `ray job submit`) or the "
        "cluster's address; the index is the one a local run builds",
    )
    ray.add_argument("--encoder-actors", type=int, metavar="K", help="most encoder actors at once (default 2)")
    ray.add_argument(
        "--cpus-per-actor", type=float, metavar="C", help="CPUs of each actor, also its encoder threads (default 1)"
    )
    ray.add_argument(
        "--gpus-per-actor",
        type=float,
        metavar="G",
        help="GPUs of each actor (default 0; needs POSHUK_ENCODER=torch and POSHUK_DEVICE=cuda)",
    )
    index.add_argument(
        "--url-prefix",
        metavar="URL",
        help="where the files are published: a PDF (or .txt/.md/.html) without a url of its own gets URL + its "
        "path under the folder given (or its name), so hits link to it, a PDF's at the page",
    )
    index.add_argument("--no-progress", action="store_true", help="no progress bars")
    index.set_defaults(func=_cmd_index, check=_check_index)


def _delete_arguments(remove: argparse.ArgumentParser) -> None:
    remove.add_argument("ids", nargs="+", metavar="ID", help="article ids")
    remove.add_argument("--index", type=Path, required=True, help="index folder")
    remove.set_defaults(func=_cmd_delete)


def _stats_arguments(stats: argparse.ArgumentParser) -> None:
    stats.add_argument("--index", type=Path, required=True, help="index folder")
    stats.add_argument("--json", action="store_true", help="print the report as JSON")
    stats.set_defaults(func=_cmd_stats)


COMMANDS = (
    Command(
        "index",
        "Index articles (JSONL, .txt, .md, .html, folders).",
        "poshuk index news.jsonl --index ./idx",
        _index_arguments,
    ),
    Command("delete", "Delete articles from an index.", "poshuk delete uk-001 uk-002 --index ./idx", _delete_arguments),
    Command(
        "stats", "Show what an index holds and how large it is.", "poshuk stats --index ./idx --json", _stats_arguments
    ),
)
