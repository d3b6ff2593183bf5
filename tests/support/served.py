"""A server process whose writes a test kills mid-stream: started on a free port, its output in a log
file, ready when ``/readyz`` answers 200 (the live-write and sharded-write kill -9 tests)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

import httpx
import pytest

from tests.support.serving import free_port


def server_env(config: Path) -> dict[str, str]:
    """This environment without POSHUK_* settings (POSHUK_HOME kept), reading ``config``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("POSHUK_") or k == "POSHUK_HOME"}
    env["PYTHONUNBUFFERED"] = "1"
    env["POSHUK_CONFIG"] = str(config)
    return env


class Served:
    """``command`` with ``{port}`` filled in, run until it is ready (or the test fails with its log)."""

    def __init__(
        self, command: Sequence[str], config: Path, log: Path, *, ready_s: float = 60.0, cwd: Path | None = None
    ) -> None:
        self.log = log
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        with log.open("ab") as out:
            self.process = subprocess.Popen(
                [part.format(port=self.port) for part in command],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=server_env(config),
                cwd=cwd,
            )
        deadline = time.monotonic() + ready_s
        with httpx.Client(base_url=self.base_url, timeout=5.0) as client:
            while time.monotonic() < deadline:
                assert self.process.poll() is None, self.log.read_text(errors="replace")
                try:
                    if client.get("/readyz").status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                time.sleep(0.1)
        self.kill()
        pytest.fail(f"server not ready:\n{self.log.read_text(errors='replace')}")

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        self.process.send_signal(signal.SIGINT)
        assert self.process.wait(timeout=60) == 0, self.log.read_text(errors="replace")
