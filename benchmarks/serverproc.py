"""A benchmarked server process: start it on a free port, wait until it answers, read its CPU and memory.

CPU and memory are read from /proc for the process and every descendant (granian and
uvicorn's reloaders serve from child processes), so they count the server's whole work.
"""

from __future__ import annotations

import os
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import msgspec

READY_TIMEOUT_S = 600.0
_TICK_S = 1 / os.sysconf("SC_CLK_TCK")


class Server(msgspec.Struct, frozen=True, kw_only=True):
    base: str  # http://127.0.0.1:PORT
    pid: int
    ready_s: float  # from process start to the first successful answer


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def tree(pid: int) -> list[int]:
    """``pid`` and its descendants (a process that ends during the walk is left out)."""
    out = [pid]
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except FileNotFoundError:
        return out
    for task in tasks:
        try:
            children = (task / "children").read_text().split()
        except FileNotFoundError:
            continue
        for child in children:
            out += tree(int(child))
    return out


def _read(path: str) -> str:
    """A /proc file, or "" where its process has ended (Ray's workers come and go)."""
    try:
        return Path(path).read_text()
    except (FileNotFoundError, ProcessLookupError):
        return ""


def cpu_seconds(pid: int) -> float:
    """utime + stime of the process tree (fields 14 and 15 of /proc/PID/stat), in seconds."""
    ticks = 0
    for member in tree(pid):
        stat = _read(f"/proc/{member}/stat")
        if stat:
            fields = stat[stat.rindex(")") + 2 :].split()  # the name in parentheses may hold spaces
            ticks += int(fields[11]) + int(fields[12])
    return ticks * _TICK_S


def settled_cpu_seconds(
    pid: int, *, quiet_s: float = 0.3, limit_s: float = 60.0, background_per_s: float = 0.0
) -> float:
    """``cpu_seconds`` once the server has finished the work still in flight (no tick for ``quiet_s``, or
    no more than twice ``background_per_s``, the CPU seconds per second an idle tree spends anyway: Ray's
    controller and raylet never stop ticking).

    A load run ends with requests open; the server still answers them, and that CPU belongs to
    the requests sent, so it is waited for rather than cut off.
    """
    deadline = time.monotonic() + limit_s
    last = cpu_seconds(pid)
    while time.monotonic() < deadline:
        time.sleep(quiet_s)
        now = cpu_seconds(pid)
        if now - last < _TICK_S / 2 + 2 * background_per_s * quiet_s:
            return now
        last = now
    return last


def background_cpu_per_s(pid: int, seconds: float = 3.0) -> float:
    """CPU seconds per second the process tree spends while no request comes."""
    before, started = cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)
    return (cpu_seconds(pid) - before) / (time.monotonic() - started)


def rss_mb(pid: int, field: str = "VmRSS") -> float:
    """``field`` of /proc/PID/status summed over the process tree, in MB."""
    total = 0.0
    for member in tree(pid):
        for line in _read(f"/proc/{member}/status").splitlines():
            if line.startswith(f"{field}:"):
                total += int(line.split()[1]) / 1024
    return total


def pss_mb(pid: int) -> float:
    """Proportional set size of the process tree, in MB: pages shared between its processes (Ray's
    workers map the same libraries) counted once in all, where the sum of RSS counts them in each."""
    total = 0.0
    for member in tree(pid):
        for line in _read(f"/proc/{member}/smaps_rollup").splitlines():
            if line.startswith("Pss:"):
                total += int(line.split()[1]) / 1024
    return total


def torch_loaded(pid: int) -> bool:
    return any("libtorch" in _read(f"/proc/{member}/maps") for member in tree(pid))


@contextmanager
def serve(argv: list[str], env: dict[str, str], probe: Callable[[httpx.Client], bool]) -> Iterator[Server]:
    """Start ``argv`` (``{port}`` replaced by a free port) and wait until ``probe`` passes."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    started = time.perf_counter()
    # stderr to a file, not a pipe: a chatty server must never block on a full pipe
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(
            [part.replace("{port}", str(port)) for part in argv], env=env, stdout=subprocess.DEVNULL, stderr=log
        )
        try:
            with httpx.Client(base_url=base, timeout=60) as client:
                while not _ready(client, probe):
                    if process.poll() is not None:
                        log.seek(0)
                        err = log.read().decode(errors="replace")[-2000:]
                        raise RuntimeError(f"{argv[0]} exited with {process.returncode}: {err}")
                    if time.perf_counter() - started > READY_TIMEOUT_S:
                        raise RuntimeError(f"{argv} not ready in {READY_TIMEOUT_S:.0f} s")
                    time.sleep(0.05)
            yield Server(base=base, pid=process.pid, ready_s=time.perf_counter() - started)
        finally:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _ready(client: httpx.Client, probe: Callable[[httpx.Client], bool]) -> bool:
    try:
        return probe(client)
    except httpx.TransportError:
        return False


def tagged(name: str, value: str) -> dict[int, str]:
    """Every process whose environment holds ``name=value``, by id, with its command name.

    A server started with a tag of its own passes it to whatever it starts, daemons and workers
    re-parented away from it included (Ray's), so this finds them where ``tree`` may not.
    """
    wanted = f"{name}={value}".encode()
    found: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if wanted in (entry / "environ").read_bytes().split(b"\0"):
                found[int(entry.name)] = (entry / "comm").read_text().strip()
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
    return found


def names(pids: list[int]) -> dict[str, int]:
    """How many of ``pids`` run each program: the first word of the command line (Ray's workers set it,
    e.g. ``ray::ServeReplica:poshuk:Shard-shard-000``), or the executable's name (with its script's for
    Python: ``python poshuk``, ``python log_monitor.py``)."""
    counts: dict[str, int] = {}
    for pid in pids:
        argv = _read(f"/proc/{pid}/cmdline").split("\0")
        first = argv[0].split(" ")[0]
        if not first:
            continue
        name = first if first.startswith("ray::") else Path(first).name
        script = next((arg for arg in argv[1:] if arg and not arg.startswith("-")), None)
        if name.startswith("python") and script and "-c" not in argv and "-m" not in argv:
            name = f"{name} {Path(script).name}"
        counts[name] = counts.get(name, 0) + 1
    return dict(sorted(counts.items()))
