"""The on-disk index: versions, SQLite (the truth), a FAISS mirror, BM25, story clusters.

One concept per module:

- ``layout``   the index folder's versions, manifests and the atomic ``CURRENT`` switch
- ``db``       SQLite schema, connections (one per reading thread) and row mapping
- ``mirror``   FAISS in memory: snapshot, replay of the change log, rebuild, re-scoring
- ``plan``     a query's filters compiled once, with the allowed rows they select
- ``lexical``  passage and article BM25 retrieval over FTS5
- ``clusters`` which story (copy or translation) a new article belongs to
- ``writes``   staging upserts and deletes inside a write transaction
- ``core``     ``Index``: retrieval, reads and durable writes over one version
- ``writer``   ``IndexWriter``: ``poshuk index``'s batches, new versions and their swap
"""

from poshuk.index.core import Index, IndexWrites, RetrievalQuery, WriteOutcome
from poshuk.index.db import Counts, StoredDocument, StoredPassage
from poshuk.index.layout import (
    Manifest,
    create_version,
    iter_versions,
    last_change,
    live_from,
    live_manifest,
    live_version,
    make_live,
)
from poshuk.index.writer import IndexWriter
from poshuk.index.writes import Upsert

__all__ = [
    "Counts",
    "Index",
    "IndexWriter",
    "IndexWrites",
    "Manifest",
    "RetrievalQuery",
    "StoredDocument",
    "StoredPassage",
    "Upsert",
    "WriteOutcome",
    "create_version",
    "iter_versions",
    "last_change",
    "live_from",
    "live_manifest",
    "live_version",
    "make_live",
]
