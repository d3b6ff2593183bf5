"""One archive split into shards that answer exactly as one index would (issue 12).

- ``layout``  the ``SET`` file (which shard owns which bucket of article ids)
- ``split``   ``split_index``: one index into shards, again over an archive (``carry``: its writes kept)
- ``bm25``    FTS5's BM25 with statistics summed over the shards, to the last bit
- ``reader``  ``ShardedIndex``: what ``Searcher`` reads, over every shard at once
- ``writer``  ``ShardedWriter``: the archive's one write path (with ``clusters`` and ``journal``)

Each shard is a normal index folder written by ``IndexWriter``; rows keep the ids one node
gave them, so every tie broken by row id breaks alike. Distribution (Ray) comes on top.
"""

from poshuk.index.layout import SET_NAME
from poshuk.shards.layout import ShardSet, bucket_of, is_sharded, read_set
from poshuk.shards.reader import ShardedIndex
from poshuk.shards.split import split_index

__all__ = ["SET_NAME", "ShardSet", "ShardedIndex", "bucket_of", "is_sharded", "read_set", "split_index"]
