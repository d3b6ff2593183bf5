"""Property-based tests: hostile input never crashes a reader or the write API, and never corrupts the index.

Readers get arbitrary bytes, broken UTF-8, huge lines, deeply nested HTML and JSON of
the wrong types; they must yield articles or ``BadRecordError`` and nothing else. The
HTTP write API gets arbitrary JSON and bytes; every answer must be below 500 and, after
each one, the index must still be whole (``check_index``). The package never loads
pickle or other code-running formats.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from litestar import Litestar
from litestar.testing import TestClient

from poshuk.documents import Article
from poshuk.encoder import HashEncoder
from poshuk.errors import BadRecordError
from poshuk.language import LanguageDetector
from poshuk.readers import MAX_FILE_BYTES, read_articles
from service.app import create_app
from tests.support.app import AUTH, build_service_index, make_settings, service_state
from tests.support.consistency import check_index

REPO = Path(__file__).resolve().parents[2]
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
DETECTOR = LanguageDetector()

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=40),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)
field_names = st.sampled_from(
    ["id", "title", "text", "url", "source", "published_at", "lang", "section", "tags", "extra"]
)
article_like = st.dictionaries(field_names, json_values, max_size=9)
valid_article = st.fixed_dictionaries(
    {"text": st.text(min_size=1, max_size=200)},
    optional={
        "title": st.text(max_size=60),
        "lang": st.sampled_from(["uk", "en", "", "xx", "UK-ua"]),
        "tags": st.lists(st.text(max_size=10), max_size=3),
        "published_at": st.sampled_from(["2023-08-31", "2023-08-31T09:15:00Z", "yesterday"]),
    },
)


def _read(path: Path) -> list[Article | BadRecordError]:
    out = list(read_articles(path, detector=DETECTOR))
    assert out, "a reader must say something about every file"
    assert all(isinstance(item, Article | BadRecordError) for item in out)
    for item in out:
        if isinstance(item, Article):
            assert item.id.strip() and (item.text.strip() or item.title.strip())
    return out


# --- readers ----------------------------------------------------------------------------------


@FAST
@given(data=st.binary(max_size=2000), suffix=st.sampled_from([".jsonl", ".txt", ".md", ".html"]))
def test_any_bytes_in_any_source_format(tmp_path_factory: pytest.TempPathFactory, data: bytes, suffix: str) -> None:
    path = tmp_path_factory.mktemp("bytes") / f"doc{suffix}"
    path.write_bytes(data)
    _read(path)


@FAST
@given(
    records=st.lists(
        st.one_of(
            article_like.map(lambda d: json.dumps(d).encode()),
            st.binary(max_size=100),
            st.just(b"\xff\xfe\xc3\x28 broken utf-8"),
            st.just(b'{"id": "x", "text": "' + b"\xd0" + b'"}'),
        ),
        max_size=8,
    )
)
def test_jsonl_with_wrong_types_and_broken_utf8(tmp_path_factory: pytest.TempPathFactory, records: list[bytes]) -> None:
    path = tmp_path_factory.mktemp("jsonl") / "news.jsonl"
    path.write_bytes(b"\n".join(r.replace(b"\n", b" ") for r in records))
    out = _read(path)
    lines = [n for n, r in enumerate(records, start=1) if r.replace(b"\n", b" ").strip()]
    assert len(out) == max(1, len(lines))  # one record, or one error, per non-empty line


@settings(max_examples=8, deadline=None)
@given(length=st.integers(min_value=100_000, max_value=3_000_000), suffix=st.sampled_from([".txt", ".md", ".jsonl"]))
def test_huge_lines(tmp_path_factory: pytest.TempPathFactory, length: int, suffix: str) -> None:
    path = tmp_path_factory.mktemp("huge") / f"doc{suffix}"
    body = ("Слово " * (length // 6)).encode()
    path.write_bytes(b'{"id": "h", "text": "' + body + b'"}' if suffix == ".jsonl" else body)
    [item] = _read(path)
    assert isinstance(item, Article if path.stat().st_size <= MAX_FILE_BYTES else BadRecordError), item


@settings(max_examples=12, deadline=None)
@given(
    depth=st.integers(min_value=1, max_value=200_000),
    tag=st.sampled_from(["div", "b", "table", "span", "section", "p"]),
    closed=st.booleans(),
)
def test_deeply_nested_html(tmp_path_factory: pytest.TempPathFactory, depth: int, tag: str, closed: bool) -> None:
    path = tmp_path_factory.mktemp("deep") / "deep.html"
    inner = "<p>Текст статті про бюджет міста і ремонт доріг.</p>"
    html = f"<html><head><title>Глибоко</title></head><body>{f'<{tag}>' * depth}{inner}"
    html += f"{f'</{tag}>' * depth if closed else ''}</body></html>"
    path.write_text(html, encoding="utf-8")
    _read(path)  # lxml caps the tree depth; deep input is at worst "no article text found"


def test_an_html_file_over_the_size_limit_is_a_bad_record(tmp_path: Path) -> None:
    path = tmp_path / "big.html"
    path.write_bytes(b"<p>" + b"x" * (6 * 1024 * 1024) + b"</p>")
    [item] = _read(path)
    assert isinstance(item, BadRecordError) and "larger than" in str(item)


# --- the write API ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient[Litestar], Path]]:
    folder = tmp_path_factory.mktemp("props")
    index_dir = folder / "index"
    build_service_index(index_dir, HashEncoder())
    app = create_app(
        make_settings(folder, service_rate_limit_per_second="0", service_max_batch_documents="20"),
        index_dir,
        encoder=HashEncoder(),
    )
    with TestClient(app) as client:
        assert service_state(app).wait(10)
        yield client, index_dir


def _assert_handled(response: Any) -> None:
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        assert response.headers["content-type"].startswith("application/problem+json")


@FAST
@given(body=json_values | article_like, doc_id=st.text(min_size=1, max_size=30).filter(lambda s: "/" not in s))
def test_put_with_any_json_never_fails_the_server_or_the_index(
    live: tuple[TestClient[Litestar], Path], body: Any, doc_id: str
) -> None:
    client, index_dir = live
    response = client.put(f"/v1/documents/{quote(doc_id, safe='')}", json=body, headers=AUTH)
    _assert_handled(response)
    check_index(index_dir)


@FAST
@given(
    batch=st.lists(
        st.one_of(valid_article.map(lambda a: {**a, "id": "p-1"}), article_like, valid_article), max_size=25
    ),
    ndjson=st.booleans(),
)
def test_batches_are_all_or_nothing(live: tuple[TestClient[Litestar], Path], batch: list[Any], ndjson: bool) -> None:
    client, index_dir = live
    before = check_index(index_dir)
    if ndjson:
        content = "\n".join(json.dumps(item) for item in batch).encode()
        response = client.post(
            "/v1/documents", content=content, headers={**AUTH, "content-type": "application/x-ndjson"}
        )
    else:
        response = client.post("/v1/documents", json=batch, headers=AUTH)
    _assert_handled(response)
    after = check_index(index_dir)
    if response.status_code != 200:
        assert after == before  # a refused batch changed nothing


@FAST
@given(
    body=st.binary(max_size=3000),
    content_type=st.sampled_from(["application/json", "application/x-ndjson", "text/plain", "application/msgpack"]),
    method=st.sampled_from(["PUT", "POST", "DELETE"]),
)
def test_any_bytes_to_the_write_routes(
    live: tuple[TestClient[Litestar], Path], body: bytes, content_type: str, method: str
) -> None:
    client, index_dir = live
    path = "/v1/documents" if method == "POST" else "/v1/documents/bytes-1"
    response = client.request(method, path, content=body, headers={**AUTH, "content-type": content_type})
    _assert_handled(response)
    check_index(index_dir)


# --- no code-running formats ------------------------------------------------------------------

_FORBIDDEN = re.compile(
    r"\bimport pickle\b|\bpickle\.|allow_pickle\s*=\s*True|\bnp\.load\(|\bnumpy\.load\(|\btorch\.load\(|"
    r"\bjoblib\b|\bmarshal\.|\bshelve\b|\byaml\.load\(|\bdill\b|\bcloudpickle\b"
)


def test_no_code_running_format_is_ever_loaded() -> None:
    offenders = []
    for package in ("poshuk", "service", "indexer"):
        for path in sorted((REPO / package).rglob("*.py")):
            for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
                if _FORBIDDEN.search(line):
                    offenders.append(f"{path.relative_to(REPO)}:{n}: {line.strip()}")
    assert not offenders, "\n".join(offenders)
