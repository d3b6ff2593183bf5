"""Searcher over a real FAISS index with the fake encoder."""

from __future__ import annotations

from pathlib import Path

import pytest

from poshuk.documents import Article, Passage, passage_id
from poshuk.encoder import HashEncoder
from poshuk.errors import InvalidQueryError, ModelMismatchError, NotFoundError
from poshuk.filters import Filters
from poshuk.index import Index, IndexWriter
from poshuk.query import analyse_query
from poshuk.search import Mode, Searcher
from poshuk.settings import ChunkingSettings
from tests.support import index_queries as q

DOCS = {
    "grain": ("Зерновий коридор", ["Судна з зерном вийшли з порту Одеса", "Експорт пшениці зріс"]),
    "football": ("Динамо виграло", ["Динамо Київ перемогло у матчі чемпіонату"]),
    "ecb": ("ECB holds rates", ["The European Central Bank kept interest rates unchanged"]),
}


@pytest.fixture
def index_dir(tmp_path: Path, hash_encoder: HashEncoder) -> Path:
    with IndexWriter(tmp_path, hash_encoder.identity, ChunkingSettings()) as writer:
        for doc_id, (title, paragraphs) in DOCS.items():
            passages = [
                Passage(id=passage_id(doc_id, n), doc_id=doc_id, ordinal=n, text=p, embed_text=p)
                for n, p in enumerate(paragraphs)
            ]
            article = Article(id=doc_id, title=title, text="\n\n".join(paragraphs), source="test")
            writer.upsert(article, passages, hash_encoder.encode_passages(paragraphs))
    return tmp_path


def test_search_ranks_the_matching_passage_first(index_dir: Path, hash_encoder: HashEncoder) -> None:
    searcher = Searcher(Index.open(index_dir), hash_encoder)
    result = searcher.search("European Central Bank interest rates", k=3)
    assert [h.rank for h in result.hits] == [1, 2, 3]
    top = result.hits[0]
    assert (top.doc_id, top.passage_id, top.title, top.source) == ("ecb", "ecb#0", "ECB holds rates", "test")
    assert result.hits[0].score >= result.hits[1].score >= result.hits[2].score
    assert result.model == hash_encoder.identity.name


def test_k_larger_than_the_index_returns_everything(index_dir: Path, hash_encoder: HashEncoder) -> None:
    searcher = Searcher(Index.open(index_dir), hash_encoder)
    assert len(searcher.search("порт", k=50).hits) == 4


def test_query_is_normalised_to_nfc(index_dir: Path, hash_encoder: HashEncoder) -> None:
    searcher = Searcher(Index.open(index_dir), hash_encoder)
    decomposed = "Одеса травень маи\u0306"  # "й" as и + combining breve
    assert searcher.search(decomposed).query == "Одеса травень май"


@pytest.mark.parametrize(("query", "k"), [("", 10), ("   \n", 10), ("x", 0), ("x", 101)])
def test_invalid_queries(index_dir: Path, hash_encoder: HashEncoder, query: str, k: int) -> None:
    searcher = Searcher(Index.open(index_dir), hash_encoder)
    with pytest.raises(InvalidQueryError):
        searcher.search(query, k=k)


def test_searcher_refuses_a_different_model(index_dir: Path) -> None:
    with pytest.raises(ModelMismatchError):
        Searcher(Index.open(index_dir), HashEncoder(dimension=64, name="another"))


@pytest.mark.parametrize("mode", ["dense", "lexical", "hybrid"])
def test_every_mode_finds_an_exact_phrase(index_dir: Path, hash_encoder: HashEncoder, mode: Mode) -> None:
    searcher = Searcher(Index.open(index_dir), hash_encoder)
    result = searcher.search("Динамо Київ перемогло", k=2, mode=mode)
    assert result.mode == mode
    assert result.hits[0].doc_id == "football"


def test_lexical_mode_matches_inflected_forms(index_dir: Path, hash_encoder: HashEncoder) -> None:
    searcher = Searcher(Index.open(index_dir), hash_encoder)
    hit = searcher.search("порти Одеси", mode="lexical").hits[0]
    assert hit.doc_id == "grain"
    assert [hit.text[s.start : s.end] for s in hit.highlights] == ["порту Одеса"]
    assert hit.highlight_kind == "terms"


def test_filters_give_the_top_k_among_matching_passages(index_dir: Path, hash_encoder: HashEncoder) -> None:
    searcher = Searcher(Index.open(index_dir), hash_encoder)
    for mode in ("dense", "hybrid"):
        hits = searcher.search("Динамо Київ", k=2, mode=mode, filters=Filters(source=("other",))).hits
        assert hits == []
        hits = searcher.search("Динамо Київ", k=2, mode=mode, filters=Filters(source=("test",))).hits
        assert len(hits) == 2


def test_collapse_returns_each_article_once_with_its_other_matches(index_dir: Path, hash_encoder: HashEncoder) -> None:
    searcher = Searcher(Index.open(index_dir), hash_encoder)
    hits = searcher.search("зерно експорт пшениці порт", k=10, collapse=True, mode="dense").hits
    assert len({h.doc_id for h in hits}) == len(hits) == 3
    grain = next(h for h in hits if h.doc_id == "grain")
    assert grain.other_matches == 1


def test_pages_do_not_overlap(index_dir: Path, hash_encoder: HashEncoder) -> None:
    searcher = Searcher(Index.open(index_dir), hash_encoder)
    full = [h.passage_id for h in searcher.search("порт Динамо", k=4).hits]
    first = searcher.search("порт Динамо", k=2).hits
    second = searcher.search("порт Динамо", k=2, offset=2).hits
    assert [h.passage_id for h in first + second] == full
    assert [h.rank for h in second] == [3, 4]


def test_similar_lists_other_articles_once_each(index_dir: Path, hash_encoder: HashEncoder) -> None:
    searcher = Searcher(Index.open(index_dir), hash_encoder)
    result = searcher.similar("grain", k=5)
    assert {h.doc_id for h in result.hits} == {"football", "ecb"}
    assert len(result.hits) == 2
    with pytest.raises(NotFoundError):
        searcher.similar("missing")


def test_a_filters_allowed_rows_are_kept_until_the_next_change(index_dir: Path, hash_encoder: HashEncoder) -> None:
    index = Index.open(index_dir)
    only_test = Filters(source=("test",))
    first = q.allowed_rows(index, only_test)
    assert len(first) == 4 and not first.flags.writeable
    assert q.allowed_rows(index, only_test) is first  # the same filter again: no query
    assert len(q.allowed_rows(index, Filters(source=("other",)))) == 0
    with IndexWriter(index_dir, hash_encoder.identity, ChunkingSettings()) as writer:  # another writer commits
        text = "Нова стаття про порт"
        passage = Passage(id=passage_id("new", 0), doc_id="new", ordinal=0, text=text, embed_text=text)
        writer.upsert(
            Article(id="new", title="", text=text, source="test"), [passage], hash_encoder.encode_passages([text])
        )
    assert len(q.allowed_rows(index, only_test)) == 5  # a logged change makes it read again
    index.refresh()
    searcher = Searcher(index, hash_encoder)
    everything = searcher.search("порт", k=10, mode="dense", filters=only_test)  # allows all: no selector
    assert {h.doc_id for h in everything.hits} == {"grain", "football", "ecb", "new"}


def test_a_broad_filter_ranks_like_the_joined_query(index_dir: Path, hash_encoder: HashEncoder) -> None:
    with IndexWriter(index_dir, hash_encoder.identity, ChunkingSettings()) as writer:
        text = "Порт Одеса прийняв судно з зерном"
        passage = Passage(id=passage_id("other", 0), doc_id="other", ordinal=0, text=text, embed_text=text)
        writer.upsert(
            Article(id="other", title="", text=text, source="other"), [passage], hash_encoder.encode_passages([text])
        )
    index = Index.open(index_dir)
    searcher = Searcher(index, hash_encoder)
    broad = Filters(source=("test",))  # 4 of 5 passages: ranked unfiltered, then kept if allowed
    allowed = set(q.allowed_rows(index, broad).tolist())
    for query in ("порт зерно", "Динамо", "ECB rates"):
        match = analyse_query(query, searcher._analyzer)
        everything = q.lexical(index, match, 100)
        for limit in (1, 2, 10):
            assert q.lexical(index, match, limit, broad) == [h for h in everything if h[0] in allowed][:limit]
        articles = q.articles(index, match, 100)
        assert q.articles(index, match, 10, broad) == [a for a in articles if a[1] in allowed][:10]
    narrow = Filters(source=("other",))  # 1 of 5: the joined query
    match = analyse_query("порт", searcher._analyzer)
    assert [r for r, _ in q.lexical(index, match, 10, narrow)] == sorted(q.allowed_rows(index, narrow).tolist())
