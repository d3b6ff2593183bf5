"""The poshuk app for ASGI servers other than ``poshuk serve``'s uvicorn (the latency benchmark
compares uvicorn and granian on it): ``granian --interface asgi --factory benchmarks.asgi_factory:app``.

The index folder comes from ``POSHUK_BENCH_INDEX``; settings as usual from ``POSHUK_*``.
"""

from __future__ import annotations

import os
from pathlib import Path

from litestar import Litestar

from poshuk import load_settings
from service.app import create_app


def app() -> Litestar:
    return create_app(load_settings(), Path(os.environ["POSHUK_BENCH_INDEX"]))
