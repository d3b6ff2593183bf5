"""``poshuk index --ray``: encoding on a local Ray cluster builds the index a local run builds."""

from __future__ import annotations

import glob
import json
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from poshuk_cli.main import main
from tests.support.processes import cli_env

POSHUK = str(Path(sys.executable).with_name("poshuk"))
ARTICLES = Path(__file__).resolve().parents[2] / "examples" / "articles"


def _run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([POSHUK, *args], capture_output=True, text=True, timeout=600, env={**cli_env(), **env})


def _stored(index: Path) -> list[tuple[Any, ...]]:
    """Every passage as stored: row id, id, vector bytes, lexical terms and story cluster."""
    (db,) = glob.glob(str(index / "versions" / "*" / "meta.sqlite"))
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return conn.execute(
            "SELECT p.row_id, p.passage_id, p.vector, l.terms, d.cluster FROM passages p "
            "JOIN lexical l ON l.rowid = p.row_id JOIN documents d ON d.doc_id = p.doc_id ORDER BY p.row_id"
        ).fetchall()


@pytest.mark.e2e
@pytest.mark.model
def test_ray_encoding_builds_the_index_a_local_run_builds(tmp_path: Path) -> None:
    # Two articles a group: the 30 example articles make 4 groups for a pool of up to 2 actors.
    small_groups = {"POSHUK_BATCH_SIZE": "2"}
    local = _run("index", str(ARTICLES), "--index", str(tmp_path / "local"), "--shards", "2", "--no-progress")
    assert local.returncode == 0, local.stderr
    done = _run(
        "index", str(ARTICLES), "--index", str(tmp_path / "ray"), "--shards", "2", "--no-progress",
        "--ray", "local", "--encoder-actors", "2", **small_groups,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "indexed 30 documents (119 passages)" in done.stdout and "in 2 shard(s)" in done.stdout
    local_rows, ray_rows = _stored(tmp_path / "local" / "staging"), _stored(tmp_path / "ray" / "staging")
    assert len(ray_rows) == 119 and ray_rows == local_rows  # same rows, vectors to the bit, terms, clusters
    for query in ("мед експорт", "grain exports Odesa"):
        answers = []
        for index in ("local", "ray"):
            found = _run("search", query, "--index", str(tmp_path / index), "--json")
            assert found.returncode == 0, found.stderr
            answer = json.loads(found.stdout)
            answer.pop("took_ms")
            answers.append(answer)
        assert answers[0] == answers[1] and answers[0]["hits"]


@pytest.fixture
def no_model(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the model was loaded before the options were checked")

    monkeypatch.setattr("poshuk.models.load_encoder", refuse)


@pytest.mark.usefixtures("no_model")
@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--encoder-actors", "2"], "--encoder-actors needs --ray"),
        (["--gpus-per-actor", "1"], "--gpus-per-actor needs --ray"),
        (["--ray", "local", "--encoder-actors", "0"], "--encoder-actors must be between 1 and 1024, got 0"),
        (["--ray", "local", "--cpus-per-actor", "0"], "--cpus-per-actor must be above 0"),
        (["--ray", "local", "--gpus-per-actor", "1"], "--gpus-per-actor needs the torch encoder on a GPU device"),
        (["--ray", " "], "--ray needs an address"),
    ],
)
def test_ray_options_are_refused_before_anything_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    assert main(["index", str(ARTICLES), "--index", str(tmp_path / "idx"), *extra]) == 1
    err = capsys.readouterr().err.strip()
    assert message in err and err.count("\n") == 0
    assert not (tmp_path / "idx").exists()


@pytest.mark.usefixtures("no_model")
def test_ray_without_the_extra_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError, as without the extra
    assert main(["index", str(ARTICLES), "--index", str(tmp_path / "idx"), "--ray", "local"]) == 1
    err = capsys.readouterr().err.strip()
    assert "--ray needs Ray, which this install lacks" in err and "pip install 'poshuk[ray]'" in err
    assert err.count("\n") == 0 and not (tmp_path / "idx").exists()


@pytest.mark.e2e
@pytest.mark.model
def test_a_worker_lost_mid_run_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    local = _run("index", str(ARTICLES), "--index", str(tmp_path / "local"), "--no-progress")
    assert local.returncode == 0, local.stderr
    done = subprocess.run(
        [sys.executable, "-m", "tests.support.ray_worker_loss", str(ARTICLES), str(tmp_path / "ray")],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=Path(__file__).resolve().parents[2],
        env=cli_env(),
    )
    assert done.returncode == 0, done.stderr[-2000:]
    outcome = json.loads(done.stdout.strip().splitlines()[-1])
    assert outcome["killed_mid_run"], "the run ended before the worker node was removed"
    assert outcome["rc"] == 0, outcome["stderr"]
    assert "indexed 30 documents (119 passages)" in outcome["stdout"]
    assert _stored(tmp_path / "ray") == _stored(tmp_path / "local")  # every row once, as a local run wrote it
