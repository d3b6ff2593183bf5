"""Writes to a sharded archive give what the same writes give one index (issue 12): the same
searches answer alike in every mode, and rows, story clusters and acks are the same.

One index and a 3-shard split of it take the same sequence of writes (new articles, copies and
"translations" of articles on other shards, updates, deletes, mixed batches, a deleted story
head); real SQLite, FAISS and FTS5 run, the encoder is the hash one.
"""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import msgspec
import pytest

from poshuk.documents import Article
from poshuk.encoder import HashEncoder
from poshuk.index import Index, IndexWriter, Upsert, WriteOutcome
from poshuk.ingest import prepare
from poshuk.language import LanguageDetector
from poshuk.search import Searcher
from poshuk.settings import ChunkingSettings, Settings
from poshuk.shards import ShardedIndex, read_set, split_index
from poshuk.shards.journal import JOURNAL_NAME
from poshuk.shards.shard import LocalShard
from tests.support.consistency import check_index
from tests.unit.test_shards import VARIANTS, corpus, queries

ENCODER = HashEncoder()


def _prepare(articles: list[Article], analyzer_of: Searcher) -> list[Upsert]:
    target = analyzer_of.writer
    return prepare(articles, ENCODER, target.manifest.chunking, LanguageDetector(), target.analyzer)


def _translation(base: Article, doc_id: str, lang: str) -> Article:
    """The same words in another order, under another language: far apart by MinHash shingles,
    next to each other by the hash encoder's bag of words -- what a translation looks like."""
    rng = random.Random(doc_id)
    words = base.text.split()
    rng.shuffle(words)
    return Article(id=doc_id, title=base.title, text=" ".join(words), lang=lang, source="Переклад")


def _steps(base: list[Article]) -> list[tuple[list[Article], list[str]]]:
    """(upserts, deletes) of each write, in order."""
    fresh = corpus(90, seed=77)
    by_id = {a.id: a for a in base}
    rng = random.Random(3)
    steps: list[tuple[list[Article], list[str]]] = []
    batch = [msgspec.structs.replace(a, id=f"new/{a.id}") for a in fresh[:30]]
    batch += [msgspec.structs.replace(by_id[d], id=f"dup/{d}") for d in ("uk/001", "en/003", "uk/010", "uk/020")]
    batch += [_translation(by_id[d], f"tr/{d}", "uk" if by_id[d].lang == "en" else "en") for d in ("en/006", "uk/011")]
    steps.append((batch, []))
    for n, article in enumerate(fresh[30:45]):  # one at a time, as PUTs
        steps.append(([msgspec.structs.replace(article, id=f"put/{n:02d}")], []))
    # a copy of an article written in the same batch, on whichever shard it lands
    steps.append(([fresh[50], msgspec.structs.replace(fresh[50], id="dup/in-batch")], []))
    steps.append(([msgspec.structs.replace(by_id["uk/002"], text=fresh[46].text)], []))  # an update
    steps.append(([msgspec.structs.replace(by_id["uk/004"], text=by_id["uk/008"].text)], []))  # becomes a copy
    steps.append(([], ["uk/007"]))  # a DELETE
    steps.append(([], ["uk/001"]))  # the head of a story: its copies keep its cluster id
    steps.append(([msgspec.structs.replace(by_id["uk/001"], id="dup/after-head")], []))
    steps.append(([], ["no-such-article"]))
    mixed = [msgspec.structs.replace(a, id=f"mix/{a.id}") for a in rng.sample(fresh[55:90], 12)]
    mixed.append(msgspec.structs.replace(by_id["en/009"], id="mix/copy-of-deleted"))  # its original goes here
    steps.append((mixed, ["new/" + fresh[3].id, "put/04", "en/009"]))
    steps.append(([_translation(fresh[60], "tr/late", "uk" if fresh[60].lang == "en" else "en")], []))
    steps.append(([msgspec.structs.replace(fresh[61], id="put/03")], ["dup/uk/010"]))
    return steps


def _tables(
    indexes: list[Index],
) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]], list[tuple[object, ...]]]:
    documents, passages, articles = [], [], []
    for index in indexes:
        conn = index.read()
        documents += conn.execute("SELECT doc_id, cluster, title, text, lang FROM documents").fetchall()
        passages += conn.execute("SELECT row_id, passage_id, doc_id, ordinal, text, vector FROM passages").fetchall()
        articles += conn.execute("SELECT rowid, terms FROM article_lexical").fetchall()
    return sorted(documents), sorted(passages), sorted(articles)


def _answers(searcher: Searcher, count: int = 40) -> list[dict[str, object]]:
    out = []
    for text in queries(count, seed=9):
        for name, options in VARIANTS.items():
            answer = msgspec.to_builtins(searcher.search(text, **options))  # type: ignore[arg-type]
            answer.pop("took_ms")
            answer["variant"] = name
            out.append(answer)
    return out


def _shards(searcher: Searcher) -> list[Index]:
    reader = searcher._reader
    assert isinstance(reader, ShardedIndex)
    out = []
    for shard in reader.shards:
        assert isinstance(shard, LocalShard)
        out.append(shard.index)
    return out


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Article]]:
    folder = tmp_path_factory.mktemp("base") / "index"
    articles = corpus(120)
    with IndexWriter(folder, ENCODER.identity, ChunkingSettings()) as writer:
        writer.upsert_many(prepare(articles, ENCODER, ChunkingSettings(), LanguageDetector(), writer.index.analyzer))
    return folder, articles


def test_writes_to_three_shards_give_what_they_give_one_index(
    base: tuple[Path, list[Article]], tmp_path: Path, settings: Settings
) -> None:
    one_dir, archive = tmp_path / "one", tmp_path / "archive"
    shutil.copytree(base[0], one_dir)
    split_index(base[0], archive, 3)
    one = Searcher.open(one_dir, settings, encoder=ENCODER)
    parts = Searcher.open(archive, settings, encoder=ENCODER)
    try:
        assert not parts.read_only
        for upserts, deletes in _steps(base[1]):
            prepared = _prepare(upserts, one)
            expected: WriteOutcome = one.writer.write(prepared, deletes)
            got = parts.writer.write(prepared, deletes)
            assert (got.replaced, got.deleted) == (expected.replaced, expected.deleted)
        shards = _shards(parts)
        assert _tables(shards) == _tables([one.index])  # rows, clusters, vectors and terms alike
        documents = _tables(shards)[0]
        clusters = {str(d): str(c) for d, c, *_ in documents}
        owner = read_set(archive).shard_of
        joined = [d for d, c in clusters.items() if c != d]
        assert clusters["tr/en/006"] == "en/006" and clusters["tr/uk/011"] == "uk/011"  # translations
        in_batch = corpus(90, seed=77)[50].id
        assert clusters["dup/in-batch"] == clusters[in_batch] and in_batch not in joined  # copied in one batch
        assert clusters["dup/after-head"] == "uk/001" and "uk/001" not in clusters  # a head deleted
        assert clusters["mix/copy-of-deleted"] == "mix/copy-of-deleted"  # deleted in the same write
        assert any(owner(d) != owner(clusters[d]) for d in joined)  # stories across shards
        assert _answers(parts) == _answers(one)
        for shard in read_set(archive).shards:
            check_index(archive / shard)
    finally:
        one.close()
        parts.close()
    again = Searcher.open(archive, settings, encoder=ENCODER)  # what a restart reads
    one = Searcher.open(one_dir, settings, encoder=ENCODER)
    try:
        assert _answers(again, 12) == _answers(one, 12)
        prepared = _prepare([corpus(3, seed=1)[0]], one)  # after a reopen, the counter goes on as one node's
        assert again.writer.write(prepared, []).seq > 0
        one.writer.write(prepared, [])
        assert _tables(_shards(again)) == _tables([one.index])
    finally:
        again.close()
        one.close()


def test_writes_through_the_wire_give_what_they_give_one_index(
    base: tuple[Path, list[Article]], tmp_path: Path, settings: Settings
) -> None:
    """As ``poshuk serve --ray`` writes: the router's ``RemoteWriter`` sends each write as bytes to a
    ``ShardedWriter`` whose shards are ``RemoteShard``s too, so each shard (one ``Index`` standing
    for its replica's process) writes its own part. Every write is searchable on its answer, and the
    answers, acks, rows and clusters are one index's."""
    from poshuk.shards.wire import RemoteShard, answer
    from poshuk.shards.writer import ShardedWriter
    from poshuk.shards.writer_wire import RemoteWriter, answer_write

    one_dir, archive = tmp_path / "one", tmp_path / "archive"
    shutil.copytree(base[0], one_dir)
    split_index(base[0], archive, 3)
    shard_set = read_set(archive)
    replicas = [LocalShard(Index.open(archive / name)) for name in shard_set.shards]

    def remote() -> list[RemoteShard]:
        return [RemoteShard(lambda payload, shard=shard: answer(shard, payload)) for shard in replicas]  # type: ignore[misc]

    writer = ShardedWriter(archive, shard_set, remote())
    router_shards = remote()
    router = ShardedIndex(archive, shard_set, router_shards, parallel=True)
    router.writer = RemoteWriter(lambda payload: answer_write(lambda: writer, payload), shard_set, router_shards)
    parts = Searcher(router, ENCODER)
    one = Searcher.open(one_dir, settings, encoder=ENCODER)
    try:
        assert not parts.read_only
        for upserts, deletes in _steps(base[1])[:12]:
            prepared = _prepare(upserts, one)
            expected = one.writer.write(prepared, deletes)
            got = parts.writer.write(prepared, deletes)
            assert (got.replaced, got.deleted) == (expected.replaced, expected.deleted)
            for article in upserts[:3]:  # searchable on the answer
                assert parts.document(article.id).article.title == article.title
                found = parts.search(article.text, k=10, mode="dense", highlight=False)
                assert article.id in {hit.doc_id for hit in found.hits}
        assert parts.stats() == one.stats()  # the router's cached counts follow the writes
        assert _tables([r.index for r in replicas]) == _tables([one.index])  # rows, clusters, vectors, terms
        assert _answers(parts, 20) == _answers(one, 20)
    finally:
        one.close()
        parts.close()
        writer.close()
        for shard in replicas:
            shard.close()


def test_a_write_cut_between_shards_is_finished_at_the_next_open(
    base: tuple[Path, list[Article]], tmp_path: Path, settings: Settings
) -> None:
    """A write that committed on one shard and died before the next is in the journal; opening
    the archive again applies it whole (upserts replace by id: applying twice is harmless)."""
    one_dir, archive = tmp_path / "one", tmp_path / "archive"
    shutil.copytree(base[0], one_dir)
    split_index(base[0], archive, 3)
    one = Searcher.open(one_dir, settings, encoder=ENCODER)
    parts = Searcher.open(archive, settings, encoder=ENCODER)
    batch = [msgspec.structs.replace(a, id=f"cut/{a.id}") for a in corpus(30, seed=8)]
    prepared = _prepare(batch, one)
    owners = {read_set(archive).shard_of(a.id) for a in batch}
    assert len(owners) == 3
    shards = _shards(parts)

    def dies(*_args: object, **_kwargs: object) -> WriteOutcome:
        raise OSError("the process died here")

    shards[1].write = dies  # type: ignore[method-assign]  # shard 0 commits, shard 1 never does
    with pytest.raises(OSError):
        parts.writer.write(prepared, ["uk/002"])
    parts.close()
    assert (archive / JOURNAL_NAME).is_file()
    one.writer.write(prepared, ["uk/002"])
    again = Searcher.open(archive, settings, encoder=ENCODER)
    try:
        assert _tables(_shards(again)) == _tables([one.index])
        assert _answers(again, 12) == _answers(one, 12)
    finally:
        again.close()
        one.close()


def test_poshuk_index_into_an_archive_files_as_into_one_index(
    base: tuple[Path, list[Article]], tmp_path: Path, settings: Settings
) -> None:
    """An incremental ``poshuk index`` run (several transactions, story centroids kept across them)
    into a 3-shard archive leaves what it leaves in one index; a re-split from another index would
    then lose those writes, so it is refused (from the archive's staging they are carried over:
    test_reshard)."""
    from indexer.pipeline import index_paths
    from poshuk.errors import IndexStoreError

    one_dir, archive = tmp_path / "one", tmp_path / "archive"
    shutil.copytree(base[0], one_dir)
    split_index(base[0], archive, 3)
    by_id = {a.id: a for a in base[1]}
    fresh = [msgspec.structs.replace(a, id=f"run/{a.id}") for a in corpus(40, seed=21)]
    fresh += [msgspec.structs.replace(by_id["uk/013"], id="run/dup"), _translation(by_id["en/012"], "run/tr", "uk")]
    fresh.append(msgspec.structs.replace(fresh[2], id="run/dup-of-run"))  # a copy of an earlier group's article
    source = tmp_path / "run.jsonl"
    source.write_bytes(b"\n".join(msgspec.json.encode(a) for a in fresh) + b"\n")
    small = msgspec.structs.replace(settings, batch_size=3)  # groups of 12: four transactions
    for target in (one_dir, archive):
        report = index_paths([source], target, encoder=ENCODER, settings=small, progress=False)
        assert report.documents == len(fresh) and not report.skipped
    one = Searcher.open(one_dir, settings, encoder=ENCODER)
    parts = Searcher.open(archive, settings, encoder=ENCODER)
    try:
        tables = _tables(_shards(parts))
        assert tables == _tables([one.index])
        clusters = {str(d): str(c) for d, c, *_ in tables[0]}
        assert clusters["run/dup"] == "uk/013" and clusters["run/tr"] == "en/012"
        assert clusters["run/dup-of-run"] == clusters[fresh[2].id]
        assert _answers(parts, 20) == _answers(one, 20)
    finally:
        one.close()
        parts.close()
    with pytest.raises(IndexStoreError, match="took writes"):
        split_index(base[0], archive, 2)


def test_a_writer_over_retired_shards_refuses(base: tuple[Path, list[Article]], tmp_path: Path) -> None:
    """A split that replaced ``SET`` retires the open writer's shards: a write there would be lost."""
    from poshuk.errors import IndexRetiredError

    archive = tmp_path / "archive"
    split_index(base[0], archive, 2)
    reader = ShardedIndex.open(archive, writable=True)
    try:
        split_index(base[0], archive, 3)  # no write yet: the split is allowed, and replaces SET
        assert reader.writer is not None
        with pytest.raises(IndexRetiredError):
            reader.writer.write([], ["uk/001"])
    finally:
        reader.close()


def _requests() -> list[tuple[str, str, dict[str, object]]]:
    """(method, path, keywords) of a write session through the API, bad requests included."""
    article = {"title": "Міська рада ухвалила бюджет", "text": "Депутати ухвалили бюджет.\n\nНа дороги.", "lang": "uk"}
    batch = [
        {"id": f"b-{n}", "title": f"Новина {n}", "text": f"Рада обговорила тролейбуси номер {n}."} for n in range(6)
    ]
    return [
        ("PUT", "/v1/documents/w-1", {"json": article}),
        ("PUT", "/v1/documents/w-1", {"json": {**article, "text": "Інший текст про дороги."}}),  # 200: replaced
        ("POST", "/v1/documents", {"json": batch}),
        ("POST", "/v1/documents", {"json": [*batch[:2], {"id": "b-9", "title": "x", "text": "Нова."}]}),
        ("PUT", "/v1/documents/copy", {"json": {**batch[3], "id": None}}),
        ("PUT", "/v1/documents/w-2", {"json": {**article, "id": "other"}}),  # 409
        ("POST", "/v1/documents", {"json": []}),  # 400
        ("DELETE", "/v1/documents/b-2", {}),
        ("DELETE", "/v1/documents/b-2", {}),  # 404
        ("DELETE", "/v1/documents/uk-001", {}),
        ("GET", "/v1/documents/copy", {}),
        ("GET", "/v1/search?q=тролейбуси&k=5&dedupe=true", {}),
        ("GET", "/v1/search?q=бюджет дороги&k=5", {}),
    ]


def test_the_write_api_answers_on_an_archive_as_on_one_index(tmp_path: Path) -> None:
    """The same PUT/POST/DELETE session against one index's service and a 3-shard archive's:
    the same statuses and bodies (but the ack's ``seq``, the journal's there), the same reads after."""
    from litestar.testing import TestClient

    from service.app import create_app
    from tests.support.app import AUTH, build_service_index, make_settings, service_state

    build_service_index(tmp_path / "one", ENCODER)
    split_index(tmp_path / "one", tmp_path / "archive", 3)
    answers: list[list[tuple[int, object]]] = []
    for folder in (tmp_path / "one", tmp_path / "archive"):
        app = create_app(make_settings(tmp_path, service_rate_limit_burst="1000"), folder, encoder=ENCODER)
        got: list[tuple[int, object]] = []
        with TestClient(app) as client:
            assert service_state(app).wait(10)
            assert client.get("/readyz").json()["read_only"] is False
            for method, path, options in _requests():
                response = client.request(method, path, headers=AUTH, **options)  # type: ignore[arg-type]
                body = response.json()
                if isinstance(body, dict):
                    body.pop("seq", None), body.pop("took_ms", None), body.pop("instance", None)
                got.append((response.status_code, body))
        answers.append(got)
    assert [s for s, _ in answers[0]] == [201, 200, 200, 200, 201, 409, 400, 200, 404, 200, 200, 200, 200]
    assert answers[1] == answers[0]
    read_only = make_settings(tmp_path, service_read_only="true")
    app = create_app(read_only, tmp_path / "archive", encoder=ENCODER)
    with TestClient(app) as client:  # --read-only: the archive's writes are refused as one index's are
        assert service_state(app).wait(10)
        assert client.get("/readyz").json()["read_only"] is True
        refused = client.put("/v1/documents/w-3", json={"title": "x", "text": "y"}, headers=AUTH)
        assert refused.status_code == 405 and refused.json()["type"].endswith("/read-only")


def test_a_serving_archive_sees_what_another_writer_adds(tmp_path: Path) -> None:
    """``poshuk index`` into an archive a service has open (the archive's lock orders the two writers):
    the service's vectors catch up within a second (its upkeep refreshes the shards), and its own
    next write gets rows above them."""
    import time

    from litestar.testing import TestClient

    from indexer.pipeline import index_paths
    from service.app import create_app
    from tests.support.app import AUTH, build_service_index, make_settings, service_state

    build_service_index(tmp_path / "one", ENCODER)
    archive = tmp_path / "archive"
    split_index(tmp_path / "one", archive, 3)
    settings = make_settings(tmp_path, service_rate_limit_burst="1000")
    app = create_app(settings, archive, encoder=ENCODER)
    source = tmp_path / "more.jsonl"
    source.write_text('{"id": "cli-1", "title": "Трамваї", "text": "Окремий процес записав новину про трамваї."}\n')
    with TestClient(app) as client:
        assert service_state(app).wait(10)
        assert (
            client.put("/v1/documents/w-1", json={"title": "Перша", "text": "Про мости."}, headers=AUTH).status_code
            == 201
        )
        index_paths([source], archive, encoder=ENCODER, settings=settings, progress=False)
        deadline = time.monotonic() + 3
        dense: dict[str, str | int] = {
            "q": "Трамваї\nОкремий процес записав новину про трамваї.",
            "mode": "dense",
            "k": 1,
        }
        while [h["doc_id"] for h in client.get("/v1/search", params=dense).json()["hits"]] != ["cli-1"]:
            assert time.monotonic() < deadline, "the service never saw the other writer's article"
            time.sleep(0.1)
        assert (
            client.put("/v1/documents/w-2", json={"title": "Друга", "text": "Про дороги."}, headers=AUTH).status_code
            == 201
        )
    reader = ShardedIndex.open(archive)
    try:
        first = {
            doc: row
            for shard in _shards_of(reader)
            for doc, row in shard.read().execute("SELECT doc_id, min(row_id) FROM passages GROUP BY doc_id")
        }
    finally:
        reader.close()
    assert first["w-1"] < first["cli-1"] < first["w-2"]  # one counter, in the order of the writes


def _shards_of(reader: ShardedIndex) -> list[Index]:
    out = []
    for shard in reader.shards:
        assert isinstance(shard, LocalShard)
        out.append(shard.index)
    return out


def test_a_split_keeps_the_next_row_after_deleted_ones(
    base: tuple[Path, list[Article]], tmp_path: Path, settings: Settings
) -> None:
    """The source deleted its last rows: the shards still give the next write one node's row ids."""
    one_dir, archive = tmp_path / "one", tmp_path / "archive"
    shutil.copytree(base[0], one_dir)
    one = Searcher.open(one_dir, settings, encoder=ENCODER)
    try:
        (last,) = one.index.read().execute("SELECT doc_id FROM passages ORDER BY row_id DESC LIMIT 1").fetchone()
        one.writer.write([], [last])
        split_index(one_dir, archive, 3)
        parts = Searcher.open(archive, settings, encoder=ENCODER)
        try:
            prepared = _prepare([corpus(2, seed=4)[1]], one)
            one.writer.write(prepared, [])
            parts.writer.write(prepared, [])
            assert _tables(_shards(parts)) == _tables([one.index])
        finally:
            parts.close()
    finally:
        one.close()


@pytest.mark.usefixtures("hash_model")
def test_the_index_command_writes_an_archive_as_one_index(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``poshuk index PATH --index ARCHIVE`` (no --shards, no --rebuild): through the shards, searched as
    one index that took the same command."""
    import json

    from poshuk_cli.main import main

    articles = Path(__file__).resolve().parents[2] / "examples" / "articles"
    first, then = [str(articles / "news.jsonl")], [str(articles / n) for n in ("en-009.txt", "uk-019.txt")]
    assert main(["index", *first, "--index", str(tmp_path / "one"), "--no-progress"]) == 0
    assert main(["index", *first, "--index", str(tmp_path / "arc"), "--shards", "3", "--no-progress"]) == 0
    assert main(["index", *then, "--index", str(tmp_path / "one"), "--no-progress"]) == 0
    assert main(["index", *then, "--index", str(tmp_path / "arc"), "--no-progress"]) == 0
    assert "index now holds" in capsys.readouterr().out
    assert (tmp_path / "arc" / JOURNAL_NAME).is_file()  # written through the shards, not into staging
    for query in ("мед експорт", "grain exports Odesa", "Kirby"):
        answers = []
        for folder in ("one", "arc"):
            assert main(["search", query, "--index", str(tmp_path / folder), "--json", "--collapse"]) == 0
            answer = json.loads(capsys.readouterr().out)
            answer.pop("took_ms")
            answers.append(answer)
        assert answers[0] == answers[1] and answers[0]["hits"]
    assert main(["index", *then, "--index", str(tmp_path / "arc"), "--rebuild", "--no-progress"]) == 1
    assert "sharded archive" in capsys.readouterr().err
