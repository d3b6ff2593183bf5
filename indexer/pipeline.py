"""The batch indexing pipeline: read -> normalise -> chunk -> encode -> analyse -> write.

The steps after reading are ``poshuk.ingest``'s, the same ones a live HTTP write goes
through. Each is a plain function over plain values (paths, ``Article``s, ``Passage``s,
arrays), so a distributed engine (Ray Data's ``map_batches``) can run them on many
machines later; here they run in one process, and writing a group overlaps encoding the
next. Each group is one bounded transaction: a live service's writes wait for at most
one group, never for the run. A rebuild (or a first build) fills a private new version
that becomes live only when everything succeeded; an incremental run keeps the groups it
committed if it is interrupted, each article whole.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import msgspec
from tqdm import tqdm

from indexer.file_urls import checked_prefix, file_url
from indexer.page_progress import PageBar
from poshuk.analysis import LexicalSettings
from poshuk.documents import Article, Passage
from poshuk.encoder import Encoder
from poshuk.errors import BadRecordError
from poshuk.feed_reader import FEED_SUFFIXES
from poshuk.index import Counts, IndexWriter, Upsert, last_change
from poshuk.ingest import chunk_step, encode_step, normalise_article, to_upserts
from poshuk.language import LanguageDetector
from poshuk.pdf_reader import PageProgress
from poshuk.readers import iter_sources, read_articles
from poshuk.settings import Settings
from poshuk.shards.layout import is_sharded
from poshuk.shards.writer import ShardedBatchWriter

RECORD_SUFFIXES = frozenset({".jsonl"}) | FEED_SUFFIXES
"""Files of many records, each with its own url (or none): ``--url-prefix`` gives them none."""

Group = list[tuple[Article, list[Passage]]]
# Groups of chunked articles -> their upserts, in order: encoded here, or elsewhere (``--ray``).
GroupEncoding = Callable[[Sequence[Group], LexicalSettings], Iterable[list[Upsert]]]


@dataclass
class IndexReport:
    """What one indexing run did."""

    documents: int = 0
    passages: int = 0
    skipped: list[BadRecordError] = field(default_factory=list)
    seconds: float = 0.0
    counts: Counts | None = None

    @property
    def docs_per_second(self) -> float:
        return self.documents / self.seconds if self.seconds else 0.0

    @property
    def passages_per_second(self) -> float:
        return self.passages / self.seconds if self.seconds else 0.0


def find_sources(paths: Sequence[Path]) -> list[tuple[Path, Path | None]]:
    """Every readable file under ``paths`` with the folder its id is relative to.

    Raises at once for a path that does not exist, before any work starts. Files found
    inside a folder get ids relative to that folder, so two ``index.html`` in different
    subfolders stay two articles.
    """
    found: list[tuple[Path, Path | None]] = []
    for path in paths:
        root = path if path.is_dir() else None
        found.extend((source, root) for source in iter_sources([path]))
    return found


def read_step(
    sources: Sequence[tuple[Path, Path | None]],
    detector: LanguageDetector,
    on_page: PageProgress | None = None,
    url_prefix: str | None = None,
) -> Iterator[Article | BadRecordError]:
    """Every article (or bad record) in ``sources``, in order; ``on_page`` follows a PDF's pages.

    With ``url_prefix`` (``indexer.file_urls``), an article of a file that gives no url of its own
    gets the file's published address; JSONL and feed items are records, not files, and keep theirs.
    """
    for source, root in sources:
        per_file = url_prefix is not None and source.suffix.lower() not in RECORD_SUFFIXES
        for item in read_articles(source, detector=detector, root=root, on_page=on_page):
            if per_file and url_prefix is not None and isinstance(item, Article) and item.url is None:
                item = msgspec.structs.replace(item, url=file_url(url_prefix, source, root))
            yield item


def write_step(writer: IndexWriter | ShardedBatchWriter, item: Upsert) -> None:
    """Upsert one article (replacing any earlier version of it) in the writer's open batch."""
    writer.upsert_many([item])


def write_group(writer: IndexWriter | ShardedBatchWriter, upserts: Sequence[Upsert]) -> None:
    """Upsert a group of articles as one transaction (durable when this returns)."""
    for item in upserts:
        write_step(writer, item)
    writer.flush()


class IndexingInterrupted(KeyboardInterrupt):
    """Ctrl-C during ``poshuk index``; says what the index holds now."""


def _reencode(articles: Sequence[Article], encoder: Encoder, settings: Settings) -> list[Upsert]:
    """Articles written to the live index during a rebuild with another model, in the new model's vectors."""
    chunked = chunk_step(articles, settings.chunking, encoder.count_tokens)
    vectors = encode_step(encoder, [p for _, passages in chunked for p in passages])
    return to_upserts(chunked, vectors)  # terms: analysed by the new version's own settings when written


def group_passages(group: Group) -> list[Passage]:
    """Every passage of a group, in order: what one encoder call encodes."""
    return [p for _, passages in group for p in passages]


def index_paths(
    paths: Sequence[Path],
    index_dir: Path,
    *,
    encoder: Encoder,
    settings: Settings,
    strict: bool = False,
    rebuild: bool = False,
    progress: bool = True,
    on_bad_record: Callable[[BadRecordError], None] | None = None,
    encode_groups: GroupEncoding | None = None,
    url_prefix: str | None = None,
) -> IndexReport:
    """Index every article under ``paths`` into ``index_dir``; all or nothing.

    Bad records are reported through ``on_bad_record`` and skipped; with ``strict``
    the first one is raised and the index is left as it was. ``rebuild`` builds a
    new version from these sources alone and swaps it in when done. ``encode_groups``
    encodes the groups elsewhere (``indexer.ray_encoding``); ``encoder`` then only counts
    tokens for chunking and names the model. ``url_prefix``: where the files are published
    (``indexer.file_urls``).
    """
    started = time.perf_counter()
    since = last_change(index_dir) if rebuild else None  # live writes from now on are carried into the rebuild
    sources = find_sources(paths)
    url_prefix = None if url_prefix is None else checked_prefix(url_prefix)
    report = IndexReport()
    detector = LanguageDetector()
    articles: dict[str, Article] = {}
    with (
        tqdm(desc="reading", unit=" articles", disable=not progress) as read_bar,
        PageBar(enabled=progress) as page_bar,
    ):
        for item in read_step(sources, detector, page_bar, url_prefix):
            read_bar.update()
            if isinstance(item, BadRecordError):
                if strict:
                    raise item
                report.skipped.append(item)
                if on_bad_record is not None:
                    on_bad_record(item)
                continue
            articles[item.id] = normalise_article(item, detector)  # a later record with the same id replaces it
    chunked = chunk_step(articles.values(), settings.chunking, encoder.count_tokens)
    total = sum(len(passages) for _, passages in chunked)
    # A group is one write transaction. Encoded elsewhere, groups are also the unit a pool of encoders
    # shares out, so they are smaller there: a run of 200 articles must still keep several actors busy.
    batch_docs = max(1, settings.batch_size * (4 if encode_groups is None else 1))
    writer: IndexWriter | ShardedBatchWriter
    if is_sharded(index_dir) and not rebuild:  # the archive's one write path (poshuk.shards.writer)
        writer = ShardedBatchWriter(index_dir, encoder.identity, approximate_above=settings.approximate_above)
    else:
        writer = IndexWriter(
            index_dir,
            encoder.identity,
            settings.chunking,
            rebuild=rebuild,
            prepare=lambda carried: _reencode(carried, encoder, settings),
            since=since,
            approximate_above=settings.approximate_above,
        )
    # One thread owns the writer from open to commit or abort (SQLite keeps a connection in the thread
    # that opened it) and writes group i while this thread encodes group i + 1. The encoder stays here,
    # so its errors and Ctrl-C land as before, between encoder batches, and never wait for a whole group.
    with (
        ThreadPoolExecutor(max_workers=1, thread_name_prefix="poshuk-write") as io,
        tqdm(total=total, desc="embedding", unit=" passages", disable=not progress) as bar,
    ):
        try:
            io.submit(writer.open).result()
            analyzer = writer.analyzer
            writing: Future[None] | None = None
            groups = [chunked[start : start + batch_docs] for start in range(0, len(chunked), batch_docs)]
            encoded = (
                (to_upserts(group, encode_step(encoder, group_passages(group)), analyzer) for group in groups)
                if encode_groups is None
                else encode_groups(groups, analyzer.settings)
            )
            for group, upserts in zip(groups, encoded, strict=True):
                if writing is not None:
                    writing.result()  # at most one group waits to be written; a writer error stops the run here
                writing = io.submit(write_group, writer, upserts)
                report.documents += len(group)
                passages = sum(len(u.passages) for u in upserts)
                report.passages += passages
                bar.update(passages)
            if writing is not None:
                writing.result()
            report.counts = io.submit(writer.commit).result()
        except BaseException as exc:
            new_version = writer.new_version
            io.submit(writer.abort).result()  # after the write in flight (one thread, tasks in order); idempotent
            if isinstance(exc, KeyboardInterrupt) and not new_version and writer.committed:
                raise IndexingInterrupted(
                    f"{writer.committed} of {len(chunked)} articles were written before the interrupt, each whole; "
                    "run the same command again to index the rest"
                ) from None
            raise
    report.seconds = time.perf_counter() - started
    return report
