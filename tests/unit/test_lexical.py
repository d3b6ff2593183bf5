"""Lexical side: analysis, transliteration, query terms, fusion, highlights, filters."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import msgspec
import pytest

from poshuk.analysis import Analyzer, LexicalSettings
from poshuk.candidates import Candidate, Candidates
from poshuk.errors import InvalidQueryError
from poshuk.filters import Filters, where_clause
from poshuk.fusion import FusionSettings, fuse
from poshuk.highlight import sentence_span, term_spans
from poshuk.query import analyse_query
from poshuk.translit import transliterate


@pytest.fixture(scope="module")
def analyzer() -> Analyzer:
    return Analyzer()


def test_ukrainian_inflections_share_a_lemma(analyzer: Analyzer) -> None:
    assert analyzer.terms("Північної Кореї") == analyzer.terms("Північна Корея") == ["північний", "корея"]
    assert analyzer.terms("переговорах") == analyzer.terms("переговори")


def test_apostrophe_variants_and_case_are_one_term(analyzer: Analyzer) -> None:
    variants = ["м'ясо", "м’ясо", "мʼясо", "М`ЯСО"]
    assert len({tuple(analyzer.terms(v)) for v in variants}) == 1


def test_english_is_stemmed_and_stopwords_dropped(analyzer: Analyzer) -> None:
    assert analyzer.terms("The talks are advancing") == ["talk", "advanc"]
    assert analyzer.terms("і та що у в") == []


def test_token_offsets_point_into_the_text(analyzer: Analyzer) -> None:
    text = "Візит Шойгу до Пхеньяна"
    assert [text[t.start : t.end] for t in analyzer.tokens(text)] == ["Візит", "Шойгу", "Пхеньяна"]


def test_prefix_strategy(analyzer: Analyzer) -> None:
    prefix = Analyzer(LexicalSettings(strategy="prefix", prefix_chars=6))
    assert prefix.terms("Північної Кореї") == ["північ", "кореї"]


@pytest.mark.parametrize(
    ("latin", "cyrillic"),
    [("Kirby", "кірбі"), ("Shoigu", "шойгу"), ("Putin", "путін"), ("Kharkiv", "харків"), ("Odesa", "одеса")],
)
def test_names_transliterate_to_their_ukrainian_spelling(latin: str, cyrillic: str) -> None:
    assert cyrillic in transliterate(latin)


@pytest.mark.parametrize("word", ["", "Київ", "R2D2", "foo-bar"])
def test_transliteration_ignores_non_latin_words(word: str) -> None:
    assert transliterate(word) == []


def test_query_names_become_cyrillic_prefixes(analyzer: Analyzer) -> None:
    query = analyse_query("What did Kirby say about Shoigu?", analyzer)
    assert "кірб" in query.prefixes and "шойг" in query.prefixes
    assert query.terms == ("kirbi", "say", "shoigu")
    assert '"кірб"*' in query.match_expression()
    units_in = query.finder()
    assert units_in("кірбі шойгу say") == ("kirbi", "say", "shoigu")
    assert units_in("кірбіна інше") == ("kirbi",)  # a name prefix
    assert units_in("інше кірбі") == ("kirbi",)  # at the end too
    assert units_in("saying sayer") == ()  # whole terms only
    assert units_in("") == ()


UNITS = ("u1", "u2")  # a query with two pieces of evidence: coverage is 0, 0.5 or 1


def _c(row: int, doc: str = "", coverage: float = 0.0) -> Candidate:
    return Candidate(row, doc or f"d{row}", 0.0, UNITS[: round(coverage * len(UNITS))])


def _fused(
    dense: list[int],
    lexical: dict[int, float],
    settings: FusionSettings,
    articles: list[Candidate] | None = None,
    doc_of: dict[int, str] | None = None,
) -> list[tuple[int, float]]:
    doc = doc_of or {}
    found = Candidates(
        dense=[_c(r, doc.get(r, "")) for r in dense],
        passages=[_c(r, doc.get(r, ""), cov) for r, cov in lexical.items()],
        articles=articles or [],
    )
    return fuse(found, len(UNITS), settings)


def test_fusion_scales_lexical_votes_by_coverage() -> None:
    settings = FusionSettings(rrf_k=60.0, lexical_weight=1.0, coverage_power=1.0)
    fused = dict(_fused([1, 2], {3: 0.0, 2: 1.0}, settings))
    assert 3 not in fused  # a lexical hit with no coverage gets no vote
    assert fused[2] == pytest.approx(1 / 62 + 1 / 62)
    assert [row for row, _ in _fused([1, 2], {3: 0.0, 2: 1.0}, settings)] == [2, 1]


def test_fusion_is_stable_for_equal_scores() -> None:
    settings = FusionSettings()
    assert [r for r, _ in _fused([5], {7: 1.0}, settings)] == [5, 7]


def test_article_votes_go_to_every_candidate_passage_of_the_article() -> None:
    settings = FusionSettings(rrf_k=10.0, article_weight=1.0, article_coverage_power=2.0)
    doc_of = {1: "a", 2: "b", 3: "b"}
    articles = [_c(2, "b", 0.5), _c(1, "a", 1.0)]
    fused = dict(_fused([1, 2], {3: 1.0}, settings, articles, doc_of))
    assert fused[2] == pytest.approx(1 / 12 + 0.25 / 11)
    assert fused[3] == pytest.approx(1 / 11 + 0.25 / 11)
    assert fused[1] == pytest.approx(1 / 11 + 1 / 12)
    # without articles (or with article_weight 0) the fusion is the passage-level one
    off = FusionSettings(article_weight=0.0)
    assert _fused([1, 2], {3: 1.0}, off, articles, doc_of) == _fused([1, 2], {3: 1.0}, off, None, doc_of)


def test_in_a_document_with_pages_a_page_vote_goes_to_that_pages_passages_only() -> None:
    settings = FusionSettings(rrf_k=10.0, article_weight=1.0, article_coverage_power=2.0)
    found = Candidates(
        dense=[Candidate(1, "report", 0.9, page=1), Candidate(2, "report", 0.8, page=12)],
        passages=[Candidate(3, "report", 5.0, UNITS, page=12)],
        articles=[Candidate(2, "report", 9.0, UNITS, page=12)],  # page 12's unit, keyed by its first row
    )
    fused = dict(fuse(found, len(UNITS), settings))
    assert fused[1] == pytest.approx(1 / 11)  # page 1 of the same document gets no share of page 12's vote
    assert fused[2] == pytest.approx(1 / 12 + 1 / 11)
    assert fused[3] == pytest.approx(1 / 11 + 1 / 11)
    assert [row for row, _ in fuse(found, len(UNITS), settings)] == [3, 2, 1]


def test_an_article_without_candidate_passages_enters_by_its_first_passage() -> None:
    settings = FusionSettings()
    articles = [_c(40, "c", 1.0), _c(50, "d", 0.0)]
    fused = dict(_fused([1], {}, settings, articles, {1: "a"}))
    assert fused[40] == pytest.approx(1 / (settings.rrf_k + 1))
    assert 50 not in fused  # an article with no coverage gets no vote


def test_candidates_cross_a_process_boundary_and_fuse_the_same() -> None:
    """What a shard sends (msgpack) is all fusion needs: the decoded lists rank identically."""
    settings = FusionSettings()
    found = Candidates(dense=[_c(1), _c(2)], passages=[_c(2, "", 1.0), _c(3, "", 0.5)], articles=[_c(1, "d1", 1.0)])
    sent = msgspec.msgpack.decode(msgspec.msgpack.encode(found), type=Candidates)
    assert sent == found
    assert fuse(sent, len(UNITS), settings) == fuse(found, len(UNITS), settings)


def test_term_spans_cover_inflected_forms_and_names(analyzer: Analyzer) -> None:
    text = "Кірбі заявив про поїздку Шойгу до Північної Кореї."
    query = analyse_query("Kirby Північна Корея", analyzer)
    spans = [text[s.start : s.end] for s in term_spans(text, query, analyzer)]
    assert spans == ["Кірбі", "Північної Кореї"]


def test_sentence_span() -> None:
    text = "Перше речення. Друге речення."
    span = sentence_span(text, "Друге речення.")
    assert span is not None and text[span.start : span.end] == "Друге речення."
    assert sentence_span(text, "немає") is None


def test_filters_to_sql() -> None:
    start = datetime(2025, 1, 1, tzinfo=UTC)
    condition, params = where_clause(
        Filters(lang=("uk",), tags=("спорт", "футбол"), published_from=start, published_to=start + timedelta(days=1))
    )
    assert condition.count("json_each") == 1  # one subquery per row, however many tags
    assert params == ["uk", "спорт", "футбол", 2, start.timestamp(), start.timestamp() + 86400]
    assert where_clause(None) == ("1", [])
    assert where_clause(Filters()) == ("1", [])


def test_filter_lists_are_bounded_and_deduplicated() -> None:
    import msgspec

    from poshuk.filters import MAX_FILTER_VALUE_CHARS, MAX_FILTER_VALUES

    assert Filters(tags=("a", "b", "a")).checked().tags == ("a", "b")
    with pytest.raises(InvalidQueryError, match=f"at most {MAX_FILTER_VALUES}"):
        Filters(tags=tuple(f"t{n}" for n in range(MAX_FILTER_VALUES + 1))).checked()
    with pytest.raises(InvalidQueryError, match=f"at most {MAX_FILTER_VALUE_CHARS}"):
        Filters(source=("x" * (MAX_FILTER_VALUE_CHARS + 1),)).checked()
    body = msgspec.json.encode({"tags": [f"t{n}" for n in range(MAX_FILTER_VALUES + 1)]})
    with pytest.raises(msgspec.ValidationError, match=f"length <= {MAX_FILTER_VALUES}"):
        msgspec.json.decode(body, type=Filters)  # the same bound when decoding a request


def test_filters_compare_instants_across_zones() -> None:
    kyiv = datetime(2025, 1, 1, 2, 0, tzinfo=timezone(timedelta(hours=2)))
    _, params = where_clause(Filters(published_from=kyiv))
    assert params == [datetime(2025, 1, 1, tzinfo=UTC).timestamp()]


def test_reversed_date_range_is_an_input_error() -> None:
    with pytest.raises(InvalidQueryError, match="after"):
        where_clause(Filters(published_from=datetime(2025, 2, 1), published_to=datetime(2025, 1, 1)))
