"""Load from ``wrk``, Debian's compiled HTTP load generator, driven by ``wrk_requests.lua``.

The latency benchmark used to load the servers from Python threads on the same two cores,
which took CPU from the servers and understated the faster one (issue 14). ``wrk`` is a
small C program on epoll: one thread drives every connection. Each request is a line of a
prepared file of URL paths (distinct queries), and the Lua script's ``done`` prints one
JSON line that ``parse`` reads.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import urlencode

import msgspec

SCRIPT = Path(__file__).with_name("wrk_requests.lua")
MARKER = "WRK_RESULT "
MISSING = "wrk not found; install it with `make bench-tools`"


class WrkMissing(RuntimeError):
    """``wrk`` is not on PATH: the benchmark refuses to measure without it."""


class WrkResult(msgspec.Struct, frozen=True, kw_only=True):
    """What the Lua script's ``done`` reports for one run (times in ms, duration in s)."""

    requests: int  # completed (a response read)
    sent: int  # started, including those still open when the run ended
    duration_s: float
    connect: int
    read: int
    write: int
    timeout: int
    status: int  # wrk's own count: status >= 400
    non2xx: int  # the script's count: any status outside 200..299
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    max_ms: float

    @property
    def errors(self) -> int:
        """Failed requests: socket errors, timeouts and every non-2xx answer."""
        return self.connect + self.read + self.write + self.timeout + self.non2xx

    @property
    def qps(self) -> float:
        return self.requests / self.duration_s if self.duration_s > 0 else 0.0


def find_wrk() -> str:
    path = shutil.which("wrk")
    if path is None:
        raise WrkMissing(MISSING)
    return path


def wrk_version(wrk: str) -> str:
    """wrk's version line, without its copyright."""
    done = subprocess.run([wrk, "--version"], capture_output=True, text=True, check=False)
    return (done.stdout or done.stderr).splitlines()[0].split(" Copyright")[0].strip()


def parse(output: str) -> WrkResult:
    """The script's result line in wrk's standard output."""
    for line in output.splitlines():
        if line.startswith(MARKER):
            return msgspec.json.decode(line[len(MARKER) :], type=WrkResult)
    raise ValueError(f"no {MARKER.strip()} line in wrk's output: {output[-500:]!r}")


def request_path(route: str, params: dict[str, str | int]) -> str:
    """``route?params``, URL-encoded so that one request fits on one line."""
    return f"{route}?{urlencode(params)}"


def write_paths(file: Path, paths: Iterable[str]) -> int:
    """One request path per line; returns how many. A path with a line break or space would split a request."""
    lines = list(paths)
    bad = [p for p in lines if not p.startswith("/") or any(c.isspace() for c in p)]
    if bad or not lines:
        raise ValueError(f"request paths must be non-empty, start with / and hold no whitespace: {bad[:1]}")
    file.write_text("\n".join(lines) + "\n", encoding="ascii")
    return len(lines)


def run_wrk(
    base: str, paths_file: Path, *, connections: int, seconds: float, threads: int = 1, timeout_s: float = 60.0
) -> WrkResult:
    """Load ``base`` for ``seconds`` from ``connections`` connections (at most one wrk thread per connection)."""
    threads = max(1, min(threads, connections))
    argv = [
        find_wrk(),
        f"--threads={threads}",
        f"--connections={connections}",
        f"--duration={max(1, round(seconds))}s",
        f"--timeout={max(1, round(timeout_s))}s",
        f"--script={SCRIPT}",
        base,
        "--",
        str(paths_file),
        str(threads),
    ]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + timeout_s + 30, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"wrk exited with {done.returncode}: {done.stderr[-1000:]}")
    return parse(done.stdout)
