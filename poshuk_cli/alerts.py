"""``poshuk alerts``: saved searches on an index folder from the command line (``poshuk.alerts``).

Alerts saved here belong to no API key ("local"); the command line sees and deletes every
alert of the index, whoever saved it. ``poshuk index`` matches them against what it wrote, and
a running ``poshuk serve`` does within a second of any write (and sends their webhooks).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec

from poshuk import commands
from poshuk.commands import Command, settings_from
from poshuk.documents import printable
from poshuk.wire import MODES, Alert
from poshuk_cli.search import add_filter_arguments, filters_from

if TYPE_CHECKING:
    from collections.abc import Callable

    from poshuk.alerts import Alerts
    from poshuk.encoder import Encoder
    from poshuk.search import Searcher


def _alerts(
    args: argparse.Namespace,
    *,
    with_model: bool = False,
    encoder: Encoder | None = None,
    searcher: Callable[[], Searcher] | None = None,
) -> Alerts:
    from poshuk.alerts import Alerts

    settings = settings_from(args)
    if with_model and encoder is None:
        from poshuk.models import load_encoder

        commands.quiet_model_loading()
        encoder = load_encoder(settings)
    return Alerts(
        args.index, encoder, settings.alerts, max_query_chars=settings.service.max_query_chars, searcher=searcher
    )


def _line(alert: Alert) -> str:
    hook = f"  webhook {alert.webhook}" if alert.webhook else ""
    return (
        f"{alert.id}  {alert.mode}  threshold {alert.threshold}  {alert.matches} match(es)  "
        f"{printable(alert.query)}{hook}\n"
    )


def _json(value: object) -> None:
    sys.stdout.write(msgspec.json.format(msgspec.json.encode(value)).decode() + "\n")


def _cmd_add(args: argparse.Namespace) -> int:
    filters = filters_from(args)
    searcher: Searcher | None = None
    encoder: Encoder | None = None
    if args.top_k is not None:  # the alert's own search ranks the archive
        from poshuk.search import Searcher

        commands.quiet_model_loading()
        searcher = Searcher.open(args.index, settings_from(args))
        encoder = searcher.encoder
    ranked_by = searcher
    alerts = _alerts(
        args,
        with_model=args.mode != "lexical",
        encoder=encoder,
        searcher=None if ranked_by is None else lambda: ranked_by,
    )
    try:
        alert = alerts.create(
            args.query,
            mode=args.mode,
            filters=filters,
            threshold=args.threshold,
            webhook=args.webhook,
            top_k=args.top_k,
        )
    finally:
        alerts.close()
        if searcher is not None:
            searcher.close()
    if args.json:
        _json(alert)
    else:
        sys.stdout.write(_line(alert))
    return 0


def _cmd_list(args: argparse.Namespace) -> int:
    alerts = _alerts(args)
    try:
        saved = alerts.alerts()
    finally:
        alerts.close()
    if args.json:
        _json(saved)
    else:
        sys.stdout.write("".join(_line(a) for a in saved) or "no saved searches\n")
    return 0


def _cmd_matches(args: argparse.Namespace) -> int:
    alerts = _alerts(args)
    try:
        alerts.match_new_writes()  # what was written since the last pass, whoever wrote it
        found = alerts.matches(args.id, limit=args.limit, newest=args.newest)
    finally:
        alerts.close()
    if args.json:
        _json(found)
        return 0
    for match in found.matches:
        sys.stdout.write(
            f"{match.score:.3f}  {match.matched_by}  {match.doc_id}  {printable(match.title)}  "
            f"(matched {match.matched_at:%Y-%m-%d %H:%M})\n"
        )
    if not found.matches:
        sys.stdout.write("no matches yet\n")
    return 0


def _cmd_delete(args: argparse.Namespace) -> int:
    alerts = _alerts(args)
    try:
        alerts.delete(args.id)
    finally:
        alerts.close()
    print(f"deleted alert {args.id}")
    return 0


def _threshold(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number between 0 and 1, got {value!r}") from None
    if not 0.0 <= number <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {value}")
    return number


def _top_k(value: str) -> int:
    from poshuk.alerts import MAX_TOP_K

    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {value!r}") from None
    if not 1 <= number <= MAX_TOP_K:
        raise argparse.ArgumentTypeError(f"must be between 1 and {MAX_TOP_K}, got {number}")
    return number


def _limit(value: str) -> int:
    from poshuk.alerts import MAX_MATCHES

    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {value!r}") from None
    if not 1 <= number <= MAX_MATCHES:
        raise argparse.ArgumentTypeError(f"must be between 1 and {MAX_MATCHES}, got {number}")
    return number


def _check_add(args: argparse.Namespace) -> None:
    filters_from(args)  # bad dates exit 2, before the model loads


def _alerts_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="alerts_command", required=True, metavar="ACTION")
    add = actions.add_parser("add", help="Save a search; articles written from now on that match it are its matches.")
    add.add_argument("query", help="what to watch for, in Ukrainian or English")
    add.add_argument(
        "--mode",
        choices=MODES,
        default="hybrid",
        help="match by meaning (dense), by every query word (lexical), or either (hybrid, default)",
    )
    add.add_argument(
        "--threshold",
        type=_threshold,
        metavar="COSINE",
        help="meaning needed to match, 0..1 (default: alerts.threshold)",
    )
    add.add_argument(
        "--top-k",
        type=_top_k,
        metavar="K",
        help="instead of --threshold: match what would rank among the K best articles of the alert's own search now",
    )
    add.add_argument("--webhook", metavar="URL", help="POST each match here (a running poshuk serve sends it)")
    add_filter_arguments(add)
    add.set_defaults(func=_cmd_add, check=_check_add)
    listed = actions.add_parser("list", help="List the index's saved searches, newest first.")
    listed.set_defaults(func=_cmd_list)
    matches = actions.add_parser("matches", help="An alert's matches, best first.")
    matches.add_argument("id", help="the alert's id")
    matches.add_argument("--limit", type=_limit, default=20, metavar="N", help="at most N (default 20, at most 100)")
    matches.add_argument("--newest", action="store_true", help="latest matches first")
    matches.set_defaults(func=_cmd_matches)
    deleted = actions.add_parser("delete", help="Delete an alert with its matches.")
    deleted.add_argument("id", help="the alert's id")
    deleted.set_defaults(func=_cmd_delete)
    for action in (add, listed, matches, deleted):
        action.add_argument("--index", type=Path, required=True, help="index folder")
        action.add_argument("--config", type=Path, default=argparse.SUPPRESS, help="TOML settings file")
        if action is not deleted:
            action.add_argument("--json", action="store_true", help="print JSON")
    add.add_argument("--model", help="model name, sentence-transformers id or local folder")


ALERTS = Command(
    "alerts",
    "Saved searches that alert on new articles: add, list, matches, delete.",
    'poshuk alerts add "North Korea ammunition deliveries" --index ./idx',
    _alerts_arguments,
)
