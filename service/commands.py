"""The service's ``poshuk`` commands: ``serve`` and ``key new``."""

from __future__ import annotations

import argparse
from pathlib import Path

from poshuk import commands
from poshuk.commands import Command, settings_from


def _cmd_serve(args: argparse.Namespace) -> int:
    from service.server import serve

    commands.quiet_model_loading()
    if args.ray is not None:
        from service.server import serve_on_ray

        serve_on_ray(args.index, settings_from(args), args.ray)
        return 0
    serve(args.index, settings_from(args))
    return 0


def _cmd_key_new(args: argparse.Namespace) -> int:
    from service.auth import new_key

    key, digest = new_key()
    print(key)
    print(f'# give the key to the client; put this under [auth] in the settings file:\nkeys = ["{digest}"]')
    return 0


def _serve_arguments(serve: argparse.ArgumentParser) -> None:
    serve.add_argument("--index", type=Path, required=True, help="index folder")
    serve.add_argument("--host", help="bind address (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="TCP port (default 8000)")
    serve.add_argument("--model", help="model name, sentence-transformers id or local folder")
    serve.add_argument(
        "--read-only",
        action="store_true",
        default=None,
        help="change no file in the index folder (a read-only mount): writes get 405 (service.read_only)",
    )
    serve.add_argument(
        "--ray",
        metavar="ADDRESS",
        help="serve a sharded archive on Ray Serve: local (start Ray on this machine) or the cluster's address "
        "(the ray extra): a deployment per shard, and one writer unless --read-only",
    )
    serve.set_defaults(func=_cmd_serve)


def _key_arguments(key: argparse.ArgumentParser) -> None:
    key_sub = key.add_subparsers(dest="key_command", required=True, metavar="ACTION")
    key_new = key_sub.add_parser("new", help="Print a fresh random key and the settings line with its hash.")
    key_new.set_defaults(func=_cmd_key_new)


COMMANDS = (
    Command("serve", "Serve the HTTP API for an index.", "poshuk serve --index ./idx --port 8000", _serve_arguments),
    Command("key", "Manage API keys for writing over HTTP.", "poshuk key new", _key_arguments),
)
