"""Shared, cached inputs of every system: the model, each set's passages and poshuk index.

Everything expensive is cached under the work folder (default ``benchmarks/.work/``) in
one folder per set, named by a hash of what determines it: set name and loader version,
the corpus itself, the model's weights, the chunking settings and the index format. A
re-run with the same inputs re-embeds nothing; changing any of them (or the poshuk code
that decides what an index stores: see ``code_fingerprint``) builds afresh.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import sqlite3
import sys
import time
from functools import cached_property
from pathlib import Path

import msgspec
import numpy as np
from numpy.typing import NDArray
from tqdm import tqdm

from benchmarks.datasets import LOADER_VERSION, BenchSet
from indexer.pipeline import write_group
from poshuk import Passage, Searcher, Settings
from poshuk.encoder import Encoder
from poshuk.errors import IndexNotFoundError
from poshuk.index import IndexWriter
from poshuk.index.layout import FORMAT_VERSION
from poshuk.ingest import chunk_step, encode_step, to_upserts
from poshuk.models import load_encoder, resolve_model

# Code whose output is stored in the index: a change to it builds the set afresh.
_INDEX_CODE = ("poshuk.chunking", "poshuk.analysis", "poshuk.translit", "poshuk.index.writes")  # what rows hold


def code_fingerprint() -> str:
    """sha256 of the index format, SQLite schema and the sources that make passages and terms."""
    from poshuk.index import db

    digest = hashlib.sha256(f"{FORMAT_VERSION}\n{db.SCHEMA}".encode())
    for name in _INDEX_CODE:
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        if module.__file__:
            digest.update(Path(module.__file__).read_bytes())
    return digest.hexdigest()


class Workspace:
    """The model and per-set caches, shared by all systems within one run."""

    def __init__(self, work: Path, settings: Settings, *, max_k: int, encoder: Encoder | None = None) -> None:
        self.work = work
        if encoder is not None:  # tests pass a fake; runs load the settings' model on first use
            self.__dict__["encoder"] = encoder
        # The service caps k at 100 by default; the benchmark searches deeper to rank documents.
        service = msgspec.structs.replace(settings.service, max_k=max(max_k, settings.service.max_k))
        self.settings = msgspec.structs.replace(settings, service=service)
        self.index_seconds: dict[str, float] = {}  # set name -> seconds spent building its index
        self.embedded = 0  # passages run through the model so far (the rest came from the vector cache)
        self._searchers: dict[str, Searcher] = {}

    @cached_property
    def encoder(self) -> Encoder:
        return load_encoder(self.settings)

    @cached_property
    def model_folder(self) -> Path:
        return resolve_model(self.settings.model, self.settings.home_path).folder

    def key(self, bench: BenchSet) -> str:
        corpus = hashlib.sha256(msgspec.json.encode(bench.corpus)).hexdigest()
        parts = {
            "set": bench.name,
            "loader": LOADER_VERSION,
            "corpus": corpus,
            "weights": self.encoder.identity.weights_sha256,
            "prompts": [self.encoder.identity.query_prompt, self.encoder.identity.passage_prompt],
            "backend": self.encoder.identity.backend,
            "chunking": msgspec.to_builtins(self.settings.chunking),
            "code": code_fingerprint(),
        }
        return hashlib.sha256(msgspec.json.encode(parts)).hexdigest()[:16]

    def folder(self, bench: BenchSet) -> Path:
        path = self.work / f"{bench.name}-{self.key(bench)}"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def passages(self, bench: BenchSet) -> list[Passage]:
        """The corpus cut into passages by poshuk's own chunker (cached as JSON)."""
        cache = self.folder(bench) / "passages.json"
        if cache.is_file():
            return msgspec.json.decode(cache.read_bytes(), type=list[Passage])
        ids = [a.id for a in bench.corpus]
        if len(set(ids)) != len(ids):
            raise ValueError(f"set {bench.name} has duplicate document ids")
        chunked = chunk_step(bench.corpus, self.settings.chunking, self.encoder.count_tokens)
        passages = [p for _, ps in chunked for p in ps]
        tmp = cache.with_suffix(".tmp")
        tmp.write_bytes(msgspec.json.encode(passages))
        tmp.replace(cache)
        return passages

    def searcher(self, bench: BenchSet) -> Searcher:
        """A searcher over the set's poshuk index, built on first use (``index_seconds``)."""
        if bench.name not in self._searchers:
            index_dir = self.folder(bench) / "index"
            try:
                searcher = Searcher.open(index_dir, self.settings, encoder=self.encoder)
            except IndexNotFoundError:  # never built, or a build was interrupted before commit
                self._build_index(bench, index_dir)
                searcher = Searcher.open(index_dir, self.settings, encoder=self.encoder)
            self._searchers[bench.name] = searcher
        return self._searchers[bench.name]

    def _build_index(self, bench: BenchSet, index_dir: Path) -> None:
        started = time.perf_counter()
        by_doc: dict[str, list[Passage]] = {a.id: [] for a in bench.corpus}
        for p in self.passages(bench):
            by_doc[p.doc_id].append(p)
        batch_docs = max(1, self.settings.batch_size * 4)
        encoder = self.encoder
        with (
            IndexWriter(index_dir, encoder.identity, self.settings.chunking) as writer,
            tqdm(total=sum(map(len, by_doc.values())), desc=f"{bench.name}: embedding", file=sys.stderr) as bar,
        ):
            for start in range(0, len(bench.corpus), batch_docs):
                group = bench.corpus[start : start + batch_docs]
                flat = [p for a in group for p in by_doc[a.id]]
                chunked = [(article, by_doc[article.id]) for article in group]
                write_group(writer, to_upserts(chunked, self.vectors(flat), writer.index.analyzer))
                bar.update(len(flat))
            writer.commit()
        self.index_seconds[bench.name] = time.perf_counter() - started

    @property
    def vector_cache(self) -> Path:
        """The SQLite file of passage vectors: ``vectors(key = sha256(embed text), vector = float32 bytes)``."""
        identity = self.encoder.identity
        model_key = hashlib.sha256(f"{identity.weights_sha256}\n{identity.passage_prompt}".encode()).hexdigest()
        return self.work / f"vectors-{model_key[:16]}-{identity.backend}.sqlite"

    def vectors(self, passages: list[Passage]) -> NDArray[np.float32]:
        """Passage vectors, encoding only those not in the model's vector cache.

        Vectors are cached by (model weights, passage prompt, backend, embed text), so a change to
        poshuk's lexical code or store rebuilds an index without re-running the model.
        """
        identity = self.encoder.identity
        self.work.mkdir(parents=True, exist_ok=True)
        keys = [hashlib.sha256(p.embed_text.encode()).hexdigest() for p in passages]
        out = np.zeros((len(passages), identity.dimension), dtype=np.float32)
        cache = self.vector_cache
        with contextlib.closing(sqlite3.connect(cache)) as db:
            db.execute("CREATE TABLE IF NOT EXISTS vectors (key TEXT PRIMARY KEY, vector BLOB NOT NULL)")
            found: dict[str, bytes] = {}
            for start in range(0, len(keys), 500):
                chunk = keys[start : start + 500]
                marks = ",".join("?" * len(chunk))
                found.update(db.execute(f"SELECT key, vector FROM vectors WHERE key IN ({marks})", chunk).fetchall())
            missing = [i for i, key in enumerate(keys) if key not in found]
            if missing:
                fresh = encode_step(self.encoder, [passages[i] for i in missing])
                self.embedded += len(missing)
                out[missing] = fresh
                rows = [(keys[i], fresh[n].tobytes()) for n, i in enumerate(missing)]
                db.executemany("INSERT OR REPLACE INTO vectors (key, vector) VALUES (?, ?)", rows)
                db.commit()
            for i, key in enumerate(keys):
                if key in found:
                    out[i] = np.frombuffer(found[key], dtype=np.float32)
        return out

    def release(self, bench: BenchSet) -> None:
        searcher = self._searchers.pop(bench.name, None)
        if searcher is not None:
            searcher.close()
