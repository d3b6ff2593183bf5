"""The BM25 postings in memory answer exactly as FTS5 does: the same rows, order and scores, through
writes, deletes, filters, prefixes and ties -- and FTS5 answers whenever they cannot."""

from __future__ import annotations

import random
import shutil
import sqlite3
import time
from pathlib import Path

import msgspec
import numpy as np

from poshuk import load_settings
from poshuk.bm25 import Phrase
from poshuk.encoder import HashEncoder
from poshuk.filters import Filters
from poshuk.index import Index, RetrievalQuery
from poshuk.index.plan import FilterPlan
from poshuk.index.postings import TablePostings, is_token, mirrorable
from poshuk.ingest import prepare
from poshuk.language import LanguageDetector
from poshuk.query import QueryTerms, Unit, analyse_query
from poshuk.search import Searcher
from poshuk.settings import ChunkingSettings
from poshuk.shards import split_index
from tests.unit.test_shards import VARIANTS, _answers, corpus, queries
from tests.unit.test_shards import single as single  # the module's one index, shared fixture

WORDS = [f"w{n}" for n in range(40)] + ["кірбі", "кірбу", "кірба", "зерно", "зерна", "ціни", "ціна"]
TABLE = "CREATE VIRTUAL TABLE t USING fts5(terms, tokenize = \"unicode61 remove_diacritics 0\", prefix = '4')"


def _text(rng: random.Random) -> str:
    # Zipf-like word choice: common words in most rows (idf floored), rare ones in few; repeats give tf > 1.
    return " ".join(WORDS[min(int(rng.paretovariate(0.9)) - 1, len(WORDS) - 1)] for _ in range(rng.randint(0, 30)))


def _fts5(conn: sqlite3.Connection, phrases: list[Phrase], limit: int, allowed: np.ndarray | None = None) -> list:
    match = " OR ".join(p.match for p in phrases)
    where = "" if allowed is None else f" AND rowid IN ({','.join(str(int(r)) for r in allowed)})"
    sql = f"SELECT rowid, -bm25(t) FROM t WHERE t MATCH ?{where} ORDER BY bm25(t), rowid LIMIT ?"
    return [(int(r), float(s)) for r, s in conn.execute(sql, (match, limit))]


def _phrases(rng: random.Random) -> list[Phrase]:
    picked = rng.sample(WORDS, rng.randint(1, 5))
    out = [Phrase(w, False) for w in picked]
    if rng.random() < 0.5:
        out.append(Phrase(rng.choice(["кірб", "зерн", "цін", "w1"]), True))
    return out


def test_postings_give_fts5s_rows_and_scores_through_random_writes() -> None:
    rng = random.Random(3)
    conn = sqlite3.connect(":memory:")
    conn.execute(TABLE)
    held: dict[int, str] = {}
    postings = TablePostings.build([])
    next_row = 1
    checked = 0
    for step in range(60):
        removed = rng.sample(sorted(held), min(len(held), rng.randint(0, 12))) if step % 3 else []
        rows = list(range(next_row, next_row + rng.randint(1, 120)))
        next_row = rows[-1] + 1
        texts = [_text(rng) for _ in rows]
        for r in removed:
            conn.execute("DELETE FROM t WHERE rowid = ?", (r,))
            del held[r]
        conn.executemany("INSERT INTO t (rowid, terms) VALUES (?, ?)", zip(rows, texts, strict=True))
        held.update(zip(rows, texts, strict=True))
        before = postings
        postings = postings.changed(np.asarray(sorted(removed), dtype=np.int64), rows, texts)
        if step == 10:  # an old state is untouched by later changes: a reader holding it keeps its answer
            frozen, frozen_answer = before, before.top([Phrase("w0", False)], 50)
        assert postings.rows == len(held)
        assert len(postings.segments) <= 2 * int(np.log2(len(held) + 2)) + 1  # merged as they grow
        for _ in range(8):
            phrases = _phrases(rng)
            limit = rng.choice([1, 5, 20, 200])
            allowed = None
            if rng.random() < 0.3:
                allowed = np.asarray(sorted(rng.sample(sorted(held), len(held) // 3)), dtype=np.int64)
            ranked = postings.top(phrases, limit, allowed)
            assert list(zip(ranked.rows, ranked.scores, strict=True)) == _fts5(conn, phrases, limit, allowed)
            # Rows holding each phrase: a sharded archive's global IDFs sum these over its shards.
            counted = [
                conn.execute("SELECT count(*) FROM t WHERE t MATCH ?", (p.match,)).fetchone()[0] for p in phrases
            ]
            assert list(postings.hits(phrases)) == counted
            checked += len(ranked.rows)
    assert checked > 5000
    again = frozen.top([Phrase("w0", False)], 50)
    assert again.rows == frozen_answer.rows and again.scores == frozen_answer.scores


def test_equal_scores_are_ordered_by_row_across_the_limit() -> None:
    texts = ["зерно порт"] * 30 + ["зерно"] * 10
    conn = sqlite3.connect(":memory:")
    conn.execute(TABLE)
    conn.executemany("INSERT INTO t (rowid, terms) VALUES (?, ?)", enumerate(texts, start=1))
    postings = TablePostings.build(enumerate(texts, start=1))
    for limit in (1, 7, 30, 31, 100):
        ranked = postings.top([Phrase("порт", False), Phrase("зерн", True)], limit)
        assert list(zip(ranked.rows, ranked.scores, strict=True)) == _fts5(
            conn, [Phrase("порт", False), Phrase("зерн", True)], limit
        )


def test_which_phrases_a_row_holds_is_told_per_row() -> None:
    postings = TablePostings.build([(1, "кірбі заява"), (2, "заява"), (3, "кірбу кірбі")])
    ranked = postings.top([Phrase("заява", False), Phrase("кірб", True)], 10)
    held = dict(zip(ranked.rows, ranked.matched.tolist(), strict=True))
    assert held == {1: [True, True], 2: [True, False], 3: [False, True]}


def test_a_term_fts5_would_split_is_left_to_fts5() -> None:
    assert is_token("зерно") and is_token("w12") and is_token("ü")
    assert not is_token("a_b") and not is_token("foo-bar") and not is_token("п'ять") and not is_token("")
    assert is_token("日本")  # checked by FTS5 itself: one token
    assert not TablePostings.build([(1, "зерно foo-bar")]).exact
    assert not TablePostings.build([(1, "Зерно порт")]).exact  # FTS5 folds it: the analyzer's terms are folded
    assert not mirrorable([Phrase("a_b", True)]) and mirrorable([Phrase("кірб", True)])
    assert not mirrorable([Phrase("Кірб", True)])


# -- through the index ------------------------------------------------------------------------------


def _copy(single: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "index"
    shutil.copytree(single, folder)
    return folder


def _retrieved(index: Index, text: str, filters: Filters | None, *, postings: bool) -> tuple[list, list]:
    """Both lexical retrievers' candidates, from the postings or (``postings=False``) from FTS5."""
    from poshuk.index.lexical import article_bm25, passage_bm25

    terms = analyse_query(text, index.analyzer)
    with index._readers.snapshot() as conn:
        plan = FilterPlan(conn, filters, index.allowed_cache)
        state = index.lexical.at(plan.seq()) if postings else None
        assert (state is not None) == postings
        passages = passage_bm25(plan, terms, 60, pages=index.pages, memory=state)
        articles = article_bm25(plan, terms, 60, pages=index.pages, memory=state)
    return passages, articles


FILTERS = [None, Filters(lang=("uk",)), Filters(section=("спорт",)), Filters(source=("BBC", "Reuters"))]


def test_searches_answer_alike_before_and_after_the_postings_are_built(single: Path, tmp_path: Path) -> None:
    settings = load_settings(env={"POSHUK_HOME": str(tmp_path / "home")})
    searcher = Searcher.open(single, settings, encoder=HashEncoder())
    try:
        texts = queries(60)
        with_fts5 = _answers(searcher, texts)
        assert searcher.index.load_lexical()
        assert not searcher.index.load_lexical()  # once
        calls = []
        top = TablePostings.top

        def counted(self: TablePostings, *args: object, **kwargs: object) -> object:
            calls.append(1)
            return top(self, *args, **kwargs)  # type: ignore[arg-type]

        TablePostings.top = counted  # type: ignore[assignment,method-assign]
        try:
            with_postings = _answers(searcher, texts)
        finally:
            TablePostings.top = top  # type: ignore[method-assign]
        assert len(calls) > len(texts) * 5  # the postings answered (lexical, hybrid and filtered variants)
        assert with_postings == with_fts5
        assert len(with_fts5) == len(texts) * len(VARIANTS)
    finally:
        searcher.close()


def test_the_postings_follow_writes_here_and_in_another_process(single: Path, tmp_path: Path) -> None:
    folder = _copy(single, tmp_path)
    index = Index.open(folder)
    other = Index.open(folder)  # another process's writer, as far as ``index`` can tell
    encoder, chunking, detector = HashEncoder(), ChunkingSettings(), LanguageDetector()
    rng = random.Random(8)
    texts = ["Кірбі переговори", "Zelensky зерно", "ціни на пальне гривня", "football match Kyiv", "дрони атака"]
    try:
        assert index.load_lexical()
        fresh = corpus(60, seed=41)
        for step in range(8):
            writer = index if step % 2 else other
            ids = [a.id for a in corpus()]
            deletes = rng.sample(ids, 3)
            upserts = [
                msgspec.structs.replace(a, id=f"new-{step}-{n}" if n % 2 else rng.choice(ids))
                for n, a in enumerate(fresh[step * 6 : step * 6 + 6])
            ]
            writer.write(prepare(upserts, encoder, chunking, detector, writer.analyzer), deletes)
            if writer is other:  # not replayed here yet: FTS5 answers, and sees the write
                with index._readers.snapshot() as conn:
                    assert index.lexical.at(FilterPlan(conn, None, index.allowed_cache).seq()) is None
                index.refresh()
            for text in texts:
                for filters in FILTERS:
                    assert _retrieved(index, text, filters, postings=True) == _retrieved(
                        index, text, filters, postings=False
                    ), (step, text, filters)
        state = index.lexical.at(index.counts().seq)
        assert state is not None and state.articles is not None
        (passages,) = index.read().execute("SELECT count(*) FROM lexical").fetchone()
        assert state.passages.rows == passages
        stored = index.read().execute("SELECT row_id, doc_id, page FROM passages").fetchall()
        assert state.units.of([r for r, _, _ in stored]) == {int(r): (str(d), p) for r, d, p in stored}
        assert len(state.passages.segments) < 8
    finally:
        other.close()
        index.close()


def test_an_index_opened_without_postings_keeps_fts5(single: Path) -> None:
    index = Index.open(single, lexical_in_memory=False)
    try:
        assert not index.load_lexical()
        assert not index.lexical.loaded
        found = index.retrieve(RetrievalQuery(terms=QueryTerms(units=(Unit("зерно"),)), lexical=True, limit=5))
        assert found.passages
    finally:
        index.close()


def test_the_service_builds_them_in_its_upkeep(single: Path, tmp_path: Path) -> None:
    from litestar.testing import TestClient

    from service.app import create_app
    from tests.support.app import service_state

    settings = load_settings(env={"POSHUK_HOME": str(tmp_path / "home")})
    app = create_app(settings, _copy(single, tmp_path), encoder=HashEncoder())
    with TestClient(app) as client:
        assert service_state(app).wait(10)
        index = service_state(app).require_searcher().index
        deadline = time.monotonic() + 20
        while not index.lexical.loaded and time.monotonic() < deadline:
            time.sleep(0.05)
        assert index.lexical.loaded  # built by the upkeep thread, not by a request
        seq = index.counts().seq
        assert index.lexical.at(seq) is not None
        found = client.post("/v1/search", json={"query": "зерно Одеса порт", "mode": "lexical"}).json()
        assert found["hits"]


def test_the_service_builds_each_shards_in_its_upkeep(single: Path, tmp_path: Path) -> None:
    from litestar.testing import TestClient

    from service.app import create_app
    from tests.support.app import service_state

    split_index(single, tmp_path / "sharded", 3)
    settings = load_settings(env={"POSHUK_HOME": str(tmp_path / "home")})
    app = create_app(settings, tmp_path / "sharded", encoder=HashEncoder())
    with TestClient(app) as client:
        assert service_state(app).wait(10)
        searcher = service_state(app).require_searcher()
        deadline = time.monotonic() + 20
        while not searcher.lexical_in_memory and time.monotonic() < deadline:
            time.sleep(0.05)
        assert searcher.lexical_in_memory  # every shard's, built by the upkeep thread
        found = client.post("/v1/search", json={"query": "зерно Одеса порт", "mode": "lexical"}).json()
        assert found["hits"]


def test_the_setting_turns_them_off(single: Path, tmp_path: Path) -> None:
    settings = load_settings(env={"POSHUK_HOME": str(tmp_path / "home"), "POSHUK_LEXICAL_IN_MEMORY": "false"})
    searcher = Searcher.open(single, settings, encoder=HashEncoder())
    try:
        assert not searcher.index.lexical_in_memory
        assert not searcher.index.load_lexical()
    finally:
        searcher.close()
    split_index(single, tmp_path / "sharded", 2)
    parts = Searcher.open(tmp_path / "sharded", settings, encoder=HashEncoder())
    try:
        assert not parts.load_lexical() and not parts.lexical_in_memory  # nor a shard's
    finally:
        parts.close()


def test_freed_memory_goes_back_to_the_system_on_glibc() -> None:
    import platform

    from poshuk.memory import release_free_memory, trim_promptly

    if platform.libc_ver()[0] != "glibc":
        assert not trim_promptly()
        return
    assert release_free_memory()
    assert trim_promptly()  # mallopt accepted the fixed threshold


def test_a_write_merges_small_segments_only_and_the_upkeep_the_rest() -> None:
    rng = random.Random(5)
    base = TablePostings.build((r, _text(rng)) for r in range(1, 2001))
    rows = list(range(3000, 4500))
    texts = [_text(rng) for _ in rows]
    none = np.zeros(0, dtype=np.int64)
    written = base.changed(none, rows, texts, merge_up_to=1000)
    assert len(written.segments) == 2  # the merge with the base waits
    merged = written.compacted()
    assert len(merged.segments) == 1 and merged.compacted() is merged
    phrases = [Phrase("w0", False), Phrase("кірб", True)]
    a, b = merged.top(phrases, 50), written.top(phrases, 50)
    assert (a.rows, a.scores, a.matched.tolist()) == (b.rows, b.scores, b.matched.tolist())
    assert len(base.changed(none, rows, texts).segments) == 1  # without a limit the write merges


def test_a_commit_never_waits_for_the_upkeeps_merge(single: Path, tmp_path: Path) -> None:
    index = Index.open(_copy(single, tmp_path))
    encoder, chunking, detector = HashEncoder(), ChunkingSettings(), LanguageDetector()
    try:
        assert index.load_lexical()
        index.lexical._replay.acquire()  # the upkeep thread, merging
        try:
            article = msgspec.structs.replace(corpus(1, seed=77)[0], id="written-while-merging")
            started = time.monotonic()
            outcome = index.write(prepare([article], encoder, chunking, detector, index.analyzer))
            assert time.monotonic() - started < 5
            assert index.lexical.at(outcome.seq) is None  # not replayed yet: FTS5 answers, and has it
            found = _retrieved(index, "written while merging " + article.title, None, postings=False)[0]
            assert any(c.doc_id == "written-while-merging" for c in found)
        finally:
            index.lexical._replay.release()
        index.refresh()  # the upkeep's next round
        assert index.lexical.at(outcome.seq) is not None
    finally:
        index.close()
