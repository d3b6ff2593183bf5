"""An index's invariants, checked from its files: what the fault and property tests assert after every run."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np

from poshuk.index import Index, live_version
from poshuk.index.db import has_pages


def check_index(index_dir: Path) -> dict[str, int]:
    """Assert the live version is whole; returns its counts.

    Every document has passages; every passage has one lexical row and one vector in
    FAISS (as a fresh process loads it: snapshot + replay), every article unit (a document, or
    one page of a document with pages) one article row (keyed by its first passage, holding all
    its passages' terms), and nothing else is there.
    """
    folder = live_version(index_dir)
    conn = sqlite3.connect(folder / "meta.sqlite")
    try:
        docs = {d for (d,) in conn.execute("SELECT doc_id FROM documents")}
        page = "page" if has_pages(conn) else "NULL"
        units = {int(r): (str(d), p) for r, d, p in conn.execute(f"SELECT row_id, doc_id, {page} FROM passages")}
        rows = {r: d for r, (d, _) in units.items()}
        lexical = dict(conn.execute("SELECT rowid, terms FROM lexical").fetchall())
        articles = dict(conn.execute("SELECT rowid, terms FROM article_lexical").fetchall())
    finally:
        conn.close()
    assert set(rows.values()) <= docs, "passages without their document"
    assert docs <= set(rows.values()), f"documents without passages: {sorted(docs - set(rows.values()))[:5]}"
    assert set(lexical) == set(rows), "lexical rows differ from passages"
    first: dict[tuple[str, int | None], int] = {}
    for row, unit in sorted(units.items(), reverse=True):
        first[unit] = row
    assert set(articles) == set(first.values()), "article rows differ from documents and their pages"
    for unit, row in first.items():
        own = [str(lexical[r]) for r, u in units.items() if u == unit]
        assert sorted(" ".join(own).split()) == sorted(str(articles[row]).split()), f"article terms of {unit} differ"
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
