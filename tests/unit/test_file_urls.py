"""``poshuk index --url-prefix``: files get their published address, records keep their own."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from poshuk.index import Index
from poshuk_cli.main import main
from tests.support.pdf import make_pdf


def test_files_get_their_address_under_the_prefix_and_records_keep_theirs(
    hash_model: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dump = tmp_path / "dump"
    (dump / "court rulings").mkdir(parents=True)
    (dump / "court rulings" / "ruling 7.pdf").write_bytes(make_pdf([["The tender is void."]]))
    (dump / "memo.txt").write_text("Memo\nThe audit starts on Monday.\n", encoding="utf-8")
    records = [{"id": "n1", "text": "News."}, {"id": "n2", "text": "More.", "url": "https://news.example/n2"}]
    (dump / "news.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    index_dir = tmp_path / "index"
    args = ["index", str(dump), "--index", str(index_dir), "--no-progress", "--url-prefix", "https://docs.example/d"]
    assert main(args) == 0, capsys.readouterr().err
    index = Index.open(index_dir)
    try:
        urls = {doc: index.document(doc).article.url for doc in ("court rulings/ruling 7", "memo", "n1", "n2")}
    finally:
        index.close()
    assert urls == {
        "court rulings/ruling 7": "https://docs.example/d/court%20rulings/ruling%207.pdf",
        "memo": "https://docs.example/d/memo.txt",
        "n1": None,  # a record of a JSONL file is not the file
        "n2": "https://news.example/n2",
    }


@pytest.mark.parametrize("prefix", ["docs.example/d/", "ftp://docs.example/", "https://docs.example/?q=1", "/d/"])
def test_a_prefix_that_is_no_web_folder_fails_before_anything_is_read(
    hash_model: None, tmp_path: Path, capsys: pytest.CaptureFixture[str], prefix: str
) -> None:
    (tmp_path / "memo.txt").write_text("Memo\nText.\n", encoding="utf-8")
    args = ["index", str(tmp_path / "memo.txt"), "--index", str(tmp_path / "index"), "--url-prefix", prefix]
    assert main(args) != 0
    assert "--url-prefix must be an http(s) URL of a folder" in capsys.readouterr().err
    assert not (tmp_path / "index").exists()
