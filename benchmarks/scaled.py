"""A poshuk index of a given size built from real text only, for speed and memory benchmarks.

Every passage of the recall sets is written once under its own article, then again under
new article ids (``copy-N/...``) until the index holds at least the asked number of
passages. Vectors come from the workspace's vector cache (each distinct passage text is
encoded once), so a 100k-passage index costs the ~17k model calls of the recall sets.
The copies are exact duplicates: right for latency and memory, meaningless for recall.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import msgspec
from tqdm import tqdm

from benchmarks.datasets import BenchSet
from benchmarks.workspace import Workspace
from poshuk import Passage
from poshuk.documents import Article, passage_id
from poshuk.errors import IndexNotFoundError
from poshuk.index import Index, IndexWriter


def _renamed(article: Article, passages: list[Passage], prefix: str) -> tuple[Article, list[Passage]]:
    doc_id = f"{prefix}{article.id}"
    moved = [msgspec.structs.replace(p, doc_id=doc_id, id=passage_id(doc_id, p.ordinal)) for p in passages]
    return msgspec.structs.replace(article, id=doc_id), moved


def build_scaled_index(ws: Workspace, sets: dict[str, BenchSet], passages: int) -> Path:
    """The folder of a poshuk index with at least ``passages`` passages (built once, then reused)."""
    groups: list[tuple[Article, list[Passage]]] = []
    for name, bench in sets.items():
        by_doc: dict[str, list[Passage]] = {a.id: [] for a in bench.corpus}
        for p in ws.passages(bench):
            by_doc[p.doc_id].append(p)
        groups += [_renamed(a, by_doc[a.id], f"{name}/") for a in bench.corpus if by_doc[a.id]]
    keys = "\n".join(ws.key(b) for b in sets.values())
    folder = ws.work / f"scaled-{passages}-{hashlib.sha256(keys.encode()).hexdigest()[:12]}" / "index"
    try:
        Index.open(folder).close()
        return folder
    except IndexNotFoundError:
        pass
    unique = sum(len(ps) for _, ps in groups)
    copies = -(-passages // unique)
    encoder = ws.encoder
    batch = 256
    with (
        IndexWriter(folder, encoder.identity, ws.settings.chunking) as writer,
        tqdm(total=unique * copies, desc=f"scaled index ({copies} x {unique:,})", file=sys.stderr) as bar,
    ):
        for start in range(0, len(groups), batch):
            chunk = groups[start : start + batch]
            vectors = ws.vectors([p for _, ps in chunk for p in ps])
            for copy in range(copies):
                offset = 0
                for article, ps in chunk:
                    if copy:
                        article, ps = _renamed(article, ps, f"copy-{copy}/")
                    writer.upsert(article, ps, vectors[offset : offset + len(ps)])
                    offset += len(ps)
                bar.update(offset)
        writer.commit()
    return folder
