"""txtai over the scaled 100k-passage corpus, without re-embedding 100k passages with torch.

txtai's ``method: external`` takes a ``transform`` that turns texts into vectors.
``CachedVectors`` is that transform: a passage (txtai prepends the ``data`` instruction,
"passage: ") is looked up in the benchmark's vector cache by its text (the scaled corpus
repeats the recall sets' real passages, every one of them cached), and a query is encoded
with sentence-transformers' ``encode_query`` on the same model folder, exactly as txtai's
own ``sentence-transformers`` method does it on the unlp2026 index. txtai resolves the
transform by name in its API process, so the cache and model are named by environment
variables (``environment``). The index build checks the transform's vectors against
poshuk's (cosine >= 0.999), as ``TxtaiSystem`` does.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import math
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from benchmarks.datasets import BenchSet
from benchmarks.workspace import Workspace

PASSAGE = "passage: "
TRANSFORM = "benchmarks.txtai_external.CachedVectors"
_CACHE_ENV = "POSHUK_BENCH_VECTOR_CACHE"
_MODEL_ENV = "POSHUK_BENCH_MODEL"
_CHECK_QUERY = "How many air-raid alerts were there in Kyiv last night?"


class CachedVectors:
    """txtai ``transform``: passages from the vector cache by text, queries from the model (loaded on first use)."""

    def __init__(self) -> None:
        self._cache = Path(os.environ[_CACHE_ENV])
        self._model_folder = Path(os.environ[_MODEL_ENV])
        self._model: Any = None

    def __call__(self, texts: list[str]) -> NDArray[np.float32]:
        passages = [n for n, t in enumerate(texts) if t.startswith(PASSAGE)]
        queries = [n for n, t in enumerate(texts) if not t.startswith(PASSAGE)]
        rows: dict[int, NDArray[np.float32]] = {}
        if passages:
            keys = [hashlib.sha256(texts[n][len(PASSAGE) :].encode()).hexdigest() for n in passages]
            found = self._lookup(keys)
            missing = [texts[n][:80] for n, key in zip(passages, keys, strict=True) if key not in found]
            if missing:
                raise KeyError(f"{len(missing)} passages not in the vector cache {self._cache}, e.g. {missing[0]!r}")
            rows.update({n: np.frombuffer(found[key], dtype=np.float32) for n, key in zip(passages, keys, strict=True)})
        if queries:
            if self._model is None:
                from sentence_transformers import SentenceTransformer

                self._model = SentenceTransformer(str(self._model_folder), device="cpu")
            encoded = self._model.encode_query([texts[n] for n in queries], batch_size=32)
            rows.update({n: np.asarray(v, dtype=np.float32) for n, v in zip(queries, encoded, strict=True)})
        return np.stack([rows[n] for n in range(len(texts))])

    def _lookup(self, keys: list[str]) -> dict[str, bytes]:
        found: dict[str, bytes] = {}
        with contextlib.closing(sqlite3.connect(f"file:{self._cache}?mode=ro", uri=True)) as db:
            for start in range(0, len(keys), 500):
                chunk = keys[start : start + 500]
                marks = ",".join("?" * len(chunk))
                found.update(db.execute(f"SELECT key, vector FROM vectors WHERE key IN ({marks})", chunk).fetchall())
        return found


def environment(ws: Workspace) -> dict[str, str]:
    """What the transform needs in its process, and txtai's consent to resolve it by name."""
    return {
        "ALLOW_RESOLVE_TRANSFORM": "True",
        _CACHE_ENV: str(ws.vector_cache),
        _MODEL_ENV: str(ws.model_folder),
    }


@contextlib.contextmanager
def _env(values: dict[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def build_scaled_txtai(ws: Workspace, sets: dict[str, BenchSet], passages: int) -> tuple[Path, int, str]:
    """A saved txtai index over every recall-set passage, repeated up to ``passages`` (built once);
    returns its folder, its row count (the same repetition as ``scaled.build_scaled_index``) and the
    FAISS index txtai chose (its default: IVF, approximate, above 5,000 rows)."""
    from txtai import Embeddings

    unique = [p for bench in sets.values() for p in ws.passages(bench)]
    copies = math.ceil(passages / len(unique))
    rows = len(unique) * copies
    digest = hashlib.sha256(ws.encoder.identity.weights_sha256.encode())
    for p in unique:
        digest.update(b"\0" + p.embed_text.encode())
    version = importlib.metadata.version("txtai")
    folder = ws.work / f"txtai-external-{version}-{passages}-{digest.hexdigest()[:16]}"
    config = {"method": "external", "transform": TRANSFORM, "content": False, "instructions": {"data": PASSAGE}}
    with _env(environment(ws)):
        emb = Embeddings()
        if (folder / "config.json").is_file():
            emb.load(str(folder))
        else:
            ws.vectors(unique)  # every passage in the cache (encodes only the ones missing)
            emb = Embeddings(config)
            emb.index((n, unique[n % len(unique)].embed_text, None) for n in range(rows))
            emb.save(str(folder))
        ours = ws.encoder.encode_queries([_CHECK_QUERY])[0]
        theirs = np.asarray(emb.transform(_CHECK_QUERY), dtype=np.float32)
        first = ws.vectors(unique[:1])[0]
        theirs_p = np.asarray(emb.batchtransform([unique[0].embed_text], category="data")[0], dtype=np.float32)
        components = str(emb.config.get("build", {}).get("settings", {}).get("components", "?"))
        emb.close()
    sims = (float(ours @ theirs), float(first @ theirs_p))
    if min(sims) < 0.999:
        raise RuntimeError(
            f"txtai external vectors differ from poshuk's (cosine query {sims[0]:.4f}, passage {sims[1]:.4f})"
        )
    return folder, rows, components
