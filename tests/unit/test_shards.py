"""A sharded archive answers exactly as one index (issue 12): 1, 3 and 5 shards split from one
index, the same searches on both, every field of every answer equal but ``took_ms``.

The corpus is generated here (real Ukrainian and English words, Zipf-like choice, metadata,
copies that form story clusters); the real analyzer and FTS5 run, the encoder is the hash one.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
import pytest

from poshuk.documents import Article
from poshuk.encoder import HashEncoder
from poshuk.filters import Filters
from poshuk.index import Index, IndexWriter
from poshuk.ingest import prepare
from poshuk.language import LanguageDetector
from poshuk.search import Searcher
from poshuk.settings import ChunkingSettings, Settings
from poshuk.shards import ShardedIndex, bm25, bucket_of, read_set, split_index
from poshuk.shards.shard import LocalShard

UK = (
    "уряд рада війна фронт дрони атака енергетика світло зерно порт експорт Одеса Київ Харків Львів бюджет "
    "податки гривня інфляція банк ціни пальне вибори президент Зеленський Кірбі Байден переговори зброя "
    "ракети оборона армія волонтери лікарня школа вчителі студенти погода зима опалення газ нафта санкції "
    "Європа НАТО Польща кордон біженці відновлення мости дороги залізниця вантажі футбол збірна матч"
).split()
EN = (
    "government parliament war front drones attack energy power grain port exports Odesa Kyiv Kharkiv Lviv "
    "budget taxes inflation bank prices fuel elections president Zelensky Kirby Biden talks weapons missiles "
    "defence army volunteers hospital school teachers students weather winter heating gas oil sanctions "
    "Europe NATO Poland border refugees reconstruction bridges roads railway cargo football team match"
).split()
SOURCES = ("Укрінформ", "Reuters", "Суспільне", "BBC")
SECTIONS = ("політика", "економіка", "world", "спорт")
TAGS = ("війна", "енергетика", "економіка", "вибори", "спорт", "Одеса")
START = datetime(2023, 1, 1, tzinfo=UTC)


def _sentence(rng: random.Random, words: list[str]) -> str:
    picked = [words[min(int(rng.paretovariate(1.2)) - 1, len(words) - 1)] for _ in range(rng.randint(6, 16))]
    rng.shuffle(picked)
    return " ".join(picked).capitalize() + "."


def corpus(count: int = 240, seed: int = 12) -> list[Article]:
    rng = random.Random(seed)
    articles: list[Article] = []
    for n in range(count):
        lang = "uk" if n % 3 else "en"
        words = list(UK if lang == "uk" else EN)
        rng.shuffle(words)  # each article its own favourite words
        if n % 17 == 5 and articles:  # a copy of an earlier article: one story cluster
            base = articles[rng.randrange(len(articles))]
            articles.append(msgspec.structs.replace(base, id=f"copy-{n:03d}"))
            continue
        paragraphs = [
            " ".join(_sentence(rng, words) for _ in range(rng.randint(2, 6))) for _ in range(rng.randint(1, 4))
        ]
        articles.append(
            Article(
                id=f"{lang}/{n:03d}",
                title=_sentence(rng, words)[:80],
                text="\n\n".join(paragraphs),
                lang=lang,
                source=rng.choice(SOURCES),
                section=rng.choice(SECTIONS),
                tags=tuple(sorted(set(rng.sample(TAGS, rng.randint(0, 3))))),
                published_at=None if n % 11 == 0 else START + timedelta(days=rng.randint(0, 360)),
            )
        )
    return articles


def queries(count: int = 150, seed: int = 5) -> list[str]:
    rng = random.Random(seed)
    out = ["Zelensky", "Кірбі переговори", "Kirby talks weapons", "ціни на пальне", "зерно Одеса порт"]
    while len(out) < count:
        words = UK if rng.random() < 0.6 else EN
        out.append(" ".join(rng.sample(words, rng.randint(1, 4))))
    return out


VARIANTS: dict[str, dict[str, object]] = {
    "hybrid": {"k": 10},
    "lexical": {"k": 10, "mode": "lexical"},
    "dense": {"k": 10, "mode": "dense"},
    "collapse, second page": {"k": 5, "offset": 5, "collapse": True},
    "dedupe": {"k": 10, "dedupe": True},
    "filters": {"k": 10, "filters": Filters(lang=("uk",), section=("політика", "економіка"))},
    "tag and dates": {
        "k": 10,
        "filters": Filters(tags=("війна",), published_from=START, published_to=START + timedelta(days=200)),
    },
    "deep page": {"k": 50, "offset": 150, "mode": "lexical"},
}


@pytest.fixture(scope="module")
def single(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("single") / "index"
    encoder = HashEncoder()
    with IndexWriter(folder, encoder.identity, ChunkingSettings()) as writer:
        analyzer = writer.index.analyzer
        writer.upsert_many(prepare(corpus(), encoder, ChunkingSettings(), LanguageDetector(), analyzer))
    return folder


def _answers(searcher: Searcher, texts: list[str]) -> list[dict[str, object]]:
    out = []
    for text in texts:
        for name, options in VARIANTS.items():
            result = searcher.search(text, **options)  # type: ignore[arg-type]
            answer = msgspec.to_builtins(result)
            answer.pop("took_ms")
            answer["variant"] = name
            out.append(answer)
    return out


@pytest.fixture(scope="module")
def expected(single: Path, tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, object]]:
    """One index's answers to every query in every variant."""
    from poshuk import load_settings

    settings = load_settings(env={"POSHUK_HOME": str(tmp_path_factory.mktemp("home"))})
    whole = Searcher.open(single, settings, encoder=HashEncoder())
    try:
        answers = _answers(whole, queries())
    finally:
        whole.close()
    found = [a["hits"] for a in answers]
    assert sum(len(hits) for hits in found if isinstance(hits, list)) > len(answers) * 3  # they found things
    return answers


def _differ(expected: list[dict[str, object]], got: list[dict[str, object]]) -> list[tuple[object, object]]:
    return [(e["query"], e["variant"]) for e, g in zip(expected, got, strict=True) if e != g]


@pytest.mark.parametrize(("shards", "postings"), [(1, False), (3, False), (3, True), (5, True)])
def test_shards_answer_exactly_as_one_index(
    single: Path, expected: list[dict[str, object]], tmp_path: Path, settings: Settings, shards: int, postings: bool
) -> None:
    """``postings``: each shard's statistics and own top rows from its postings in memory (the
    service builds them), against one index answering from FTS5."""
    split_index(single, tmp_path / "sharded", shards)
    whole = Searcher.open(single, settings, encoder=HashEncoder())
    parts = Searcher.open(tmp_path / "sharded", settings, encoder=HashEncoder())
    try:
        assert not parts.lexical_in_memory
        if postings:
            assert parts.load_lexical() and parts.lexical_in_memory
        differ = _differ(expected, _answers(parts, queries()))
        assert not differ, f"{len(differ)} of {len(expected)} answers differ, e.g. {differ[:5]}"
        assert whole.stats().passages == parts.stats().passages
        for doc_id in ("uk/001", "en/003", "copy-005"):
            assert whole.document(doc_id) == parts.document(doc_id)
            assert whole.similar(doc_id, k=5).hits == parts.similar(doc_id, k=5).hits
    finally:
        whole.close()
        parts.close()


@pytest.mark.parametrize("postings", [False, True])
def test_shards_asked_again_for_more_candidates_still_answer_exactly(
    single: Path, expected: list[dict[str, object]], tmp_path: Path, postings: bool
) -> None:
    """Each shard first returns only 5 BM25 candidates: the bound check must ask again wherever
    an unseen row could still make the merged top, and the answers stay the same. With their
    postings in memory the shards score their rows with the archive's statistics themselves: no
    row is scored again by the router, so no second round is needed."""
    split_index(single, tmp_path / "sharded", 5)
    reader = ShardedIndex.open(tmp_path / "sharded", first_fetch=5)
    parts = Searcher(reader, HashEncoder())
    try:
        if postings:
            assert reader.load_lexical()
        some = queries()[:60]
        differ = _differ(expected[: len(some) * len(VARIANTS)], _answers(parts, some))
        assert not differ, f"{len(differ)} answers differ, e.g. {differ[:5]}"
        assert reader.second_rounds == 0 if postings else reader.second_rounds > 100
    finally:
        parts.close()


def test_each_shard_holds_whole_articles_by_bucket(single: Path, tmp_path: Path) -> None:
    shard_set = split_index(single, tmp_path / "sharded", 3)
    assert read_set(tmp_path / "sharded") == shard_set
    sharded = ShardedIndex.open(tmp_path / "sharded")
    try:
        for number, part in enumerate(sharded.shards):
            assert isinstance(part, LocalShard)
            shard = part.index
            owned = [d for (d,) in shard.read().execute("SELECT doc_id FROM documents")]
            assert owned and all(shard_set.shard_of(d) == number for d in owned)
            orphans = shard.read().execute(
                "SELECT count(*) FROM passages p LEFT JOIN documents d ON d.doc_id = p.doc_id WHERE d.doc_id IS NULL"
            )
            assert orphans.fetchone()[0] == 0
    finally:
        sharded.close()
    assert bucket_of("uk/001") == bucket_of("uk/001") and 0 <= bucket_of("uk/001") < 4096


def test_global_bm25_reproduces_fts5_to_the_last_bit(single: Path) -> None:
    index = Index.open(single, read_only=True)
    try:
        conn = index.read()
        from poshuk.query import analyse_query

        for text in queries()[:40]:
            terms = analyse_query(text, index.analyzer)
            if terms.empty:
                continue
            phrases = bm25.phrases_of(terms)
            stats = bm25.table_stats(conn, "lexical", phrases)
            rows = conn.execute(
                "SELECT rowid, terms, -bm25(lexical) FROM lexical WHERE lexical MATCH ? LIMIT 50",
                (terms.match_expression(),),
            ).fetchall()
            assert rows
            lengths = bm25.lengths(conn, "lexical", [r for r, _, _ in rows])
            for row, indexed, fts5 in rows:
                assert lengths[row] == len(indexed.split())
                freqs = bm25.frequencies(indexed, bm25.needles(phrases))
                assert bm25.score(stats.idf(), freqs, lengths[row], stats.avgdl) == fts5  # equal, not close
    finally:
        index.close()


def test_a_shards_statistics_from_its_postings_are_fts5s(single: Path, tmp_path: Path) -> None:
    """Rows, tokens and rows holding each phrase, per shard and table, with some articles deleted."""
    from poshuk.query import analyse_query

    split_index(single, tmp_path / "sharded", 3)
    reader = ShardedIndex.open(tmp_path / "sharded", writable=True)
    try:
        assert reader.writer is not None
        reader.writer.write([], ["uk/001", "en/003", "uk/004", "copy-005"])
        assert reader.load_lexical()
        answered = 0
        for shard in reader.shards:
            assert isinstance(shard, LocalShard)
            conn = shard.index.read()
            for text in [*queries()[:40], "Зеленськ", "Kirb"]:
                terms = analyse_query(text, shard.index.analyzer)
                phrases = bm25.phrases_of(terms)
                for table in ("lexical", "article_lexical"):
                    assert shard.table_stats(table, phrases) == bm25.table_stats(conn, table, phrases)
                    answered += shard.index.postings(articles=table == "article_lexical") is not None
        assert answered == 3 * 42 * 2  # every one from memory
    finally:
        reader.close()


def test_a_sharded_archive_is_not_taken_for_one_index(single: Path, tmp_path: Path) -> None:
    from poshuk.errors import IndexNotFoundError, IndexStoreError
    from poshuk.index import live_version

    folder = tmp_path / "sharded"
    split_index(single, folder, 2)
    before = sorted(p.name for p in folder.iterdir())
    with pytest.raises(IndexNotFoundError, match="sharded archive"):
        live_version(folder)  # where one index is expected: a clear refusal, not "no index"
    with pytest.raises(IndexStoreError, match="sharded archive"):
        IndexWriter(folder, HashEncoder().identity, ChunkingSettings()).open()  # `poshuk index` into it
    assert sorted(p.name for p in folder.iterdir()) == before  # nothing was created beside the shards
    with pytest.raises(IndexStoreError, match="holds one index"):
        split_index(single, single, 2)
    again = split_index(single, folder, 3)  # a new generation replaces the old shards at once
    assert again.generation == 2 and sorted(p.name for p in folder.iterdir()) == ["SET", *again.shards]
    (folder / "SET").write_text('{"format": 1, "buckets": 4096, "shards": ["shard-000"], "map": [3]}')
    with pytest.raises(IndexStoreError):
        read_set(folder)
