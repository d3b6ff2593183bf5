"""``poshuk search``: the core's ``Searcher`` from the command line, as plain text or JSON."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec

from poshuk import commands
from poshuk.commands import Command, settings_from
from poshuk.documents import printable
from poshuk.errors import InvalidQueryError
from poshuk.wire import CANDIDATES, FACETS, MODES, SORTS, SearchResult

if TYPE_CHECKING:
    from poshuk.filters import Filters
    from poshuk.wire import Span


def _check_search(args: argparse.Namespace) -> None:
    """Build the search's filters from its flags; runs right after parsing, so mistakes exit 2."""
    args.filters = filters_from(args)
    from poshuk.ordering import Ordering

    try:
        Ordering(sort=args.sort, recency_half_life_days=args.recency).checked()
    except InvalidQueryError as exc:  # in the flags' own names
        raise InvalidQueryError(
            str(exc).replace("recency_half_life_days", "--recency").replace("sort=", "--sort ")
        ) from None


def _cmd_search(args: argparse.Namespace) -> int:
    from poshuk.search import Searcher

    settings = settings_from(args)
    commands.quiet_model_loading()
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
            sort=args.sort,
            recency_half_life_days=args.recency,
            facets=args.facet or (),
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
        date += f" p. {hit.page}" if hit.page is not None else ""
        more = f" (+{hit.other_matches} more in this article)" if hit.other_matches else ""
        if hit.other_pages:  # a long document, collapsed: where else it matched
            more = f" (+{hit.other_matches} more, also on p. {', '.join(str(n) for n in hit.other_pages)})"
        # printable(): indexed text reaches a terminal, which must show it, never obey it
        title, doc_id, text = printable(hit.title), printable(hit.doc_id), printable(hit.text)
        lines.append(f"{hit.rank:>2}. [{hit.score:.3f}] {title} ({doc_id}{date}){more}")
        lines.append(f"    {_marked(text, hit.highlights) if bold else text}")
    for name, buckets in result.facets.items():
        counts = ", ".join(f"{printable(b.value)} {b.count}" for b in buckets) or "none"
        lines.append(f"{name}: {counts}")
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


def add_filter_arguments(parser: argparse.ArgumentParser) -> None:
    """The filter flags of ``poshuk search`` (and ``poshuk alerts add``); ``filters_from`` reads them."""
    filters = parser.add_argument_group("filters (repeat a flag for several values)")
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


def filters_from(args: argparse.Namespace) -> Filters | None:
    """The ``Filters`` the filter flags ask for (None when none); bad values raise ``InvalidQueryError``."""
    from service.schemas import build_filters

    return build_filters(
        lang=args.lang,
        source=args.source,
        section=args.section,
        tags=args.tag,
        published_from=args.published_from,
        published_to=args.published_to,
        from_name="--from",
        to_name="--to",
    )


def _search_arguments(search: argparse.ArgumentParser) -> None:
    search.add_argument("query", help="natural-language query, Ukrainian or English")
    search.add_argument("--index", type=Path, required=True, help="index folder")
    search.add_argument("-k", type=int, default=10, help="number of hits (default 10)")
    search.add_argument(
        "--mode", choices=MODES, default="hybrid", help="meaning, words or both, fused (default hybrid)"
    )
    add_filter_arguments(search)
    search.add_argument("--collapse", action="store_true", help="each article once, with its other matches counted")
    search.add_argument("--dedupe", action="store_true", help="each story once (copies and translations grouped)")
    search.add_argument(
        "--sort",
        choices=SORTS,
        default="relevance",
        help="relevance (default), or newest/oldest: the most relevant passages (of the best 50, those scoring at "
        "least half the best) by their article's date",
    )
    search.add_argument(
        "--facet",
        action="append",
        choices=FACETS,
        help="count the search's articles by this (repeat for several); listed after the hits",
    )
    search.add_argument(
        "--recency",
        type=float,
        metavar="DAYS",
        help="relevance order with a recency boost: a score halves per DAYS of the article's age",
    )
    search.add_argument("--offset", type=_offset, default=0, metavar="N", help="skip the first N hits (paging)")
    search.add_argument("--no-highlight", action="store_true", help="do not compute where hits match")
    search.add_argument("--json", action="store_true", help="print the full result as JSON")
    search.add_argument("--model", help="model name, sentence-transformers id or local folder")
    search.set_defaults(func=_cmd_search, check=_check_search)


SEARCH = Command(
    "search",
    "Search an index from the command line.",
    'poshuk search "Кірбі" --index ./idx -k 5',
    _search_arguments,
)
