"""``python -m benchmarks indexing``: passages per second of each encoder backend and of txtai.

The same real passages (the first ``--passages`` of the unlp2026 and bruk-press corpora,
chunked by poshuk, title context included) are encoded by torch fp32, ONNX fp32, ONNX int8
and txtai's indexing (torch, the same model folder), one after another in this process.
Each backend encodes a few passages first to warm up. FLOPs per passage are counted from the
model's shape and the passages' real token counts (the matrix products of a BERT encoder;
embeddings, norms and activations are left out), and compared with this CPU's measured
fp32 matrix-product peak (numpy's BLAS on a 2048³ product, all cores).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

from benchmarks.datasets import SETS
from benchmarks.machine import Machine, machine, versions

BACKENDS = ("torch", "onnx-fp32", "onnx-int8")


class Options(msgspec.Struct, frozen=True, kw_only=True):
    data: Path
    work: Path
    passages: int = 512
    systems: tuple[str, ...] = (*BACKENDS, "txtai")
    command: tuple[str, ...] = ()


class Throughput(msgspec.Struct, frozen=True, kw_only=True):
    system: str
    passages: int
    seconds: float
    passages_per_s: float
    gflops_per_s: float
    share_of_peak: float  # of the measured fp32 matrix-product peak


class IndexingReport(msgspec.Struct, frozen=True, kw_only=True):
    command: str
    passages: int
    mean_tokens: float
    gflop_per_passage: float
    peak_fp32_gflops: float
    results: list[Throughput]
    machine: Machine
    versions: dict[str, str | None]
    notes: list[str] = []


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def measured_peak_gflops(size: int = 2048, repeats: int = 5) -> float:
    """Best fp32 matrix-product rate of numpy's BLAS on this machine."""
    a = np.random.default_rng(0).standard_normal((size, size), dtype=np.float32)
    b = np.random.default_rng(1).standard_normal((size, size), dtype=np.float32)
    a @ b  # warm-up
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - started)
    return 2 * size**3 / best / 1e9


def encoder_flops(tokens: list[int], *, layers: int, hidden: int, intermediate: int) -> float:
    """FLOPs of a BERT encoder's matrix products over sequences of these token counts."""
    total = 0.0
    for t in tokens:
        projections = 4 * hidden * hidden + 2 * hidden * intermediate  # q, k, v, out; two FFN layers
        attention = 2 * t * hidden  # scores and weighted sum
        total += 2 * layers * t * (projections + attention)
    return total


def run(opts: Options) -> IndexingReport | None:
    from benchmarks.workspace import Workspace
    from poshuk import load_settings
    from poshuk.models import load_encoder

    needed = ("unlp2026", "bruk-press")
    missing = [SETS[n][0] for n in needed if not (opts.data / SETS[n][0]).is_dir()]
    if missing:
        print(f"skipped: evaluation data not found under {opts.data} ({', '.join(missing)})")
        return None
    host = machine()
    settings = load_settings(overrides={"encoder": "onnx-fp32"})
    ws = Workspace(opts.work, settings, max_k=100)
    passages = []
    for name in needed:
        _, loader = SETS[name]
        passages += ws.passages(loader(opts.data))[: opts.passages // len(needed)]
    texts = [p.embed_text for p in passages]
    config = _model_config(ws.model_folder)
    tokens = [ws.encoder.count_tokens("passage: " + t) + 2 for t in texts]
    shape = {"layers": config["num_hidden_layers"], "hidden": config["hidden_size"]}
    flops = encoder_flops(tokens, **shape, intermediate=config["intermediate_size"])
    peak = measured_peak_gflops()
    _log(f"{len(texts)} passages, {np.mean(tokens):.0f} tokens on average; fp32 peak {peak:.0f} GFLOP/s")
    results: list[Throughput] = []
    notes: list[str] = []

    def record(system: str, seconds: float) -> None:
        rate = flops / seconds / 1e9
        results.append(
            Throughput(
                system=system,
                passages=len(texts),
                seconds=round(seconds, 2),
                passages_per_s=round(len(texts) / seconds, 1),
                gflops_per_s=round(rate, 1),
                share_of_peak=round(rate / peak, 3),
            )
        )
        _log(f"{system}: {results[-1]}")

    for backend in BACKENDS:
        if backend not in opts.systems:
            continue
        encoder = load_encoder(msgspec.structs.replace(settings, encoder=backend))
        encoder.encode_passages(texts[:8])
        started = time.perf_counter()
        encoder.encode_passages(texts)
        record(backend, time.perf_counter() - started)
        del encoder
    if "txtai" in opts.systems:
        seconds = _txtai_seconds(ws, texts, settings.batch_size)
        if isinstance(seconds, str):
            notes.append(seconds)
        else:
            record("txtai (torch)", seconds)
    return IndexingReport(
        command=" ".join(opts.command),
        passages=len(texts),
        mean_tokens=round(float(np.mean(tokens)), 1),
        gflop_per_passage=round(flops / len(texts) / 1e9, 2),
        peak_fp32_gflops=round(peak, 1),
        results=results,
        machine=host,
        versions=versions(),
        notes=notes,
    )


def _model_config(folder: Path) -> dict[str, Any]:
    for path in (folder / "config.json", *folder.glob("*/config.json")):
        if path.is_file():
            config: dict[str, Any] = msgspec.json.decode(path.read_bytes())
            if "hidden_size" in config:
                return config
    raise FileNotFoundError(f"no transformer config.json under {folder}")


def _txtai_seconds(ws: Any, texts: list[str], batch: int) -> float | str:
    try:
        from txtai import Embeddings
    except ImportError as exc:
        return f"txtai not measured: not installed ({exc})"
    from benchmarks.systems.txtai_system import embeddings_config

    emb = Embeddings(embeddings_config(ws.model_folder, batch))
    emb.index([(i, t, None) for i, t in enumerate(texts[:8])])  # warm-up (loads the model)
    started = time.perf_counter()
    emb.index([(i, t, None) for i, t in enumerate(texts)])
    seconds = time.perf_counter() - started
    emb.close()
    return seconds


def render(report: IndexingReport) -> str:
    m = report.machine
    lines = [
        "# Indexing throughput (encoding passages)",
        "",
        f"`{report.command}`: {report.passages} real passages (unlp2026 + bruk-press, poshuk's chunks with title "
        f"context), {report.mean_tokens:.0f} tokens on average, {report.gflop_per_passage} GFLOP per passage "
        f"(matrix products). This CPU's measured fp32 matrix-product peak: {report.peak_fp32_gflops} GFLOP/s. "
        f"{m.cpu_model}, {m.usable_cores} cores, load {m.load_avg[0]:.1f} at the start, {m.date:%Y-%m-%d}.",
        "",
        "| system | passages/s | seconds | GFLOP/s | share of fp32 peak |",
        "| --- | --- | --- | --- | --- |",
    ]
    for r in report.results:
        lines.append(f"| {r.system} | {r.passages_per_s} | {r.seconds} | {r.gflops_per_s} | {r.share_of_peak:.0%} |")
    if report.notes:
        lines += ["", *[f"- {n}" for n in report.notes]]
    return "\n".join(lines) + "\n"
