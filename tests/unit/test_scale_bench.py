"""The scale benchmark's skip path and a tiny end-to-end run on a fake vector cache."""

from __future__ import annotations

import contextlib
import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from benchmarks.__main__ import main
from benchmarks.scale import DIM


def test_scale_skips_without_the_vector_cache(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["scale", "--work", str(tmp_path), "--out", str(tmp_path / "out")]) == 0
    assert "skipping" in capsys.readouterr().out
    assert not (tmp_path / "out").exists()


def test_scale_tiny_run_writes_json_and_markdown(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((700, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    with contextlib.closing(sqlite3.connect(tmp_path / "vectors-0123-sentence-transformers.sqlite")) as db:
        db.execute("CREATE TABLE vectors (key TEXT PRIMARY KEY, vector BLOB NOT NULL)")
        db.executemany("INSERT INTO vectors VALUES (?, ?)", [(f"k{i}", v.tobytes()) for i, v in enumerate(vectors)])
        db.commit()
    out = tmp_path / "out"
    assert main(["scale", "--sizes", "3000", "--work", str(tmp_path), "--out", str(out)]) == 0
    result = json.loads((out / "scale.json").read_text())
    kinds = [v["kind"] for v in result["variants"]]
    assert kinds[0] == "IDMap2,Flat,IP" and kinds[1].startswith("IVF")
    flat, ivf = result["variants"]
    assert flat["searches"][0]["recall"] == 1.0 and 0 < ivf["searches"][0]["recall"] <= 1.0
    assert ivf["sweep"] and ivf["index_bytes"] < flat["index_bytes"]
    assert "| 3,000 |" in (out / "scale.md").read_text()
