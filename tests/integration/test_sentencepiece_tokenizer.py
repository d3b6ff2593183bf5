"""The default model's tokenizer.json on sentencepiece gives the ``tokenizers`` library's token ids.

Where the two differ, both segmentations must score the same under the model's piece scores
(a tie the two libraries break differently); any other difference fails.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import pytest
from tokenizers import Tokenizer

from poshuk.models import ResolvedModel, resolve_model
from poshuk.onnx_encoder import load_token_ids
from poshuk.sentencepiece_tokenizer import SentencePieceTokenizer
from poshuk.settings import Settings
from tests.support.repo import EXAMPLE_NEWS
from tests.support.texts import TEXTS

pytestmark = pytest.mark.model

EDGES = [
    "",
    " ",
    "  leading spaces",
    "trailing space ",
    "passage: Її пам’ять — ґанок ",
    "runs   of\t\tspaces\n\nand lines",
    "\u3000ideographic space, no-break\u00a0\u00a0space, zero\u200bwidth",
    "ﬁ ligature, ① circled, Ｆｕｌｌ width, Ⅻ",
    "e\u0301 combining, й decomposed: и\u0306",
    "<s> </s> <mask> <pad> <unk> in text",
    "a   <mask> b<s>c",
    "▁ literal metaspace ▁▁",
    "emoji 😀👍🏽 and 日本語 and مرحبا",
    "\x00\x01 control characters",
]


@pytest.fixture(scope="module")
def resolved(real_settings: Settings) -> ResolvedModel:
    return resolve_model(real_settings.model, real_settings.home_path)


def _texts() -> list[str]:
    texts = list(EDGES) + TEXTS
    for line in EXAMPLE_NEWS.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        texts.append(record["title"])
        texts += [p for p in re.split(r"\n+", record["text"]) if p.strip()]
        texts.append(record["text"])
    return texts + [f"query: {t}" for t in texts] + [f"passage: {t}" for t in texts]


def test_default_model_runs_on_sentencepiece(resolved: ResolvedModel) -> None:
    tokens = load_token_ids(resolved.folder / "tokenizer.json")
    assert isinstance(tokens, SentencePieceTokenizer)


def test_token_ids_match_tokenizers_but_for_equal_score_ties(resolved: ResolvedModel) -> None:
    path = resolved.folder / "tokenizer.json"
    reference = Tokenizer.from_file(str(path))
    scores = [score for _, score in json.loads(path.read_text(encoding="utf-8"))["model"]["vocab"]]
    ours = SentencePieceTokenizer.from_tokenizer_json(path.read_bytes())
    assert ours is not None
    texts = _texts()
    assert len(texts) > 500
    ties = 0
    for text, got in zip(texts, ours.ids(texts, 10**6), strict=True):
        expected = reference.encode(text).ids
        if got == expected:
            continue
        ties += 1
        assert math.isclose(sum(scores[i] for i in got), sum(scores[i] for i in expected), abs_tol=1e-4), text
        assert reference.decode(got) == reference.decode(expected), text
    assert ties <= len(texts) // 100


def test_long_texts_are_cut_like_transformers_does(resolved: ResolvedModel) -> None:
    path = resolved.folder / "tokenizer.json"
    reference = Tokenizer.from_file(str(path))
    reference.enable_truncation(max_length=16)
    ours = SentencePieceTokenizer.from_tokenizer_json(path.read_bytes())
    assert ours is not None
    text = "Верховна Рада ухвалила державний бюджет на 2026 рік у другому читанні, повідомляє пресслужба."
    (got,) = ours.ids([text], 16)
    assert got == reference.encode(text).ids and len(got) == 16
    assert ours.count(text) == len(Tokenizer.from_file(str(path)).encode(text).ids) > 16


def test_other_pipelines_keep_the_tokenizers_library(tmp_path: Path) -> None:
    word_level: dict[str, Any] = {
        "version": "1.0",
        "model": {"type": "WordLevel", "vocab": {"<unk>": 0, "a": 1}, "unk_token": "<unk>"},
        "normalizer": None,
        "pre_tokenizer": {"type": "Whitespace"},
        "post_processor": None,
        "added_tokens": [],
    }
    assert SentencePieceTokenizer.from_tokenizer_json(json.dumps(word_level).encode()) is None
    assert SentencePieceTokenizer.from_tokenizer_json(b"not json") is None
    path = tmp_path / "tokenizer.json"
    path.write_text(json.dumps(word_level), encoding="utf-8")
    assert not isinstance(load_token_ids(path), SentencePieceTokenizer)
    assert load_token_ids(path).ids(["a b"], 8) == [[1, 0]]
