"""``poshuk search`` in-process: argument checking, and output over a HashEncoder index.

Argument mistakes exit 2 with one error line before any model loads. Searches replace
the model loader (the boundary) with the ``HashEncoder`` the index was built with.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from poshuk.encoder import Encoder, HashEncoder
from poshuk.settings import Settings
from poshuk.wire import Hit, SearchResult, Span
from poshuk_cli import search as cli_search
from poshuk_cli.main import build_parser, main
from poshuk_cli.search import BOLD, RESET, format_result
from tests.support.news import NEWS_BY_ID, build_news_index


@pytest.fixture(scope="module")
def news_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_news_index(tmp_path_factory.mktemp("cli") / "index", HashEncoder())


@pytest.fixture
def no_model(monkeypatch: pytest.MonkeyPatch) -> None:
    """Argument errors must be reported before any model loads."""

    def refuse(settings: Settings) -> Encoder:
        raise AssertionError("a model was loaded")

    monkeypatch.setattr("poshuk.models.load_encoder", refuse)


def _usage_error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    errors = [line for line in captured.err.splitlines() if "error:" in line]
    assert len(errors) == 1, captured.err
    assert captured.err.splitlines()[-1] == errors[0]  # usage first, then the one error line
    return errors[0]


SEARCH = ["search", "дрони", "--index", "unused-index"]


@pytest.mark.usefixtures("no_model")
@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        (["--from", "31.08.2023"], "argument --from: expected an ISO 8601 date or date-time"),
        (["--to", "2023-02-30"], "argument --to: expected an ISO 8601 date"),
        (["--from", "yesterday"], "'yesterday'"),
        (["--mode", "bm25"], "argument --mode: invalid choice: 'bm25'"),
        (["--offset", "-1"], "argument --offset: must be between 0 and 199, got -1"),
        (["--offset", "200"], "argument --offset: must be between 0 and 199, got 200"),
        (["--offset", "two"], "argument --offset: expected a whole number, got 'two'"),
        (["--from", "2023-09-01", "--to", "2023-08-01"], "--from (2023-09-01) is after --to (2023-08-01)"),
        (["--sort", "latest"], "argument --sort: invalid choice: 'latest'"),
        (["--facet", "author"], "argument --facet: invalid choice: 'author'"),
        (["--recency", "0"], "--recency must be above 0 and at most 36500, got 0.0"),
        (["--recency", "soon"], "argument --recency: invalid float value: 'soon'"),
        (["--sort", "newest", "--recency", "7"], "--recency applies to --sort relevance only"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(
    capsys: pytest.CaptureFixture[str], extra: list[str], fragment: str
) -> None:
    assert fragment in _usage_error(capsys, [*SEARCH, *extra])


@pytest.mark.usefixtures("no_model")
def test_help_lists_the_search_options(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["search", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for flag in ("--mode", "--lang", "--source", "--section", "--tag", "--from", "--to", "--collapse", "--offset"):
        assert flag in out


Run = Callable[..., tuple[int, str, str]]


@pytest.fixture
def run(hash_model: None, news_dir: Path, capsys: pytest.CaptureFixture[str]) -> Run:
    def go(*args: str) -> tuple[int, str, str]:
        code = main(["search", *args, "--index", str(news_dir)])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return go


def _json(run: Run, *args: str) -> dict[str, Any]:
    code, out, err = run(*args, "--json")
    assert code == 0, err
    result: dict[str, Any] = json.loads(out)
    return result


def _docs(result: dict[str, Any]) -> list[str]:
    hits = result["hits"]
    assert isinstance(hits, list)
    return [h["doc_id"] for h in hits]


def test_sort_and_recency_order_the_hits(run: Run) -> None:
    newest = _json(run, "дрони", "--collapse", "--sort", "newest")
    assert newest["sort"] == "newest"
    dates = [h["published_at"] for h in newest["hits"] if h["published_at"]]
    assert len(dates) >= 2 and dates == sorted(dates, reverse=True)
    code, out, _ = run("дрони атакували", "--facet", "source", "--facet", "lang")
    assert code == 0 and out.splitlines()[-2].startswith("source: ") and out.splitlines()[-1].startswith("lang: uk ")
    assert set(_json(run, "дрони атакували", "--facet", "month")["facets"]) == {"month"}
    boosted = _json(run, "дрони атакували", "--recency", "30")
    plain = _json(run, "дрони атакували")
    assert boosted["hits"][0]["score"] < plain["hits"][0]["score"]  # 2023 articles: every score decays


def test_json_prints_the_full_result(run: Run) -> None:
    result = _json(run, "дрони атакували", "-k", "3", "--mode", "lexical")
    assert result["mode"] == "lexical"
    assert result["offset"] == 0
    hits = result["hits"]
    assert isinstance(hits, list) and len(hits) == 3
    top = hits[0]
    assert top["passage_id"] == "uk-war-1#0"
    assert top["highlight_kind"] == "terms"
    assert [top["text"][s["start"] : s["end"]] for s in top["highlights"]] == ["дрони атакували"]
    assert top["other_matches"] == 0


def test_filter_flags(run: Run) -> None:
    docs = _docs(_json(run, "дрони", "-k", "20", "--lang", "uk", "--tag", "дрони", "--to", "2023-08-15"))
    assert set(docs) == {"uk-war-1", "uk-war-2"}
    docs = _docs(_json(run, "дрони", "-k", "20", "--source", "Reuters", "--source", "AP"))
    assert set(docs) == {"en-war-1", "en-econ-1", "en-econ-2"}
    docs = _docs(_json(run, "дрони", "-k", "20", "--section", "business", "--from", "2023-09-01T00:00:00Z"))
    assert docs == ["en-econ-1"]
    assert _docs(_json(run, "дрони", "--lang", "pl")) == []


def test_collapse_and_offset(run: Run) -> None:
    whole = _docs(_json(run, "дрони атакували", "-k", "4", "--collapse"))
    assert len(whole) == len(set(whole)) == 4
    second = _json(run, "дрони атакували", "-k", "2", "--collapse", "--offset", "2")
    assert second["offset"] == 2
    assert _docs(second) == whole[2:]


def test_dedupe_returns_each_story_once(run: Run) -> None:
    body = _json(run, "дрони атакували", "-k", "20", "--dedupe")
    clusters = [h["cluster"] for h in body["hits"]]
    assert clusters and len(clusters) == len(set(clusters))


def test_plain_output_without_a_terminal(run: Run) -> None:
    code, out, _ = run("дрони атакували", "-k", "2", "--collapse", "--mode", "lexical")
    assert code == 0
    lines = out.splitlines()
    assert len(lines) == 4
    assert lines[0].startswith(" 1. [") and "(uk-war-1 2023-08-01) (+1 more in this article)" in lines[0]
    assert lines[1] == "    " + NEWS_BY_ID["uk-war-1"].text.split("\n\n")[0]  # no escape codes when piped
    assert "\033" not in out


def test_no_results(run: Run) -> None:
    code, out, _ = run("дрони", "--lang", "pl")
    assert (code, out) == (0, "no results\n")


def test_plain_output_marks_highlights_in_bold_for_a_terminal() -> None:
    text = "Уночі дрони атакували порт."
    hit = Hit(
        rank=3,
        score=0.5,
        passage_id="a#0",
        doc_id="a",
        title="Title",
        text=text,
        published_at=datetime(2023, 8, 1, tzinfo=UTC),
        highlights=[Span(6, 21), Span(22, 26)],
        highlight_kind="terms",
        other_matches=2,
    )
    result = SearchResult(query="q", took_ms=1.0, model="m", hits=[hit], offset=2)
    bold = format_result(result, bold=True)
    assert bold == (
        f" 3. [0.500] Title (a 2023-08-01) (+2 more in this article)\n"
        f"    Уночі {BOLD}дрони атакували{RESET} {BOLD}порт{RESET}.\n"
    )
    assert format_result(result, bold=False).splitlines()[1] == f"    {text}"


def test_readme_search_examples_parse() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Command line", 1)[1].split("\n## ", 1)[0]
    lines = [line.split("  #")[0] for line in section.splitlines() if line.startswith("poshuk search ")]
    assert any("--collapse" in line and "--from" in line for line in lines)
    parser = build_parser()
    for line in lines:
        args = parser.parse_args(shlex.split(line)[1:])
        assert args.func is cli_search._cmd_search


@pytest.mark.usefixtures("hash_model")
def test_index_reads_a_feed_and_reports_its_bad_entry(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tests.unit.test_feed_reader import RSS

    feed = tmp_path / "kv.rss"
    feed.write_text(RSS, encoding="utf-8")
    assert main(["index", str(feed), "--index", str(tmp_path / "idx"), "--no-progress"]) == 1
    out, err = capsys.readouterr()
    assert "indexed 2 documents" in out and "entry 3" in err and "has no text" in err
    assert main(["search", "дрони порт", "--index", str(tmp_path / "idx"), "--json"]) == 0
    hits = json.loads(capsys.readouterr().out)["hits"]
    assert hits[0]["doc_id"] == "https://kv.example/1" and hits[0]["source"] == "Київський вісник"


@pytest.mark.usefixtures("hash_model")
def test_index_with_shards_splits_and_searches_as_one_index(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    articles = Path(__file__).resolve().parents[2] / "examples" / "articles"
    assert main(["index", str(articles), "--index", str(tmp_path / "one"), "--no-progress"]) == 0
    assert main(["index", str(articles), "--index", str(tmp_path / "arc"), "--shards", "3", "--no-progress"]) == 0
    assert "in 3 shard(s)" in capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "arc").iterdir()) == [
        "SET",
        "shard-000",
        "shard-001",
        "shard-002",
        "staging",
    ]
    for query in ("мед експорт", "grain exports Odesa", "Kirby"):
        assert main(["search", query, "--index", str(tmp_path / "one"), "--json"]) == 0
        one = json.loads(capsys.readouterr().out)
        assert main(["search", query, "--index", str(tmp_path / "arc"), "--json"]) == 0
        sharded = json.loads(capsys.readouterr().out)
        one.pop("took_ms"), sharded.pop("took_ms")
        assert one == sharded and one["hits"]
    # Again with another count: a new generation replaces the old shards, nothing is encoded again.
    assert main(["index", str(articles / "en-009.txt"), "--index", str(tmp_path / "arc"), "--shards", "2"]) == 0
    assert sorted(p.name for p in (tmp_path / "arc").iterdir()) == ["SET", "shard-000-g2", "shard-001-g2", "staging"]
    capsys.readouterr()
    for argv, message in (
        (
            ["index", str(articles), "--index", str(tmp_path / "arc"), "--rebuild", "--no-progress"],
            "sharded archive",
        ),  # --rebuild without --shards: refused (without --rebuild it writes through the shards)
        (["index", str(articles), "--index", str(tmp_path / "one"), "--shards", "2"], "holds one index"),
        (["index", str(articles), "--index", str(tmp_path / "new"), "--shards", "0"], "between 1 and 256"),
    ):
        assert main(argv) == 1
        err = capsys.readouterr().err.strip()
        assert message in err and err.count("\n") == 0
    assert not (tmp_path / "new").exists()
