"""Where a benchmark ran: CPU, cores, memory, OS, Python, date and package versions."""

from __future__ import annotations

import importlib.metadata
import os
import platform
from datetime import UTC, datetime
from pathlib import Path

import msgspec

PACKAGES = (
    "poshuk",
    "torch",
    "transformers",
    "sentence-transformers",
    "faiss-cpu",
    "numpy",
    "bm25s",
    "PyStemmer",
    "txtai",
    "ray",
)


class Machine(msgspec.Struct, frozen=True, kw_only=True):
    cpu_model: str
    cores: int
    usable_cores: int
    ram_gib: float
    os: str
    python: str
    date: datetime
    load_avg: tuple[float, float, float] = (0.0, 0.0, 0.0)  # 1/5/15-minute load when measured


def _read(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def _field(text: str, name: str) -> str | None:
    for line in text.splitlines():
        key, sep, value = line.partition(":") if ":" in line else line.partition("=")
        if sep and key.strip() == name:
            return value.strip().strip('"')
    return None


def machine() -> Machine:
    meminfo = _field(_read("/proc/meminfo"), "MemTotal") or "0 kB"
    os_name = _field(_read("/etc/os-release"), "PRETTY_NAME") or platform.system()
    return Machine(
        cpu_model=_field(_read("/proc/cpuinfo"), "model name") or platform.processor() or "unknown",
        cores=os.cpu_count() or 0,
        usable_cores=len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 0),
        ram_gib=round(int(meminfo.split()[0]) / 1024**2, 1),
        os=f"{os_name} ({platform.system()} {platform.release()}, {platform.machine()})",
        python=platform.python_version(),
        date=datetime.now(UTC).replace(microsecond=0),
        load_avg=os.getloadavg() if hasattr(os, "getloadavg") else (0.0, 0.0, 0.0),
    )


def versions() -> dict[str, str | None]:
    """Installed versions of the packages that decide the numbers (None: not installed)."""
    out: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out
