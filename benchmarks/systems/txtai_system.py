"""``txtai``: txtai's ``Embeddings`` with the same local model folder and the same passages.

e5 needs "query: " / "passage: " prefixes. With sentence-transformers >= 5, txtai's
sbert backend encodes queries with ``encode_query``, which already applies the model's
own ``query`` prompt, while indexed data gets no prompt; so only the passage prefix is
given as a txtai instruction. ``prepare`` checks this against poshuk's encoder (cosine
>= 0.999 on a query and a passage) and refuses to run otherwise. The txtai index is
saved in the work folder keyed by the model and the passage texts, so a re-run (even after
a poshuk change that rebuilds its own index) does not re-embed. txtai's defaults are
kept on purpose: above 5,000 passages it builds an approximate IVF index (nprobe = cells / 16),
which is part of what "txtai out of the box" means; the notes record the index it chose.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.datasets import BenchSet, Query, unit_id
from benchmarks.systems import SystemUnavailable
from benchmarks.workspace import Workspace
from poshuk import Passage
from poshuk.documents import clean_text

INSTRUCTIONS = {"data": "passage: "}
_CHECK_QUERY = "How many air-raid alerts were there in Kyiv last night?"
_CHECK_PASSAGE = "Верховна Рада ухвалила державний бюджет на 2026 рік у другому читанні."


def passages_key(model: str, passages: Sequence[Passage]) -> str:
    """What txtai's saved index depends on: the model and the exact passage texts in order."""
    digest = hashlib.sha256(model.encode())
    for p in passages:
        digest.update(b"\0" + p.embed_text.encode())
    return digest.hexdigest()[:16]


def embeddings_config(model_folder: Path, batch: int) -> dict[str, Any]:
    """txtai ``Embeddings`` over the local model folder, on the CPU, with the e5 passage prefix."""
    return {
        "path": str(model_folder),
        "method": "sentence-transformers",
        "content": False,
        "instructions": INSTRUCTIONS,
        "gpu": False,
        "batch": batch,
        "encodebatch": batch,
    }


class TxtaiSystem:
    name = "txtai"

    def __init__(self) -> None:
        self._emb: Any = None
        self._doc_ids: list[str] = []
        self.folder: Path | None = None

    def prepare(self, bench: BenchSet, ws: Workspace) -> dict[str, str]:
        try:
            from txtai import Embeddings
        except ImportError as exc:
            raise SystemUnavailable(f"not available: txtai is not installed ({exc})") from exc
        version = importlib.metadata.version("txtai")
        passages = ws.passages(bench)
        self._doc_ids = [unit_id(p.doc_id, p.page) for p in passages]
        config = embeddings_config(ws.model_folder, ws.settings.batch_size)
        cache = ws.work / f"txtai-{version}-{passages_key(ws.encoder.identity.weights_sha256, passages)}"
        emb = Embeddings(config)
        if (cache / "config.json").is_file():
            emb.load(str(cache))
        else:
            emb.index((i, clean_text(p.embed_text), None) for i, p in enumerate(passages))
            emb.save(str(cache))
        self._emb = emb
        self.folder = cache  # the saved index (the latency benchmark serves it with txtai's API)
        self._check_prompts(ws)
        settings = emb.config.get("build", {}).get("settings", {})
        nprobe_of = getattr(emb.ann, "nprobe", None)  # txtai sets it on the faiss index at each search
        nprobe = nprobe_of() if callable(nprobe_of) and "IVF" in str(settings.get("components", "")) else None
        return {
            "txtai": version,
            "backend": str(emb.config.get("backend", "faiss")),
            "faiss_components": str(settings.get("components", "")),  # IVF (approximate) above 5,000 rows
            "faiss_nprobe": "" if nprobe is None else str(nprobe),
            "instructions": repr(INSTRUCTIONS),
        }

    def _check_prompts(self, ws: Workspace) -> None:
        ours_q = ws.encoder.encode_queries([_CHECK_QUERY])[0]
        ours_p = ws.encoder.encode_passages([_CHECK_PASSAGE])[0]
        theirs_q = np.asarray(self._emb.transform(_CHECK_QUERY), dtype=np.float32)
        theirs_p = np.asarray(self._emb.batchtransform([_CHECK_PASSAGE], category="data")[0], dtype=np.float32)
        sims = (float(ours_q @ theirs_q), float(ours_p @ theirs_p))
        if min(sims) < 0.999:
            raise SystemUnavailable(
                f"not available: txtai's vectors differ from poshuk's (cosine query {sims[0]:.4f}, "
                f"passage {sims[1]:.4f}); its prompt handling changed"
            )

    def rank(self, queries: Sequence[Query], depth: int) -> list[list[str]]:
        if self._emb is None:
            raise RuntimeError("prepare() first")
        limit = min(depth, len(self._doc_ids))
        results = self._emb.batchsearch([clean_text(q.text) for q in queries], limit=limit)
        return [[self._doc_ids[int(uid)] for uid, _score in row] for row in results]

    def close(self) -> None:
        if self._emb is not None:
            self._emb.close()
        self._emb = None
