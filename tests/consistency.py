"""An index's invariants, checked from its files: what the fault and property tests assert after every run."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np

from poshuk.index import Index, live_version


def check_index(index_dir: Path) -> dict[str, int]:
    """Assert the live version is whole; returns its counts.

    Every document has passages; every passage has one lexical row and one vector in
    FAISS (as a fresh process loads it: snapshot + replay), every document one article row
    (keyed by its first passage, holding all its passages' terms), and nothing else is there.
    """
    folder = live_version(index_dir)
    conn = sqlite3.connect(folder / "meta.sqlite")
    try:
        docs = {d for (d,) in conn.execute("SELECT doc_id FROM documents")}
        rows = dict(conn.execute("SELECT row_id, doc_id FROM passages").fetchall())
        lexical = dict(conn.execute("SELECT rowid, terms FROM lexical").fetchall())
        articles = dict(conn.execute("SELECT rowid, terms FROM article_lexical").fetchall())
    finally:
        conn.close()
    assert set(rows.values()) <= docs, "passages without their document"
    assert docs <= set(rows.values()), f"documents without passages: {sorted(docs - set(rows.values()))[:5]}"
    assert set(lexical) == set(rows), "lexical rows differ from passages"
    first: dict[str, int] = {}
    for row, doc in sorted(rows.items(), reverse=True):
        first[doc] = row
    assert set(articles) == set(first.values()), "article rows differ from documents"
    for doc, row in first.items():
        own = [str(lexical[r]) for r, d in rows.items() if d == doc]
        assert sorted(" ".join(own).split()) == sorted(str(articles[row]).split()), f"article terms of {doc} differ"
    index = Index(folder)
    try:
        ids = index.vectors.flat_ids()
        assert len(ids) == len(set(ids.tolist())), "duplicate vectors in FAISS"
        assert set(ids.tolist()) == set(rows), "FAISS ids differ from passages"
        counts = index.counts()
        assert (counts.documents, counts.passages) == (len(docs), len(rows))
    finally:
        index.close()
    return {"documents": len(docs), "passages": len(rows), "vectors": int(np.asarray(ids).size)}
