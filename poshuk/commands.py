"""What an app needs to add a command to ``poshuk`` without depending on the command line.

The ``poshuk`` command (``poshuk_cli``) sits above the apps and composes the commands each
one declares (``indexer.commands``, ``service.commands``) as ``Command`` values. They live
in the core because both apps and the CLI share them, and the core is the one layer every
other imports: a ``Command`` knows nothing of argparse's top-level parser or of the others.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from poshuk.settings import Settings, load_settings


@dataclass(frozen=True)
class Command:
    """One ``poshuk`` command: its name, help line, example, and what adds its arguments.

    ``arguments`` receives the command's own subparser (``--config`` already added) and
    sets ``func`` (``args -> exit code``) and, optionally, ``check`` (``args -> None``,
    raising ``InputError`` for a mistake that should exit 2 before any slow work).
    """

    name: str
    help: str
    example: str
    arguments: Callable[[argparse.ArgumentParser], None]


def settings_from(args: argparse.Namespace) -> Settings:
    """The effective settings: the file (``--config`` or ``$POSHUK_CONFIG``) with the flags on top."""
    overrides: dict[str, Any] = {"model": getattr(args, "model", None)}
    service = {k: getattr(args, k, None) for k in ("host", "port", "read_only")}
    if any(v is not None for v in service.values()):
        overrides["service"] = {k: v for k, v in service.items() if v is not None}
    return load_settings(args.config, overrides=overrides)


def quiet_model_loading() -> None:
    """transformers draws a progress bar on every model load; a CLI's stderr is for messages.

    A serving install has no transformers (nor torch): then there is nothing to quieten.
    """
    try:
        from transformers.utils import logging as transformers_logging
    except ImportError:
        return
    transformers_logging.disable_progress_bar()  # type: ignore[no-untyped-call]  # transformers ships it unannotated


def say(message: str) -> None:
    """A progress or status line for the person at the terminal (stderr, so stdout stays the result)."""
    print(message, file=sys.stderr)
