"""``poshuk index`` and ``poshuk search`` as real processes, including kills mid-run."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import copy_index, poshuk_without_model_extra
from tests.consistency import check_index

pytestmark = [pytest.mark.e2e, pytest.mark.model]

POSHUK = str(Path(sys.executable).with_name("poshuk"))


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("POSHUK_") or k == "POSHUK_HOME"}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _run(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([POSHUK, *args], capture_output=True, text=True, timeout=timeout, env=_env())


def _search_ids(index_dir: Path, query: str) -> list[str]:
    done = _run("search", query, "--index", str(index_dir), "-k", "3", "--json")
    assert done.returncode == 0, done.stderr
    return [hit["doc_id"] for hit in json.loads(done.stdout)["hits"]]


@pytest.fixture(scope="module")
def example_index(example_index_source: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_index(example_index_source, tmp_path_factory.mktemp("cli") / "index")


def _big_source(path: Path, articles: int = 3000) -> Path:
    with path.open("w", encoding="utf-8") as fh:
        for n in range(articles):
            text = "\n\n".join(
                f"Абзац {p} статті {n}: міська рада обговорила бюджет, ремонт доріг і нові автобуси." for p in range(4)
            )
            fh.write(json.dumps({"id": f"bulk-{n}", "title": f"Новина {n}", "text": text, "lang": "uk"}) + "\n")
    return path


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _wal_bytes(index_dir: Path) -> int:
    return sum(wal.stat().st_size for wal in (index_dir / "versions").glob("*/meta.sqlite-wal"))


def _wait_for_writer(index_dir: Path, process: subprocess.Popen[str], timeout: float = 300) -> None:
    """Wait until the run has written passages into its (uncommitted) transaction (live or new version)."""
    start = _wal_bytes(index_dir)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _wal_bytes(index_dir) > start + 64 * 1024:
            return
        assert process.poll() is None, "indexing ended before it could be interrupted"
        time.sleep(0.05)
    raise AssertionError("the writer never started writing")


def test_cli_search_answers_in_both_languages(example_index: Path) -> None:
    assert _search_ids(example_index, "Russia North Korea ammunition talks")[0] == "uk-001"
    assert "uk-002" in _search_ids(example_index, "експорт зерна через порти Одеси")


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT])
def test_killed_indexing_keeps_whole_groups_and_the_old_index_usable(
    example_index: Path, tmp_path: Path, sig: signal.Signals
) -> None:
    """An incremental run commits group by group: killed at any moment, the index holds the
    groups it committed, each article whole, and everything it held before."""
    example_index = Path(shutil.copytree(example_index, tmp_path / "index"))  # this test writes to it
    live_before = (example_index / "CURRENT").read_text(encoding="utf-8")
    counts_before = check_index(example_index)
    source = _big_source(tmp_path / "bulk.jsonl")
    group = 4 * 4  # POSHUK_BATCH_SIZE * 4 articles per transaction
    process = subprocess.Popen(
        [POSHUK, "index", str(source), "--index", str(example_index), "--no-progress"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**_env(), "POSHUK_BATCH_SIZE": "4"},  # small batches: the first write comes within seconds
        # Ctrl-C as from a terminal, even when this test runs as a background job (whose children
        # inherit SIGINT ignored, and Python then never raises KeyboardInterrupt)
        preexec_fn=_default_sigint,
    )
    try:
        _wait_for_writer(example_index, process)
        process.send_signal(sig)
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    if sig == signal.SIGINT:
        assert process.returncode == 130
        assert "articles were written before the interrupt, each whole" in stderr or "index was not changed" in stderr
        assert len(stderr.strip().splitlines()) == 1, stderr  # one line, no traceback
    else:
        assert process.returncode == -signal.SIGKILL
    assert (example_index / "CURRENT").read_text(encoding="utf-8") == live_before  # the same version, grown
    counts = check_index(example_index)  # whole: passages, terms and vectors agree; nothing half-written
    bulk = counts["documents"] - counts_before["documents"]
    assert bulk % group == 0, f"{bulk} bulk articles: not whole groups"
    if bulk:  # the bulk articles are alike: each with all its passages
        assert (counts["passages"] - counts_before["passages"]) % bulk == 0
    assert _search_ids(example_index, "Russia North Korea ammunition talks")[0] == "uk-001"


def test_killed_rebuild_leaves_the_live_version_and_its_leftovers_are_cleared(
    example_index: Path, tmp_path: Path
) -> None:
    example_index = Path(shutil.copytree(example_index, tmp_path / "index"))  # this test rebuilds it
    live_before = (example_index / "CURRENT").read_text(encoding="utf-8")
    counts_before = check_index(example_index)
    source = _big_source(tmp_path / "bulk.jsonl", articles=40)
    process = subprocess.Popen(
        [POSHUK, "index", str(source), "--index", str(example_index), "--rebuild", "--no-progress"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=_env(),
    )
    try:
        deadline = time.monotonic() + 180
        while not list((example_index / "versions").glob("tmp-*")):  # the new version is being filled
            assert process.poll() is None and time.monotonic() < deadline, "the rebuild ended too early"
            time.sleep(0.02)
        time.sleep(random.Random(7).uniform(0.0, 1.0))
        process.kill()
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert (example_index / "CURRENT").read_text(encoding="utf-8") == live_before
    assert check_index(example_index) == counts_before
    small = tmp_path / "one.jsonl"
    small.write_text(json.dumps({"id": "one", "title": "Один", "text": "Одна стаття."}) + "\n", encoding="utf-8")
    done = _run("index", str(small), "--index", str(example_index), "--rebuild", "--no-progress")
    assert done.returncode == 0, done.stderr
    assert not list((example_index / "versions").glob("tmp-*"))  # the dead build's folder was removed
    assert check_index(example_index)["documents"] == 1


def test_bad_records_are_reported_and_make_a_nonzero_exit(tmp_path: Path, example_index: Path) -> None:
    source = tmp_path / "mixed.jsonl"
    source.write_bytes(
        b'{"id": "ok-1", "title": "\xd0\x9d\xd0\xbe\xd0\xb2\xd0\xb8\xd0\xbd\xd0\xb0", "text": "Good text here."}\n'
        b"{not json}\n"
        b'{"id": "no-text", "title": "x"}\n'
    )
    index_dir = tmp_path / "index"
    done = _run("index", str(source), "--index", str(index_dir), "--no-progress")
    assert done.returncode == 1
    assert f"{source}:2" in done.stderr and f"{source}:3" in done.stderr
    assert "indexed 1 documents" in done.stdout
    strict = _run("index", str(source), "--index", str(tmp_path / "strict"), "--strict", "--no-progress")
    assert strict.returncode == 1
    assert strict.stderr.strip().count("\n") == 0, strict.stderr
    assert not (tmp_path / "strict" / "CURRENT").exists()


@pytest.mark.parametrize(
    "args",
    [
        ("search", "запит", "--index", "/nonexistent/poshuk-index"),
        ("index", "/nonexistent/articles.jsonl", "--index", "IDX"),
        ("search", "запит", "--index", "IDX", "--model", "/nonexistent/model"),
    ],
)
def test_cli_errors_are_one_line_and_nonzero(args: tuple[str, ...], example_index: Path) -> None:
    done = _run(*(str(example_index) if a == "IDX" else a for a in args))
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("poshuk: error: "), done.stderr


def test_a_serving_install_indexes_and_searches_without_torch(tmp_path: Path) -> None:
    """`pip install poshuk` without the `model` extra: index and search run on the ONNX export alone."""
    source = tmp_path / "news.jsonl"
    source.write_text(
        json.dumps(
            {
                "id": "talks",
                "title": "Переговори",
                "text": "Росія та Північна Корея провели переговори про постачання артилерійських снарядів.",
                "lang": "uk",
            }
        )
        + "\n"
        + json.dumps({"id": "library", "text": "У Львові відкрили нову дитячу бібліотеку.", "lang": "uk"})
        + "\n",
        encoding="utf-8",
    )
    index_dir = tmp_path / "index"
    run = dict(capture_output=True, text=True, timeout=300, env=_env())
    done = subprocess.run(
        poshuk_without_model_extra("index", str(source), "--index", str(index_dir), "--no-progress"), **run
    )
    assert done.returncode == 0, done.stderr
    done = subprocess.run(
        poshuk_without_model_extra("search", "artillery shells from North Korea", "--index", str(index_dir), "--json"),
        **run,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["hits"][0]["doc_id"] == "talks"


def test_a_serving_install_says_how_to_get_the_model_built(tmp_path: Path) -> None:
    env = _env() | {"POSHUK_HOME": str(tmp_path / "home")}
    done = subprocess.run(
        poshuk_without_model_extra("model", "install"), capture_output=True, text=True, timeout=120, env=env
    )
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) <= 2, done.stderr  # the error and its hint, no traceback
    assert "torch" in lines[0] and "poshuk[model]" in done.stderr, done.stderr
    assert not (tmp_path / "home" / "models").exists() or not any((tmp_path / "home" / "models").iterdir())
