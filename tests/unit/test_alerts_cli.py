"""``poshuk alerts`` in-process over a HashEncoder index (the model loader replaced at the boundary)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from poshuk.encoder import HashEncoder
from poshuk_cli.main import main
from tests.support.store import make_article, write_articles
from tests.unit.test_alerts import DRONES, FOOTBALL, write_live

ENCODER = HashEncoder()


@pytest.fixture
def index_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "index"
    write_articles(folder, ENCODER, make_article("old-1", "Шахтарі страйкують на Донбасі."))
    return folder


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_add_list_matches_delete(hash_model: None, index_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    index = str(index_dir)
    code, out, err = cli(
        capsys, "alerts", "add", "дрони атакували порт Одеси", "--index", index, "--threshold", "0.5", "--json"
    )
    assert code == 0, err
    alert = json.loads(out)
    words = json.loads(cli(capsys, "alerts", "add", "Динамо", "--mode", "lexical", "--index", index, "--json")[1])
    # Hex ids: a url-safe one starting with '-' (1 in 64) read as an option below and failed CI once.
    assert all(re.fullmatch(r"[0-9a-f]{32}", made["id"]) for made in (alert, words))
    write_live(index_dir, DRONES, FOOTBALL)
    code, out, _ = cli(capsys, "alerts", "matches", alert["id"], "--index", index, "--json")
    assert code == 0 and [m["doc_id"] for m in json.loads(out)["matches"]] == ["new-1"]
    code, out, _ = cli(capsys, "alerts", "matches", words["id"], "--index", index)
    assert code == 0 and "new-2" in out and "words" in out
    code, out, _ = cli(capsys, "alerts", "list", "--index", index)
    assert code == 0 and alert["id"] in out and words["id"] in out and "1 match(es)" in out
    assert cli(capsys, "alerts", "delete", alert["id"], "--index", index)[0] == 0
    code, out, _ = cli(capsys, "alerts", "list", "--index", index, "--json")
    assert [a["id"] for a in json.loads(out)] == [words["id"]]


def test_mistakes_exit_with_one_line(hash_model: None, index_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    index = str(index_dir)
    code, _, err = cli(capsys, "alerts", "matches", "no-such-alert", "--index", index)
    assert code == 1 and err.strip().count("\n") == 0 and "does not exist" in err
    code, _, err = cli(capsys, "alerts", "add", "дрони", "--index", index, "--webhook", "http://127.0.0.1:9/")
    assert code == 1 and "not a public address" in err
    with pytest.raises(SystemExit) as exit_:
        main(["alerts", "add", "дрони", "--index", index, "--threshold", "2"])
    assert exit_.value.code == 2 and "between 0 and 1" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        main(["alerts", "add", "дрони", "--index", index, "--from", "yesterday"])
    assert exit_.value.code == 2


def test_poshuk_index_matches_what_it_wrote(
    hash_model: None, index_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    index = str(index_dir)
    code, out, err = cli(capsys, "alerts", "add", "Динамо", "--mode", "lexical", "--index", index, "--json")
    assert code == 0, err
    alert = json.loads(out)
    source = tmp_path / "new.jsonl"
    record = {"id": "new-2", "title": "Динамо виграло", "text": "Динамо виграло матч чемпіонату.", "lang": "uk"}
    source.write_text(json.dumps(record, ensure_ascii=False) + "\n", encoding="utf-8")
    code, _, err = cli(capsys, "index", str(source), "--index", index, "--no-progress")
    assert code == 0, err
    assert "1 new match(es) for saved searches" in err
    from poshuk.alerts import AlertStore

    store = AlertStore(index_dir)  # recorded by the run itself, before anyone asks
    assert [m.doc_id for m in store.matches(alert["id"], limit=10)] == ["new-2"]
    store.close()
