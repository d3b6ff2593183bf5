"""Serve a sharded archive on a Ray started here, with the HashEncoder, until stdin closes.

A script, not a fixture: Ray wants the main thread and starts processes that outlive a test that
fails, so the test runs this in a process of its own. It serves writes from the keys in
``POSHUK_AUTH_KEYS``. It prints one JSON line once the deployments are up (the app may still be
loading: wait for ``/readyz``), then serves until its stdin closes, SIGTERM, or ``LIFETIME_S`` (a
watchdog: a test that died must not leave Ray running), and stops Serve and Ray before it exits.

    python -m tests.support.ray_serving INDEX PORT SHARD_TIMEOUT_S
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import tempfile
import threading
from pathlib import Path

from poshuk.settings import load_settings

LIFETIME_S = 420.0
DIMENSION = 64  # HashEncoder()'s, which built the test's archive


def main(index: str, port: str, shard_timeout_s: str) -> None:
    import ray
    from ray import serve

    from service.ray_serving import deploy, descendants, stop_leftovers

    stop = threading.Event()

    def until_stdin_closes() -> None:
        sys.stdin.read()
        stop.set()

    threading.Thread(target=until_stdin_closes, daemon=True).start()
    settings = load_settings(
        env={
            "POSHUK_HOME": os.environ.get("POSHUK_HOME", str(Path(index).parent / "home")),
            "POSHUK_SERVICE_HOST": "127.0.0.1",
            "POSHUK_SERVICE_PORT": port,
            "POSHUK_SERVICE_SHARD_TIMEOUT_S": shard_timeout_s,
            "POSHUK_SERVICE_RATE_LIMIT_BURST": "100000",
            "POSHUK_SERVICE_CLIENT_TIME_SHARE": "0",
            **{k: v for k, v in os.environ.items() if k in ("POSHUK_AUTH_KEYS", "POSHUK_SERVICE_REQUEST_TIMEOUT_S")},
        }
    )
    temp = tempfile.mkdtemp(prefix="rs-", dir="/tmp")  # short: Ray's socket paths have a length limit
    ray.init(
        num_cpus=6,
        include_dashboard=False,
        logging_level=logging.WARNING,
        log_to_driver=False,
        _temp_dir=temp,
        _node_ip_address="127.0.0.1",
    )
    signal.signal(signal.SIGTERM, lambda *_: stop.set())  # after ray.init, whose own handler kills at once
    started = descendants(os.getpid())
    try:
        deploy(Path(index), settings, encoder_dimension=DIMENSION)
        print(json.dumps({"deployed": True, "temp": temp}), flush=True)
        stop.wait(LIFETIME_S)
    finally:
        started += descendants(os.getpid())
        try:
            serve.shutdown()  # type: ignore[no-untyped-call]
        finally:
            ray.shutdown()
            stop_leftovers(sorted(set(started)))


if __name__ == "__main__":
    main(*sys.argv[1:4])
