"""The ONNX backends of the real default model against sentence-transformers on torch.

The export is cached beside the provisioned model (``<model>/onnx``), as in production; the
first run builds it (about a minute), later runs reuse it.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from poshuk.encoder import Encoder
from poshuk.errors import ModelError
from poshuk.models import ResolvedModel, resolve_model
from poshuk.onnx_encoder import OnnxEncoder, Variant
from poshuk.onnx_export import ensure_onnx
from poshuk.settings import Settings
from tests.support.repo import EXAMPLE_NEWS
from tests.support.texts import TEXTS

pytestmark = pytest.mark.model


QUERIES = [
    "North Korea ammunition deliveries to Russia",
    "state budget vote in parliament",
    "new library for children",
    "power outages after shelling",
]
PASSAGES = [
    "Росія та Північна Корея провели переговори про постачання зброї та боєприпасів.",
    "Верховна Рада ухвалила державний бюджет на 2026 рік у другому читанні.",
    "У Львові відкрили нову дитячу бібліотеку з великою читальною залою.",
    "Харківщина: внаслідок обстрілу пошкоджено лінію електропередачі, без світла 12 тисяч родин.",
    "Збірна України з футболу виграла у Ісландії 2:1.",
]


def _long_texts() -> list[str]:
    """Whole example articles: a few run past the model's 512 tokens and get truncated."""
    articles = [json.loads(line) for line in EXAMPLE_NEWS.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [a["title"] + "\n" + a["text"] for a in articles[:6]]


@pytest.fixture(scope="module")
def resolved(real_settings: Settings) -> ResolvedModel:
    try:
        model = resolve_model(real_settings.model, real_settings.home_path)
    except ModelError as err:
        pytest.fail(f"the default model is not provisioned ({err.one_line()}); run `make setup`")
    ensure_onnx(model.folder, weights_sha256=model.weights_sha256)
    return model


def _onnx(resolved: ResolvedModel, variant: Variant) -> OnnxEncoder:
    return OnnxEncoder(resolved.folder, name=resolved.name, weights_sha256=resolved.weights_sha256, variant=variant)


@pytest.fixture(scope="module")
def torch_vectors(torch_encoder: Encoder) -> tuple[np.ndarray, np.ndarray]:
    """torch's passage vectors of TEXTS + long articles and query vectors of TEXTS, computed once."""
    return torch_encoder.encode_passages([*TEXTS, *_long_texts()]), torch_encoder.encode_queries(TEXTS)


@pytest.mark.parametrize(("variant", "floor"), [("int8", 0.99), ("fp32", 0.9999)])
def test_onnx_vectors_match_torch(
    torch_encoder: Encoder,
    torch_vectors: tuple[np.ndarray, np.ndarray],
    resolved: ResolvedModel,
    variant: Variant,
    floor: float,
) -> None:
    encoder = _onnx(resolved, variant)
    assert encoder.identity.compatible_with(torch_encoder.identity)
    assert encoder.identity.backend == f"onnx-{variant}"
    passages, queries = torch_vectors
    cos_passages = np.sum(encoder.encode_passages([*TEXTS, *_long_texts()]) * passages, axis=1)
    cos_queries = np.sum(encoder.encode_queries(TEXTS) * queries, axis=1)
    worst = min(float(cos_passages.min()), float(cos_queries.min()))
    assert worst >= floor, f"{variant}: cosine to torch {worst:.5f} < {floor}"


def test_tokens_are_counted_like_torch(torch_encoder: Encoder, resolved: ResolvedModel) -> None:
    encoder = _onnx(resolved, "int8")
    for text in TEXTS:
        assert encoder.count_tokens(text) == torch_encoder.count_tokens(text), text


@pytest.mark.parametrize("variant", ["int8", "fp32"])
def test_cross_lingual_ranking_matches_torch(torch_encoder: Encoder, resolved: ResolvedModel, variant: Variant) -> None:
    encoder = _onnx(resolved, variant)
    ours = encoder.encode_queries(QUERIES) @ encoder.encode_passages(PASSAGES).T
    theirs = torch_encoder.encode_queries(QUERIES) @ torch_encoder.encode_passages(PASSAGES).T
    relevant = list(range(len(QUERIES)))  # each English query -> its Ukrainian passage
    assert np.argmax(theirs, axis=1).tolist() == relevant
    assert np.argmax(ours, axis=1).tolist() == relevant
    if variant == "fp32":
        assert np.argsort(-ours, axis=1).tolist() == np.argsort(-theirs, axis=1).tolist()
    else:  # e5's unrelated passages sit within 0.01 of each other; int8 may reorder those, not shift scores
        assert float(np.abs(ours - theirs).max()) < 0.02


def test_serving_the_real_model_does_not_import_torch(resolved: ResolvedModel) -> None:
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from poshuk.onnx_encoder import OnnxEncoder\n"
        f"encoder = OnnxEncoder(Path({str(resolved.folder)!r}), name='m', weights_sha256={resolved.weights_sha256!r})\n"
        "assert encoder.encode_queries(['Kyiv']).shape == (1, 384)\n"
        "heavy = [m for m in ('torch', 'transformers', 'sentence_transformers') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
