"""A real ``poshuk serve`` process for the e2e and browser tests: start on a free port, wait, stop.

The server runs as a serving install would (``poshuk_without_model_extra``): torch and the rest
of the ``model`` extra cannot be imported, so every test through it also checks that serving
needs none of them.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.support.processes import cli_env, poshuk_without_model_extra

READY_TIMEOUT = 120.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    base_url: str
    log: Path

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")


ONE_BUSY_CLIENT: Mapping[str, str] = {
    "POSHUK_SERVICE_RATE_LIMIT_BURST": "100000",
    "POSHUK_SERVICE_CLIENT_TIME_SHARE": "0",
}
"""Settings for a server that one test module drives from one address, request after request.

The default limits (a burst of 30, 0.15 s of server time a second) are what people get, and a
module's dozens of back-to-back requests pass them at a speed that depends on the machine (CI got
429s where this machine did not); the limits have their own tests (test_write_api, tests/hostile).
"""


def start_server(
    index_dir: Path,
    log: Path,
    env: Mapping[str, str] | None = None,
    *,
    wait_for: str = "/readyz",
    args: Sequence[str] = (),
) -> Server:
    """Start ``poshuk serve`` on a free port and wait until ``wait_for`` (``/readyz``) answers 200.

    ``env`` adds variables (``POSHUK_SERVICE_...`` settings) to the server's environment; ``args``
    adds flags (``--read-only``).
    """
    for _attempt in range(3):  # another process may take the free port before the server binds it
        port = free_port()
        with log.open("wb") as out:
            process = subprocess.Popen(
                poshuk_without_model_extra(
                    "serve", "--index", str(index_dir), "--host", "127.0.0.1", "--port", str(port), *args
                ),
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**cli_env(), **(env or {})},
            )
        server = Server(process, f"http://127.0.0.1:{port}", log)
        deadline = time.monotonic() + READY_TIMEOUT
        with httpx.Client(base_url=server.base_url, timeout=5.0) as client:
            while time.monotonic() < deadline:
                if process.poll() is not None:
                    break
                try:
                    if client.get(wait_for).status_code == 200:
                        return server
                except httpx.TransportError:
                    pass
                time.sleep(0.25)
        if process.poll() is None:
            process.kill()
            process.wait()
            pytest.fail(f"server not ready after {READY_TIMEOUT:.0f} s:\n{server.output()}")
        if "address already in use" not in server.output().casefold():
            pytest.fail(f"server exited with {process.returncode}:\n{server.output()}")
    pytest.fail("no free port could be bound")


def stop_server(server: Server) -> None:
    """SIGINT, as Ctrl-C would: the server must stop within 30 s with exit code 0."""
    server.process.send_signal(signal.SIGINT)
    try:
        code = server.process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()
        pytest.fail(f"server did not stop on SIGINT:\n{server.output()}")
    assert code == 0, server.output()
